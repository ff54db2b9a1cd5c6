"""What the three dashboards share, defined once.

This module owns:

  * the currencies the money panels know and the Grafana unit of each (its
    symbol), and the per-currency unit overrides built from that one list;
  * the data source: the `datasource` variable and the reference every panel
    and query uses (no data source UID is ever written into a dashboard);
  * the template variables that several dashboards have (currency, customer,
    invoice type), the "Partner Center" links menu and the data link that
    opens a customer's dashboard;
  * the PromQL building blocks: the cost, budget and usage selections, the
    join that adds customer names, and the two projections (to the end of the
    billing period, and to the end of the calendar month for usage);
  * the panel kinds (stat, time series, bar gauge, gauge, table, bar chart)
    with the options all dashboards use, and the grid layout;
  * `export`, which turns a dashboard into the JSON that users import: with
    `__inputs` and `__requires`, as Grafana's "Export for sharing externally"
    writes it.

Amounts in different currencies are never added: every aggregation over money
keeps `currency` in its `by` clause, and every money panel shows each series
in its own currency's unit.
"""

import json

from grafana_foundation_sdk.builders import barchart as sdk_barchart
from grafana_foundation_sdk.builders import bargauge as sdk_bargauge
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import gauge as sdk_gauge
from grafana_foundation_sdk.builders import prometheus as sdk_prometheus
from grafana_foundation_sdk.builders import stat as sdk_stat
from grafana_foundation_sdk.builders import table as sdk_table
from grafana_foundation_sdk.builders import timeseries as sdk_timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm, dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat, QueryEditorMode

# ---------------------------------------------------------------- the dashboards

#: uid and URL slug of each dashboard: links and users' bookmarks rely on them.
COSTS_UID = "partnercenter-costs"
CUSTOMER_UID = "partnercenter-customer"
HEALTH_UID = "partnercenter-exporter-health"
CUSTOMER_URL = "/d/%s/partner-center-customer" % CUSTOMER_UID

#: Tag of all three dashboards; the links menu lists the dashboards with it.
TAG = "partnercenter"

#: Grafana 10.0's dashboard schema version: the dashboards need Grafana 10 or
#: later, and a newer Grafana migrates them when it loads them.
SCHEMA_VERSION = 38
GRAFANA_VERSION = "10.0.0"

# ---------------------------------------------------------------- currencies

#: ISO codes that Grafana has a currency unit for (`currencyUSD` shows "$").
BUILTIN_CURRENCIES = (
    "USD", "EUR", "GBP", "JPY", "CHF", "DKK", "NOK", "SEK", "ISK", "PLN", "CZK",
    "BRL", "ZAR", "INR", "KRW", "IDR", "PHP", "RUB", "UAH",
)
#: ISO codes without a Grafana unit of their own, and the symbol to prefix.
SYMBOL_CURRENCIES = (
    ("AUD", "A$"), ("CAD", "C$"), ("NZD", "NZ$"), ("SGD", "S$"), ("HKD", "HK$"),
    ("MXN", "MX$"), ("CNY", "CN¥"), ("TWD", "NT$"), ("TRY", "₺"), ("ILS", "₪"),
    ("MYR", "RM"), ("THB", "฿"),
)


def currency_units():
    """(ISO code, Grafana unit) for every known currency, in a fixed order."""
    return ([(code, "currency" + code) for code in BUILTIN_CURRENCIES]
            + [(code, "currency:" + symbol) for code, symbol in SYMBOL_CURRENCIES])


def with_currency_units(panel):
    """Gives each series or field whose name ends with a currency code that
    currency's unit. Series names (legends) end with `{{currency}}`; pivoted
    tables name their columns after the currency."""
    for code, unit in currency_units():
        panel.override_by_regexp(r".*\b" + code, [dm.DynamicConfigValue(id_val="unit", value=unit)])
    return panel


# ---------------------------------------------------------------- data source, variables, links

#: Every panel and query uses the `datasource` variable.
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")


