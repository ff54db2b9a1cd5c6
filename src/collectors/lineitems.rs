//! The `lineitems` collector (off by default): each customer's `MostRecent`
//! service-cost line items (`GET /v1/customers/{id}/servicecosts/MostRecent/lineitems`,
//! one request per customer), summed per subscription × invoice type × currency.
//!
//! Cardinality is bounded per customer: the `--collector.lineitems.max-subscriptions`
//! subscriptions with the largest after-tax amounts keep their own series; the rest
//! are summed into `subscription_id="other"`, so that the customer's total is
//! unchanged. Each run says once how many customers were capped.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::exposition::{Family, Render};
use crate::partner_center::client::ApiError;
use crate::partner_center::lineitems::{LineItem, UNKNOWN};
use crate::partner_center::model::BodyError;
use crate::snapshot::{Part, Snapshot};

use super::{register, Api, Collector, OptionKind, Plan, Scope};

pub const NAME: &str = "lineitems";

/// Subscriptions with series of their own per customer, by default.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 20;
/// The subscription id of the sum of the subscriptions beyond the cap.
pub const OTHER: &str = "other";

pub const INFO: super::Info = crate::collector_info!(
    "lineitems",
    "LINEITEMS",
    false,
    "each customer's service-cost line items, summed per subscription (one request per customer)",
    LineItems,
    |settings| register(LineItems {
        max_subscriptions: settings
            .count("max-subscriptions")
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(DEFAULT_MAX_SUBSCRIPTIONS),
    }),
    &[crate::collector_option!(
        "lineitems",
        "LINEITEMS",
        "max-subscriptions",
        "MAX_SUBSCRIPTIONS",
        OptionKind::Count { min: 1, max: 10_000 },
        "20",
        "Subscriptions per customer with series of their own (by after-tax amount); the rest are summed into subscription_id=\"other\""
    )]
);

/// The collector.
pub struct LineItems {
    /// `--collector.lineitems.max-subscriptions`.
    pub max_subscriptions: usize,
}

/// A customer's line items, summed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionCosts {
    /// One row per subscription (or `other`) × invoice type × currency, sorted.
    pub rows: Vec<SubscriptionRow>,
    /// The names of each subscription with series of its own, sorted by id.
    pub subscriptions: Vec<SubscriptionInfo>,
    /// How many subscriptions were summed into `other`.
    pub capped: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionRow {
    pub subscription_id: String,
    pub invoice_type: String,
    pub currency: String,
    pub pretax: f64,
    pub tax: f64,
    pub after_tax: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    pub subscription_id: String,
    pub subscription_name: String,
    pub offer_id: String,
    pub offer_name: String,
}

/// Sums `items` per subscription × invoice type × currency, keeping at most `max`
/// subscriptions (by after-tax amount over all their rows, ties by id) and summing
/// the rest into [`OTHER`]. A sum beyond an f64's range is an invalid body.
pub fn summarize(items: Vec<LineItem>, max: usize) -> Result<SubscriptionCosts, BodyError> {
    let mut sums: BTreeMap<(String, String, String), [f64; 3]> = BTreeMap::new();
    let mut names: HashMap<String, SubscriptionInfo> = HashMap::new();
    for item in items {
        let sum = sums
            .entry((
                item.subscription_id.clone(),
                item.invoice_type,
                item.currency,
            ))
            .or_insert([0.0; 3]);
        add(sum, [item.pretax, item.tax, item.after_tax])?;
        names
            .entry(item.subscription_id.clone())
            .or_insert_with(|| SubscriptionInfo {
                subscription_id: item.subscription_id,
                subscription_name: item.subscription_name,
                offer_id: item.offer_id,
                offer_name: item.offer_name,
            });
    }
    let mut totals: HashMap<&str, f64> = HashMap::new();
    for ((id, _, _), sum) in &sums {
        *totals.entry(id.as_str()).or_insert(0.0) += sum[2];
    }
    let mut ranked: Vec<(&str, f64)> = totals.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let kept: std::collections::HashSet<String> = ranked
        .iter()
        .take(max)
        .map(|(id, _)| (*id).to_owned())
        .collect();
    let capped = ranked.len().saturating_sub(max);

    let mut rows: BTreeMap<(String, String, String), [f64; 3]> = BTreeMap::new();
    for ((id, invoice_type, currency), sum) in sums {
        let id = if kept.contains(&id) {
            id
        } else {
            OTHER.to_owned()
        };
        add(
            rows.entry((id, invoice_type, currency)).or_insert([0.0; 3]),
            sum,
        )?;
    }
    let mut subscriptions: Vec<SubscriptionInfo> = names
        .into_values()
        .filter(|s| kept.contains(&s.subscription_id) && s.subscription_id != UNKNOWN)
        .collect();
    subscriptions.sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
    Ok(SubscriptionCosts {
        rows: rows
            .into_iter()
            .map(
                |((subscription_id, invoice_type, currency), [pretax, tax, after_tax])| {
                    SubscriptionRow {
                        subscription_id,
                        invoice_type,
                        currency,
                        pretax,
                        tax,
                        after_tax,
                    }
                },
            )
            .collect(),
        subscriptions,
        capped,
    })
}

