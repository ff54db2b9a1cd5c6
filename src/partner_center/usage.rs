//! Wire types and the tolerant parser of `GET /v1/customers/usagerecords`: this
//! month's estimated Azure usage and spending budget of every customer with a
//! usage-based subscription, in one collection (docs/partner-center.md, "Usage
//! records").
//!
//! This module owns the shape of a `CustomerMonthlyUsageRecord` and the rules for
//! what Partner Center sends in it: the legacy shape (`currencyLocale`, no
//! `currencyCode`) beside the Azure-plan shape (`currencyCode`, `usdTotalCost`), a
//! budget whose `amount` is absent, `null` or spelled `ammount`, a `percentUsed`
//! above 100, amounts with 20 fractional digits, `lastModifiedDate` with an offset,
//! and the customer id in `resourceId`, `id` or both. An item that cannot be used
//! (no customer GUID, no numeric `totalCost`, not an object) costs only itself and
//! is counted; a field of the wrong type is `None` for that field only. Only a body
//! that is not such a collection fails.
//!
//! It does no I/O and never panics on input; following `links.next` and logging
//! the skipped items are the caller's job.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::partner_center::model::{
    normalize_customer_id, parse_json, parse_timestamp, strip_bom, BodyError, CollectionLinks,
    Lenient,
};

/// One customer's usage estimate for the current month, as the exporter keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The customer's tenant id: lower-case GUID (crate::partner_center::model::normalize_customer_id) from `resourceId`, else `id`.
    pub customer_id: String,
    /// `totalCost`: estimated cost of the current month, in `currency_code` (or the customer's currency for a legacy record).
    pub total_cost: f64,
    /// `currencyCode` (Azure plan); None on a legacy record, which has only `currencyLocale`.
    pub currency_code: Option<String>,
    /// `currencyLocale`, e.g. "fr-FR" (legacy record).
    pub currency_locale: Option<String>,
    /// `usdTotalCost`.
    pub usd_total_cost: Option<f64>,
    /// `budget.amount` (also accept the documented typo `ammount`); None when absent or null.
    pub budget: Option<f64>,
    /// `percentUsed` (can exceed 100).
    pub percent_used: Option<f64>,
    /// `isUpgraded`: true = Azure plan, false = legacy Azure subscription; None when absent.
    pub azure_plan: Option<bool>,
    /// `lastModifiedDate` as Unix seconds (parse with crate::partner_center::model::parse_timestamp; it carries an offset like 2019-08-01T23:00:16.57+00:00).
    pub last_modified: Option<f64>,
}

/// What one response body of `GET /v1/customers/usagerecords` holds.
#[derive(Debug, Default)]
pub struct UsageRecordsPage {
    pub records: Vec<UsageRecord>,
    /// Items skipped: no customer GUID, or no numeric totalCost. (The caller logs one warning.)
    pub skipped: usize,
    /// `links.next`, if present (crate::partner_center::model::Link), to be followed with its headers.
    pub next: Option<crate::partner_center::model::Link>,
}

/// The collection as sent. `links` is read strictly: a `next` that is not a Link
/// fails the body, because ignoring it would silently drop the pages behind it.
#[derive(Deserialize)]
struct WireCollection {
    #[serde(default)]
    items: Items,
    #[serde(default)]
    links: Option<CollectionLinks>,
}

/// The items, each made a record as soon as it is read: the wire form of all items
/// at once is never held (at 10,000 customers it is megabytes).
#[derive(Default)]
struct Items {
    records: Vec<UsageRecord>,
    /// Items that are no record.
    unusable: usize,
}

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Items;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of usage records")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Items, A::Error> {
                let mut items = Items::default();
                while let Some(item) = seq.next_element::<LenientObject<WireRecord>>()? {
                    match item.0.and_then(record) {
                        Some(r) => items.records.push(r),
                        None => items.unusable += 1,
                    }
                }
                Ok(items)
            }
        }
        deserializer.deserialize_seq(Visitor)
    }
}