def datasource_variable():
    """The data source picker; on import, `${DS_PROMETHEUS}` (the `__inputs`
    entry) becomes the data source chosen in the import dialog."""
    return (db.DatasourceVariable("datasource")
            .label("Data source")
            .type("prometheus")
            .current(dm.VariableOption(selected=False, text="Prometheus", value="${DS_PROMETHEUS}")))


def query_variable(name, label, query, description, include_all=True, multi=True):
    """A variable filled from the label values of a query, sorted by name,
    refreshed with the time range; "All" matches everything (`.*`)."""
    variable = (db.QueryVariable(name)
                .label(label)
                .description(description)
                .datasource(DATASOURCE)
                .query(query)
                .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
                .sort(dm.VariableSort.ALPHABETICAL_ASC)
                .multi(multi)
                .include_all(include_all))
    if include_all:
        variable.all_value(".*").current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    return variable


def currency_variable():
    return query_variable("currency", "Currency", "label_values(partnercenter_service_costs_after_tax, currency)",
                          "Billing currency (ISO code)")


def customer_variable(description, include_all=True):
    return query_variable("customer", "Customer", "label_values(partnercenter_customer_info, customer_name)",
                          description, include_all=include_all)


def invoice_type_variable():
    return query_variable("invoice_type", "Invoice type",
                          "label_values(partnercenter_service_costs_after_tax, invoice_type)",
                          "Recurring, OneTime, ...")


def dashboards_menu():
    """The "Partner Center" menu at the top: every dashboard tagged TAG."""
    return (db.DashboardLink("Partner Center")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
            .icon("external link")
            .tooltip("")
            .url("")
            .target_blank(False))


def customer_link(name):
    """A data link to the Customer dashboard for the customer called `name` (a
    Grafana data-link variable), with the same data source and time range."""
    url = "%s?var-customer=%s&${datasource:queryparam}&${__url_time_range}" % (CUSTOMER_URL, name)
    return db.DashboardLink("Customer dashboard").url(url)


#: The customer name of a series (bar gauges, time series) ...
SERIES_CUSTOMER = "${__field.labels.customer_name:percentencode}"
#: ... and of a table cell (the Customer column).
CELL_CUSTOMER = "${__value.text:percentencode}"


def customer_column_link():
    """Override for a table's "Customer" column: a click opens its dashboard."""
    link = customer_link(CELL_CUSTOMER).build()
    return ("Customer", [dm.DynamicConfigValue(id_val="links", value=[{"title": link.title, "url": link.url}])])


# ---------------------------------------------------------------- PromQL

#: The selected customers (the `customer` variable), with their names.
CUSTOMER_INFO = 'partnercenter_customer_info{customer_name=~"$customer"}'
CUSTOMER_NAMES = "topk by (customer_id) (1, %s)" % CUSTOMER_INFO


def named(expr, labels="customer_name"):
    """`expr` (by customer_id) for the selected customers, with their names.
    Two replicas export the same info series: topk keeps one of them."""
    return "%s * on (customer_id) group_left (%s) %s" % (expr, labels, CUSTOMER_NAMES)


def selected(expr):
    """`expr` (by customer_id) for the selected customers, without names."""
    return "%s and on (customer_id) %s" % (expr, CUSTOMER_INFO)


def cost(kind, invoice_types=True):
    """A service-costs gauge (`pretax`, `tax` or `after_tax`: the running total of
    the current billing period) per customer, invoice type and currency, filtered
    by the currency and (unless invoice_types is False) invoice type variables.
    `max` merges the series of two exporter replicas."""
    matchers = 'currency=~"$currency"' + (', invoice_type=~"$invoice_type"' if invoice_types else "")
    return "max by (customer_id, invoice_type, currency) (partnercenter_service_costs_%s{%s})" % (kind, matchers)


#: The budget from the exporter's config file, per customer and currency.
BUDGET = 'max by (customer_id, currency) (partnercenter_customer_budget{currency=~"$currency"} > 0)'

_PERIOD_START = "partnercenter_service_costs_billing_period_start_timestamp_seconds"
_PERIOD_END = "partnercenter_service_costs_billing_period_end_timestamp_seconds"

