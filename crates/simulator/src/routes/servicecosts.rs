//! The service-costs summary, `GET /v1/customers/{id}/servicecosts/{period}`
//! (docs/partner-center.md §2): the documented example for the documented
//! customer, 404 for a customer without data, generated bodies in the documented
//! shape for the rest; App+User only; and the per-customer faults (hang, forced
//! status, malformed, huge or given body).

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde::Serialize;
use serde_json::Value;

use crate::codec::amount;
use crate::routes::common::{forced_status, most_recent_gate, Attributes, Link};
use crate::server::{response, Body, JSON_UTF8};
use crate::state::Shared;
use crate::synthetic::{currency_symbol, round2, Period, SimCosts, SimDetail};
use crate::util::lock;

/// The documented service-costs example (docs/partner-center.md §2), served verbatim.
pub(crate) const FIXTURE_COSTS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/servicecosts-mostrecent.json"
));
/// A body cut off in the middle of a number: what `set_malformed` serves.
const MALFORMED_BODY: &str =
    "{\"billingStartDate\": \"2015-12-12T00:00:00Z\", \"pretaxTotal\": 17.22, \
     \"details\": [{\"invoiceType\": \"Recurring\", \"summary\": {\"pretaxTotal\": 17.";
/// The least size of the huge body.
const HUGE_BODY_BYTES: usize = 64 * 1024 * 1024;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CostsBody<'a> {
    billing_start_date: &'a str,
    billing_end_date: &'a str,
    pretax_total: Value,
    tax: Value,
    after_tax_total: Value,
    currency_symbol: &'a str,
    customer_id: &'a str,
    details: Vec<DetailBody<'a>>,
    links: CostsLinks,
    attributes: Attributes,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DetailBody<'a> {
    invoice_type: &'a str,
    summary: SummaryBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SummaryBody<'a> {
    billing_start_date: &'a str,
    billing_end_date: &'a str,
    pretax_total: Value,
    tax: Value,
    after_tax_total: Value,
    currency_code: &'a str,
    currency_symbol: &'a str,
    customer_id: &'a str,
    links: serde_json::Map<String, Value>,
    attributes: Attributes,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CostsLinks {
    service_cost_line_items: Link,
    #[serde(rename = "self")]
    self_link: Link,
}

/// `GET /v1/customers/{id}/servicecosts/{period}`.
pub(crate) async fn service_costs(
    shared: &Shared,
    headers: &HeaderMap,
    id: &str,
    period: &str,
) -> Response<Body> {
    if let Err(resp) = most_recent_gate(shared, headers, period) {
        return *resp;
    }
    let key = id.to_ascii_lowercase();
    let faults = shared.knobs.customer_faults(&key);
    if faults.hang {
        shared.cancel.cancelled().await;
        return shared.pc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            Value::from(503),
            "The simulator is shutting down.",
        );
    }
    if let Some(status) = faults.status {
        return forced_status(shared, status);
    }
    if faults.malformed {
        return shared.json_bytes(StatusCode::OK, JSON_UTF8, MALFORMED_BODY.as_bytes());
    }
    if faults.huge {
        return huge_body(shared, &key);
    }
    if let Some(body) = faults.body {
        return shared.json_bytes(StatusCode::OK, JSON_UTF8, body.as_bytes());
    }
    let entry = lock(&shared.directory).by_id.get(&key).cloned();
    let Some(entry) = entry else {
        return shared.pc_error(
            StatusCode::NOT_FOUND,
            Value::from(1000),
            "Customer not found.",
        );
    };
    let period = Period::current();
    match entry.costs(&period) {
        SimCosts::Documented => {
            shared.json_bytes(StatusCode::OK, JSON_UTF8, FIXTURE_COSTS.as_bytes())
        }
        SimCosts::NoData => shared.pc_error(
            StatusCode::NOT_FOUND,
            Value::from(3000),
            "Customer does not have service costs data for the given billing period.",
        ),
        SimCosts::Generated(details) => shared.json(
            StatusCode::OK,
            &costs_body(&entry.customer.id, &details, &period),
        ),
    }
}