/// A `CustomerMonthlyUsageRecord`; every field is read on its own.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRecord {
    #[serde(default)]
    resource_id: Lenient<String>,
    #[serde(default)]
    id: Lenient<String>,
    #[serde(default)]
    total_cost: Lenient<f64>,
    #[serde(default)]
    currency_code: Lenient<String>,
    #[serde(default)]
    currency_locale: Lenient<String>,
    #[serde(default)]
    usd_total_cost: Lenient<f64>,
    #[serde(default)]
    budget: LenientObject<WireBudget>,
    #[serde(default)]
    percent_used: Lenient<f64>,
    #[serde(default)]
    is_upgraded: Lenient<bool>,
    #[serde(default)]
    last_modified_date: Lenient<String>,
}

/// A `SpendingBudget`: no amount (absent or `null`) means no budget is set.
#[derive(Deserialize)]
struct WireBudget {
    #[serde(default)]
    amount: Lenient<f64>,
    /// The spelling of Microsoft's own legacy example.
    #[serde(default)]
    ammount: Lenient<f64>,
}

/// As [`Lenient`], for a struct: `None` unless the JSON holds an object there.
/// (serde would read a struct from an array too, field by field in order, so that
/// `[id, cost]` or a budget of `[20]` would pass for a record or a budget.)
struct LenientObject<T>(Option<T>);

impl<T> Default for LenientObject<T> {
    fn default() -> Self {
        LenientObject(None)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for LenientObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(LenientObject(
            value
                .is_object()
                .then(|| T::deserialize(value).ok())
                .flatten(),
        ))
    }
}

/// Parses one body of `GET /v1/customers/usagerecords` (after a BOM, if any).
///
/// Records come in the order sent. A customer listed again keeps its first record;
/// the others are counted in `skipped`, as are items without a customer GUID or a
/// numeric `totalCost`. A `lastModifiedDate` that is not a timestamp is `None`.
pub fn parse_usage_records(body: &[u8]) -> Result<UsageRecordsPage, BodyError> {
    // A collection is an object; serde alone would take `[]` for an empty one.
    if strip_bom(body).trim_ascii_start().first() != Some(&b'{') {
        return Err(BodyError::Malformed("not a JSON object".to_owned()));
    }
    let wire: WireCollection = parse_json(body)?;
    let mut page = UsageRecordsPage {
        records: Vec::with_capacity(wire.items.records.len()),
        skipped: wire.items.unusable,
        next: wire.links.and_then(|links| links.next),
    };
    let mut seen: HashSet<String> = HashSet::with_capacity(wire.items.records.len());
    for record in wire.items.records {
        if seen.insert(record.customer_id.clone()) {
            page.records.push(record);
        } else {
            page.skipped += 1;
        }
    }
    Ok(page)
}