#: Length of the billing period ÷ time elapsed in it (at least one day), per
#: customer and invoice type, and never below 1.
BILLING_PERIOD_FACTOR = (
    "clamp_min(max by (customer_id, invoice_type) (%s - %s) / clamp_min(time() - "
    "max by (customer_id, invoice_type) (%s), 86400), 1)" % (_PERIOD_END, _PERIOD_START, _PERIOD_START))


def billing_projection(costs):
    """`costs` (per customer and invoice type) projected linearly to the end of
    the billing period that Partner Center reports."""
    return "%s * on (customer_id, invoice_type) group_left () %s" % (costs, BILLING_PERIOD_FACTOR)


def budget_use(costs):
    """Share of the budget used by `costs` (all invoice types summed, per currency)."""
    return "sum by (customer_id, currency) (%s) / on (customer_id, currency) %s" % (costs, BUDGET)


def period_start(invoice_types=True):
    """Start of the current billing period per customer and invoice type."""
    matcher = '{invoice_type=~"$invoice_type"}' if invoice_types else ""
    return "max by (customer_id, invoice_type) (%s%s)" % (_PERIOD_START, matcher)


def period_end(invoice_types=True):
    """End of the current billing period per customer and invoice type."""
    matcher = '{invoice_type=~"$invoice_type"}' if invoice_types else ""
    return "max by (customer_id, invoice_type) (%s%s)" % (_PERIOD_END, matcher)


def with_period(costs):
    """`costs` (per customer and invoice type) with a `period` label: the start
    date (YYYY-MM-DD, UTC) of the billing period the value belongs to. Over a
    time range, each billing period is a series of its own."""
    start = period_start()
    day = "year(%s) * 10000 + month(%s) * 100 + day_of_month(%s)" % (start, start, start)
    label = ('label_replace(count_values by (customer_id, invoice_type) ("period", %s), '
             '"period", "$1-$2-$3", "period", "([0-9]{4})([0-9]{2})([0-9]{2})")' % day)
    return "%s * on (customer_id, invoice_type) group_left (period) %s" % (costs, label)


# Usage (collector `usage`): Partner Center's estimate of the customer's Azure
# usage in the current calendar month, and the monthly budget set in Partner Center.

#: The usage estimate per customer and currency.
USAGE_ESTIMATE = 'max by (customer_id, currency) (partnercenter_usage_cost_estimate{currency=~"$currency"})'
#: The Partner Center budget per customer and currency: customers with one
#: above 0 only, as in the alert rules.
USAGE_BUDGET = 'max by (customer_id, currency) (partnercenter_usage_budget{currency=~"$currency"} > 0)'
#: The currency of each customer's Partner Center budget (value 1).
USAGE_BUDGET_CURRENCY = 'group by (customer_id, currency) (partnercenter_usage_budget{currency=~"$currency"} > 0)'
#: Days in the calendar month ÷ the day of the month (UTC): 31 on the 1st of a
#: 31-day month, 1 on its last day.
MONTH_FACTOR = "(days_in_month() / day_of_month())"
#: The usage estimate projected linearly to the end of the calendar month: the
#: same expression as the alert rules'.
USAGE_PROJECTION = "%s * on () group_left () %s" % (USAGE_ESTIMATE, MONTH_FACTOR)


def usage_use(usage):
    """`usage` (per customer and currency) as a share of the Partner Center budget."""
    return "%s / on (customer_id, currency) %s" % (usage, USAGE_BUDGET)


#: Customers whose usage estimate has reached their budget ...
USAGE_OVER = "%s >= on (customer_id, currency) %s" % (USAGE_ESTIMATE, USAGE_BUDGET)
#: ... and those not over it yet whose projection is above it.
USAGE_TRENDING_OVER = "(%s > on (customer_id, currency) %s) unless on (customer_id, currency) (%s)" % (
    USAGE_PROJECTION, USAGE_BUDGET, USAGE_OVER)


def _is(left, op, right):
    """1 where `left op right` holds, else 0, per customer and currency."""
    return "(%s %s bool on (customer_id, currency) %s)" % (left, op, right)


