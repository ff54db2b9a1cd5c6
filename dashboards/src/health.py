"""The "Partner Center exporter – Health" dashboard: is the exporter doing its job.

Per instance: up, version, polls and sign-in failures; each collector's last
success, run duration and the progress of a running one; requests to Azure AD
and Partner Center; per-customer data freshness and fetch status; the process.
"""

from grafana_foundation_sdk.models import common as cm, dashboard as dm

from common import (
    HEALTH_UID, bar_gauge, colors, customer_variable, data_table, datasource_variable, instant, Layout,
    mapped_cells, named, new_dashboard, prop, query, query_variable, rows, stat, thresholds, time_series,
    unit_cells, value_map,
)

#: The selected scrape jobs and instances of the exporter.
SCRAPE = 'job=~"$job", instance=~"$instance"'
POLL_STATE = {"0": ("idle", "text"), "1": ("polling", "blue")}
NEVER = {"0": ("never", "red")}


def per_collector(metric):
    """A collector gauge per instance and collector (replicas stay apart)."""
    return "max by (instance, collector) (%s{%s})" % (metric, SCRAPE)


#: Share of the running (or last) run's targets that are done.
PROGRESS = "%s / %s" % (per_collector("partnercenter_poll_targets_done"),
                        "max by (instance, collector) (partnercenter_poll_targets{%s} > 0)" % SCRAPE)


def fixed_text(panel):
    return panel.color_scheme(colors(dm.FieldColorModeId.FIXED, "text"))


def failures(panel):
    """A count that is fine at 0 and red from 1."""
    return (panel.unit("none").decimals(0).color_scheme(colors(dm.FieldColorModeId.THRESHOLDS))
            .thresholds(thresholds("green", (1, "red"))))


def exporter(layout):
    layout.row("Exporter")
    layout.add(stat("Up", "Whether Prometheus can scrape the exporter (the `up` series of its scrape job).",
                    [instant("up{%s}" % SCRAPE, "{{instance}}")], color_mode=cm.BigValueColorMode.BACKGROUND)
               .mappings([value_map({"0": ("DOWN", "red"), "1": ("UP", "green")})])
               .color_scheme(colors(dm.FieldColorModeId.THRESHOLDS)).thresholds(thresholds("red", (1, "green"))),
               3, 4)
    layout.add(fixed_text(stat("Version",
                               "Exporter version, git revision and Rust compiler (partnercenter_exporter_build_info).",
                               [instant("partnercenter_exporter_build_info{%s}" % SCRAPE,
                                        "{{version}} ({{revision}}, {{rustc_version}})")],
                               text_mode=cm.BigValueTextMode.NAME)), 4, 4)
    layout.add(fixed_text(stat("Last complete poll",
                               "End of the last poll in which every customer's data was fetched. A partial poll "
                               "(some customers failed) does not count.",
                               [instant(per_collector("partnercenter_poll_last_success_timestamp_seconds") + " * 1000",
                                        "{{instance}} {{collector}}")])
                          .unit("dateTimeFromNow").mappings([value_map(NEVER)])), 4, 4)
    layout.add(fixed_text(stat("Poll running", "Whether a poll of Partner Center is running now.",
                               [instant(per_collector("partnercenter_poll_in_progress"), "{{instance}} {{collector}}")],
                               color_mode=cm.BigValueColorMode.VALUE)
                          .mappings([value_map(POLL_STATE)])), 3, 4)
    layout.add(fixed_text(stat("Last poll took",
                               "Duration of the last complete poll. It is bounded by Partner Center's rate limit "
                               "(--poll.rate-limit) and the number of customers.",
                               [instant(per_collector("partnercenter_poll_duration_seconds"),
                                        "{{instance}} {{collector}}")]).unit("s")), 3, 4)
    layout.add(failures(stat("Customers failing",
                             "Customers whose last fetch failed; they keep their last good values.",
                             [instant("count(max by (customer_id) (partnercenter_customer_fetch_success{%s}) == 0) "
                                      "or vector(0)" % SCRAPE, "failing")],
                             color_mode=cm.BigValueColorMode.BACKGROUND)), 3, 4)
    layout.add(failures(stat("Auth failures", "Failed Azure AD token requests in the selected time range.",
                             [instant("sum(increase(partnercenter_auth_failures_total{%s}[$__range])) or vector(0)"
                                      % SCRAPE, "failures")],
                             color_mode=cm.BigValueColorMode.BACKGROUND)), 4, 4)


