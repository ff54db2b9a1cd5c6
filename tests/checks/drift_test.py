#!/usr/bin/env python3
"""Drift test: the Grafana dashboards and Prometheus rules against the exporter itself.

Starts the exporter (`--demo`, the built-in simulated Partner Center) and a real
Prometheus server that scrapes it every second with the rule files from
prometheus/ loaded, then checks:

  * the dashboards' JSON: schema version, `__inputs`/`__requires`, the datasource
    variable and that no datasource UID is hard-coded, currency units on money
    panels, unique panel ids;
  * every template variable query returns values; the customer-name escaping that
    Grafana applies makes `=~` select exactly that customer, for every customer;
  * every PromQL expression of every panel target, with the template variables
    substituted (once with the dashboard's defaults, "All" where there is one,
    and once with one concrete value per variable), parses and returns data;
  * every rule loaded, healthy, and its expression parses; every recording rule
    produces series; the queries inside alert annotations parse; every alert
    has a severity (warning or critical), a summary, a description and a
    runbook_url whose anchor is a heading of the README;
  * no cost or other money gauge (or a recording rule built on them) is fed to
    sum_over_time, increase, rate or irate: they are running totals already;
  * every metric name used anywhere is exported by the exporter (or is a
    series Prometheus makes itself, such as `up`, or a recording rule defined
    in prometheus/), and every exported metric is used by a dashboard or rule
    (but the few listed in NOT_ON_DASHBOARDS).

Prints one line per check and a final "N passed, N failed" line; exits non-zero
on any failure. Python 3 standard library only; starting, waiting for and
stopping the exporter and Prometheus comes from exporter_process.py beside it.

usage: tests/checks/drift_test.py [EXPORTER_BINARY] [--prometheus PATH] [--timeout SECONDS]
"""

import argparse
import glob
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from exporter_process import HTTP_TIMEOUT, Exporter, Process, free_port, http_get

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JOB = "partnercenter-exporter"

# Series that Prometheus itself creates for every scrape target or alert.
PROMETHEUS_SERIES = {
    "up", "scrape_duration_seconds", "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling", "scrape_series_added",
    "ALERTS", "ALERTS_FOR_STATE",
}

# Metrics that hold running totals of the billing period or month (gauges), and
# the other money gauges (budgets, invoice amounts): summing or rating them over
# time is always wrong.
RUNNING_TOTAL = re.compile(
    r"^(partnercenter_service_costs_(pretax|tax|after_tax)|partnercenter_customer_budget"
    r"|partnercenter_subscription_costs_(pretax|tax|after_tax)|partnercenter_usage_(cost_estimate|budget)"
    r"|partnercenter_usage_cost_estimate_usd|partnercenter_invoice_(total_charges|paid_amount)"
    r"|partnercenter_invoices_(balance|last_payment_amount)"
    r"|partnercenter:.*(after_tax|budget).*)$")
# Money amounts, each with a `currency` label: the panels that show them need
# currency units.
MONEY = re.compile(
    r"partnercenter_service_costs_(pretax|tax|after_tax)\b|partnercenter_customer_budget\b"
    r"|partnercenter_subscription_costs_(pretax|tax|after_tax)\b|partnercenter_usage_(cost_estimate|budget)\b"
    r"|partnercenter_invoice_(total_charges|paid_amount)\b|partnercenter_invoices_(balance|last_payment_amount)\b")
# Exported metrics that no dashboard or rule needs to use (every other one must
# be used by one), and why.
NOT_ON_DASHBOARDS = {
    "partnercenter_usage_cost_estimate_usd": "the USD equivalent of partnercenter_usage_cost_estimate",
    "partnercenter_usage_azure_plan": "the kind of usage record (Azure plan or legacy), for ad-hoc queries",
    "partnercenter_refresh_token_persist_failures_total": "logged; for an alert rule, not a dashboard",
}
TIME_SUM_FUNCS = ("sum_over_time", "increase", "rate", "irate")

PROMQL_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "days_in_month", "day_of_month", "day_of_week", "day_of_year", "deg",
    "delta", "deriv", "exp", "floor", "histogram_quantile", "histogram_count", "histogram_sum",
    "histogram_fraction", "histogram_stddev", "histogram_stdvar", "holt_winters", "double_exponential_smoothing",
    "hour", "idelta", "increase", "irate", "label_replace", "label_join", "last_over_time", "ln",
    "log10", "log2", "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi",
    "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round",
    "scalar", "sgn", "sin", "sinh", "sort", "sort_desc", "sort_by_label", "sort_by_label_desc",
    "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan", "tanh", "time",
    "timestamp", "vector", "year", "info",
}
PROMQL_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2", "start", "end",
}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}