#: 2 over budget, 1 trending over, 0 under, per customer with a budget.
USAGE_STATUS = "2 * %s + %s * %s" % (_is(USAGE_ESTIMATE, ">=", USAGE_BUDGET), _is(USAGE_PROJECTION, ">", USAGE_BUDGET),
                                     _is(USAGE_ESTIMATE, "<", USAGE_BUDGET))
USAGE_STATUS_MAPPING = {"0": ("under", "green"), "1": ("trending over", "orange"), "2": ("over budget", "red")}


def paren(expr):
    """`expr` in parentheses, to keep it whole in a larger expression."""
    return "(%s)" % expr


# ---------------------------------------------------------------- descriptions

#: Said of every panel that shows the cost gauges themselves.
RUNNING_TOTALS = ("The cost metrics are gauges holding the running total of the current billing period, "
                  "so the latest value is the total; a new period starts again from zero.")
#: How the billing-period projection works.
BILLING_PROJECTION = ("Linear projection: after-tax spend × billing-period length ÷ time elapsed in the period "
                      "(at least one day, so a charge in the first hours of a period is not multiplied by "
                      "hundreds; never below the actual spend).")
#: How the usage projection works.
USAGE_PROJECTION_NOTE = ("Linear projection: estimate × days in the month ÷ day of the month (UTC), "
                         "as the alert rules compute it; on the 1st that is 28 to 31 times the estimate, so it "
                         "overestimates early in the month.")
#: What the usage estimate is.
USAGE_ESTIMATE_NOTE = ("Partner Center's estimate of the Azure usage of the current calendar month, which "
                       "Microsoft refreshes about daily and revises; not an invoice.")


# ---------------------------------------------------------------- queries

def query(expr, legend="", ref="A", instant=False, table_format=False):
    """A PromQL query on the dashboard's data source."""
    target = (sdk_prometheus.Dataquery()
              .datasource(DATASOURCE)
              .editor_mode(QueryEditorMode.CODE)
              .expr(expr)
              .legend_format(legend)
              .ref_id(ref)
              .format(PromQueryFormat.TABLE if table_format else PromQueryFormat.TIME_SERIES))
    return target.instant() if instant else target.range()


def instant(expr, legend="", ref="A"):
    """The latest value of each series."""
    return query(expr, legend, ref, instant=True)


def rows(*exprs):
    """Instant queries in table format, refIds A, B, ... (one table column each)."""
    return [query(e, ref=chr(ord("A") + i), instant=True, table_format=True) for i, e in enumerate(exprs)]


# ---------------------------------------------------------------- field options

def thresholds(*steps):
    """Absolute thresholds: the base colour, then (value, colour) pairs."""
    base, rest = steps[0], steps[1:]
    return (db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
            .steps([dm.Threshold(value=None, color=base)] + [dm.Threshold(value=v, color=c) for v, c in rest]))


def colors(mode, fixed=None):
    """A colour scheme; `fixed`: the colour of the FIXED mode."""
    color = db.FieldColor().mode(mode)
    return color.fixed_color(fixed) if fixed else color


def value_map(mapping):
    """Value mapping {value: (text, colour)}."""
    return dm.ValueMap(options={value: dm.ValueMappingResult(text=text, color=color, index=i)
                                for i, (value, (text, color)) in enumerate(mapping.items())})


def prop(id_val, value):
    """One property of a field override."""
    return dm.DynamicConfigValue(id_val=id_val, value=value)


def reduce_last():
    """Reduce each series to its latest value."""
    return cb.ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields("")


def _base(panel, title, description, targets):
    panel.title(title).description(description).datasource(DATASOURCE)
    for target in targets:
        panel.with_target(target)
    return panel


def _money(panel, money):
    """Money panels: no default unit, two decimals, each currency's unit by override."""
    if money:
        panel.unit("none").decimals(2)
        with_currency_units(panel)
    return panel


# ---------------------------------------------------------------- panel kinds

