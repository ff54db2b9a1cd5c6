//! The `usage` collector: every customer's estimated Azure usage of the current
//! month and the spending budget set in Partner Center, in one request
//! (`GET /v1/customers/usagerecords`, plus next pages if a page links to one).
//!
//! Partner Center has a record for each customer with an Azure plan or a legacy
//! Azure subscription; a customer without one has no record and no usage series. The
//! figures are estimates that Microsoft refreshes about daily, not billing figures.
//! A legacy record gives a locale rather than a currency: its currency is the one the
//! customer's service costs report, else `unknown`, which is why this part reads the
//! `servicecosts` part. With an explicit customer list, only those customers are
//! exported.

use crate::exposition::{Family, Render};
use crate::partner_center::client::ApiError;
use crate::partner_center::usage::UsageRecord;
use crate::snapshot::{Part, Snapshot};

use super::servicecosts::ServiceCosts;
use super::{register, Api, Collector, Plan, Scope};

pub const NAME: &str = "usage";

pub const INFO: super::Info = crate::collector_info!(
    "usage",
    "USAGE",
    true,
    "every customer's estimated usage of the current month and its Partner Center budget (one request)",
    Usage,
    |_| register(Usage)
);

/// The currency of a record whose customer's currency is not known.
pub const UNKNOWN_CURRENCY: &str = "unknown";

/// The collector.
pub struct Usage;

impl Usage {
    pub fn part(snapshot: &Snapshot) -> Option<&Part<UsageRecord>> {
        snapshot.part::<UsageRecord>(NAME)
    }

    /// The record's currency: its own, else the customer's from its service costs.
    pub fn currency<'a>(snapshot: &'a Snapshot, record: &'a UsageRecord) -> &'a str {
        if let Some(code) = record.currency_code.as_deref() {
            return code;
        }
        ServiceCosts::part(snapshot)
            .and_then(|p| p.value(&record.customer_id))
            .and_then(|c| c.currency())
            .unwrap_or(UNKNOWN_CURRENCY)
    }
}

impl Collector for Usage {
    type Value = UsageRecord;
    const NAME: &'static str = NAME;
    const PLAN: Plan = Plan::Partner;
    const READS: &'static [&'static str] = &[super::servicecosts::NAME];

    async fn fetch(
        &self,
        api: &Api<'_>,
        _scope: Scope<'_>,
    ) -> Result<Vec<(String, UsageRecord)>, ApiError> {
        let on_page = |more: bool| {
            api.target_done();
            if more {
                api.add_targets(1);
            }
        };
        let records = api.client.usage_records(&on_page).await?;
        Ok(records
            .into_iter()
            .filter(|r| api.monitors(&r.customer_id))
            .map(|r| (r.customer_id.clone(), r))
            .collect())
    }

    fn render(&self, snapshot: &Snapshot, part: &Part<UsageRecord>, out: &mut Render<'_>) {
        let records = || {
            part.entries
                .iter()
                .filter_map(|(id, f)| Some((id.as_str(), f.value.as_ref()?)))
        };
        out.header(&COST);
        for (id, r) in records() {
            let currency = Usage::currency(snapshot, r);
            out.sample(
                &COST,
                &[("customer_id", id), ("currency", currency)],
                r.total_cost,
            );
        }
        out.header(&COST_USD);
        // A legacy record carries `usdTotalCost: 0` whatever it cost: only an Azure
        // plan's is a figure.
        for (id, r) in records().filter(|(_, r)| r.azure_plan != Some(false)) {
            if let Some(usd) = r.usd_total_cost {
                out.sample(&COST_USD, &[("customer_id", id)], usd);
            }
        }
        out.header(&BUDGET);
        for (id, r) in records() {
            if let Some(budget) = r.budget {
                let currency = Usage::currency(snapshot, r);
                out.sample(
                    &BUDGET,
                    &[("customer_id", id), ("currency", currency)],
                    budget,
                );
            }
        }
        out.header(&LAST_MODIFIED);
        for (id, r) in records() {
            if let Some(at) = r.last_modified {
                out.sample(&LAST_MODIFIED, &[("customer_id", id)], at);
            }
        }
        out.header(&AZURE_PLAN);
        for (id, r) in records() {
            if let Some(plan) = r.azure_plan {
                out.sample(
                    &AZURE_PLAN,
                    &[("customer_id", id)],
                    if plan { 1.0 } else { 0.0 },
                );
            }
        }
    }

    fn reads_others(&self, part: &Part<UsageRecord>) -> bool {
        part.entries
            .iter()
            .any(|(_, f)| f.value.as_ref().is_some_and(|r| r.currency_code.is_none()))
    }

    fn size_hint(&self, part: &Part<UsageRecord>) -> usize {
        part.len().saturating_mul(600)
    }
}

