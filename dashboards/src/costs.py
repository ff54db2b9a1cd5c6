"""The "Partner Center – Costs" dashboard: the partner-wide view.

Service costs of the current billing period for all (or the selected)
customers, budgets from the exporter's config file and the projection to the
end of the billing period, and every customer's spend.
"""

from grafana_foundation_sdk.models import dashboard as dm

from common import (
    BILLING_PROJECTION, BUDGET, BUDGET_COLORS, COSTS_UID, CUSTOMER_INFO, RUNNING_TOTALS, bar_gauge,
    billing_projection, budget_bars, budget_use, colors, cost, count_stat, currency_variable, customer_variable,
    data_table, datasource_variable, instant, invoice_type_variable, Layout, named, new_dashboard, paren,
    percent_cells, query, rows, selected, stat, thresholds, time_series,
)

AFTER_TAX = cost("after_tax")
#: After tax, all invoice types: what a budget is compared with.
AFTER_TAX_ALL_TYPES = cost("after_tax", invoice_types=False)

def per_currency(expr):
    """`expr` (per customer) summed per currency, for the selected customers."""
    return "sum by (currency) (%s)" % selected(expr)


def current_period(layout):
    layout.row("Current billing period")
    layout.add(stat("After-tax spend",
                    "After-tax spend of the selected customers and invoice types in the current billing period, "
                    "per currency. " + RUNNING_TOTALS,
                    [instant(per_currency(AFTER_TAX), "{{currency}}")], money=True), 6, 5)
    layout.add(stat("Pre-tax spend", "Pre-tax spend in the current billing period, per currency.",
                    [instant(per_currency(cost("pretax")), "{{currency}}")], money=True), 4, 5)
    layout.add(stat("Tax", "Tax in the current billing period, per currency.",
                    [instant(per_currency(cost("tax")), "{{currency}}")], money=True), 4, 5)
    layout.add(stat("Projected at end of billing period",
                    "After-tax spend projected to the end of each customer's billing period, per currency. "
                    + BILLING_PROJECTION,
                    [instant(per_currency(paren(billing_projection(AFTER_TAX))), "{{currency}}")], money=True), 5, 5)
    layout.add(count_stat("Customers over budget",
                          "Customers whose after-tax spend (all invoice types) has reached their budget. Budgets "
                          "come from the exporter's config file.",
                          "count(%s) or vector(0)" % selected("((%s) >= 1)" % budget_use(AFTER_TAX_ALL_TYPES)),
                          "over budget"), 3, 5)
    layout.add(stat("Customers", "Monitored customers matching the customer filter.",
                    [instant("count(max by (customer_id) (%s))" % CUSTOMER_INFO, "customers")])
               .unit("none").decimals(0).color_scheme(colors(dm.FieldColorModeId.FIXED, "text")), 2, 5)


def spend(layout):
    layout.row("Spend")
    layout.add(time_series("After-tax spend by currency",
                           "Running after-tax total of the current billing period over time, per currency. "
                           + RUNNING_TOTALS,
                           [query(per_currency(AFTER_TAX), "{{currency}}")], money=True), 12, 8)
    layout.add(time_series("After-tax spend by invoice type",
                           "Running after-tax total of the current billing period per invoice type (Recurring = "
                           "subscriptions, OneTime = one-time purchases) and currency.",
                           [query("sum by (invoice_type, currency) (%s)" % selected(AFTER_TAX),
                                  "{{invoice_type}} · {{currency}}")], money=True), 12, 8)
    layout.add(bar_gauge("Top 10 customers by after-tax spend",
                         "The 10 customers with the highest after-tax spend in the current billing period, per "
                         "currency (selected invoice types). Click a bar to open the customer's dashboard.",
                         [instant("sort_desc(topk by (currency) (10, %s))"
                                  % named("sum by (customer_id, currency) (%s)" % AFTER_TAX),
                                  "{{customer_name}} · {{currency}}")], money=True, link=True)
               .color_scheme(colors(dm.FieldColorModeId.CONTINUOUS_BL_PU)).thresholds(thresholds("green")), 12, 10)
    layout.add(time_series("Tax by currency", "Tax in the current billing period per invoice type and currency.",
                           [query("sum by (invoice_type, currency) (%s)" % selected(cost("tax")),
                                  "{{invoice_type}} · {{currency}}")], money=True), 12, 10)


def budgets(layout):
    layout.row("Budgets and projection")
    layout.add(budget_bars("Budget use per customer",
                           "After-tax spend (all invoice types) as a share of the customer's budget. Only customers "
                           "with a budget in the exporter's config file appear. Orange from 80 %, red from 100 %.",
                           [instant("sort_desc(%s)" % named(paren(budget_use(AFTER_TAX_ALL_TYPES))),
                                    "{{customer_name}} · {{currency}}")]), 12, 10)
    layout.add(time_series("Projected end-of-period spend by currency",
                           "After-tax spend projected to the end of the billing period, per currency. "
                           + BILLING_PROJECTION,
                           [query(per_currency(paren(billing_projection(AFTER_TAX))), "{{currency}}")],
                           money=True, step=False), 12, 10)
    layout.add(data_table(
        "Customers over budget (and all customers with a budget)",
        "Customers with a budget, the most used budget first: over budget in red, from 80 % in orange. Amounts "
        "are after tax, all invoice types, in the currency shown.",
        rows(named("sum by (customer_id, currency) (%s and on (customer_id, currency) %s)"
                   % (AFTER_TAX_ALL_TYPES, BUDGET)),
             named(BUDGET),
             named(paren(budget_use(AFTER_TAX_ALL_TYPES))),
             named(paren(budget_use(paren(billing_projection(AFTER_TAX_ALL_TYPES)))))),
        [("customer_name", "Customer"), ("customer_id", "Customer ID"), ("currency", "Currency"),
         ("Value #A", "After tax"), ("Value #B", "Budget"), ("Value #C", "Budget used"),
         ("Value #D", "Projected use")],
        "Budget used", decimals=2, customer_links=True,
        overrides=[percent_cells("Budget used", *BUDGET_COLORS),
                   percent_cells("Projected use", "green", (1, "orange"), background=False)]), 24, 9)


def customers(layout):
    layout.row("Customers")
    layout.add(data_table(
        "Spend per customer",
        "Every customer's spend in the current billing period (selected invoice types), highest after-tax first. "
        "Amounts are in the currency shown. Customers without any cost data do not appear.",
        rows(named("sum by (customer_id, currency) (%s)" % cost("pretax")),
             named("sum by (customer_id, currency) (%s)" % cost("tax")),
             named("sum by (customer_id, currency) (%s)" % AFTER_TAX),
             named("sum by (customer_id, currency) (%s)" % billing_projection(AFTER_TAX))),
        [("customer_name", "Customer"), ("customer_id", "Customer ID"), ("currency", "Currency"),
         ("Value #A", "Pre-tax"), ("Value #B", "Tax"), ("Value #C", "After tax"), ("Value #D", "Projected")],
        "After tax", decimals=2, customer_links=True), 24, 12)


def dashboard():
    dash = (new_dashboard("Partner Center – Costs", COSTS_UID,
                          "Microsoft Partner Center (CSP) service costs per customer, from partnercenter-exporter.",
                          ["csp", "costs"], "5m")
            .with_variable(datasource_variable())
            .with_variable(currency_variable())
            .with_variable(customer_variable("Customer name, from partnercenter_customer_info"))
            .with_variable(invoice_type_variable()))
    layout = Layout(dash)
    current_period(layout)
    spend(layout)
    budgets(layout)
    customers(layout)
    return dash