/// The record of one item, if it names a customer and has a cost.
fn record(wire: WireRecord) -> Option<UsageRecord> {
    let customer_id = [&wire.resource_id, &wire.id]
        .into_iter()
        .find_map(|id| id.0.as_deref().and_then(normalize_customer_id))?;
    let total_cost = wire.total_cost.0.filter(|cost| cost.is_finite())?;
    let budget = wire.budget.0.and_then(|b| b.amount.0.or(b.ammount.0));
    let last_modified = parse_timestamp(wire.last_modified_date.0.as_deref(), "lastModifiedDate")
        .ok()
        .flatten();
    Some(UsageRecord {
        customer_id,
        total_cost,
        currency_code: wire.currency_code.0,
        currency_locale: wire.currency_locale.0,
        usd_total_cost: wire.usd_total_cost.0,
        budget,
        percent_used: wire.percent_used.0,
        azure_plan: wire.is_upgraded.0,
        last_modified,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    const DOCUMENTED: &[u8] = include_bytes!("../../tests/fixtures/usagerecords.json");
    const LEGACY: &str = "11111111-1843-4d2b-9a1e-0123456789ab";
    const AZURE_PLAN: &str = "11111111-6fb9-4c3a-8b2d-0123456789ab";

    fn parse(value: &Value) -> UsageRecordsPage {
        parse_usage_records(&serde_json::to_vec(value).unwrap()).unwrap()
    }

    /// An Azure-plan item of `id` with `budget` as its budget object.
    fn item(id: &str, budget: Value) -> Value {
        json!({
            "budget": budget,
            "percentUsed": 50,
            "isUpgraded": true,
            "resourceId": id,
            "totalCost": 10.5,
            "currencyCode": "EUR",
            "usdTotalCost": 11.25,
            "lastModifiedDate": "2019-09-18T17:09:26.16+00:00",
        })
    }

    // The amounts are written as Partner Center sends them, 20 digits and all.
    #[allow(clippy::excessive_precision)]
    #[test]
    fn the_documented_records_give_the_documented_values() {
        let page = parse_usage_records(DOCUMENTED).unwrap();
        assert_eq!(page.skipped, 0);
        assert!(page.next.is_none());
        assert_eq!(
            page.records,
            [
                UsageRecord {
                    customer_id: LEGACY.to_owned(),
                    total_cost: 0.0,
                    currency_code: None,
                    currency_locale: Some("fr-FR".to_owned()),
                    usd_total_cost: Some(0.0),
                    budget: None,
                    percent_used: Some(0.0),
                    azure_plan: Some(false),
                    // 2019-08-01T23:00:16.57+00:00
                    last_modified: Some(1_564_700_416.57),
                },
                UsageRecord {
                    customer_id: AZURE_PLAN.to_owned(),
                    total_cost: 120.5682999999995904716_f64,
                    currency_code: Some("SEK".to_owned()),
                    currency_locale: None,
                    usd_total_cost: Some(12.39999999999999985235_f64),
                    budget: Some(20.0),
                    percent_used: Some(602.84),
                    azure_plan: Some(true),
                    // 2019-08-01T23:04:41.193+00:00
                    last_modified: Some(1_564_700_681.193),
                },
            ]
        );
    }

    #[allow(clippy::excessive_precision)]
    #[test]
    fn twenty_fractional_digits_give_the_nearest_f64() {
        // Rust's literals round correctly: equal bits are the nearest f64.
        for (text, want) in [
            ("120.5682999999995904716", 120.5682999999995904716_f64),
            ("12.39999999999999985235", 12.39999999999999985235_f64),
            ("28.82860766744404945074", 28.82860766744404945074_f64),
            ("35.23000000000000362337", 35.23000000000000362337_f64),
            ("0.30000000000000001665", 0.30000000000000001665_f64),
        ] {
            let body = format!(
                r#"{{"items":[{{"resourceId":"{AZURE_PLAN}","totalCost":{text},"usdTotalCost":{text}}}]}}"#
            );
            let page = parse_usage_records(body.as_bytes()).unwrap();
            assert_eq!(
                page.records[0].total_cost.to_bits(),
                want.to_bits(),
                "{text}"
            );
            assert_eq!(page.records[0].usd_total_cost, Some(want), "{text}");
        }
    }

    #[test]
    fn a_bom_is_stripped() {
        let mut body = b"\xEF\xBB\xBF".to_vec();
        body.extend_from_slice(DOCUMENTED);
        assert_eq!(parse_usage_records(&body).unwrap().records.len(), 2);
    }

    #[test]
    fn a_budget_without_an_amount_is_no_budget() {
        let attributes = json!({"objectType": "SpendingBudget"});
        let page = parse(&json!({"items": [
            item("00000000-0000-4000-8000-000000000001", json!({"amount": null, "attributes": attributes})),
            item("00000000-0000-4000-8000-000000000002", json!({"attributes": attributes})),
            item("00000000-0000-4000-8000-000000000003", Value::Null),
            item("00000000-0000-4000-8000-000000000004", json!({"amount": "20"})),
            item("00000000-0000-4000-8000-000000000005", json!("twenty")),
            item("00000000-0000-4000-8000-000000000006", json!({"amount": 97, "attributes": attributes})),
            item("00000000-0000-4000-8000-000000000007", json!({"amount": 0.0})),
        ]}));
        let budgets: Vec<Option<f64>> = page.records.iter().map(|r| r.budget).collect();
        assert_eq!(
            budgets,
            [None, None, None, None, None, Some(97.0), Some(0.0)]
        );
        assert_eq!(
            page.skipped, 0,
            "a bad budget costs the budget, not the record"
        );
    }

    #[test]
    fn the_documented_typo_ammount_is_a_budget() {
        let page = parse(&json!({"items": [
            item("00000000-0000-4000-8000-000000000001", json!({"ammount": 300.000000})),
            item("00000000-0000-4000-8000-000000000002", json!({"amount": 100, "ammount": 300})),
            item("00000000-0000-4000-8000-000000000003", json!({"amount": null, "ammount": 300})),
        ]}));
        let budgets: Vec<Option<f64>> = page.records.iter().map(|r| r.budget).collect();
        assert_eq!(budgets, [Some(300.0), Some(100.0), Some(300.0)]);
    }

    #[test]
    fn the_customer_is_resource_id_else_id_in_lower_case() {
        let upper = "44908A11-641B-4C53-B7FC-0F2BFCA8A581";
        let page = parse(&json!({"items": [
            {"resourceId": upper, "totalCost": 1},
            {"id": "65726577-C208-40FD-9735-8C85AC9CAC68", "totalCost": 2},
            {"resourceId": "not a guid", "id": "00000000-0000-4000-8000-00000000000a", "totalCost": 3},
            {"resourceId": "00000000-0000-4000-8000-00000000000b", "id": "00000000-0000-4000-8000-00000000000c", "totalCost": 4},
        ]}));
        let ids: Vec<&str> = page
            .records
            .iter()
            .map(|r| r.customer_id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "44908a11-641b-4c53-b7fc-0f2bfca8a581",
                "65726577-c208-40fd-9735-8c85ac9cac68",
                "00000000-0000-4000-8000-00000000000a",
                "00000000-0000-4000-8000-00000000000b",
            ]
        );
    }

    #[test]
    fn unusable_items_are_skipped_and_counted() {
        let good = "00000000-0000-4000-8000-000000000001";
        let page = parse(&json!({"items": [
            {"totalCost": 1},
            {"resourceId": null, "id": 42, "totalCost": 1},
            {"resourceId": "11111111-1843-...", "totalCost": 1},
            {"resourceId": "00000000-0000-4000-8000-000000000002"},
            {"resourceId": "00000000-0000-4000-8000-000000000003", "totalCost": null},
            {"resourceId": "00000000-0000-4000-8000-000000000004", "totalCost": "120.5"},
            {"resourceId": "00000000-0000-4000-8000-000000000005", "totalCost": {"value": 1}},
            "not an object",
            null,
            7,
            [good, 5],
            {"resourceId": good, "totalCost": 5, "percentUsed": "high", "isUpgraded": "yes",
             "currencyCode": 752, "currencyLocale": ["sv-SE"], "usdTotalCost": false,
             "lastModifiedDate": "yesterday", "budget": [20]},
        ]}));
        assert_eq!(page.skipped, 11);
        assert_eq!(
            page.records,
            [UsageRecord {
                customer_id: good.to_owned(),
                total_cost: 5.0,
                currency_code: None,
                currency_locale: None,
                usd_total_cost: None,
                budget: None,
                percent_used: None,
                azure_plan: None,
                last_modified: None,
            }],
            "fields of the wrong type are None, one by one"
        );
    }

    #[test]
    fn a_bad_last_modified_date_costs_only_that_field() {
        let id = "00000000-0000-4000-8000-000000000001";
        for (date, want) in [
            (
                json!("2019-08-01T23:00:16.57+00:00"),
                Some(1_564_700_416.57),
            ),
            (
                json!("2019-08-02T01:00:16.57+02:00"),
                Some(1_564_700_416.57),
            ),
            (json!("2019-08-01T23:00:16.57Z"), Some(1_564_700_416.57)),
            (json!("2019-02-30T00:00:00+00:00"), None),
            (json!("0001-01-01T00:00:00+00:00"), None),
            (json!(""), None),
            (json!(1_564_700_416), None),
            (Value::Null, None),
        ] {
            let page = parse(&json!({"items": [
                {"resourceId": id, "totalCost": 1, "lastModifiedDate": date, "percentUsed": 12.5}
            ]}));
            let record = &page.records[0];
            assert_eq!(record.last_modified, want, "{date}");
            assert_eq!((record.total_cost, record.percent_used), (1.0, Some(12.5)));
        }
    }

    #[test]
    fn duplicate_records_of_a_customer_keep_the_first() {
        let page = parse(&json!({"items": [
            {"resourceId": "00000000-0000-4000-8000-00000000000A", "totalCost": 1},
            {"resourceId": "00000000-0000-4000-8000-000000000002", "totalCost": 2},
            {"resourceId": "00000000-0000-4000-8000-00000000000a", "totalCost": 3},
            {"id": "00000000-0000-4000-8000-00000000000a", "totalCost": 4},
        ]}));
        let costs: Vec<(&str, f64)> = page
            .records
            .iter()
            .map(|r| (r.customer_id.as_str(), r.total_cost))
            .collect();
        assert_eq!(
            costs,
            [
                ("00000000-0000-4000-8000-00000000000a", 1.0),
                ("00000000-0000-4000-8000-000000000002", 2.0),
            ]
        );
        assert_eq!(page.skipped, 2);
    }

    #[test]
    fn percent_used_above_100_and_negative_costs_are_kept() {
        let page = parse(&json!({"items": [
            {"resourceId": "00000000-0000-4000-8000-000000000001", "totalCost": -4.5, "percentUsed": 602.84},
        ]}));
        assert_eq!(page.records[0].total_cost, -4.5);
        assert_eq!(page.records[0].percent_used, Some(602.84));
    }

    #[test]
    fn the_next_link_is_returned_with_its_headers() {
        let page = parse(&json!({
            "totalCount": 0,
            "items": [],
            "links": {
                "self": {"uri": "/v1/customers/usagerecords", "method": "GET", "headers": []},
                "next": {
                    "uri": "/v1/customers/usagerecords?seekOperation=Next",
                    "method": "GET",
                    "headers": [{"key": "MS-ContinuationToken", "value": "opaque=="}]
                }
            },
            "attributes": {"objectType": "Collection"}
        }));
        let next = page.next.unwrap();
        assert_eq!(next.uri, "/v1/customers/usagerecords?seekOperation=Next");
        assert_eq!(
            (next.headers[0].key.as_str(), next.headers[0].value.as_str()),
            ("MS-ContinuationToken", "opaque==")
        );
        assert!(parse(&json!({"links": {"next": null}})).next.is_none());
        assert!(parse(&json!({"links": null})).next.is_none());
        assert!(parse(&json!({})).records.is_empty());
    }

    #[test]
    fn bodies_that_are_not_a_collection_are_errors() {
        for body in [
            &b"<html>502 Bad Gateway</html>"[..],
            b"",
            b"null",
            b"[]",
            br#"{"items":{}}"#,
            br#"{"items":[{"resourceId":"a"}"#,
            // A next link that cannot be followed would silently drop the rest.
            br#"{"items":[],"links":{"next":{"headers":[]}}}"#,
            br#"{"items":[],"links":{"next":"/v1/customers/usagerecords"}}"#,
        ] {
            assert!(
                matches!(parse_usage_records(body), Err(BodyError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    /// Any JSON value, up to a few levels deep.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
            Just(Value::from(AZURE_PLAN)),
            Just(Value::from("2019-08-01T23:00:16.57+00:00")),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            let keys = prop_oneof![
                Just("resourceId".to_owned()),
                Just("id".to_owned()),
                Just("totalCost".to_owned()),
                Just("usdTotalCost".to_owned()),
                Just("budget".to_owned()),
                Just("amount".to_owned()),
                Just("ammount".to_owned()),
                Just("percentUsed".to_owned()),
                Just("isUpgraded".to_owned()),
                Just("lastModifiedDate".to_owned()),
                Just("items".to_owned()),
                Just("links".to_owned()),
                Just("next".to_owned()),
                Just("uri".to_owned()),
                Just("headers".to_owned()),
                ".{0,6}",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(keys, inner, 0..8)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(value in any_json()) {
            let body = serde_json::to_vec(&value).unwrap();
            let _ = parse_usage_records(&body);
            let wrapped = serde_json::to_vec(&json!({"items": [value.clone(), value]})).unwrap();
            let page = parse_usage_records(&wrapped);
            prop_assert!(page.is_ok(), "items of any shape never fail the body");
            let page = page.unwrap();
            prop_assert_eq!(page.records.len() + page.skipped, 2);
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_usage_records(&body);
        }
    }

    #[tokio::test]
    async fn the_simulators_records_parse_to_the_values_it_serves() {
        let sim = crate::simulator::Simulator::start(crate::simulator::SimulatorConfig::default())
            .await
            .unwrap();
        let items = sim.usage_records();
        assert!(items.len() > 10);
        let page = parse(&json!({ "items": items }));
        assert_eq!((page.records.len(), page.skipped), (items.len(), 0));
        for (record, item) in page.records.iter().zip(&items) {
            assert_eq!(Some(record.total_cost), item["totalCost"].as_f64());
            assert_eq!(record.budget, item["budget"]["amount"].as_f64());
            assert_eq!(record.azure_plan, item["isUpgraded"].as_bool());
        }
        sim.shutdown().await;
    }
}
