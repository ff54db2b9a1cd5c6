"""The "Partner Center – Costs" dashboard: the partner-wide view.

Service costs of the current billing period for all (or the selected)
customers, budgets from the exporter's config file and the projection to the
end of the billing period; the usage estimate of the current month against the
budget set in Partner Center; the partner's unpaid balance and invoices; and
every customer's spend.
"""

from grafana_foundation_sdk.models import dashboard as dm

from common import (
    BILLING_PROJECTION, BUDGET, BUDGET_COLORS, COSTS_UID, CUSTOMER_INFO, RUNNING_TOTALS, USAGE_BUDGET,
    USAGE_BUDGET_CURRENCY, USAGE_ESTIMATE, USAGE_ESTIMATE_NOTE, USAGE_OVER, USAGE_PROJECTION, USAGE_PROJECTION_NOTE,
    USAGE_STATUS, USAGE_STATUS_MAPPING, USAGE_TRENDING_OVER, bar_gauge, billing_projection, budget_bars, budget_use,
    colors, cost, count_stat, currency_bars, currency_variable, customer_variable, dashed, data_table,
    datasource_variable, dotted, instant, invoice_type_variable, Layout, mapped_cells, named, new_dashboard, paren,
    percent_cells, query, rows, selected, stat, thresholds, time_series, unit_cells, usage_use,
)

AFTER_TAX = cost("after_tax")
#: After tax, all invoice types: what a budget is compared with.
AFTER_TAX_ALL_TYPES = cost("after_tax", invoice_types=False)

# Invoices are the partner's own (not per customer): no variable filters them.
INVOICE_TOTAL = "max by (invoice_id, invoice_type, document_type, currency) (partnercenter_invoice_total_charges)"
INVOICE_DATE = "max by (invoice_id) (partnercenter_invoice_date_timestamp_seconds)"
#: Invoices (and amendments) dated within the last 365 days.
LAST_YEAR = "on (invoice_id) (time() - %s < 365 * 86400)" % INVOICE_DATE
#: The invoice's type and document type, for series that lack them (value 1).
INVOICE_LABELS = ("group by (invoice_id, invoice_type, document_type, currency) "
                  "(partnercenter_invoice_total_charges)")
#: The invoice's month (YYYY-MM, UTC) as a `month` label (value 1).
INVOICE_MONTH = ('label_replace(count_values by (invoice_id) ("month", year(%s) * 100 + month(%s)), '
                 '"month", "$1-$2", "month", "([0-9]{4})([0-9]{2})")' % (INVOICE_DATE, INVOICE_DATE))


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


def usage(layout):
    layout.row("Usage this month (Partner Center budget)")
    layout.add(stat("Usage estimate this month",
                    USAGE_ESTIMATE_NOTE + " Sum of the selected customers, per currency.",
                    [instant(per_currency(USAGE_ESTIMATE), "{{currency}}")], money=True), 6, 5)
    layout.add(stat("Usage projected at month end",
                    "The usage estimate projected to the end of the month, per currency. " + USAGE_PROJECTION_NOTE,
                    [instant(per_currency(USAGE_PROJECTION), "{{currency}}")], money=True), 6, 5)
    layout.add(count_stat("Customers over usage budget",
                          "Customers whose usage estimate has reached the monthly budget set in Partner Center.",
                          "count(%s) or vector(0)" % selected(paren(USAGE_OVER)), "over budget"), 4, 5)
    layout.add(count_stat("Customers trending over usage budget",
                          "Customers not over their Partner Center budget yet whose usage, projected to the end of "
                          "the month, is above it.",
                          "count(%s) or vector(0)" % selected(paren(USAGE_TRENDING_OVER)), "trending over",
                          alert_color="orange"), 4, 5)
    layout.add(stat("Oldest usage estimate",
                    "When Microsoft last refreshed the usage estimate of the selected customer whose estimate is "
                    "the oldest. Estimates are refreshed about daily.",
                    [instant("min(%s) * 1000" % selected(
                        "max by (customer_id) (partnercenter_usage_last_modified_timestamp_seconds)"), "refreshed")])
               .unit("dateTimeFromNow").color_scheme(colors(dm.FieldColorModeId.FIXED, "text")), 4, 5)
    with_budget = "(%s and on (customer_id, currency) %s)"
    layout.add(time_series("Usage estimate and budget by currency",
                           "Customers with a Partner Center budget: their usage estimates (solid), projected to the "
                           "end of the month (dotted), and their budgets (dashed), summed per currency.",
                           [query(per_currency(with_budget % (USAGE_ESTIMATE, USAGE_BUDGET)),
                                  "estimate · {{currency}}", "A"),
                            query(per_currency(with_budget % (USAGE_PROJECTION, USAGE_BUDGET)),
                                  "projected · {{currency}}", "B"),
                            query(per_currency(USAGE_BUDGET), "budget · {{currency}}", "C")],
                           money=True)
               .override_by_query(*dashed("C", "red")).override_by_query(*dotted("B")), 12, 9)
    layout.add(budget_bars("Usage budget use per customer",
                           "Usage estimate as a share of the customer's monthly budget in Partner Center. Only "
                           "customers with a budget appear. Orange from 80 %, red from 100 %.",
                           [instant("sort_desc(%s)" % named(paren(usage_use(USAGE_ESTIMATE))),
                                    "{{customer_name}} · {{currency}}")]), 12, 9)
    layout.add(data_table(
        "Customers over and trending over their usage budget (and all with one)",
        "Every customer with a monthly budget in Partner Center, the highest projected use first: its usage "
        "estimate, the budget, the share used and the share projected at month end. " + USAGE_PROJECTION_NOTE,
        rows(named(paren(USAGE_ESTIMATE + " and on (customer_id, currency) " + USAGE_BUDGET)),
             named(USAGE_BUDGET),
             named(paren(usage_use(USAGE_ESTIMATE))),
             named(paren(usage_use(USAGE_PROJECTION))),
             named(paren(USAGE_STATUS)),
             named(paren("max by (customer_id) (partnercenter_usage_last_modified_timestamp_seconds) * 1000"
                         " * on (customer_id) group_left (currency) " + USAGE_BUDGET_CURRENCY))),
        [("customer_name", "Customer"), ("customer_id", "Customer ID"), ("currency", "Currency"),
         ("Value #E", "Status"), ("Value #A", "Estimate"), ("Value #B", "Budget"), ("Value #C", "Budget used"),
         ("Value #D", "Projected use"), ("Value #F", "Estimate refreshed")],
        "Projected use", decimals=2, customer_links=True,
        overrides=[percent_cells("Budget used", *BUDGET_COLORS),
                   percent_cells("Projected use", "green", (1, "orange"), background=False),
                   mapped_cells("Status", USAGE_STATUS_MAPPING),
                   unit_cells("Estimate refreshed", "dateTimeFromNow")]), 24, 9)