fn summary<'a>(customer_id: &'a str, detail: &'a SimDetail) -> SummaryBody<'a> {
    let whole = detail.invoice_type.eq_ignore_ascii_case("OneTime");
    SummaryBody {
        billing_start_date: &detail.billing_start,
        billing_end_date: &detail.billing_end,
        pretax_total: amount(detail.pretax, whole),
        tax: amount(detail.tax, whole),
        after_tax_total: amount(round2(detail.pretax + detail.tax), whole),
        currency_code: &detail.currency,
        currency_symbol: currency_symbol(&detail.currency),
        customer_id,
        links: serde_json::Map::new(),
        attributes: Attributes {
            object_type: "ServiceCostsSummary",
        },
    }
}

fn costs_links(customer_id: &str) -> CostsLinks {
    let base = format!("/customers/{customer_id}/servicecosts/MostRecent");
    CostsLinks {
        service_cost_line_items: Link::get(format!("{base}/lineitems")),
        self_link: Link::get(base),
    }
}

/// The documented shape: deprecated root fields (mirroring the first detail, as in
/// the example, and without `currencyCode`), then `details[]`.
fn costs_body<'a>(
    customer_id: &'a str,
    details: &'a [SimDetail],
    period: &'a Period,
) -> CostsBody<'a> {
    let details: Vec<DetailBody<'a>> = details
        .iter()
        .map(|detail| DetailBody {
            invoice_type: &detail.invoice_type,
            summary: summary(customer_id, detail),
        })
        .collect();
    let root = details.first().map(|d| &d.summary);
    CostsBody {
        billing_start_date: root.map_or(period.start.as_str(), |s| s.billing_start_date),
        billing_end_date: root.map_or(period.end.as_str(), |s| s.billing_end_date),
        pretax_total: root.map_or(Value::from(0.0), |s| s.pretax_total.clone()),
        tax: root.map_or(Value::from(0.0), |s| s.tax.clone()),
        after_tax_total: root.map_or(Value::from(0.0), |s| s.after_tax_total.clone()),
        currency_symbol: root.map_or("$", |s| s.currency_symbol),
        customer_id,
        details,
        links: costs_links(customer_id),
        attributes: Attributes {
            object_type: "ServiceCostsSummary",
        },
    }
}

