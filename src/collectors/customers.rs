//! The `customers` part: the monitored customers as the last discovery found them
//! (names, domains, the budgets of the configuration), and its series,
//! `partnercenter_customer_info` and `partnercenter_customer_budget`.
//!
//! The budget is in the customer's billing currency, which only the service costs
//! tell: the part reads the `servicecosts` part, and a customer whose currency is not
//! known yet has no budget series.

use serde::{Deserialize, Serialize};

use crate::exposition::{Family, Render};
use crate::snapshot::{Part, Snapshot};

use super::servicecosts;
use super::state::PartKind;

/// The part's name in the snapshot and the cache file.
pub const NAME: &str = "customers";

/// A monitored customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerInfo {
    /// From the config file, else from Partner Center's company profile.
    pub name: String,
    pub domain: String,
    /// From the config file, in the customer's billing currency.
    pub budget: Option<f64>,
}

const INFO: Family = Family {
    name: "partnercenter_customer_info",
    help: "Monitored customer, with its name and domain; always 1.",
};
const BUDGET: Family = Family {
    name: "partnercenter_customer_budget",
    help: "Budget of the customer from the configuration file, in its billing currency.",
};

/// Renders the part.
pub struct Customers;

impl Customers {
    pub fn part(snapshot: &Snapshot) -> Option<&Part<CustomerInfo>> {
        snapshot.part::<CustomerInfo>(NAME)
    }
}

impl PartKind for Customers {
    fn name(&self) -> &'static str {
        NAME
    }

    fn render(&self, snapshot: &Snapshot, out: &mut Render<'_>) {
        let empty = Part::default();
        let part = Customers::part(snapshot).unwrap_or(&empty);
        out.header(&INFO);
        for (id, c) in &part.entries {
            if let Some(c) = &c.value {
                out.sample(
                    &INFO,
                    &[
                        ("customer_id", id),
                        ("customer_name", &c.name),
                        ("domain", &c.domain),
                    ],
                    1.0,
                );
            }
        }
        out.header(&BUDGET);
        let costs = servicecosts::ServiceCosts::part(snapshot);
        for (id, c) in &part.entries {
            let budget = c.value.as_ref().and_then(|c| c.budget);
            let currency = costs.and_then(|p| p.value(id)).and_then(|c| c.currency());
            if let (Some(budget), Some(currency)) = (budget, currency) {
                out.sample(
                    &BUDGET,
                    &[("customer_id", id), ("currency", currency)],
                    budget,
                );
            }
        }
    }

    fn reads(&self, changed: &str, snapshot: &Snapshot) -> bool {
        changed == servicecosts::NAME
            && Customers::part(snapshot).is_some_and(|p| {
                p.entries
                    .iter()
                    .any(|(_, c)| c.value.as_ref().is_some_and(|c| c.budget.is_some()))
            })
    }

    fn size_hint(&self, snapshot: &Snapshot) -> usize {
        Customers::part(snapshot).map_or(0, |p| p.len().saturating_mul(200))
    }
}
