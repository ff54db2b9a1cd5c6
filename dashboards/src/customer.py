"""The "Partner Center – Customer" dashboard: one customer, picked by name.

Its identity and data freshness; its service costs of the current billing
period per invoice type, against the budget from the exporter's config file,
with the projection and the billing period; its usage estimate of the current
month against its budget in Partner Center; its subscriptions' costs (from the
line items); and its history: running totals, billing-period totals, usage.
"""

from grafana_foundation_sdk.models import dashboard as dm

from common import (
    BILLING_PROJECTION, BUDGET, CUSTOMER_UID, RUNNING_TOTALS, USAGE_BUDGET, USAGE_ESTIMATE, USAGE_ESTIMATE_NOTE,
    USAGE_PROJECTION, USAGE_PROJECTION_NOTE, billing_projection, budget_gauge, budget_use, colors, cost,
    currency_variable, customer_variable, dashed, data_table, datasource_variable, dotted, instant,
    invoice_type_variable, Layout, mapped_cells, named, new_dashboard, paren, period_end, period_start, prop, query,
    rows, stat, thresholds, time_series, unit_cells, usage_use, with_period,
)

AFTER_TAX = cost("after_tax")
AFTER_TAX_ALL_TYPES = cost("after_tax", invoice_types=False)
NAME_LEGEND = "{{customer_name}} · {{currency}}"
FETCH_STATUS = {"0": ("failing", "red"), "1": ("ok", "green")}


def per_customer(expr):
    """`expr` summed per customer and currency (over invoice types), with names."""
    return "sum by (customer_id, customer_name, currency) (%s)" % named(expr)


def subscription_costs(kind):
    """A line-item gauge summed per subscription (`pretax`, `tax`, `after_tax`),
    with the subscription's and the customer's names."""
    costs = ('max by (customer_id, subscription_id, invoice_type, currency) (partnercenter_subscription_costs_%s'
             '{currency=~"$currency", invoice_type=~"$invoice_type"})' % kind)
    return named("%s * on (customer_id, subscription_id) group_left (subscription_name, offer_name) "
                 "topk by (customer_id, subscription_id) (1, partnercenter_subscription_info)" % costs)


def summary(layout):
    layout.add(data_table(
        "Customer",
        "The selected customer(s): tenant id, primary domain, whether the exporter's last fetch of its data "
        "succeeded, and when its data was last fetched.",
        rows("max by (customer_id, customer_name, domain) (partnercenter_customer_info{customer_name=~\"$customer\"})",
             named("max by (customer_id) (partnercenter_customer_fetch_success)", "customer_name, domain"),
             named("max by (customer_id) (partnercenter_customer_last_success_timestamp_seconds) * 1000",
                   "customer_name, domain")),
        [("customer_name", "Customer"), ("customer_id", "Tenant ID"), ("domain", "Domain"),
         ("Value #B", "Last fetch"), ("Value #C", "Data fetched")],
        "Customer", desc=False, hidden=["Value #A"],
        overrides=[mapped_cells("Last fetch", FETCH_STATUS), unit_cells("Data fetched", "dateTimeFromNow")]), 9, 5)
    layout.add(stat("After tax, this billing period",
                    "After-tax spend in the current billing period (selected invoice types). " + RUNNING_TOTALS,
                    [instant(per_customer(AFTER_TAX), NAME_LEGEND)], money=True), 4, 5)
    layout.add(stat("Budget", "The customer's budget from the exporter's config file (`budget:` under `customers:`).",
                    [instant(named(BUDGET), NAME_LEGEND)], money=True).no_value("no budget"), 3, 5)
    layout.add(budget_gauge("Budget used", "After-tax spend, all invoice types, as a share of the budget.",
                            [instant(named(paren(budget_use(AFTER_TAX_ALL_TYPES))), NAME_LEGEND)]), 4, 5)
    layout.add(stat("Projected at end of period",
                    "After-tax spend projected to the end of the billing period (selected invoice types). "
                    + BILLING_PROJECTION,
                    [instant(per_customer(paren(billing_projection(AFTER_TAX))), NAME_LEGEND)], money=True), 4, 5)


