//! The `servicecosts` collector: each customer's `MostRecent` service-costs summary
//! (`GET /v1/customers/{id}/servicecosts/MostRecent`, one request per customer), and
//! its series: the pre-tax, tax and after-tax amounts per invoice type and currency,
//! the billing period per invoice type, and each customer's fetch status.
//!
//! A 404 ("no data") is a success without cost series. The amounts are those of the
//! most recent billing period as of the collector's last run, which the exporter
//! makes in the background: they change about once a month.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::exposition::{Family, Render};
use crate::partner_center::client::ApiError;
use crate::partner_center::model::{earliest, latest, CostLine};
use crate::snapshot::{Part, Snapshot};

use super::{register, Api, Collector, Plan, Scope};

pub const NAME: &str = "servicecosts";

pub const INFO: super::Info = crate::collector_info!(
    "servicecosts",
    "SERVICECOSTS",
    true,
    "each customer's MostRecent service-costs summary (one request per customer)",
    ServiceCosts,
    |_| register(ServiceCosts)
);

/// A customer's cost lines, one per invoice type and currency; empty when Partner
/// Center has no data for the customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Costs(pub Vec<CostLine>);

impl Costs {
    /// The currency the customer is billed in, as Partner Center reports it.
    pub fn currency(&self) -> Option<&str> {
        self.0.first().map(|c| c.currency.as_str())
    }

    /// After-tax spend summed per currency (almost always one currency).
    pub fn after_tax_by_currency(&self) -> Vec<(&str, f64)> {
        let mut sums: Vec<(&str, f64)> = Vec::new();
        for line in &self.0 {
            match sums.iter_mut().find(|(c, _)| *c == line.currency) {
                Some((_, sum)) => *sum += line.after_tax,
                None => sums.push((&line.currency, line.after_tax)),
            }
        }
        sums
    }

    /// After-tax spend over all currencies, for ordering.
    pub fn after_tax(&self) -> f64 {
        self.0.iter().map(|l| l.after_tax).sum()
    }
}

/// The collector.
pub struct ServiceCosts;

impl ServiceCosts {
    pub fn part(snapshot: &Snapshot) -> Option<&Part<Costs>> {
        snapshot.part::<Costs>(NAME)
    }
}

impl Collector for ServiceCosts {
    type Value = Costs;
    const NAME: &'static str = NAME;
    const PLAN: Plan = Plan::EachCustomer;

    async fn fetch(
        &self,
        api: &Api<'_>,
        scope: Scope<'_>,
    ) -> Result<Vec<(String, Costs)>, ApiError> {
        let Scope::Customer(customer) = scope else {
            return Ok(Vec::new());
        };
        let lines = api.client.service_costs(&customer.id).await?;
        Ok(vec![(
            customer.id.clone(),
            Costs(lines.unwrap_or_default()),
        )])
    }

    fn render(&self, _snapshot: &Snapshot, part: &Part<Costs>, out: &mut Render<'_>) {
        let money: [(&Family, LineValue); 3] = [
            (&PRETAX, |c| c.pretax),
            (&TAX, |c| c.tax),
            (&AFTER_TAX, |c| c.after_tax),
        ];
        for (family, value) in money {
            out.header(family);
            for (id, fetched) in &part.entries {
                for line in fetched.value.iter().flat_map(|c| &c.0) {
                    out.sample(
                        family,
                        &[
                            ("customer_id", id),
                            ("invoice_type", &line.invoice_type),
                            ("currency", &line.currency),
                        ],
                        value(line),
                    );
                }
            }
        }
        let periods: [(&Family, PeriodValue); 2] =
            [(&PERIOD_START, |p| p.start), (&PERIOD_END, |p| p.end)];
        for (family, value) in periods {
            out.header(family);
            for (id, fetched) in &part.entries {
                let Some(costs) = &fetched.value else {
                    continue;
                };
                for period in periods_by_invoice_type(&costs.0) {
                    if let Some(v) = value(&period) {
                        out.sample(
                            family,
                            &[("customer_id", id), ("invoice_type", period.invoice_type)],
                            v,
                        );
                    }
                }
            }
        }
        out.header(&FETCH_SUCCESS);
        for (id, fetched) in &part.entries {
            let v = if fetched.success { 1.0 } else { 0.0 };
            out.sample(&FETCH_SUCCESS, &[("customer_id", id)], v);
        }
        out.header(&LAST_SUCCESS);
        for (id, fetched) in &part.entries {
            if let Some(at) = fetched.last_success {
                out.sample(&LAST_SUCCESS, &[("customer_id", id)], at);
            }
        }
    }