def stat(title, description, targets, money=False, color_mode=cm.BigValueColorMode.NONE,
         text_mode=cm.BigValueTextMode.AUTO):
    """A single value per series (its latest), without a graph."""
    panel = _base(sdk_stat.Panel(), title, description, targets)
    panel.reduce_options(reduce_last()).orientation(cm.VizOrientation.AUTO).text_mode(text_mode)
    panel.color_mode(color_mode).graph_mode(cm.BigValueGraphMode.NONE).justify_mode(cm.BigValueJustifyMode.AUTO)
    panel.text(cb.VizTextDisplayOptions())
    if money:
        panel.color_scheme(colors(dm.FieldColorModeId.PALETTE_CLASSIC)).thresholds(thresholds("green"))
    return _money(panel, money)


def count_stat(title, description, expr, legend, alert_color="red"):
    """A count of customers (0 when there are none), coloured from 1."""
    panel = stat(title, description, [instant(expr, legend)], color_mode=cm.BigValueColorMode.BACKGROUND)
    return (panel.unit("none").decimals(0)
            .color_scheme(colors(dm.FieldColorModeId.THRESHOLDS))
            .thresholds(thresholds("green", (1, alert_color))))


def time_series(title, description, targets, money=False, unit=None, decimals=None, step=True,
                threshold_lines=False):
    """Values over time; `step` draws running totals as steps; `threshold_lines`
    draws the thresholds. The legend is a table with each series' latest
    value, highest first."""
    panel = _base(sdk_timeseries.Panel(), title, description, targets)
    panel.draw_style(cm.GraphDrawStyle.LINE)
    panel.line_interpolation(cm.LineInterpolation.STEP_AFTER if step else cm.LineInterpolation.LINEAR)
    panel.line_width(1).fill_opacity(10).show_points(cm.VisibilityMode.NEVER).span_nulls(True)
    panel.axis_placement(cm.AxisPlacement.AUTO).axis_label("").gradient_mode(cm.GraphGradientMode.NONE)
    panel.point_size(4).scale_distribution(cb.ScaleDistributionConfig().type(cm.ScaleDistribution.LINEAR))
    panel.axis_soft_min(0).stacking(cb.StackingConfig().mode(cm.StackingMode.NONE).group("A"))
    panel.thresholds_style(cb.GraphThresholdsStyleConfig().mode(
        cm.GraphThresholdsStyleMode.LINE if threshold_lines else cm.GraphThresholdsStyleMode.OFF))
    panel.color_scheme(colors(dm.FieldColorModeId.PALETTE_CLASSIC)).thresholds(thresholds("green"))
    panel.legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE).placement(cm.LegendPlacement.BOTTOM)
                 .show_legend(True).calcs(["lastNotNull"]).sort_by("Last *").sort_desc(True))
    panel.tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
    if unit:
        panel.unit(unit)
    if decimals is not None:
        panel.decimals(decimals)
    return _money(panel, money)