def polls(layout):
    layout.row("Polls")
    panel = time_series("Polls per hour by result",
                        "Polls finished in the preceding hour: success (every customer fetched), partial (some "
                        "customers failed), failure (nothing fetched, e.g. sign-in failed).",
                        [query("sum by (collector, result) (increase(partnercenter_polls_total{%s}[1h]))" % SCRAPE,
                               "{{collector}} {{result}}")], unit="none", decimals=1, step=False)
    for result, color in (("success", "green"), ("partial", "orange"), ("failure", "red")):
        panel.override_by_name(result, [prop("color", {"mode": "fixed", "fixedColor": color})])
    layout.add(panel, 8, 8)
    layout.add(time_series("Poll duration", "Duration of the last complete poll, over time.",
                           [query("partnercenter_poll_duration_seconds{%s}" % SCRAPE, "{{instance}} {{collector}}")],
                           unit="s"), 8, 8)
    layout.add(bar_gauge("Oldest customer data (top 20)",
                         "Data freshness per customer: time since each customer's data was last fetched, oldest "
                         "first. Normally at most one poll interval; more means its fetches fail.",
                         [instant("topk(20, time() - %s)" % named(
                             "max by (customer_id) (partnercenter_customer_last_success_timestamp_seconds{%s} > 0)"
                             % SCRAPE), "{{customer_name}}")], unit="dtdurations")
               .color_scheme(colors(dm.FieldColorModeId.THRESHOLDS))
               .thresholds(thresholds("green", (10800, "orange"), (21600, "red"))), 8, 8)


def collectors(layout):
    layout.row("Collectors")
    layout.add(data_table(
        "Collectors: last run and progress",
        "Each collector per instance: when its last fully successful run ended, how long its last complete run "
        "took, whether a run is going now, and that run's progress (for an idle collector, its last run's): "
        "targets done of the targets it has to fetch (customers, or requests for the partner-level collectors).",
        rows(per_collector("partnercenter_poll_last_success_timestamp_seconds") + " * 1000",
             per_collector("partnercenter_poll_duration_seconds"),
             per_collector("partnercenter_poll_in_progress"),
             PROGRESS,
             per_collector("partnercenter_poll_targets_done"),
             per_collector("partnercenter_poll_targets")),
        [("collector", "Collector"), ("instance", "Instance"), ("Value #A", "Last success"),
         ("Value #B", "Last run took"), ("Value #C", "Running"), ("Value #D", "Progress"), ("Value #E", "Done"),
         ("Value #F", "Targets")],
        "Collector", desc=False,
        overrides=[("Last success", [prop("unit", "dateTimeFromNow"), prop("mappings", [value_map(NEVER)])]),
                   unit_cells("Last run took", "s"),
                   mapped_cells("Running", POLL_STATE),
                   ("Progress", [prop("unit", "percentunit"), prop("decimals", 0), prop("min", 0), prop("max", 1),
                                 prop("custom.cellOptions", {"type": "gauge", "mode": "basic"}),
                                 prop("color", {"mode": "fixed", "fixedColor": "blue"})])]), 16, 8)
    layout.add(time_series("Run progress",
                           "Share of its targets that each collector's current (or last) run has fetched, over "
                           "time: a running collector climbs to 100 %; a long run under the rate limit climbs "
                           "slowly.",
                           [query(PROGRESS, "{{instance}} {{collector}}")], unit="percentunit", step=True)
               .min(0).max(1), 8, 8)