    fn size_hint(&self, part: &Part<Costs>) -> usize {
        part.len().saturating_mul(1500)
    }
}

const PRETAX: Family = Family {
    name: "partnercenter_service_costs_pretax",
    help: "Pre-tax service costs of the customer's most recent billing period (details[].summary.pretaxTotal), as of the collector's last background run.",
};
const TAX: Family = Family {
    name: "partnercenter_service_costs_tax",
    help: "Tax on the service costs of the customer's most recent billing period (details[].summary.tax), as of the collector's last background run.",
};
const AFTER_TAX: Family = Family {
    name: "partnercenter_service_costs_after_tax",
    help: "After-tax service costs of the customer's most recent billing period (details[].summary.afterTaxTotal), as of the collector's last background run.",
};
const PERIOD_START: Family = Family {
    name: "partnercenter_service_costs_billing_period_start_timestamp_seconds",
    help: "Start of the billing period of the service costs (Unix time).",
};
const PERIOD_END: Family = Family {
    name: "partnercenter_service_costs_billing_period_end_timestamp_seconds",
    help: "End of the billing period of the service costs (Unix time).",
};
const FETCH_SUCCESS: Family = Family {
    name: "partnercenter_customer_fetch_success",
    help: "1 if the last background fetch of the customer's service costs succeeded (no data counts as success).",
};
const LAST_SUCCESS: Family = Family {
    name: "partnercenter_customer_last_success_timestamp_seconds",
    help: "When the customer's service costs were last fetched successfully (Unix time).",
};

/// Reads one figure of a cost line.
type LineValue = fn(&CostLine) -> f64;

/// The billing period of one invoice type of a customer.
struct Period<'a> {
    invoice_type: &'a str,
    start: Option<f64>,
    end: Option<f64>,
}