def dashed(ref, color=None):
    """Override: the series of query `ref` as a dashed line (a limit, a budget)."""
    properties = [prop("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})]
    if color:
        properties.append(prop("color", {"mode": "fixed", "fixedColor": color}))
    return ref, properties + [prop("custom.fillOpacity", 0)]


def dotted(ref):
    """Override: the series of query `ref` as a dotted line (a projection)."""
    return ref, [prop("custom.lineStyle", {"fill": "dot", "dash": [0, 10]}), prop("custom.fillOpacity", 0)]


def bar_gauge(title, description, targets, money=False, unit=None, decimals=None, link=False):
    """Horizontal bars, one per series (latest value); `link`: a click on a
    customer's bar opens its dashboard."""
    panel = _base(sdk_bargauge.Panel(), title, description, targets)
    panel.reduce_options(reduce_last()).orientation(cm.VizOrientation.HORIZONTAL)
    panel.display_mode(cm.BarGaugeDisplayMode.GRADIENT).show_unfilled(True).value_mode(cm.BarGaugeValueMode.COLOR)
    panel.name_placement(cm.BarGaugeNamePlacement.AUTO).sizing(cm.BarGaugeSizing.AUTO)
    panel.min_viz_height(10).min_viz_width(0).max_viz_height(300)
    panel.min(0)
    if unit:
        panel.unit(unit)
    if decimals is not None:
        panel.decimals(decimals)
    if link:
        panel.data_links([customer_link(SERIES_CUSTOMER)])
    return _money(panel, money)


#: Budget use: orange from 80 %, red from 100 %.
BUDGET_COLORS = ("green", (0.8, "orange"), (1, "red"))


def budget_bars(title, description, targets):
    """Share of a budget per customer: orange from 80 %, red from 100 %; a click
    on a bar opens the customer's dashboard."""
    return (bar_gauge(title, description, targets, unit="percentunit", decimals=0, link=True)
            .max(1.2).color_scheme(colors(dm.FieldColorModeId.THRESHOLDS)).thresholds(thresholds(*BUDGET_COLORS)))


def gauge_panel(title, description, targets):
    """A dial per series (latest value)."""
    panel = _base(sdk_gauge.Panel(), title, description, targets)
    return (panel.reduce_options(reduce_last()).orientation(cm.VizOrientation.AUTO)
            .show_threshold_labels(False).show_threshold_markers(True).text(cb.VizTextDisplayOptions()))


def budget_gauge(title, description, targets):
    """Share of a budget: orange from 80 %, red from 100 %."""
    return (gauge_panel(title, description, targets)
            .unit("percentunit").decimals(0).min(0).max(1.2).no_value("no budget")
            .color_scheme(colors(dm.FieldColorModeId.THRESHOLDS)).thresholds(thresholds(*BUDGET_COLORS)))


def data_table(title, description, targets, columns, sort_by, desc=True, hidden=(), overrides=(), decimals=None,
               customer_links=False):
    """A table of instant queries merged into one row per label set.

    columns: (field, header) pairs in display order: labels by name, query
    results as "Value #<refId>" (or "Value" with a single query); other
    fields and `hidden` ones are not shown. sort_by: the header to sort on.
    customer_links: a click on a "Customer" cell opens its dashboard."""
    panel = _base(sdk_table.Panel(), title, description, targets)
    panel.align(cm.FieldTextAlignment.AUTO).cell_options(cm.TableAutoCellOptions()).inspect(False).filterable(True)
    panel.thresholds(thresholds("green")).color_scheme(colors(dm.FieldColorModeId.THRESHOLDS))
    if decimals is not None:
        panel.decimals(decimals)
    panel.show_header(True).cell_height(cm.TableCellHeight.SM)
    panel.footer(cb.TableFooterOptions().show(False).reducer(["sum"]).count_rows(False))
    panel.sort_by([cb.TableSortByFieldState().display_name(sort_by).desc(desc)])
    for name, properties in list(overrides) + ([customer_column_link()] if customer_links else []):
        panel.override_by_name(name, properties)
    excluded = {"Time": True}
    excluded.update({field: True for field in hidden})
    panel.with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
    panel.with_transformation(dm.DataTransformerConfig(id_val="organize", options={
        "excludeByName": excluded,
        "indexByName": {field: i for i, (field, _) in enumerate(columns)},
        "renameByName": {field: header for field, header in columns},
    }))
    return panel


def percent_cells(name, *steps, background=True):
    """Override: the column `name` as a percentage coloured by thresholds."""
    cells = {"type": "color-background", "mode": "basic"} if background else {"type": "color-text"}
    return name, [prop("unit", "percentunit"), prop("decimals", 0),
                  prop("thresholds", {"mode": "absolute", "steps": [{"color": steps[0], "value": None}]
                                      + [{"color": c, "value": v} for v, c in steps[1:]]}),
                  prop("custom.cellOptions", cells)]


def mapped_cells(name, mapping):
    """Override: the column `name` shown through a value mapping {value: (text, colour)}."""
    return name, [prop("mappings", [value_map(mapping)]), prop("custom.cellOptions", {"type": "color-text"})]


def unit_cells(name, unit):
    """Override: the column `name` in `unit`."""
    return name, [prop("unit", unit)]


def currency_bars(title, description, expr, category, category_header):
    """A bar chart of money per `category` label (one group of bars per value)
    and currency (one bar each, in its currency's unit): the instant query's
    table is pivoted so that each currency is a column."""
    panel = _base(sdk_barchart.Panel(), title, description, [query(expr, ref="A", instant=True, table_format=True)])
    panel.orientation(cm.VizOrientation.AUTO).x_tick_label_rotation(0).x_tick_label_spacing(0)
    panel.show_value(cm.VisibilityMode.AUTO).stacking(cm.StackingMode.NONE).group_width(0.7).bar_width(0.9)
    panel.legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST).placement(cm.LegendPlacement.BOTTOM)
                 .show_legend(True))
    panel.tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.NONE))
    panel.color_scheme(colors(dm.FieldColorModeId.PALETTE_CLASSIC)).thresholds(thresholds("green"))
    panel.fill_opacity(80).line_width(1).gradient_mode(cm.GraphGradientMode.NONE).axis_soft_min(0)
    panel.with_transformation(dm.DataTransformerConfig(id_val="sortBy", options={"sort": [{"field": category}]}))
    panel.with_transformation(dm.DataTransformerConfig(id_val="groupingToMatrix", options={
        "columnField": "currency", "rowField": category, "valueField": "Value", "emptyValue": "null"}))
    panel.with_transformation(dm.DataTransformerConfig(id_val="organize", options={
        "renameByName": {"%s\\currency" % category: category_header}}))
    panel.x_field(category_header)
    return _money(panel, True)