def billing_period(layout):
    layout.row("This billing period")
    layout.add(data_table(
        "Figures per invoice type",
        "Pre-tax, tax and after-tax amounts of the current billing period per invoice type, and the after-tax "
        "amount projected to the end of the period. Amounts are in the currency shown.",
        rows(named(cost("pretax")), named(cost("tax")), named(AFTER_TAX),
             named("sum by (customer_id, invoice_type, currency) (%s)" % billing_projection(AFTER_TAX))),
        [("customer_name", "Customer"), ("invoice_type", "Invoice type"), ("currency", "Currency"),
         ("Value #A", "Pre-tax"), ("Value #B", "Tax"), ("Value #C", "After tax"), ("Value #D", "Projected")],
        "After tax", hidden=["customer_id"], decimals=2), 14, 7)
    elapsed = "clamp((time() - %s) / (%s - %s), 0, 1)" % (period_start(), period_end(), period_start())
    table = data_table(
        "Billing period",
        "Start and end of the current billing period per invoice type, as reported by Partner Center, and how "
        "much of it has passed.",
        rows(named(period_start() + " * 1000"), named(period_end() + " * 1000"), named(elapsed)),
        [("customer_name", "Customer"), ("invoice_type", "Invoice type"), ("Value #A", "Start"),
         ("Value #B", "End"), ("Value #C", "Elapsed")],
        "Invoice type", desc=False, hidden=["customer_id"],
        overrides=[("Elapsed", [prop("unit", "percentunit"), prop("decimals", 0), prop("max", 1), prop("min", 0),
                                prop("custom.cellOptions", {"type": "gauge", "mode": "basic"}),
                                prop("color", {"mode": "fixed", "fixedColor": "blue"})])])
    table.override_by_regexp("Start|End", [prop("unit", "dateTimeAsIso")])
    layout.add(table, 10, 7)


def usage(layout):
    layout.row("Usage this month (Partner Center budget)")
    layout.add(stat("Usage estimate this month", USAGE_ESTIMATE_NOTE,
                    [instant(named(USAGE_ESTIMATE), NAME_LEGEND)], money=True).no_value("no usage record"), 6, 5)
    layout.add(stat("Usage budget",
                    "The customer's monthly spending budget set in Partner Center (not the budget of the "
                    "exporter's config file).",
                    [instant(named(USAGE_BUDGET), NAME_LEGEND)], money=True).no_value("no budget"), 4, 5)
    layout.add(budget_gauge("Usage budget used", "The usage estimate as a share of the Partner Center budget.",
                            [instant(named(paren(usage_use(USAGE_ESTIMATE))), NAME_LEGEND)]), 4, 5)
    layout.add(stat("Usage projected at month end",
                    "The usage estimate projected to the end of the month. " + USAGE_PROJECTION_NOTE,
                    [instant(named(USAGE_PROJECTION), NAME_LEGEND)], money=True), 5, 5)
    layout.add(stat("Estimate refreshed",
                    "When Microsoft last refreshed the customer's usage estimate (about daily).",
                    [instant(named("max by (customer_id) (partnercenter_usage_last_modified_timestamp_seconds) "
                                   "* 1000"), "{{customer_name}}")])
               .unit("dateTimeFromNow").color_scheme(colors(dm.FieldColorModeId.FIXED, "text")), 5, 5)


def subscriptions(layout):
    layout.row("Subscriptions")
    layout.add(data_table(
        "Subscription costs, this billing period",
        "The customer's costs of the current billing period per subscription and invoice type, from its "
        "service-cost line items, highest after-tax first, in the currency shown. Needs the lineitems collector "
        "(--collector.lineitems, off by default); without it this table is empty.",
        rows(subscription_costs("pretax"), subscription_costs("tax"), subscription_costs("after_tax")),
        [("customer_name", "Customer"), ("subscription_name", "Subscription"), ("offer_name", "Offer"),
         ("invoice_type", "Invoice type"), ("currency", "Currency"), ("Value #A", "Pre-tax"), ("Value #B", "Tax"),
         ("Value #C", "After tax"), ("subscription_id", "Subscription ID")],
        "After tax", hidden=["customer_id"], decimals=2), 24, 9)


