//! A customer's service-cost line items,
//! `GET /v1/customers/{id}/servicecosts/{period}/lineitems` (docs/partner-center.md
//! §8): App+User only, unpaged; the documented two items for the documented
//! customer, 404 for the customer without data, and for the rest one item per
//! subscription and detail of its service costs, so that the items add up to its
//! summary. Most customers have one to five subscriptions; one has 60
//! ([`many_subscriptions_customer`]), past any cap. Ids come in upper case, as in
//! the documented example; dates without `Z`.

use http::{HeaderMap, Response, StatusCode};
use serde_json::{json, Value};

use crate::codec::amount;
use crate::routes::common::{forced_status, most_recent_gate, Attributes, Link, PageLinks};
use crate::server::{Body, JSON_UTF8};
use crate::state::{Directory, Shared};
use crate::synthetic::{currency_symbol, guid, round2, Entry, Period, SimCosts, SimDetail};
use crate::util::{fnv1a, lock, SplitMix64};

/// The documented line items (customer `ae1d5b32-…`).
const FIXTURE_LINE_ITEMS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/servicecosts-lineitems.json"
));

/// Subscriptions of [`many_subscriptions_customer`].
pub const MANY_SUBSCRIPTIONS: usize = 60;

#[rustfmt::skip]
const OFFERS: [&str; 8] = [
    "Azure plan", "Microsoft 365 Business Premium", "Microsoft 365 E3", "Dynamics 365 Sales Enterprise",
    "Office 365 E1", "Power BI Pro", "Exchange Online (Plan 1)", "Microsoft Defender für Endpunkt P2",
];

/// `GET /v1/customers/{id}/servicecosts/{period}/lineitems`.
pub(crate) fn line_items(
    shared: &Shared,
    headers: &HeaderMap,
    id: &str,
    period: &str,
) -> Response<Body> {
    if let Err(resp) = most_recent_gate(shared, headers, period) {
        return *resp;
    }
    let key = id.to_ascii_lowercase();
    let (status, body, forced) = shared.knobs.line_items(&key);
    if let Some(status) = status {
        return forced_status(shared, status);
    }
    if let Some(body) = body {
        return shared.json_bytes(StatusCode::OK, JSON_UTF8, body.as_bytes());
    }
    let (entry, many) = {
        let directory = lock(&shared.directory);
        (
            directory.by_id.get(&key).cloned(),
            many_subscriptions_key(&directory),
        )
    };
    let Some(entry) = entry else {
        return shared.pc_error(
            StatusCode::NOT_FOUND,
            Value::from(1000),
            "Customer not found.",
        );
    };
    let period = Period::current();
    let details = match entry.costs(&period) {
        SimCosts::Documented => {
            return shared.json_bytes(StatusCode::OK, JSON_UTF8, FIXTURE_LINE_ITEMS.as_bytes())
        }
        SimCosts::NoData => {
            return shared.pc_error(
                StatusCode::NOT_FOUND,
                Value::from(3000),
                "Customer does not have service costs data for the given billing period.",
            )
        }
        SimCosts::Generated(details) => details,
    };
    let subscriptions = if let Some(n) = forced {
        n
    } else if many.as_deref() == Some(key.as_str()) {
        MANY_SUBSCRIPTIONS
    } else {
        1 + (fnv1a(key.as_bytes()) % 5) as usize
    };
    let items = items_of(&entry, &details, subscriptions);
    let links = PageLinks {
        self_link: Link::get(format!(
            "/customers/{}/servicecosts/MostRecent/lineitems",
            entry.customer.id
        )),
        next: None,
    };
    shared.json(
        StatusCode::OK,
        &json!({
            "attributes": Attributes { object_type: "Collection" },
            "items": items,
            "links": links,
            "totalCount": items.len(),
        }),
    )
}

/// The customer with [`MANY_SUBSCRIPTIONS`]: the first generated one after the
/// documented customer.
pub(crate) fn many_subscriptions_key(directory: &Directory) -> Option<String> {
    let period = Period::current();
    directory
        .customers
        .iter()
        .skip(1)
        .take(3)
        .find(|e| matches!(e.costs(&period), SimCosts::Generated(_)))
        .map(|e| e.key.clone())
}