/// 200 with a valid JSON body of at least 64 MiB, streamed in 64 KiB chunks.
fn huge_body(shared: &Shared, customer_id: &str) -> Response<Body> {
    let period = Period::current();
    let detail = SimDetail {
        invoice_type: "Recurring".to_owned(),
        currency: "USD".to_owned(),
        pretax: 12.5,
        tax: 1.25,
        billing_start: period.start.clone(),
        billing_end: period.end.clone(),
    };
    let one = serde_json::to_string(&DetailBody {
        invoice_type: &detail.invoice_type,
        summary: summary(customer_id, &detail),
    })
    .unwrap_or_else(|_| "{}".to_owned());
    let bom = if shared.knobs.bom() { "\u{FEFF}" } else { "" };
    let head = Bytes::from(format!(
        "{bom}{{\"billingStartDate\":\"{}\",\"billingEndDate\":\"{}\",\"pretaxTotal\":12.5,\"tax\":1.25,\"afterTaxTotal\":13.75,\"currencySymbol\":\"$\",\"customerId\":\"{customer_id}\",\"details\":[{one}",
        period.start, period.end
    ));
    let tail = Bytes::from_static(b"],\"attributes\":{\"objectType\":\"ServiceCostsSummary\"}}");
    let per_block = (64 * 1024 / (one.len() + 1)).max(1);
    let block = Bytes::from(format!(",{one}").repeat(per_block));
    let blocks = (HUGE_BODY_BYTES.saturating_sub(head.len() + tail.len())).div_ceil(block.len());
    let chunks = std::iter::once(head)
        .chain(std::iter::repeat_n(block, blocks))
        .chain(std::iter::once(tail))
        .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk)));
    let body = StreamBody::new(futures::stream::iter(chunks)).boxed_unsync();
    response(StatusCode::OK, Some(JSON_UTF8), body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    use uuid::Uuid;

    use crate::routes::common::{FIXTURE_401_MFA, FIXTURE_403};
    use crate::synthetic::DOCUMENTED_ID;
    use crate::test_util::*;
    use crate::{Endpoint, SimCustomer};

    #[tokio::test]
    async fn documented_body_is_byte_identical_with_headers() {
        let (sim, client, token) = signed_in().await;
        let resp = client
            .get(costs_url(&sim, DOCUMENTED_ID))
            .bearer_auth(&token)
            .header("MS-RequestId", "11111111-2222-3333-4444-555555555555")
            .header("MS-CorrelationId", "66666666-7777-8888-9999-000000000000")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let headers = resp.headers().clone();
        assert_eq!(headers["content-type"], "application/json; charset=utf-8");
        assert_eq!(
            headers["ms-requestid"],
            "11111111-2222-3333-4444-555555555555"
        );
        assert_eq!(
            headers["ms-correlationid"],
            "66666666-7777-8888-9999-000000000000"
        );
        assert!(headers["ms-cv"].to_str().unwrap().ends_with(".0"));
        assert!(headers.contains_key("ms-serverid"));
        assert_eq!(resp.bytes().await.unwrap(), FIXTURE_COSTS.as_bytes());

        // Generated when absent.
        let resp = get(&client, &costs_url(&sim, DOCUMENTED_ID), &token).await;
        let id = resp.headers()["ms-requestid"].to_str().unwrap();
        assert!(Uuid::parse_str(id).is_ok());

        let log = sim.request_log();
        let logged: Vec<_> = log
            .iter()
            .filter(|r| r.endpoint == Endpoint::ServiceCosts)
            .collect();
        assert_eq!(logged.len(), 2);
        assert_eq!(
            logged[0].ms_request_id.as_deref(),
            Some("11111111-2222-3333-4444-555555555555")
        );
        assert_eq!(logged[1].ms_request_id, None);
        assert_eq!(
            logged[0].path,
            format!("/v1/customers/{DOCUMENTED_ID}/servicecosts/MostRecent")
        );
        assert_eq!(logged[0].status, 200);
    }

    #[tokio::test]
    async fn no_data_and_unknown_customers_are_404() {
        let (sim, client, token) = signed_in().await;
        let resp = get(&client, &costs_url(&sim, &no_data(&sim).id), &token).await;
        assert_eq!(resp.status(), 404);
        let resp = get(
            &client,
            &costs_url(&sim, "00000000-0000-0000-0000-00000000dead"),
            &token,
        )
        .await;
        assert_eq!(resp.status(), 404);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], 1000);
        assert_eq!(sim.stats().by_status.get(&404), Some(&2));
    }

    #[tokio::test]
    async fn period_is_case_insensitive() {
        let (sim, client, token) = signed_in().await;
        for period in ["mostrecent", "MOSTRECENT", "MostRecent", "mostRecent"] {
            let url = format!(
                "{}/v1/customers/{DOCUMENTED_ID}/servicecosts/{period}",
                sim.url()
            );
            assert_eq!(get(&client, &url, &token).await.status(), 200, "{period}");
        }
        for period in ["Current", "None", "mostrecen"] {
            let url = format!(
                "{}/v1/customers/{DOCUMENTED_ID}/servicecosts/{period}",
                sim.url()
            );
            assert_eq!(get(&client, &url, &token).await.status(), 400, "{period}");
        }
    }

    #[tokio::test]
    async fn generated_costs_have_the_documented_shape() {
        let (sim, client, token) = signed_in().await;
        let customer = generated(&sim);
        let SimCosts::Generated(details) = &customer.costs else {
            unreachable!()
        };
        let resp = get(&client, &costs_url(&sim, &customer.id), &token).await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert!(body.get("currencyCode").is_none());
        assert_eq!(body["customerId"], customer.id.as_str());
        assert_eq!(body["pretaxTotal"].as_f64(), Some(details[0].pretax));
        let served = body["details"].as_array().unwrap();
        assert_eq!(served.len(), details.len());
        for (got, want) in served.iter().zip(details) {
            let summary = &got["summary"];
            assert_eq!(got["invoiceType"], want.invoice_type.as_str());
            assert_eq!(summary["pretaxTotal"].as_f64(), Some(want.pretax));
            assert_eq!(summary["tax"].as_f64(), Some(want.tax));
            assert_eq!(
                summary["afterTaxTotal"].as_f64(),
                Some(round2(want.pretax + want.tax))
            );
            assert_eq!(summary["currencyCode"], want.currency.as_str());
            assert!(summary["billingStartDate"]
                .as_str()
                .unwrap()
                .ends_with("-01T00:00:00Z"));
            assert!(summary["billingEndDate"]
                .as_str()
                .unwrap()
                .ends_with("T23:59:59.9999999Z"));
            assert_eq!(summary["attributes"]["objectType"], "ServiceCostsSummary");
        }
        assert_eq!(
            body["links"]["self"]["uri"],
            format!("/customers/{}/servicecosts/MostRecent", customer.id)
        );
        // Stable within a test.
        assert_eq!(sim.customers(), sim.customers());
    }

    #[tokio::test]
    async fn added_and_removed_customers() {
        let (sim, client, token) = signed_in().await;
        let victim = generated(&sim);
        assert!(sim.remove_customer(&victim.id));
        assert!(!sim.remove_customer(&victim.id));
        assert_eq!(
            get(&client, &costs_url(&sim, &victim.id), &token)
                .await
                .status(),
            404
        );
        assert_eq!(sim.customers().len(), 24);

        sim.add_customer(SimCustomer {
            id: "12345678-1234-4234-8234-123456789abc".to_owned(),
            name: "Added".to_owned(),
            domain: "added.onmicrosoft.com".to_owned(),
            costs: SimCosts::Generated(vec![SimDetail {
                invoice_type: "OneTime".to_owned(),
                currency: "GBP".to_owned(),
                pretax: 2.0,
                tax: 0.2,
                billing_start: "2019-04-01T00:00:00Z".to_owned(),
                billing_end: "2019-04-30T23:59:59.9999999Z".to_owned(),
            }]),
        });
        assert_eq!(sim.customers().last().unwrap().name, "Added");
        let resp = get(
            &client,
            &costs_url(&sim, "12345678-1234-4234-8234-123456789ABC"),
            &token,
        )
        .await;
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(text.contains("\"pretaxTotal\":2,"), "{text}");
        assert!(text.contains("\"afterTaxTotal\":2.2"), "{text}");
        assert!(text.contains("\"currencySymbol\":\"£\""), "{text}");
    }

    #[tokio::test]
    async fn per_customer_faults() {
        let (sim, client, token) = signed_in().await;
        let id = generated(&sim).id;
        let url = costs_url(&sim, &id);

        sim.knobs().set_malformed(&id, true);
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 200);
        let body = resp.bytes().await.unwrap();
        assert!(serde_json::from_slice::<Value>(&body).is_err());
        sim.knobs().set_malformed(&id, false);

        sim.knobs().set_status(&id.to_uppercase(), Some(403));
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.bytes().await.unwrap(), FIXTURE_403.as_bytes());
        sim.knobs().set_status(&id, Some(401));
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.bytes().await.unwrap(), FIXTURE_401_MFA.as_bytes());
        sim.knobs().set_status(&id, Some(500));
        assert_eq!(get(&client, &url, &token).await.status(), 500);
        sim.knobs().set_status(&id, None);
        assert_eq!(get(&client, &url, &token).await.status(), 200);
    }

    #[tokio::test]
    async fn huge_body_is_valid_and_at_least_64_mib() {
        let (sim, client, token) = signed_in().await;
        let id = generated(&sim).id;
        sim.knobs().set_huge_body(&id, true);
        let resp = get(&client, &costs_url(&sim, &id), &token).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.content_length().is_none());
        let body = resp.bytes().await.unwrap();
        assert!(body.len() >= HUGE_BODY_BYTES, "{}", body.len());
        assert!(body.len() < HUGE_BODY_BYTES + 128 * 1024);
        serde_json::from_slice::<serde::de::IgnoredAny>(&body).unwrap();
    }

    #[tokio::test]
    async fn hanging_customer_never_answers_and_shutdown_releases_it() {
        let (sim, client, token) = signed_in().await;
        let id = generated(&sim).id;
        sim.knobs().set_hang(&id, true);
        let result = client
            .get(costs_url(&sim, &id))
            .bearer_auth(&token)
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(result.unwrap_err().is_timeout());
        // Others are unaffected.
        assert_eq!(
            get(&client, &costs_url(&sim, DOCUMENTED_ID), &token)
                .await
                .status(),
            200
        );

        let pending = tokio::spawn({
            let (client, url, token) = (client.clone(), costs_url(&sim, &id), token.clone());
            async move { client.get(url).bearer_auth(token).send().await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let addr = sim.addr();
        tokio::time::timeout(Duration::from_secs(5), sim.shutdown())
            .await
            .unwrap();
        let answered = tokio::time::timeout(Duration::from_secs(5), pending)
            .await
            .unwrap()
            .unwrap();
        assert!(answered.map(|r| r.status() == 503).unwrap_or(true));
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