/// Adds `more` to `sum`, refusing a result beyond an f64's range.
fn add(sum: &mut [f64; 3], more: [f64; 3]) -> Result<(), BodyError> {
    for (s, m) in sum.iter_mut().zip(more) {
        let total = *s + m;
        if !total.is_finite() {
            return Err(BodyError::Invalid {
                field: "items[] (sum of amounts)",
                value: total.to_string(),
            });
        }
        *s = total;
    }
    Ok(())
}

impl LineItems {
    pub fn part(snapshot: &Snapshot) -> Option<&Part<SubscriptionCosts>> {
        snapshot.part::<SubscriptionCosts>(NAME)
    }
}

impl Collector for LineItems {
    type Value = SubscriptionCosts;
    const NAME: &'static str = NAME;
    const PLAN: Plan = Plan::EachCustomer;

    async fn fetch(
        &self,
        api: &Api<'_>,
        scope: Scope<'_>,
    ) -> Result<Vec<(String, SubscriptionCosts)>, ApiError> {
        let Scope::Customer(target) = scope else {
            return Ok(Vec::new());
        };
        let items = api.client.line_items(&target.id).await?.unwrap_or_default();
        let costs = summarize(items, self.max_subscriptions)?;
        Ok(vec![(target.id.clone(), costs)])
    }

    fn finished(&self, part: &Part<SubscriptionCosts>) {
        let capped = part
            .entries
            .iter()
            .filter(|(_, f)| f.value.as_ref().is_some_and(|c| c.capped > 0))
            .count();
        if capped > 0 {
            tracing::info!(
                collector = NAME,
                customers = capped,
                max_subscriptions = self.max_subscriptions,
                "customers with more subscriptions than --collector.lineitems.max-subscriptions: the rest are summed into subscription_id=\"other\""
            );
        }
    }

    fn render(&self, _snapshot: &Snapshot, part: &Part<SubscriptionCosts>, out: &mut Render<'_>) {
        let costs = || {
            part.entries
                .iter()
                .filter_map(|(id, f)| Some((id.as_str(), f.value.as_ref()?)))
        };
        for (family, pick) in [
            (
                &PRETAX,
                (|r: &SubscriptionRow| r.pretax) as fn(&SubscriptionRow) -> f64,
            ),
            (&TAX, |r| r.tax),
            (&AFTER_TAX, |r| r.after_tax),
        ] {
            out.header(family);
            for (customer, c) in costs() {
                for r in &c.rows {
                    out.sample(
                        family,
                        &[
                            ("customer_id", customer),
                            ("subscription_id", r.subscription_id.as_str()),
                            ("invoice_type", r.invoice_type.as_str()),
                            ("currency", r.currency.as_str()),
                        ],
                        pick(r),
                    );
                }
            }
        }
        out.header(&INFO_FAMILY);
        for (customer, c) in costs() {
            for s in &c.subscriptions {
                out.sample(
                    &INFO_FAMILY,
                    &[
                        ("customer_id", customer),
                        ("subscription_id", s.subscription_id.as_str()),
                        ("subscription_name", s.subscription_name.as_str()),
                        ("offer_id", s.offer_id.as_str()),
                        ("offer_name", s.offer_name.as_str()),
                    ],
                    1.0,
                );
            }
        }
    }

    fn size_hint(&self, part: &Part<SubscriptionCosts>) -> usize {
        part.entries
            .iter()
            .filter_map(|(_, f)| f.value.as_ref())
            .map(|c| {
                c.rows
                    .len()
                    .saturating_mul(3 * 170)
                    .saturating_add(c.subscriptions.len() * 250)
            })
            .fold(0usize, usize::saturating_add)
    }
}

