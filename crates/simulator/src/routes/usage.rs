//! The usage records of all customers, `GET /v1/customers/usagerecords`
//! (docs/partner-center.md §6): one collection without a next link, as
//! documented, or pages linked as the customer list's are (a knob); App+User
//! only; with the knobs for a forced status, a given body and records set by hand.
//! The records themselves are synthetic (`crate::synthetic`).

use std::collections::BTreeMap;

use http::{HeaderMap, Response, StatusCode};
use serde_json::Value;

use crate::codec::{today, Form};
use crate::knobs::UsageKnobs;
use crate::routes::common::{forced_status, next_link, seek_offset, Link, PageLinks};
use crate::server::{Body, JSON_UTF8};
use crate::state::Shared;
use crate::synthetic::{usage_record, ServedRecord};
use crate::util::lock;

/// `GET /v1/customers/usagerecords`.
pub(crate) fn usage_records(
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Response<Body> {
    if let Err(resp) = shared.app_user_gate(headers) {
        return *resp;
    }
    let UsageKnobs {
        status,
        page_size,
        body,
        budget_null,
        records,
    } = shared.knobs.usage();
    if let Some(status) = status {
        return forced_status(shared, status);
    }
    if let Some(body) = body {
        return shared.json_bytes(StatusCode::OK, JSON_UTF8, body.as_bytes());
    }
    let seek = match seek_offset(
        shared,
        headers,
        &Form::parse(query.unwrap_or("").as_bytes()),
    ) {
        Ok(seek) => seek,
        Err(resp) => return *resp,
    };
    let records = shared.usage_records(budget_null, records);
    let start = seek.unwrap_or(0).min(records.len());
    let end = start
        .saturating_add(page_size.unwrap_or(usize::MAX))
        .min(records.len());
    let self_uri = if seek.is_some() {
        "/v1/customers/usagerecords?seekOperation=Next"
    } else {
        "/v1/customers/usagerecords"
    };
    let links = PageLinks {
        self_link: Link::get(self_uri.to_owned()),
        next: (end < records.len()).then(|| {
            next_link(
                shared,
                "customers/usagerecords?seekOperation=Next",
                end,
                None,
            )
        }),
    };
    let items: Vec<String> = records[start..end]
        .iter()
        .map(ServedRecord::to_json)
        .collect();
    let body = format!(
        "{{\"totalCount\":{},\"items\":[{}],\"links\":{},\"attributes\":{{\"objectType\":\"Collection\"}}}}",
        items.len(),
        items.join(","),
        serde_json::to_string(&links).unwrap_or_else(|_| "{}".to_owned()),
    );
    shared.json_bytes(StatusCode::OK, JSON_UTF8, body.as_bytes())
}

impl Shared {
    /// The usage records served now, in discovery order (`overrides` instead of
    /// the synthetic ones where set), then the overrides of ids that are no current
    /// customer's.
    pub(crate) fn usage_records(
        &self,
        budget_null: bool,
        mut overrides: BTreeMap<String, Value>,
    ) -> Vec<ServedRecord> {
        let entries = lock(&self.directory).customers.clone();
        let today = today();
        let mut served = Vec::with_capacity(entries.len() + overrides.len());
        for entry in &entries {
            match overrides.remove(&entry.key) {
                Some(Value::Null) => {}
                Some(value) => served.push(ServedRecord::given(value)),
                None => served.extend(usage_record(entry, today, budget_null)),
            }
        }
        served.extend(
            overrides
                .into_values()
                .filter(|value| !value.is_null())
                .map(ServedRecord::given),
        );
        served
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::{Duration, Instant, UNIX_EPOCH};

    use crate::routes::common::FIXTURE_403;
    use crate::state::LoggedRequest;
    use crate::synthetic::{DOCUMENTED_ID, DOCUMENTED_USAGE_TOTAL};
    use crate::test_util::*;
    use crate::util::unix_now;
    use crate::{Endpoint, Simulator};

    fn usage_url(sim: &Simulator) -> String {
        format!("{}/v1/customers/usagerecords", sim.url())
    }

    /// Follows `links.next` from `GET /v1/customers/usagerecords`; returns the items
    /// of all pages and the next-link URIs seen.
    async fn crawl_usage(
        sim: &Simulator,
        client: &reqwest::Client,
        token: &str,
    ) -> (Vec<Value>, Vec<String>) {
        let (pages, next_uris) = walk_pages(sim, client, token, "/v1/customers/usagerecords").await;
        let items = pages
            .iter()
            .flat_map(|p| p["items"].as_array().unwrap().iter().cloned())
            .collect();
        (items, next_uris)
    }

    #[tokio::test]
    async fn usage_records_have_the_documented_shapes() {
        let (sim, client, token) = signed_in().await;
        let resp = get(&client, &usage_url(&sim), &token).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], JSON_UTF8);
        assert!(resp.headers().contains_key("ms-requestid"));
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        let items = body["items"].as_array().unwrap();
        assert_eq!(body["totalCount"].as_u64(), Some(items.len() as u64));
        assert_eq!(body["attributes"]["objectType"], "Collection");
        assert_eq!(body["links"]["self"]["uri"], "/v1/customers/usagerecords");
        assert!(
            body["links"].get("next").is_none(),
            "unpaged, as documented"
        );
        assert_eq!(items, &sim.usage_records());

        let customers: HashSet<String> = sim.customers().into_iter().map(|c| c.id).collect();
        let now = unix_now() as f64;
        for item in items {
            let id = item["resourceId"].as_str().unwrap();
            assert!(customers.contains(id), "{id}");
            assert_eq!(item["id"], id);
            assert_eq!(item["resourceName"], item["name"]);
            assert_eq!(
                item["attributes"]["objectType"],
                "CustomerMonthlyUsageRecord"
            );
            assert_eq!(item["budget"], item["customerSpendingBudget"]);
            assert_eq!(item["budget"]["attributes"]["objectType"], "SpendingBudget");
            let date = item["lastModifiedDate"].as_str().unwrap();
            assert!(date.ends_with("+00:00"), "{date}");
            let utc = format!("{}Z", date.trim_end_matches("+00:00"));
            let refreshed = humantime::parse_rfc3339_weak(&utc)
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            assert!(
                refreshed < now && refreshed > now - 2.0 * 86_400.0,
                "{date}"
            );
            if item["isUpgraded"] == true {
                assert!(item["currencyCode"].is_string(), "{item}");
                assert!(item["usdTotalCost"].is_number(), "{item}");
                assert!(item.get("currencyLocale").is_none(), "{item}");
            } else {
                assert_eq!(item["isUpgraded"], false);
                assert!(item["currencyLocale"].is_string(), "{item}");
                assert!(item.get("currencyCode").is_none(), "{item}");
            }
            let total = item["totalCost"].as_f64().unwrap();
            let percent = item["percentUsed"].as_f64().unwrap();
            match item["budget"].get("amount") {
                None => assert_eq!(item["percentUsed"], 0, "{item}"),
                Some(budget) => {
                    let budget = budget.as_f64().unwrap();
                    assert!((percent - total / budget * 100.0).abs() < 0.01, "{item}");
                }
            }
        }

        // The documented customer spends the documented amount, in 20 digits.
        let documented = items
            .iter()
            .find(|item| item["resourceId"] == DOCUMENTED_ID)
            .unwrap();
        assert_eq!(
            documented["totalCost"].as_f64(),
            Some(DOCUMENTED_USAGE_TOTAL)
        );
        assert_eq!(documented["percentUsed"], 602.84);
        assert_eq!(documented["budget"]["amount"], 20);
        assert!(
            text.contains("\"totalCost\":120.56829999999959568413,"),
            "{text}"
        );

        // The exporter's parser reading every record to the same values is tested
        // in the exporter (`partner_center::usage`).

        assert_eq!(sim.stats().usagerecords, 1);
        let logged: Vec<LoggedRequest> = sim
            .request_log()
            .into_iter()
            .filter(|r| r.endpoint == Endpoint::UsageRecords)
            .collect();
        assert_eq!(logged.len(), 1);
        assert_eq!(
            (logged[0].path.as_str(), logged[0].status),
            ("/v1/customers/usagerecords", 200)
        );
    }

    #[tokio::test]
    async fn usage_records_page_with_continuation_tokens() {
        let (sim, client, token) = signed_in().await;
        let all = sim.usage_records();
        assert!(all.len() > 8, "{}", all.len());

        sim.knobs().set_usage_page_size(Some(4));
        let (items, next_uris) = crawl_usage(&sim, &client, &token).await;
        assert_eq!(items, all);
        let pages = all.len().div_ceil(4);
        assert_eq!(
            next_uris,
            vec!["/v1/customers/usagerecords?seekOperation=Next"; pages - 1]
        );
        assert_eq!(sim.stats().usagerecords, pages as u64);

        let next = format!("{}?seekOperation=Next", usage_url(&sim));
        let resp = get(&client, &next, &token).await;
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert!(body["description"]
            .as_str()
            .unwrap()
            .contains("MS-ContinuationToken"));

        sim.knobs().set_next_link_without_v1(true);
        let (items, next_uris) = crawl_usage(&sim, &client, &token).await;
        assert_eq!(items, all);
        assert_eq!(
            next_uris,
            vec!["customers/usagerecords?seekOperation=Next"; pages - 1]
        );
        sim.knobs().set_next_link_without_v1(false);

        sim.knobs().set_usage_page_size(Some(0));
        let (items, next_uris) = crawl_usage(&sim, &client, &token).await;
        assert_eq!(items, all, "pages of one");
        assert_eq!(next_uris.len(), all.len() - 1);

        sim.knobs().set_usage_page_size(None);
        let (items, next_uris) = crawl_usage(&sim, &client, &token).await;
        assert_eq!((items, next_uris.len()), (all, 0));
    }

    #[tokio::test]
    async fn usage_knobs_force_statuses_bodies_and_records() {
        let (sim, client, token) = signed_in().await;
        let url = usage_url(&sim);

        sim.knobs().set_usage_status(Some(403));
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.bytes().await.unwrap(), FIXTURE_403.as_bytes());
        sim.knobs().set_usage_status(Some(500));
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 500);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], 800_003);
        let costs = get(&client, &costs_url(&sim, DOCUMENTED_ID), &token).await;
        assert_eq!(costs.status(), 200, "service costs are not affected");
        sim.knobs().set_usage_status(None);
        assert_eq!(get(&client, &url, &token).await.status(), 200);

        let given = r#"{"items":[1,{"resourceId":null}]}"#;
        sim.knobs().set_usage_body(Some(given.to_owned()));
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), given);
        sim.knobs().set_usage_body(None);

        // No budget: the key left out, or `"amount": null`.
        let records = sim.usage_records();
        let without: HashSet<&str> = records
            .iter()
            .filter(|r| r["budget"].get("amount").is_none())
            .map(|r| r["resourceId"].as_str().unwrap())
            .collect();
        assert!(!without.is_empty());
        sim.knobs().set_usage_budget_null(true);
        let text = get(&client, &url, &token).await.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        for item in body["items"].as_array().unwrap() {
            let amount = item["budget"].get("amount");
            if without.contains(item["resourceId"].as_str().unwrap()) {
                assert_eq!(amount, Some(&Value::Null), "{item}");
                assert_eq!(item["customerSpendingBudget"]["amount"], Value::Null);
            } else {
                assert!(amount.is_some_and(Value::is_number), "{item}");
            }
        }
        assert_eq!(body["items"], Value::from(sim.usage_records()));
        let no_budget = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["budget"].get("amount").is_none_or(Value::is_null))
            .count();
        assert_eq!(no_budget, without.len());
        sim.knobs().set_usage_budget_null(false);
        assert_eq!(sim.usage_records(), records);

        // Records set by hand: in place, removed, and for a stranger at the end.
        let first = records[0]["resourceId"].as_str().unwrap().to_owned();
        let second = records[1]["resourceId"].as_str().unwrap().to_owned();
        let stranger = "00000000-0000-4000-8000-00000000beef";
        let custom =
            serde_json::json!({"resourceId": first, "totalCost": 1.5, "currencyCode": "NOK"});
        sim.knobs()
            .set_usage_record(&first.to_ascii_uppercase(), Some(custom.clone()));
        sim.knobs().set_usage_record(&second, Some(Value::Null));
        let strange = serde_json::json!({"resourceId": stranger, "totalCost": 2});
        sim.knobs()
            .set_usage_record(stranger, Some(strange.clone()));
        let body: Value = get(&client, &url, &token).await.json().await.unwrap();
        let items = body["items"].as_array().unwrap();
        assert_eq!(items.len(), records.len());
        assert_eq!(items[0], custom);
        assert!(items
            .iter()
            .all(|item| item["resourceId"] != second.as_str()));
        assert_eq!(items.last(), Some(&strange));
        assert_eq!(items, &sim.usage_records());
        for id in [first.as_str(), second.as_str(), stranger] {
            sim.knobs().set_usage_record(id, None);
        }
        assert_eq!(sim.usage_records(), records);

        // A customer's record does not depend on the others.
        let gone = records[2]["resourceId"].as_str().unwrap();
        assert!(sim.remove_customer(gone));
        let rest: Vec<Value> = records
            .iter()
            .filter(|r| r["resourceId"] != gone)
            .cloned()
            .collect();
        assert_eq!(sim.usage_records(), rest);
    }

    #[tokio::test]
    async fn usage_records_are_an_app_plus_user_api_route() {
        let sim = start().await;
        let client = client();
        let url = usage_url(&sim);
        let app = app_token(&sim, &client).await;
        let resp = get(&client, &url, &app).await;
        assert_eq!(resp.status(), 403);
        let refused: Value = resp.json().await.unwrap();
        assert_eq!(refused["code"], 2032);
        assert!(refused["description"]
            .as_str()
            .unwrap()
            .contains("App+User"));
        let costs = get(&client, &costs_url(&sim, DOCUMENTED_ID), &app).await;
        assert_eq!(costs.status(), 403);
        assert_eq!(costs.json::<Value>().await.unwrap(), refused);
        assert_eq!(client.get(&url).send().await.unwrap().status(), 401);

        let token = user_token(&sim, &client).await;
        sim.knobs().set_throttle_next(1, 3);
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "3");
        sim.knobs().set_error_rate(1.0);
        assert_eq!(get(&client, &url, &token).await.status(), 503);
        sim.knobs().set_error_rate(0.0);

        sim.knobs().set_latency(Duration::from_millis(150));
        let started = Instant::now();
        let responses = futures::future::join_all((0..3).map(|_| get(&client, &url, &token))).await;
        assert!(responses.iter().all(|r| r.status() == 200));
        assert!(started.elapsed() >= Duration::from_millis(150));
        sim.knobs().set_latency(Duration::ZERO);

        let resp = client.post(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers()["allow"], "GET");

        let stats = sim.stats();
        assert_eq!(stats.usagerecords, 8);
        assert_eq!(stats.servicecosts, 1);
        assert_eq!((stats.throttled, stats.in_flight_max), (1, 3));
    }
}