/// One item per subscription and detail; each detail's amounts are split over the
/// subscriptions by fixed weights, the last taking the rest, so that they add up.
fn items_of(entry: &Entry, details: &[SimDetail], subscriptions: usize) -> Vec<Value> {
    let customer = &entry.customer;
    let mut rng = SplitMix64(fnv1a(entry.key.as_bytes()) ^ 0x5EB5);
    let subs: Vec<(String, &str, String)> = (0..subscriptions)
        .map(|j| {
            let offer = OFFERS[j % OFFERS.len()];
            let name = if j < OFFERS.len() {
                offer.to_owned()
            } else {
                format!("{offer} ({})", j / OFFERS.len() + 1)
            };
            (guid(&mut rng).to_uppercase(), offer, name)
        })
        .collect();
    let weights: Vec<f64> = (0..subscriptions).map(|j| 1.0 / (j as f64 + 1.0)).collect();
    let total_weight: f64 = weights.iter().sum();
    let mut items = Vec::with_capacity(details.len() * subscriptions);
    for detail in details {
        let (mut pretax_left, mut tax_left) = (detail.pretax, detail.tax);
        for (j, (sub_id, offer, name)) in subs.iter().enumerate() {
            let (pretax, tax) = if j + 1 == subscriptions {
                (round2(pretax_left), round2(tax_left))
            } else {
                let share = weights[j] / total_weight;
                (round2(detail.pretax * share), round2(detail.tax * share))
            };
            pretax_left -= pretax;
            tax_left -= tax;
            let start = detail.billing_start.trim_end_matches('Z');
            let end = detail.billing_end.trim_end_matches('Z');
            items.push(json!({
                "afterTaxTotal": amount(round2(pretax + tax), false),
                "chargeType": if detail.invoice_type == "OneTime" { "PURCHASE FEE" } else { "CYCLE FEE" },
                "currencyCode": detail.currency,
                "currencySymbol": currency_symbol(&detail.currency),
                "customerId": customer.id,
                "customerName": customer.name,
                "endDate": end.split('.').next().unwrap_or(end),
                "offerId": format!("{:016X}", fnv1a(offer.as_bytes())),
                "offerName": offer,
                "orderId": format!("{:016X}", fnv1a(sub_id.as_bytes())),
                "pretaxTotal": amount(pretax, false),
                "quantity": 1.0,
                "resellerMPNId": "-1",
                "startDate": start,
                "subscriptionFriendlyName": name,
                "subscriptionId": sub_id,
                "tax": amount(tax, false),
                "unitPrice": amount(pretax, false),
                "invoiceNumber": format!("G{:09}", fnv1a(customer.id.as_bytes()) % 1_000_000_000),
                "invoiceType": detail.invoice_type,
            }));
        }
    }
    items
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::test_util::*;

    fn url(sim: &crate::Simulator, id: &str) -> String {
        format!(
            "{}/v1/customers/{id}/servicecosts/MostRecent/lineitems",
            sim.url()
        )
    }

    #[tokio::test]
    async fn items_add_up_to_the_summary_and_one_customer_has_many_subscriptions() {
        let (sim, client, token) = signed_in().await;
        let documented: Value = get(&client, &url(&sim, crate::synthetic::DOCUMENTED_ID), &token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(documented["items"][1]["afterTaxTotal"], 17.22);
        let customer = generated(&sim);
        let SimCosts::Generated(details) = &customer.costs else {
            panic!()
        };
        let body: Value = get(&client, &url(&sim, &customer.id.to_uppercase()), &token)
            .await
            .json()
            .await
            .unwrap();
        let items = body["items"].as_array().unwrap();
        for detail in details {
            let sum: f64 = items
                .iter()
                .filter(|i| i["invoiceType"] == detail.invoice_type.as_str())
                .map(|i| i["afterTaxTotal"].as_f64().unwrap())
                .sum();
            assert!(
                (sum - round2(detail.pretax + detail.tax)).abs() < 0.011,
                "{sum} vs {detail:?}"
            );
        }
        assert!(items.iter().all(|i| i["subscriptionId"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| !c.is_ascii_lowercase())));
        assert!(items
            .iter()
            .all(|i| !i["startDate"].as_str().unwrap().ends_with('Z')));

        let many = sim.many_subscriptions_customer().unwrap();
        let body: Value = get(&client, &url(&sim, &many), &token)
            .await
            .json()
            .await
            .unwrap();
        let mut subs: Vec<&str> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["subscriptionId"].as_str().unwrap())
            .collect();
        subs.sort_unstable();
        subs.dedup();
        assert_eq!(subs.len(), MANY_SUBSCRIPTIONS);

        assert_eq!(
            get(&client, &url(&sim, &no_data(&sim).id), &token)
                .await
                .status(),
            404
        );
        sim.knobs().set_line_items_status(Some(500));
        assert_eq!(
            get(&client, &url(&sim, &customer.id), &token)
                .await
                .status(),
            500
        );
        sim.knobs().set_line_items_status(None);
        sim.knobs()
            .set_line_items_body(&customer.id, Some("{\"items\": []}"));
        assert_eq!(
            get(&client, &url(&sim, &customer.id), &token)
                .await
                .text()
                .await
                .unwrap(),
            "{\"items\": []}"
        );
        assert!(sim.stats().lineitems >= 6);
    }
}