/// Reads one end of a billing period.
type PeriodValue = fn(&Period<'_>) -> Option<f64>;

/// The billing period of each invoice type, in the order the types first appear.
/// The period gauges carry no currency label, so an invoice type billed in two
/// currencies has one period: the earliest start and the latest end of its lines.
fn periods_by_invoice_type(costs: &[CostLine]) -> Vec<Period<'_>> {
    let mut periods: Vec<Period<'_>> = Vec::with_capacity(costs.len());
    // Invoice type → index in `periods`: linear in the lines, however many there are.
    let mut index: HashMap<&str, usize> = HashMap::new();
    for line in costs {
        let at = *index
            .entry(line.invoice_type.as_str())
            .or_insert(periods.len());
        match periods.get_mut(at) {
            Some(period) => {
                period.start = earliest(period.start, line.period_start);
                period.end = latest(period.end, line.period_end);
            }
            None => periods.push(Period {
                invoice_type: &line.invoice_type,
                start: line.period_start,
                end: line.period_end,
            }),
        }
    }
    periods
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::collectors::customers::{CustomerInfo, NAME as CUSTOMERS};
    use crate::partner_center::model::parse_service_costs;
    use crate::snapshot::Fetched;

    fn fetched<T>(value: T) -> Fetched<T> {
        Fetched {
            value: Some(value),
            success: true,
            last_success: Some(1_700_000_000.0),
        }
    }

    const ID: &str = "ae1d5b32-f9ff-4252-b2bf-40e21937a51a";

    fn documented_costs() -> Costs {
        Costs(
            parse_service_costs(include_bytes!(
                "../../tests/fixtures/servicecosts-mostrecent.json"
            ))
            .unwrap(),
        )
    }

    /// The documented customer, with a budget, fetched at 1,700,000,000.
    fn documented_snapshot() -> Snapshot {
        snapshot_of(vec![(
            ID.to_owned(),
            "Fabrikam".to_owned(),
            documented_costs(),
        )])
    }

    fn snapshot_of(customers: Vec<(String, String, Costs)>) -> Snapshot {
        let info = customers
            .iter()
            .map(|(id, name, _)| {
                let info = CustomerInfo {
                    name: name.clone(),
                    domain: "fabrikam.onmicrosoft.com".into(),
                    budget: Some(1500.0),
                };
                (id.clone(), fetched(info))
            })
            .collect();
        let costs = customers
            .into_iter()
            .map(|(id, _, costs)| (id, fetched(costs)))
            .collect();
        Snapshot::default()
            .with(CUSTOMERS, Arc::new(Part::from_entries(info, None)))
            .with(NAME, Arc::new(Part::<Costs>::from_entries(costs, None)))
    }

    fn render_snapshot(snapshot: &Snapshot) -> Vec<u8> {
        crate::collectors::tests::render_all(snapshot).into_bytes()
    }

    #[test]
    fn documented_snapshot_exposition() {
        let text = String::from_utf8(render_snapshot(&documented_snapshot())).unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn vanished_customers_have_no_series() {
        let snapshot = snapshot_of(Vec::new());
        let text = String::from_utf8(render_snapshot(&snapshot)).unwrap();
        assert!(!text.contains("ae1d5b32"));
        assert!(text.contains("# TYPE partnercenter_service_costs_after_tax gauge"));
    }

    #[test]
    fn untrusted_names_are_escaped() {
        let evil = "Evil \"Corp\"\\\n<script>alert(1)</script> Ünïcödé".to_owned();
        let snapshot = snapshot_of(vec![(ID.to_owned(), evil, documented_costs())]);
        let text = String::from_utf8(render_snapshot(&snapshot)).unwrap();
        let info = text
            .lines()
            .find(|l| l.starts_with("partnercenter_customer_info{"))
            .unwrap();
        assert_eq!(
            info,
            "partnercenter_customer_info{customer_id=\"ae1d5b32-f9ff-4252-b2bf-40e21937a51a\",customer_name=\"Evil \\\"Corp\\\"\\\\\\n<script>alert(1)</script> Ünïcödé\",domain=\"fabrikam.onmicrosoft.com\"} 1"
        );
    }

    /// Every sample line's series (name and labels) occurs once.
    fn assert_unique_series(text: &str) {
        let mut seen = std::collections::HashSet::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, _) = line.rsplit_once(' ').unwrap();
            assert!(seen.insert(series), "two samples of {series} in\n{text}");
        }
    }

    #[test]
    fn an_invoice_type_in_two_currencies_has_one_period() {
        let line = |invoice_type: &str, currency: &str, start: Option<f64>, end: Option<f64>| {
            crate::partner_center::model::CostLine {
                invoice_type: invoice_type.into(),
                currency: currency.into(),
                pretax: 1.0,
                tax: 0.0,
                after_tax: 1.0,
                period_start: start,
                period_end: end,
            }
        };
        let costs = Costs(vec![
            line("Recurring", "USD", Some(200.0), Some(300.0)),
            line("OneTime", "USD", None, Some(250.0)),
            line("Recurring", "EUR", Some(100.0), Some(290.0)),
            line("OneTime", "EUR", Some(150.0), None),
        ]);
        let snapshot = snapshot_of(vec![(ID.to_owned(), "Fabrikam".to_owned(), costs)]);
        let text = String::from_utf8(render_snapshot(&snapshot)).unwrap();
        assert_unique_series(&text);
        let samples = |family: &str| -> Vec<&str> {
            text.lines()
                .filter(|l| l.starts_with(&format!("{family}{{")))
                .collect()
        };
        let id = "customer_id=\"ae1d5b32-f9ff-4252-b2bf-40e21937a51a\"";
        assert_eq!(
            samples(PERIOD_START.name),
            [
                format!(
                    "{}{{{id},invoice_type=\"Recurring\"}} 100",
                    PERIOD_START.name
                ),
                format!("{}{{{id},invoice_type=\"OneTime\"}} 150", PERIOD_START.name),
            ]
        );
        assert_eq!(
            samples(PERIOD_END.name),
            [
                format!("{}{{{id},invoice_type=\"Recurring\"}} 300", PERIOD_END.name),
                format!("{}{{{id},invoice_type=\"OneTime\"}} 250", PERIOD_END.name),
            ]
        );
        // The money series keep one sample per currency.
        assert_eq!(samples(AFTER_TAX.name).len(), 4);
    }
}