def history(layout):
    layout.row("History")
    layout.add(time_series("After-tax spend by invoice type",
                           "Running after-tax total of the current billing period per invoice type. "
                           + RUNNING_TOTALS,
                           [query(named(AFTER_TAX), "{{customer_name}} · {{invoice_type}} · {{currency}}")],
                           money=True), 12, 9)
    layout.add(time_series("Spend, projection and budget",
                           "After-tax spend (all invoice types), its projection to the end of the billing period, "
                           "and the budget if one is configured.",
                           [query(per_customer(AFTER_TAX_ALL_TYPES),
                                  "{{customer_name}} after tax · {{currency}}", "A"),
                            query(per_customer(paren(billing_projection(AFTER_TAX_ALL_TYPES))),
                                  "{{customer_name}} projected · {{currency}}", "B"),
                            query(named(BUDGET), "{{customer_name}} budget · {{currency}}", "C")], money=True)
               .override_by_query(*dashed("C", "red")).override_by_query(*dotted("B")), 12, 9)
    layout.add(time_series("Pre-tax and tax", "Pre-tax amount and tax of the current billing period (selected invoice "
                           "types).",
                           [query(per_customer(cost("pretax")), "{{customer_name}} pre-tax · {{currency}}", "A"),
                            query(per_customer(cost("tax")), "{{customer_name}} tax · {{currency}}", "B")],
                           money=True), 12, 8)
    age = time_series("Age of the customer's data",
                      "Time since the exporter last fetched this customer's data successfully. It grows by one poll "
                      "interval between polls and keeps growing while fetches fail.",
                      [query("time() - max by (customer_id) (partnercenter_customer_last_success_timestamp_seconds"
                             " > 0) * on (customer_id) group_left (customer_name) topk by (customer_id) (1, "
                             "partnercenter_customer_info{customer_name=~\"$customer\"})", "{{customer_name}}")],
                      unit="s", step=False, threshold_lines=True)
    layout.add(age.thresholds(thresholds("green", (10800, "orange"), (21600, "red"))), 12, 8)
    layout.add(data_table(
        "Billing-period totals",
        "The customer's after-tax total of each billing period seen in the selected time range, per invoice type "
        "and currency: the last value reported in the period, i.e. its closing total (the total so far for the "
        "current period). Widen the time range to see more periods.",
        [query("last_over_time((%s)[$__range:$__interval])" % named(with_period(AFTER_TAX)), instant=True,
               table_format=True)],
        [("customer_name", "Customer"), ("invoice_type", "Invoice type"), ("period", "Billing period from"),
         ("currency", "Currency"), ("Value", "After tax")],
        "Billing period from", hidden=["customer_id"], decimals=2), 12, 9)
    layout.add(time_series("Usage estimate, projection and budget",
                           "The usage estimate of the current month, its projection to the end of the month "
                           "(dotted) and the budget set in Partner Center (dashed). The estimate starts again from "
                           "zero each month.",
                           [query(named(USAGE_ESTIMATE), "{{customer_name}} estimate · {{currency}}", "A"),
                            query(named(USAGE_PROJECTION), "{{customer_name}} projected · {{currency}}", "B"),
                            query(named(USAGE_BUDGET), "{{customer_name}} budget · {{currency}}", "C")], money=True)
               .override_by_query(*dashed("C", "red")).override_by_query(*dotted("B")), 12, 9)


def dashboard():
    dash = (new_dashboard("Partner Center – Customer", CUSTOMER_UID,
                          "One Partner Center (CSP) customer, chosen by name: spend per invoice type, budget, billing "
                          "period, usage, subscriptions and history.",
                          ["csp", "costs"], "5m")
            .time("now-30d", "now")
            .with_variable(datasource_variable())
            .with_variable(customer_variable("Pick one customer by name (several can be compared)", include_all=False))
            .with_variable(currency_variable())
            .with_variable(invoice_type_variable()))
    layout = Layout(dash)
    summary(layout)
    billing_period(layout)
    usage(layout)
    subscriptions(layout)
    history(layout)
    return dash