const PRETAX: Family = Family {
    name: "partnercenter_subscription_costs_pretax",
    help: "Sum of the pretaxTotal of the customer's MostRecent service-cost line items for the subscription (subscription_id=\"other\": the subscriptions beyond --collector.lineitems.max-subscriptions).",
};
const TAX: Family = Family {
    name: "partnercenter_subscription_costs_tax",
    help: "Sum of the tax of the subscription's line items.",
};
const AFTER_TAX: Family = Family {
    name: "partnercenter_subscription_costs_after_tax",
    help: "Sum of the afterTaxTotal of the subscription's line items.",
};
const INFO_FAMILY: Family = Family {
    name: "partnercenter_subscription_info",
    help: "Names of each subscription with series of its own (1).",
};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(sub: &str, invoice_type: &str, currency: &str, after_tax: f64) -> LineItem {
        LineItem {
            subscription_id: sub.into(),
            subscription_name: format!("name of {sub}"),
            offer_id: "offer".into(),
            offer_name: "Offer".into(),
            invoice_type: invoice_type.into(),
            currency: currency.into(),
            pretax: after_tax,
            tax: 0.0,
            after_tax,
        }
    }

    #[test]
    fn items_are_summed_per_subscription_invoice_type_and_currency() {
        let c = summarize(
            vec![
                item("a", "Recurring", "USD", 1.5),
                item("a", "Recurring", "USD", 2.0),
                item("a", "OneTime", "USD", 0.0),
                item("b", "Recurring", "EUR", 4.0),
            ],
            20,
        )
        .unwrap();
        let rows: Vec<(&str, &str, &str, f64)> = c
            .rows
            .iter()
            .map(|r| {
                (
                    r.subscription_id.as_str(),
                    r.invoice_type.as_str(),
                    r.currency.as_str(),
                    r.after_tax,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("a", "OneTime", "USD", 0.0),
                ("a", "Recurring", "USD", 3.5),
                ("b", "Recurring", "EUR", 4.0)
            ]
        );
        assert_eq!(c.capped, 0);
        assert_eq!(c.subscriptions.len(), 2);
    }

    #[test]
    fn the_cap_keeps_the_largest_and_sums_the_rest_into_other() {
        let items: Vec<LineItem> = (0..60)
            .map(|i| item(&format!("s{i:02}"), "Recurring", "USD", f64::from(i)))
            .collect();
        let c = summarize(items, 20).unwrap();
        assert_eq!(c.capped, 40);
        assert_eq!(c.rows.len(), 21);
        let other = c.rows.iter().find(|r| r.subscription_id == OTHER).unwrap();
        assert_eq!(other.after_tax, (0..40).map(f64::from).sum::<f64>());
        assert!(c.rows.iter().any(|r| r.subscription_id == "s59"));
        assert!(!c.rows.iter().any(|r| r.subscription_id == "s39"));
        assert_eq!(c.subscriptions.len(), 20, "no info series for other");
    }

    #[test]
    fn sums_beyond_range_are_an_error() {
        assert!(summarize(
            vec![
                item("a", "R", "USD", f64::MAX),
                item("a", "R", "USD", f64::MAX)
            ],
            20
        )
        .is_err());
    }

    proptest! {
        /// Whatever the items and the cap: the customer's total per currency is
        /// kept, at most `max` subscriptions plus `other` have series, and rows are
        /// unique.
        #[test]
        fn the_cap_keeps_totals(
            items in proptest::collection::vec((0u8..30, 0u8..2, 0u8..2, 0u32..10_000), 0..200),
            max in 1usize..25,
        ) {
            let items: Vec<LineItem> = items
                .into_iter()
                .map(|(s, t, c, cents)| item(&format!("s{s}"), ["Recurring", "OneTime"][t as usize],
                    ["USD", "EUR"][c as usize], f64::from(cents) / 100.0))
                .collect();
            let total = |currency: &str, rows: &mut dyn Iterator<Item = (String, f64)>| -> f64 {
                rows.filter(|(c, _)| c == currency).map(|(_, v)| v).sum()
            };
            let before: Vec<(String, f64)> = items.iter().map(|i| (i.currency.clone(), i.after_tax)).collect();
            let c = summarize(items, max).unwrap();
            for currency in ["USD", "EUR"] {
                let want = total(currency, &mut before.iter().cloned());
                let got = total(currency, &mut c.rows.iter().map(|r| (r.currency.clone(), r.after_tax)));
                prop_assert!((want - got).abs() < 1e-6, "{currency}: {want} vs {got}");
            }
            let mut ids: Vec<&str> = c.rows.iter().map(|r| r.subscription_id.as_str()).filter(|id| *id != OTHER).collect();
            ids.sort_unstable();
            ids.dedup();
            prop_assert!(ids.len() <= max);
            let mut keys: Vec<_> = c.rows.iter().map(|r| (&r.subscription_id, &r.invoice_type, &r.currency)).collect();
            let n = keys.len();
            keys.sort();
            keys.dedup();
            prop_assert_eq!(keys.len(), n);
        }
    }
}
