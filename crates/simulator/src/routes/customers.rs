//! Customer discovery, `GET /v1/customers` (docs/partner-center.md §3): pages of
//! at most `size` customers (capped by the page-size knob), linked by
//! `links.next` and an `MS-ContinuationToken` header; with the knobs for extra
//! items and for a list that never ends. App-only tokens may list customers.

use http::{HeaderMap, Response, StatusCode};
use serde::Serialize;
use serde_json::Value;

use crate::codec::Form;
use crate::routes::common::{next_link, seek_offset, Attributes, Link, PageLinks};
use crate::server::Body;
use crate::state::Shared;
use crate::util::lock;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomersPage<'a> {
    total_count: usize,
    items: Vec<PageItem<'a>>,
    links: PageLinks,
    attributes: Attributes,
}

/// An item of a customers page: a customer, or what [`Knobs::set_extra_customer_items`](crate::Knobs::set_extra_customer_items) adds.
#[derive(Serialize)]
#[serde(untagged)]
enum PageItem<'a> {
    Customer(CustomerItem<'a>),
    Raw(&'a Value),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomerItem<'a> {
    id: &'a str,
    commerce_id: &'a str,
    company_profile: CompanyProfile<'a>,
    relationship_to_partner: &'static str,
    attributes: Attributes,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CompanyProfile<'a> {
    tenant_id: &'a str,
    domain: &'a str,
    company_name: &'a str,
    attributes: Attributes,
}

/// `GET /v1/customers`.
pub(crate) fn customers(
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Response<Body> {
    if let Err(resp) = shared.api_gate(headers) {
        return *resp;
    }
    let query = Form::parse(query.unwrap_or("").as_bytes());
    let cap = shared.knobs.page_size_cap();
    let size = match query.get("size").map(str::parse::<usize>) {
        None => cap,
        Some(Ok(size)) if size > 0 => size.min(cap),
        Some(_) => {
            return shared.pc_error(
                StatusCode::BAD_REQUEST,
                Value::from(400),
                "The size parameter must be a positive integer.",
            )
        }
    };
    let seek = match seek_offset(shared, headers, &query) {
        Ok(seek) => seek,
        Err(resp) => return *resp,
    };
    let (next, offset) = (seek.is_some(), seek.unwrap_or(0));

    let (page, end, more) = {
        let directory = lock(&shared.directory);
        let total = directory.customers.len();
        let start = offset.min(total);
        let end = offset.saturating_add(size).min(total);
        (directory.customers[start..end].to_vec(), end, end < total)
    };
    // A looping list links back to this very page, under a token never sent before.
    let (next_offset, nonce, more) = match shared.knobs.loop_nonce() {
        Some(nonce) => (offset, Some(nonce), true),
        None => (end, None, more),
    };

    let self_uri = if next {
        format!("/v1/customers?size={size}&seekOperation=Next")
    } else {
        format!("/v1/customers?size={size}")
    };
    let next_link = more.then(|| {
        next_link(
            shared,
            &format!("customers?size={size}&seekOperation=Next"),
            next_offset,
            nonce,
        )
    });
    let extra = shared.knobs.extra_customer_items();
    let items: Vec<PageItem<'_>> = page
        .iter()
        .map(|entry| {
            PageItem::Customer(CustomerItem {
                id: &entry.customer.id,
                commerce_id: &entry.customer.id,
                company_profile: CompanyProfile {
                    tenant_id: &entry.customer.id,
                    domain: &entry.customer.domain,
                    company_name: &entry.customer.name,
                    attributes: Attributes {
                        object_type: "CustomerCompanyProfile",
                    },
                },
                relationship_to_partner: "reseller",
                attributes: Attributes {
                    object_type: "Customer",
                },
            })
        })
        .chain(extra.iter().map(PageItem::Raw))
        .collect();
    shared.json(
        StatusCode::OK,
        &CustomersPage {
            total_count: items.len(),
            items,
            links: PageLinks {
                self_link: Link::get(self_uri),
                next: next_link,
            },
            attributes: Attributes {
                object_type: "Collection",
            },
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    use crate::test_util::*;
    use crate::Simulator;

    /// Follows `links.next` from `GET /v1/customers?size=10`; returns the ids and
    /// the next-link URIs seen.
    async fn crawl(
        sim: &Simulator,
        client: &reqwest::Client,
        token: &str,
    ) -> (Vec<String>, Vec<String>) {
        let (pages, next_uris) = walk_pages(sim, client, token, "/v1/customers?size=10").await;
        let mut ids = Vec::new();
        for page in &pages {
            assert!(page["links"]["self"]["uri"]
                .as_str()
                .unwrap()
                .starts_with("/v1/customers?size=10"));
            for item in page["items"].as_array().unwrap() {
                let id = item["id"].as_str().unwrap();
                assert_eq!(item["companyProfile"]["tenantId"], id);
                assert_eq!(item["commerceId"], id);
                assert!(item["companyProfile"]["companyName"].is_string());
                assert!(item["companyProfile"]["domain"]
                    .as_str()
                    .unwrap()
                    .ends_with(".onmicrosoft.com"));
                ids.push(id.to_owned());
            }
        }
        (ids, next_uris)
    }

    #[tokio::test]
    async fn paging_follows_next_links_with_v1_prefix() {
        let (sim, client, token) = signed_in().await;
        let (ids, next_uris) = crawl(&sim, &client, &token).await;
        let expected: Vec<String> = sim.customers().into_iter().map(|c| c.id).collect();
        assert_eq!(ids, expected);
        assert_eq!(
            next_uris,
            vec!["/v1/customers?size=10&seekOperation=Next"; 2]
        );
        assert_eq!(sim.stats().customers, 3);
    }

    #[tokio::test]
    async fn paging_follows_next_links_without_v1_prefix() {
        let sim = start().await;
        sim.knobs().set_next_link_without_v1(true);
        let client = client();
        let token = user_token(&sim, &client).await;
        let (ids, next_uris) = crawl(&sim, &client, &token).await;
        assert_eq!(ids.len(), 25);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 25);
        assert_eq!(next_uris, vec!["customers?size=10&seekOperation=Next"; 2]);
    }

    #[tokio::test]
    async fn next_page_needs_a_valid_continuation_header() {
        let sim = start().await;
        let other = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let url = format!("{}/v1/customers?size=10&seekOperation=Next", sim.url());
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert!(body["description"]
            .as_str()
            .unwrap()
            .contains("MS-ContinuationToken"));

        let foreign = other.shared.continuation_token(10, None);
        for bad in ["garbage!", "AAAAAAAAAAAAAA==", foreign.as_str()] {
            let resp = client
                .get(&url)
                .bearer_auth(&token)
                .header("MS-ContinuationToken", bad)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 400, "{bad}");
        }
        let good = sim.shared.continuation_token(20, None);
        let resp = client
            .get(&url)
            .bearer_auth(&token)
            .header("MS-ContinuationToken", good)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let page: Value = resp.json().await.unwrap();
        assert_eq!(page["totalCount"], 5);
        assert!(page["links"].get("next").is_none());
    }

    #[tokio::test]
    async fn looping_pages_extra_items_and_given_bodies() {
        let (sim, client, token) = signed_in().await;
        sim.knobs()
            .set_extra_customer_items(vec![serde_json::json!({"id": null}), Value::from(7)]);
        sim.knobs().set_looping_customer_pages(true);
        let url = format!("{}/v1/customers?size=10", sim.url());
        let first: Value = get(&client, &url, &token).await.json().await.unwrap();
        let items = first["items"].as_array().unwrap();
        assert_eq!(items.len(), 12);
        assert_eq!(items[10], serde_json::json!({"id": null}));
        assert_eq!(items[11], 7);
        let mut tokens = HashSet::new();
        let mut next = first["links"]["next"].clone();
        for _ in 0..3 {
            let value = next["headers"][0]["value"].as_str().unwrap().to_owned();
            assert!(tokens.insert(value.clone()), "a fresh token each time");
            let page: Value = client
                .get(format!("{}{}", sim.url(), next["uri"].as_str().unwrap()))
                .bearer_auth(&token)
                .header("MS-ContinuationToken", value)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(page["items"], first["items"], "the same page again");
            next = page["links"]["next"].clone();
        }
        sim.knobs().set_looping_customer_pages(false);
        sim.knobs().set_extra_customer_items(Vec::new());
        let (ids, _) = crawl(&sim, &client, &token).await;
        assert_eq!(ids.len(), 25);

        let id = generated(&sim).id;
        sim.knobs()
            .set_service_costs_body(&id.to_ascii_uppercase(), Some(r#"{"details":[]}"#));
        let resp = get(&client, &costs_url(&sim, &id), &token).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), r#"{"details":[]}"#);
        sim.knobs().set_service_costs_body(&id, None);
        let body: Value = get(&client, &costs_url(&sim, &id), &token)
            .await
            .json()
            .await
            .unwrap();
        assert!(body["details"].as_array().is_some_and(|d| !d.is_empty()));
    }

    #[tokio::test]
    async fn page_size_is_capped() {
        let sim = start().await;
        sim.knobs().set_page_size_cap(7);
        let client = client();
        let token = user_token(&sim, &client).await;
        for query in ["?size=50", ""] {
            let resp = get(
                &client,
                &format!("{}/v1/customers{query}", sim.url()),
                &token,
            )
            .await;
            let page: Value = resp.json().await.unwrap();
            assert_eq!(page["totalCount"], 7, "{query}");
            assert_eq!(
                page["links"]["next"]["uri"],
                "/v1/customers?size=7&seekOperation=Next"
            );
        }
        let resp = get(
            &client,
            &format!("{}/v1/customers?size=abc", sim.url()),
            &token,
        )
        .await;
        assert_eq!(resp.status(), 400);
    }

    #[tokio::test]
    async fn customers_without_bearer_is_401() {
        let sim = start().await;
        let client = client();
        let resp = client
            .get(format!("{}/v1/customers", sim.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let resp = get(&client, &format!("{}/v1/customers", sim.url()), "made-up").await;
        assert_eq!(resp.status(), 401);
        assert!(resp.headers().contains_key("www-authenticate"));
    }
}