# ---------------------------------------------------------------- layout and export

class Layout:
    """Places panels on Grafana's 24-column grid, left to right, starting a new
    line when a panel does not fit, and numbers panels and rows 1, 2, ..."""

    def __init__(self, dashboard):
        self.dashboard = dashboard
        self.x = self.y = self.line_height = 0
        self.next_id = 1

    def _id(self):
        self.next_id += 1
        return self.next_id - 1

    def _new_line(self):
        if self.x:
            self.y += self.line_height
        self.x = self.line_height = 0

    def row(self, title):
        """A (not collapsed) row header across the grid."""
        self._new_line()
        self.dashboard.with_row(db.Row(title).id(self._id()).collapsed(False)
                                .grid_pos(dm.GridPos(x=0, y=self.y, w=24, h=1)))
        self.y += 1

    def add(self, panel, w, h):
        """Adds `panel` w columns wide and h units high."""
        if self.x + w > 24:
            self._new_line()
        self.dashboard.with_panel(panel.id(self._id()).grid_pos(dm.GridPos(x=self.x, y=self.y, w=w, h=h)))
        self.x += w
        self.line_height = max(self.line_height, h)


def new_dashboard(title, uid, description, tags, refresh):
    """A dashboard with the settings all three share; the caller adds the variables."""
    return (db.Dashboard(title).uid(uid).description(description).tags([TAG] + tags)
            .editable().tooltip(dm.DashboardCursorSync.CROSSHAIR).time("now-7d", "now").timezone("")
            .refresh(refresh).fiscal_year_start_month(0).live_now(False).week_start("").version(1)
            .link(dashboards_menu()))


PANEL_NAMES = {"barchart": "Bar chart", "bargauge": "Bar gauge", "gauge": "Gauge", "stat": "Stat",
               "table": "Table", "timeseries": "Time series"}


def export(dashboard):
    """The dashboard as Grafana's "export for sharing externally" JSON: the
    `DS_PROMETHEUS` input that the import dialog asks for, and what it needs."""
    model = dashboard.build()
    model.schema_version = SCHEMA_VERSION
    model.annotations = dm.AnnotationContainer(list_val=[])
    body = json.loads(JSONEncoder().encode(model))
    types = sorted({p["type"] for p in body["panels"]} - {"row"})
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus",
                      "description": "The Prometheus server that scrapes partnercenter-exporter",
                      "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "__elements": {},
        "__requires": [{"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
                       {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}]
        + [{"type": "panel", "id": t, "name": PANEL_NAMES[t], "version": ""} for t in types],
        **body,
    }