TOKEN = re.compile(r"""
    (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<comment>\#[^\n]*)
  | (?P<brace>\{)
  | (?P<bracket>\[[^\]]*\])
  | (?P<num>0x[0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<space>\s+)
  | (?P<other>.)
""", re.X | re.S)


# ---------------------------------------------------------------- reporting
class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("ok    %s" % name, flush=True)
        else:
            self.failed += 1
            print("FAIL  %s%s" % (name, (": " + detail) if detail else ""), flush=True)
        return ok

    @staticmethod
    def info(msg):
        print("info  %s" % msg, flush=True)


# ---------------------------------------------------------------- PromQL helpers
def tokens(expr):
    return [(m.lastgroup, m.group()) for m in TOKEN.finditer(expr)]


def metric_names(expr):
    """Metric names (and recording-rule names) referenced by a PromQL expression."""
    toks = [t for t in tokens(expr) if t[0] not in ("space", "comment")]
    names = set()
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        if kind == "brace":
            # skip the label matchers up to the matching brace
            depth = 1
            i += 1
            while i < len(toks) and depth:
                if toks[i][1] == "{":
                    depth += 1
                elif toks[i][1] == "}":
                    depth -= 1
                i += 1
            continue
        if kind == "ident":
            low = text.lower()
            nxt = toks[i + 1][1] if i + 1 < len(toks) else ""
            if low in LABEL_LIST_KEYWORDS:
                if nxt == "(":  # skip the label list
                    j = i + 2
                    while j < len(toks) and toks[j][1] != ")":
                        j += 1
                    i = j + 1
                    continue
            elif low in PROMQL_KEYWORDS or text in PROMQL_AGGREGATIONS or nxt == "(":
                pass
            elif text in PROMQL_FUNCTIONS and nxt == "(":
                pass
            else:
                names.add(text)
        i += 1
    return names


def calls(expr, funcs):
    """(function, argument text) for each call of one of `funcs` in expr."""
    out = []
    for m in re.finditer(r"\b(%s)\s*\(" % "|".join(funcs), expr):
        depth, j = 1, m.end()
        while j < len(expr) and depth:
            if expr[j] == "(":
                depth += 1
            elif expr[j] == ")":
                depth -= 1
            j += 1
        out.append((m.group(1), expr[m.end():j - 1]))
    return out


def misused_running_totals(expr):
    bad = []
    for func, arg in calls(expr, TIME_SUM_FUNCS):
        for name in metric_names(arg):
            if RUNNING_TOTAL.match(name):
                bad.append("%s(%s)" % (func, name))
    return bad


def self_test(rep):
    cases = [
        ('sum by (customer_id, currency) (max by (customer_id) (foo_total{a="b", c=~"$x"}))', {"foo_total"}),
        ("topk by (currency) (10, a * on (customer_id) group_left (customer_name) b)", {"a", "b"}),
        ('histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m]))) > 1e3', {"h_bucket"}),
        ('rec:rule:sum / on () group_left () vector(1) offset 5m', {"rec:rule:sum"}),
        ('x unless ignoring (instance) y or label_replace(vector(0), "reason", "none", "", "")', {"x", "y"}),
        ("time() - z > 3 * 3600 and bool w", {"z", "w"}),
    ]
    ok = all(metric_names(e) == want for e, want in cases)
    ok = ok and misused_running_totals("sum_over_time(partnercenter_service_costs_after_tax[1d])") != []
    ok = ok and misused_running_totals("max_over_time(partnercenter_service_costs_after_tax[1d])") == []
    ok = ok and misused_running_totals("rate(partnercenter_api_requests_total[5m])") == []
    ok = ok and misused_running_totals("increase(partnercenter_usage_cost_estimate[1d])") != []
    ok = ok and misused_running_totals("sum_over_time(partnercenter_invoice_total_charges[30d])") != []
    ok = ok and misused_running_totals("last_over_time((partnercenter_service_costs_after_tax * x)[1d:5m])") == []
    ok = ok and bool(MONEY.search("partnercenter_usage_budget{a=\"b\"}"))
    ok = ok and not MONEY.search("partnercenter_usage_cost_estimate_usd")
    ok = ok and leftover_variables('label_replace(v, "m", "$1-$2", "m", "(.*)")') == []
    ok = ok and leftover_variables("x{a=~\"$customer\"}[$__range]") == ["$customer", "$__range"]
    rep.check("self-test: metric-name extraction, running-total misuse, money and variable detection", ok)