def api(layout):
    layout.row("Partner Center API")
    layout.add(time_series("API requests per minute by endpoint and status code",
                           "HTTP requests to Azure AD (token, devicecode) and Partner Center (customers, "
                           "servicecosts, usagerecords, invoices, invoicesummaries, lineitems, generatetoken) per "
                           "minute, by status code (`error` = no response). Compare with --poll.rate-limit; 429 "
                           "means Partner Center throttled the exporter.",
                           [query("sum by (endpoint, code) (rate(partnercenter_api_requests_total{%s}"
                                  "[$__rate_interval])) * 60" % SCRAPE, "{{endpoint}} {{code}}")],
                           unit="reqpm", step=False), 12, 8)
    rate = "rate(partnercenter_api_request_duration_seconds_%s{%s}[$__rate_interval])"
    quantile = "histogram_quantile(%s, sum by (endpoint, le) (%s))"
    layout.add(time_series("API request latency",
                           "Latency of requests to Azure AD and Partner Center by endpoint (quantiles from the "
                           "histogram). Requests happen only while a poll runs, so the lines have gaps between "
                           "polls.",
                           [query(quantile % (q, rate % ("bucket", SCRAPE)), "%s {{endpoint}}" % name, ref)
                            for q, name, ref in (("0.5", "p50", "A"), ("0.9", "p90", "B"), ("0.99", "p99", "C"))]
                           + [query("sum by (endpoint) (%s) / sum by (endpoint) (%s)"
                                    % (rate % ("sum", SCRAPE), rate % ("count", SCRAPE)), "mean {{endpoint}}", "D")],
                           unit="s", step=False), 12, 8)
    layout.add(data_table("API requests in the time range",
                          "Requests per endpoint and status code over the selected time range.",
                          [query("sum by (endpoint, code) (increase(partnercenter_api_requests_total{%s}[$__range]))"
                                 % SCRAPE, instant=True, table_format=True)],
                          [("endpoint", "Endpoint"), ("code", "Status"), ("Value", "Requests")],
                          "Requests", decimals=0), 8, 8)
    layout.add(time_series("Auth failures per hour by reason",
                           "Failed Azure AD token requests by reason (the AAD `error` value, e.g. invalid_grant, or "
                           "transport). `none` when there were none. See the PartnerCenterAuthFailing runbook.",
                           [query("sum by (reason) (increase(partnercenter_auth_failures_total{%s}[1h])) or on () "
                                  'label_replace(vector(0), "reason", "none", "", "")' % SCRAPE, "{{reason}}")],
                           unit="none", decimals=0, step=False), 8, 8)
    layout.add(data_table(
        "Customers: fetch status (failing first)",
        "Every customer with the outcome of its last fetch and the time of its last successful fetch; failing "
        "customers first.",
        rows(named("max by (customer_id) (partnercenter_customer_fetch_success{%s})" % SCRAPE),
             named("max by (customer_id) (partnercenter_customer_last_success_timestamp_seconds{%s}) * 1000" % SCRAPE)),
        [("customer_name", "Customer"), ("customer_id", "Customer ID"), ("Value #A", "Last fetch"),
         ("Value #B", "Data fetched")],
        "Last fetch", desc=False,
        overrides=[mapped_cells("Last fetch", {"0": ("failing", "red"), "1": ("ok", "green")}),
                   unit_cells("Data fetched", "dateTimeFromNow")]), 8, 8)


def process(layout):
    layout.row("Process")
    layout.add(time_series("Scrape duration", "How long Prometheus takes to scrape the exporter. Scrapes never call "
                           "Partner Center, so this stays small.",
                           [query("scrape_duration_seconds{%s}" % SCRAPE, "{{instance}}")], unit="s", step=False), 8, 7)
    layout.add(time_series("Memory", "Resident memory of the exporter process.",
                           [query("process_resident_memory_bytes{%s}" % SCRAPE, "{{instance}}")], unit="bytes",
                           step=False), 8, 7)
    layout.add(time_series("CPU", "CPU used by the exporter process (1 = one core).",
                           [query("rate(process_cpu_seconds_total{%s}[$__rate_interval])" % SCRAPE, "{{instance}}")],
                           unit="percentunit", step=False), 8, 7)


def dashboard():
    dash = (new_dashboard("Partner Center exporter – Health", HEALTH_UID,
                          "Health of partnercenter-exporter: polls, collectors, Partner Center and Azure AD requests, "
                          "sign-in failures, per-customer data freshness.",
                          ["exporter"], "1m")
            .time("now-24h", "now")
            .with_variable(datasource_variable())
            .with_variable(query_variable("job", "Job", "label_values(partnercenter_exporter_build_info, job)",
                                          "Prometheus scrape job of the exporter"))
            .with_variable(query_variable("instance", "Instance",
                                          'label_values(partnercenter_exporter_build_info{job=~"$job"}, instance)',
                                          "Exporter instance"))
            .with_variable(customer_variable("Customer name (for the per-customer panels)")))
    layout = Layout(dash)
    exporter(layout)
    polls(layout)
    collectors(layout)
    api(layout)
    process(layout)
    return dash