const COST: Family = Family {
    name: "partnercenter_usage_cost_estimate",
    help: "Estimated cost of the customer's Azure usage in the current month (totalCost of GET /v1/customers/usagerecords): an estimate Microsoft refreshes about daily, not a billed amount.",
};
const COST_USD: Family = Family {
    name: "partnercenter_usage_cost_estimate_usd",
    help: "The same estimate in US dollars (usdTotalCost), for an Azure plan (a legacy record's is always 0); refreshed by Microsoft about daily.",
};
const BUDGET: Family = Family {
    name: "partnercenter_usage_budget",
    help: "Monthly spending budget of the customer set in Partner Center (budget.amount); no series when none is set.",
};
const LAST_MODIFIED: Family = Family {
    name: "partnercenter_usage_last_modified_timestamp_seconds",
    help:
        "When Microsoft last refreshed the customer's usage estimate (lastModifiedDate, Unix time).",
};
const AZURE_PLAN: Family = Family {
    name: "partnercenter_usage_azure_plan",
    help: "1 if the customer's usage record is for an Azure plan, 0 for a legacy Azure subscription (isUpgraded).",
};

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::collectors::servicecosts::Costs;
    use crate::partner_center::model::CostLine;
    use crate::snapshot::Fetched;

    fn fetched<T>(value: T) -> Fetched<T> {
        Fetched {
            value: Some(value),
            success: true,
            last_success: Some(1.0),
        }
    }

    fn record(id: &str, code: Option<&str>) -> UsageRecord {
        UsageRecord {
            customer_id: id.into(),
            total_cost: 120.568_299_999_999_6,
            currency_code: code.map(str::to_owned),
            currency_locale: code.is_none().then(|| "fr-FR".to_owned()),
            usd_total_cost: Some(if code.is_some() { 12.4 } else { 0.0 }),
            budget: code.map(|_| 20.0),
            percent_used: Some(602.84),
            azure_plan: Some(code.is_some()),
            last_modified: Some(1_564_700_416.57),
        }
    }

    fn snapshot(records: Vec<UsageRecord>, costs: Vec<(&str, &str)>) -> Snapshot {
        let usage = Part::from_entries(
            records
                .into_iter()
                .map(|r| (r.customer_id.clone(), fetched(r)))
                .collect(),
            None,
        );
        let costs = Part::from_entries(
            costs
                .into_iter()
                .map(|(id, currency)| {
                    let line = CostLine {
                        invoice_type: "usage".into(),
                        currency: currency.into(),
                        pretax: 1.0,
                        tax: 0.0,
                        after_tax: 1.0,
                        period_start: None,
                        period_end: None,
                    };
                    (id.to_owned(), fetched(Costs(vec![line])))
                })
                .collect(),
            None,
        );
        Snapshot::default()
            .with(NAME, Arc::new(usage))
            .with(super::super::servicecosts::NAME, Arc::new(costs))
    }

    fn render(snapshot: &Snapshot) -> String {
        crate::exposition::render_text(|out| {
            Usage.render(snapshot, Usage::part(snapshot).unwrap(), out)
        })
    }

    #[test]
    fn an_azure_plan_record_exports_every_family() {
        let text = render(&snapshot(vec![record("a", Some("SEK"))], vec![]));
        for line in [
            "partnercenter_usage_cost_estimate{customer_id=\"a\",currency=\"SEK\"} 120.5682999999996",
            "partnercenter_usage_cost_estimate_usd{customer_id=\"a\"} 12.4",
            "partnercenter_usage_budget{customer_id=\"a\",currency=\"SEK\"} 20",
            "partnercenter_usage_last_modified_timestamp_seconds{customer_id=\"a\"} 1564700416.57",
            "partnercenter_usage_azure_plan{customer_id=\"a\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn a_legacy_record_takes_the_service_costs_currency_else_unknown() {
        let s = snapshot(
            vec![record("a", None), record("b", None)],
            vec![("a", "EUR")],
        );
        let text = render(&s);
        assert!(
            text.contains("partnercenter_usage_cost_estimate{customer_id=\"a\",currency=\"EUR\"}")
        );
        assert!(text
            .contains("partnercenter_usage_cost_estimate{customer_id=\"b\",currency=\"unknown\"}"));
        assert!(text.contains("partnercenter_usage_azure_plan{customer_id=\"b\"} 0"));
        assert!(
            !text.contains("partnercenter_usage_budget{"),
            "no budget, no series"
        );
        assert!(Usage.reads_others(Usage::part(&s).unwrap()));
        assert_eq!(Usage::READS, [crate::collectors::servicecosts::NAME]);
        let plan_only = snapshot(vec![record("a", Some("SEK"))], vec![]);
        assert!(!Usage.reads_others(Usage::part(&plan_only).unwrap()));
    }
}