# ---------------------------------------------------------------- Grafana emulation
def regex_escape(value):
    """Grafana's Prometheus datasource escaping for multi-value / include-all variables."""
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(), value)


def regular_escape(value):
    """Grafana's Prometheus datasource escaping for single-value variables."""
    return value.replace("\\", "\\\\").replace("'", "\\\\'")


def leftover_variables(expr):
    """Variable references left in an interpolated expression; `$1` (a regex
    capture group in label_replace's replacement) is not a variable."""
    return re.findall(r"\$(?!\d)\w+|\$\{[^}]*\}|\[\[\w+\]\]", expr)


def interpolate(expr, values, builtins):
    allvals = dict(builtins)
    allvals.update(values)

    def repl(m):
        name = m.group(1) or m.group(3) or m.group(4)
        if name in allvals:
            return allvals[name]
        return m.group(0)
    out = re.sub(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]|\$(\w+)", repl, expr)
    return out


def panels_of(dash):
    out = []

    def walk(ps):
        for p in ps:
            out.append(p)
            walk(p.get("panels", []))
    walk(dash.get("panels", []))
    return out


def walk_json(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield path + "/" + k, k, v
            yield from walk_json(v, path + "/" + k)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from walk_json(v, "%s[%d]" % (path, i))


def static_checks(rep, name, dash):
    rep.check("%s: schemaVersion >= 38" % name, dash.get("schemaVersion", 0) >= 38,
              "schemaVersion %s" % dash.get("schemaVersion"))
    rep.check("%s: has a uid and a title" % name, bool(dash.get("uid")) and bool(dash.get("title")))
    inputs = dash.get("__inputs", [])
    rep.check("%s: __inputs has the DS_PROMETHEUS datasource input" % name,
              any(i.get("name") == "DS_PROMETHEUS" and i.get("type") == "datasource"
                  and i.get("pluginId") == "prometheus" for i in inputs))
    reqs = dash.get("__requires", [])
    rep.check("%s: __requires lists grafana and the prometheus datasource" % name,
              any(r.get("id") == "grafana" for r in reqs) and any(r.get("id") == "prometheus" for r in reqs))
    variables = dash.get("templating", {}).get("list", [])
    dsvars = [v for v in variables if v.get("type") == "datasource"]
    rep.check("%s: 'datasource' variable of type datasource (prometheus)" % name,
              any(v.get("name") == "datasource" and v.get("query") == "prometheus" for v in dsvars))
    bad = []
    for path, key, val in walk_json(dash):
        if key == "datasource" and val != {"type": "prometheus", "uid": "${datasource}"}:
            bad.append("%s=%s" % (path, json.dumps(val)))
        if key == "uid" and path != "/uid" and not path.endswith("/datasource/uid"):
            bad.append("%s=%s" % (path, val))
        if isinstance(val, str) and "${DS_PROMETHEUS}" in val and not re.match(
                r"^/templating/list\[\d+\]/current/(value|text)$", path):
            bad.append("%s uses ${DS_PROMETHEUS} directly" % path)
    rep.check("%s: every datasource is ${datasource}, no hard-coded UIDs" % name, not bad, "; ".join(bad[:5]))
    ids = [p.get("id") for p in panels_of(dash)]
    rep.check("%s: panel ids unique" % name, len(ids) == len(set(ids)))
    problems = []
    for p in panels_of(dash):
        if p.get("type") == "row":
            continue
        title = p.get("title", "?")
        if "gridPos" not in p:
            problems.append("%s: no gridPos" % title)
        targets = p.get("targets", [])
        if not targets:
            problems.append("%s: no targets" % title)
        for t in targets:
            if not t.get("expr") or not t.get("refId"):
                problems.append("%s: target without expr/refId" % title)
        # money panels: currency units
        exprs = " ".join(t.get("expr", "") for t in targets)
        money = MONEY.search(exprs)
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        ratio = unit in ("percentunit", "percent") or p.get("type") == "gauge"
        counts = re.match(r"\s*count\(", exprs) is not None
        if money and not ratio and not counts and p.get("type") != "table":
            ov_units = {prop.get("value") for ov in p.get("fieldConfig", {}).get("overrides", [])
                        for prop in ov.get("properties", []) if prop.get("id") == "unit"}
            if not (unit.startswith("currency") or {"currencyUSD", "currencyEUR"} <= ov_units):
                problems.append("%s: money panel without currency unit (override)" % title)
            # A table pivoted to one column per currency gets its units by column name.
            pivoted = any(tr.get("id") == "groupingToMatrix" and tr.get("options", {}).get("columnField") == "currency"
                          for tr in p.get("transformations", []))
            for t in targets:
                if pivoted:
                    if t.get("format") != "table":
                        problems.append("%s %s: a pivoted panel needs table-format queries" % (title, t.get("refId")))
                elif not t.get("legendFormat", "").rstrip().endswith("{{currency}}"):
                    problems.append("%s %s: legend must end with {{currency}} for the unit override"
                                    % (title, t.get("refId")))
        if money and p.get("type") == "table":
            org = [tr for tr in p.get("transformations", []) if tr.get("id") == "organize"]
            excluded = org[0]["options"].get("excludeByName", {}) if org else {}
            if "currency" in exprs and excluded.get("currency"):
                problems.append("%s: table hides the currency column" % title)
    rep.check("%s: panels have targets, gridPos, currency units on money panels" % name,
              not problems, "; ".join(problems[:6]))


# ---------------------------------------------------------------- Prometheus's HTTP API
class Prom:
    def __init__(self, base):
        self.base = base

    def api(self, path, params=None, post=True):
        data = urllib.parse.urlencode(params or {}, doseq=True).encode()
        url = self.base + path
        if post:
            req = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        else:
            req = urllib.request.Request(url + ("?" + data.decode() if data else ""))
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as r:
                return json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            try:
                return json.loads(e.read().decode())
            except Exception:
                return {"status": "error", "error": "HTTP %d" % e.code}

    def query(self, expr, t=None):
        p = {"query": expr}
        if t is not None:
            p["time"] = "%.3f" % t
        return self.api("/api/v1/query", p)

    def query_range(self, expr, start, end, step):
        return self.api("/api/v1/query_range", {"query": expr, "start": "%.3f" % start, "end": "%.3f" % end,
                                                "step": str(step)})


def github_anchors(path):
    """The anchors GitHub gives the headings of a Markdown file: lower case,
    punctuation dropped, spaces as hyphens (code blocks skipped)."""
    anchors, fenced = set(), False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("```"):
                fenced = not fenced
            elif not fenced and re.match(r"#{1,6} ", line):
                title = line.lstrip("#").strip().lower()
                anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def has_data(resp):
    if resp.get("status") != "success":
        return False
    data = resp.get("data", {})
    rtype, result = data.get("resultType"), data.get("result")
    if rtype == "scalar":
        return result is not None and not math.isnan(float(result[1]))
    if rtype == "vector":
        return any(not math.isnan(float(s["value"][1])) for s in result)
    if rtype == "matrix":
        return any(not math.isnan(float(v[1])) for s in result for v in s["values"])
    return bool(result)


def result_len(resp):
    return len(resp.get("data", {}).get("result") or [])


def stop(proc, name):
    if proc is not None and proc.stop(timeout=10) is None:
        Report.info("%s did not stop within 10s of SIGTERM; killed it" % name)


def parse_exposition(text):
    names = set()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split()
            if len(parts) >= 3:
                names.add(parts[2])
                if line.startswith("# TYPE ") and len(parts) >= 4 and parts[3] in ("histogram", "summary"):
                    names.update({parts[2] + "_sum", parts[2] + "_count"})
                    if parts[3] == "histogram":
                        names.add(parts[2] + "_bucket")
        elif line and not line.startswith("#"):
            m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
            if m:
                names.add(m.group())
    return names


# ---------------------------------------------------------------- main test
def run(args, rep, tmp):
    self_test(rep)

    dash_files = sorted(glob.glob(os.path.join(ROOT, "dashboards", "*.json")))
    rule_files = sorted(glob.glob(os.path.join(ROOT, "prometheus", "*.rules.yml")))
    rep.check("dashboards found (%d)" % len(dash_files), len(dash_files) >= 3)
    rep.check("rule files found (%d)" % len(rule_files), len(rule_files) >= 1)
    dashboards = {}
    uids = {}
    for path in dash_files:
        name = os.path.basename(path)
        try:
            with open(path, encoding="utf-8") as f:
                dashboards[name] = json.load(f)
            rep.check("%s: valid JSON" % name, True)
        except ValueError as e:
            rep.check("%s: valid JSON" % name, False, str(e))
            continue
        static_checks(rep, name, dashboards[name])
        uids.setdefault(dashboards[name].get("uid"), []).append(name)
    rep.check("dashboard uids unique", all(len(v) == 1 for v in uids.values()))

    # recording rules defined anywhere under prometheus/ (incl. examples used by the tests)
    recorded = set()
    for path in glob.glob(os.path.join(ROOT, "prometheus", "**", "*.yml"), recursive=True):
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"^\s*(?:-\s*)?record:\s*['\"]?([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
                if m:
                    recorded.add(m.group(1))

    # ------------------------------------------------ exporter
    binary = args.binary if os.path.isabs(args.binary) else os.path.join(ROOT, args.binary)
    if not rep.check("exporter binary exists: %s" % args.binary, os.access(binary, os.X_OK),
                     "build it first (cargo build --release) or pass its path"):
        return
    procs = args.procs
    exporter = procs["exporter"] = Exporter(
        binary, ["--demo", "--poll.interval", args.poll_interval], os.path.join(tmp, "exporter.log"), cwd=tmp)
    Report.info("starting: %s" % " ".join(exporter.argv))
    metrics_url = exporter.url("/metrics")

    def exporter_has_costs():
        status, body = http_get(metrics_url)
        return body if status == 200 and re.search(r"^partnercenter_service_costs_after_tax\{", body, re.M) else None
    try:
        exposition = exporter.wait_for("the exporter to serve cost metrics on %s" % metrics_url,
                                       exporter_has_costs, args.startup_timeout)
        rep.check("exporter serves cost metrics after its first poll", True)
    except RuntimeError as e:
        rep.check("exporter serves cost metrics after its first poll", False,
                  "%s\n--- exporter log ---\n%s" % (e, exporter.log_tail()))
        return

    # ------------------------------------------------ prometheus
    prom_port = free_port()
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n")
        f.write("rule_files:\n" + "".join("  - %s\n" % json.dumps(p) for p in rule_files))
        f.write("scrape_configs:\n  - job_name: %s\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n"
                % (JOB, exporter.port))
    prom_cmd = [args.prometheus, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                "--web.listen-address=127.0.0.1:%d" % prom_port, "--log.level=warn"]
    Report.info("starting: %s" % " ".join(prom_cmd))
    prometheus = procs["prometheus"] = Process(prom_cmd, os.path.join(tmp, "prometheus.log"), cwd=tmp,
                                               name="prometheus")
    prom = Prom("http://127.0.0.1:%d" % prom_port)
    prom_started = time.time()

    deadline = time.monotonic() + args.startup_timeout

    def wait(what, probe):
        # Every wait shares the one start-up deadline; each fails when Prometheus exits.
        return prometheus.wait_for(what, probe, deadline - time.monotonic())
    try:
        wait("Prometheus to be ready", lambda: http_get(prom.base + "/-/ready")[0] == 200)
        wait("the first scrape of the exporter", lambda: has_data(prom.query('up{job="%s"} == 1' % JOB)))
        wait("cost series in Prometheus", lambda: has_data(prom.query("partnercenter_service_costs_after_tax")))

        def rules_evaluated():
            groups = prom.api("/api/v1/rules", post=False).get("data", {}).get("groups", [])
            return groups and all(not r.get("lastEvaluation", "0001").startswith("0001")
                                  for g in groups for r in g["rules"])
        wait("every rule to be evaluated", rules_evaluated)
        # enough history for rate() windows: requests counted in two or more scrapes
        wait("request counters to increase",
             lambda: has_data(prom.query("rate(partnercenter_api_requests_total[1m]) > 0"))
             and has_data(prom.query("rate(partnercenter_api_request_duration_seconds_count[1m]) > 0")))
        while time.time() - prom_started < args.min_history:
            time.sleep(0.5)
        rep.check("Prometheus scrapes the exporter and evaluates the rules", True)
    except RuntimeError as e:
        rep.check("Prometheus scrapes the exporter and evaluates the rules", False,
                  "%s\n--- prometheus log ---\n%s\n--- exporter log ---\n%s"
                  % (e, prometheus.log_tail(), exporter.log_tail()))
        return

    # the exposition as Prometheus sees it now (after several polls)
    exposition = http_get(metrics_url)[1]
    exported = parse_exposition(exposition)
    Report.info("exporter exports %d metric names" % len(exported))
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=exposition.encode(), capture_output=True,
                           timeout=30)
        for line in (p.stdout + p.stderr).decode().splitlines():
            if line.strip():
                Report.info("promtool check metrics: %s" % line.strip())

    now = time.time()
    history = max(10, int(now - prom_started) - 2)
    builtins = {
        "__rate_interval": "1m", "__interval": "2s", "__interval_ms": "2000",
        "__range": "%ds" % history, "__range_s": str(history), "__range_ms": str(history * 1000),
    }
    used_names = {}  # name -> first place it was seen

    def note_names(expr, where):
        for n in metric_names(expr):
            used_names.setdefault(n, where)

    misuse = {"checked": 0}

    def check_no_misuse(expr, where):
        misuse["checked"] += 1
        bad = misused_running_totals(expr)
        if bad:
            misuse[where] = bad
            rep.check("%s: no sum_over_time/increase/rate over running totals" % where, False, ", ".join(bad))

    # a customer with costs, a budget and a billing period (and, best, a usage
    # budget in Partner Center and subscription costs): the customer dashboards
    # have something in every panel for it
    combo = {}
    base = ("partnercenter_service_costs_after_tax"
            " and on (customer_id, currency) partnercenter_customer_budget"
            " and on (customer_id, invoice_type) partnercenter_service_costs_billing_period_start_timestamp_seconds")
    full = prom.query(
        "max by (customer_id, currency, invoice_type) (%s"
        " and on (customer_id, currency) partnercenter_usage_budget"
        " and on (customer_id, invoice_type, currency) partnercenter_subscription_costs_after_tax)" % base)
    rep.check("the demo has a customer with costs, both budgets, a billing period and subscription costs",
              has_data(full), "no such customer: the usage and subscription panels get no data for the variables")
    pref = prom.query("max by (customer_id, currency, invoice_type) (%s)" % base)
    cands = full.get("data", {}).get("result", []) or pref.get("data", {}).get("result", []) or prom.query(
        "max by (customer_id, currency, invoice_type) (partnercenter_service_costs_after_tax)"
    ).get("data", {}).get("result", [])
    if cands:
        lab = sorted(cands, key=lambda s: (s["metric"].get("customer_id"), s["metric"].get("invoice_type")))[0]["metric"]
        names = prom.query('partnercenter_customer_info{customer_id="%s"}' % lab["customer_id"]).get("data", {}).get("result", [])
        combo = {"customer_id": lab["customer_id"], "currency": lab.get("currency"),
                 "invoice_type": lab.get("invoice_type"),
                 "customer": names[0]["metric"].get("customer_name") if names else None}
    rep.check("a demo customer with costs%s found for the variables" %
              (", budget and billing period" if pref.get("data", {}).get("result") else ""),
              bool(combo.get("customer")), json.dumps(combo))
    Report.info("variables set to: %s" % json.dumps(combo, ensure_ascii=False))
    if not pref.get("data", {}).get("result"):
        rep.check("the demo has a customer with a budget in the currency of its costs", False,
                  "no partnercenter_customer_budget matches the customer_id and currency of a cost series")

    # ------------------------------------------------ customer-name escaping
    names_resp = prom.api("/api/v1/label/customer_name/values", post=False)
    all_names = names_resp.get("data", []) or []
    wrong = []
    for n in all_names:
        for esc in (regex_escape,):
            r = prom.query('count(partnercenter_customer_info{customer_name=~"%s"})' % esc(n))
            got = r.get("data", {}).get("result", [])
            exp = prom.query('count(partnercenter_customer_info{customer_name="%s"})'
                             % n.replace("\\", "\\\\").replace('"', '\\"')).get("data", {}).get("result", [])
            if r.get("status") != "success" or not got or got[0]["value"][1] != exp[0]["value"][1]:
                wrong.append(n)
    rep.check("customer variable: Grafana's regex escaping selects exactly that customer, for all %d names"
              % len(all_names), bool(all_names) and not wrong, "names: %s" % wrong[:5])

    # ------------------------------------------------ dashboards
    for dname, dash in dashboards.items():
        variables = [v for v in dash.get("templating", {}).get("list", [])]
        default_vals, single_vals = {}, {}
        for v in variables:
            vname, vtype = v.get("name"), v.get("type")
            if vtype == "datasource":
                continue
            if vtype != "query":
                cur = v.get("current", {}).get("value", "")
                default_vals[vname] = single_vals[vname] = cur if isinstance(cur, str) else (cur or [""])[0]
                continue
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            where = "%s: variable $%s" % (dname, vname)
            m = re.match(r"^\s*label_values\((?:(.*),)?\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$", q, re.S)
            qr = re.match(r"^\s*query_result\((.*)\)\s*$", q, re.S)
            values = []
            if m:
                selector = interpolate((m.group(1) or "").strip(), single_vals, builtins)
                note_names(selector, where)
                params = {"match[]": selector, "start": "%.3f" % (now - 600), "end": "%.3f" % now} if selector else {}
                resp = prom.api("/api/v1/label/%s/values" % m.group(2), params, post=False)
                values = resp.get("data") or []
                rep.check("%s = %s returns values (%d)" % (where, q, len(values)),
                          resp.get("status") == "success" and bool(values), resp.get("error", ""))
            elif qr:
                expr = interpolate(qr.group(1), single_vals, builtins)
                note_names(expr, where)
                resp = prom.query(expr)
                values = [json.dumps(s["metric"]) for s in resp.get("data", {}).get("result", [])]
                rep.check("%s = %s returns values" % (where, q), has_data(resp), resp.get("error", ""))
            else:
                rep.check("%s: query understood by the drift test" % where, False, q)
                continue
            escape = regex_escape if (v.get("multi") or v.get("includeAll")) else regular_escape
            pick = combo.get(vname) if combo.get(vname) in values else (sorted(values)[0] if values else "")
            single_vals[vname] = escape(pick)
            if v.get("includeAll"):
                all_value = v.get("allValue")
                default_vals[vname] = all_value if all_value else "(%s)" % "|".join(regex_escape(x) for x in values)
            else:
                default_vals[vname] = escape(pick)
        for p in panels_of(dash):
            if p.get("type") == "row":
                continue
            for t in p.get("targets", []):
                raw = t.get("expr", "")
                where = "%s: panel %r %s" % (dname, p.get("title"), t.get("refId"))
                check_no_misuse(raw, where)
                for label, vals in (("defaults", default_vals), ("single values", single_vals)):
                    expr = interpolate(raw, vals, builtins)
                    leftover = leftover_variables(expr)
                    if leftover:
                        rep.check("%s [%s]: all variables substituted" % (where, label), False, str(leftover))
                        continue
                    note_names(expr, where)
                    if t.get("instant"):
                        resp = prom.query(expr)
                    else:
                        resp = prom.query_range(expr, now - history, now, 2)
                    detail = resp.get("error") or ("no data for: %s" % expr)
                    rep.check("%s [%s] returns data" % (where, label), has_data(resp), detail)

    # ------------------------------------------------ rules
    readme_anchors = github_anchors(os.path.join(ROOT, "README.md"))
    groups = prom.api("/api/v1/rules", post=False).get("data", {}).get("groups", [])
    loaded_files = {g.get("file") for g in groups}
    rep.check("Prometheus loaded every rule file (%d groups)" % len(groups),
              all(os.path.abspath(p) in loaded_files for p in rule_files),
              "loaded: %s" % sorted(loaded_files))
    for g in groups:
        for r in g.get("rules", []):
            kind = "recording rule" if r.get("type") == "recording" else "alert"
            where = "rule %s %s" % (kind, r.get("name"))
            expr = r.get("query", "")
            note_names(expr, where)
            check_no_misuse(expr, where)
            resp = prom.query(expr)
            ok = resp.get("status") == "success" and r.get("health") == "ok" and not r.get("lastError")
            rep.check("%s: parses and evaluates without error" % where, ok,
                      resp.get("error") or r.get("lastError") or "health %s" % r.get("health"))
            if kind == "recording rule" and not r.get("name", "").endswith(":override"):
                resp = prom.query(r["name"])
                rep.check("%s: produces series" % where, has_data(resp), resp.get("error", "no series"))
            if kind == "alert":
                Report.info("%s: %s, %d active" % (where, r.get("state"), len(r.get("alerts", []))))
                labels, notes = r.get("labels") or {}, r.get("annotations") or {}
                rep.check("%s: severity is warning or critical" % where,
                          labels.get("severity") in ("warning", "critical"), "labels: %s" % labels)
                missing = [k for k in ("summary", "description", "runbook_url") if not notes.get(k)]
                rep.check("%s: has a summary, a description and a runbook_url" % where, not missing,
                          "missing: %s" % missing)
                anchor = (notes.get("runbook_url") or "").partition("README.md#")[2]
                rep.check("%s: runbook_url points at a README heading" % where, anchor in readme_anchors,
                          "no heading with the anchor %r in README.md" % anchor)
                for key, text in sorted((r.get("annotations") or {}).items()):
                    for fmt in re.findall(r'printf\s+"((?:[^"\\]|\\.)*)"', text):
                        q = fmt.replace('\\"', '"')
                        sample = q.replace("%q", json.dumps(combo.get("customer_id") or "x"), 1)
                        sample = sample.replace("%q", json.dumps(combo.get("currency") or "USD"))
                        sample = sample.replace("%s", "x")
                        if not re.search(r"[a-zA-Z_]", sample) or re.fullmatch(r"%[.0-9]*[a-z]", q.strip()):
                            continue  # a number format such as "%.2f", not a query
                        note_names(sample, "%s annotation %s" % (where, key))
                        resp = prom.query(sample)
                        rep.check("%s: annotation %s query parses: %s" % (where, key, q),
                                  resp.get("status") == "success", resp.get("error", ""))

    if len(misuse) == 1:
        rep.check("no sum_over_time/increase/rate over cost gauges in %d expressions" % misuse["checked"], True)

    # ------------------------------------------------ metric names
    for n in sorted(used_names):
        if n in recorded:
            source = "recording rule in prometheus/"
            ok = True
        elif n in PROMETHEUS_SERIES:
            source = "made by Prometheus"
            ok = True
        else:
            source = "exported by the exporter"
            ok = n in exported
        rep.check("metric %s (%s)" % (n, source if ok else "used by " + used_names[n]), ok,
                  "" if ok else "not in the exporter's /metrics")
    unused = sorted(n for n in exported if n not in used_names and not n.startswith(("process_", "go_"))
                    and not n.endswith(("_bucket", "_sum", "_count", "_created"))
                    and n + "_bucket" not in used_names)
    for n in sorted(NOT_ON_DASHBOARDS):
        if n in unused:
            Report.info("exported but used by no dashboard or rule: %s (%s)" % (n, NOT_ON_DASHBOARDS[n]))
    missing = [n for n in unused if n not in NOT_ON_DASHBOARDS]
    rep.check("every exported metric is used by a dashboard or rule (but %d listed)" % len(NOT_ON_DASHBOARDS),
              not missing, "used nowhere: %s" % ", ".join(missing))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary", nargs="?", default="target/release/partnercenter-exporter",
                    help="exporter binary (default: target/release/partnercenter-exporter)")
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus",
                    help="prometheus server binary (default: prometheus on PATH)")
    ap.add_argument("--poll-interval", default="5s", help="exporter --poll.interval (default 5s)")
    ap.add_argument("--startup-timeout", type=float, default=90,
                    help="seconds to wait for the exporter and Prometheus to have data (default 90)")
    ap.add_argument("--min-history", type=float, default=15,
                    help="seconds of scraped history to have before querying (default 15)")
    ap.add_argument("--timeout", type=float, default=600, help="overall time limit in seconds (default 600)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, TSDB)")
    args = ap.parse_args()

    rep = Report()
    args.procs = {}
    tmp = tempfile.mkdtemp(prefix="pc-drift-")

    def on_alarm(signum, frame):
        raise TimeoutError("drift test exceeded --timeout %ss" % args.timeout)
    signal.signal(signal.SIGALRM, on_alarm)
    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(int(args.timeout))
    try:
        if not os.access(args.prometheus, os.X_OK):
            rep.check("prometheus binary found: %s" % args.prometheus, False,
                      "install it (Debian: apt-get install prometheus) or pass --prometheus")
        else:
            run(args, rep, tmp)
    except TimeoutError as e:
        rep.check("finished within the time limit", False, str(e))
    except KeyboardInterrupt:
        rep.check("not interrupted", False)
    finally:
        signal.alarm(0)
        for name in ("prometheus", "exporter"):
            stop(args.procs.get(name), name)
        if args.keep:
            Report.info("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (rep.passed, rep.failed), flush=True)
    sys.exit(1 if rep.failed else 0)


if __name__ == "__main__":
    main()