def invoices(layout):
    layout.row("Invoices (partner level)")
    layout.add(stat("Unpaid balance",
                    "The partner's unpaid invoice balance per currency, from Partner Center's invoice summary. "
                    "Partner level: not filtered by the variables.",
                    [instant("max by (currency) (partnercenter_invoices_balance)", "{{currency}}")], money=True),
               8, 5)
    layout.add(data_table(
        "Invoice summary",
        "Per currency, from Partner Center's invoice summary: the unpaid balance, the last payment and when it was "
        "made, and the date of the latest invoice. Amounts are in the currency shown.",
        rows("max by (currency) (partnercenter_invoices_balance)",
             "max by (currency) (partnercenter_invoices_last_payment_amount)",
             "max by (currency) (partnercenter_invoices_last_payment_timestamp_seconds) * 1000",
             "max by (currency) (partnercenter_invoices_latest_invoice_timestamp_seconds) * 1000"),
        [("currency", "Currency"), ("Value #A", "Unpaid balance"), ("Value #B", "Last payment"),
         ("Value #C", "Paid on"), ("Value #D", "Latest invoice")],
        "Currency", desc=False, decimals=2,
        overrides=[unit_cells("Paid on", "time:YYYY-MM-DD"), unit_cells("Latest invoice", "time:YYYY-MM-DD")]),
        16, 5)
    layout.add(currency_bars(
        "Invoiced per month, last 12 months",
        "Total charges of the partner's invoices (and their amendments, such as adjustment notes) dated in each "
        "month of the last 365 days, per currency: amounts in different currencies are separate bars, never added. "
        "Partner level: not filtered by the variables.",
        "sum by (month, currency) (%s * on (invoice_id) group_left (month) %s and %s)"
        % (INVOICE_TOTAL, INVOICE_MONTH, LAST_YEAR), "month", "Month"), 12, 10)
    layout.add(data_table(
        "Invoices of the last 12 months",
        "Each invoice and amendment dated in the last 365 days, newest first: its total charges and the amount "
        "paid as Partner Center reports it (negative when a payment was received), in the currency shown. Partner "
        "level: not filtered by the variables.",
        rows("%s and %s" % (INVOICE_TOTAL, LAST_YEAR),
             "max by (invoice_id, currency) (partnercenter_invoice_paid_amount) * on (invoice_id, currency) "
             "group_left (invoice_type, document_type) %s and %s" % (INVOICE_LABELS, LAST_YEAR),
             "%s * 1000 * on (invoice_id) group_left (invoice_type, document_type, currency) %s and %s"
             % (INVOICE_DATE, INVOICE_LABELS, LAST_YEAR)),
        [("Value #C", "Date"), ("invoice_id", "Invoice"), ("invoice_type", "Invoice type"),
         ("document_type", "Document"), ("currency", "Currency"), ("Value #A", "Total charges"),
         ("Value #B", "Paid")],
        "Date", decimals=2, overrides=[unit_cells("Date", "time:YYYY-MM-DD")]), 12, 10)


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
    usage(layout)
    invoices(layout)
    customers(layout)
    return dash
