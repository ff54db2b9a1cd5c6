//! The partner's invoices and balances (docs/partner-center.md §7):
//! `GET /v1/invoices?size=&offset=` (App or App+User; offset paging with next links
//! without `/v1`, as documented), `GET /v1/invoices/summaries` (App+User; one
//! summary per currency) and `GET /v1/invoices/summary` (the single-currency form).
//!
//! The documents are the two documented invoices (one a `void_note` with an
//! `adjustment_note` amendment) and two years of synthetic monthly invoices dated
//! relative to today, newest first; pages hold at most
//! [`Knobs::set_invoice_page_size_cap`] documents (5 by default, so that every
//! list is paged). The summaries are the fixture's three currencies, one of them
//! with .NET's `0001-01-01` "no payment" date. Knobs force a status (a 403 for an
//! account without a billing role) or replace every next link (loops, other hosts).
//!
//! [`Knobs::set_invoice_page_size_cap`]: crate::Knobs::set_invoice_page_size_cap

use http::{HeaderMap, Response, StatusCode};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime, Time};

use crate::codec::{amount, Form};
use crate::routes::common::{forced_status, Attributes, Link, PageLinks};
use crate::server::{Body, JSON_UTF8};
use crate::state::Shared;
use crate::synthetic::round2;
use crate::util::{fnv1a, SplitMix64};

/// The documented invoice list (docs/partner-center.md §7), whose items are served.
const FIXTURE_INVOICES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/invoices.json"
));
/// Three currencies' summaries: the documented USD one, GBP, and CHF without a payment.
const FIXTURE_SUMMARIES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/invoice-summaries.json"
));
/// The documented single-currency summary.
const FIXTURE_SUMMARY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/invoice-summary.json"
));

/// Months of synthetic monthly invoices, back from this month.
const SYNTHETIC_MONTHS: i64 = 24;
/// The page size when the request names none.
const DEFAULT_SIZE: usize = 100;

/// One document of the list, as the simulator knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimInvoice {
    pub id: String,
    /// `invoiceDate`, Unix seconds.
    pub date: f64,
    /// Amendments are nested in the invoice they amend, not listed on their own.
    pub amends: Option<String>,
}

/// `GET /v1/invoices`.
pub(crate) fn invoices(
    shared: &Shared,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Response<Body> {
    if let Err(resp) = shared.api_gate(headers) {
        return *resp;
    }
    let knobs = shared.knobs.invoices();
    if let Some(status) = knobs.status {
        return forced_status(shared, status);
    }
    let query = Form::parse(query.unwrap_or("").as_bytes());
    let number = |key: &str, default: usize| match query.get(key) {
        None => Some(default),
        Some(text) => text.trim().parse::<usize>().ok(),
    };
    let (Some(size), Some(offset)) = (number("size", DEFAULT_SIZE), number("offset", 0)) else {
        return shared.pc_error(
            StatusCode::BAD_REQUEST,
            Value::from(400),
            "The size and offset parameters must be whole numbers.",
        );
    };
    let size = size.clamp(1, knobs.page_size_cap.max(1));
    let items = items(OffsetDateTime::now_utc());
    let start = offset.min(items.len());
    let end = start.saturating_add(size).min(items.len());
    let next = match knobs.next_uri {
        Some(uri) => Some(Link::get(uri)),
        None => {
            (end < items.len()).then(|| Link::get(format!("/invoices?size={size}&offset={end}")))
        }
    };
    let links = PageLinks {
        self_link: Link::get(format!("/invoices?size={size}&offset={start}")),
        next,
    };
    shared.json(
        StatusCode::OK,
        &json!({
            "totalCount": items.len(),
            "items": &items[start..end],
            "links": links,
            "attributes": Attributes { object_type: "Collection" },
        }),
    )
}

/// `GET /v1/invoices/summaries` (App+User) and `GET /v1/invoices/summary`.
pub(crate) fn summaries(shared: &Shared, headers: &HeaderMap, all: bool) -> Response<Body> {
    let gate = if all {
        shared.app_user_gate(headers)
    } else {
        shared.api_gate(headers).map(|_| ())
    };
    if let Err(resp) = gate {
        return *resp;
    }
    if let Some(status) = shared.knobs.invoices().status {
        return forced_status(shared, status);
    }
    let body = if all {
        FIXTURE_SUMMARIES
    } else {
        FIXTURE_SUMMARY
    };
    shared.json_bytes(StatusCode::OK, JSON_UTF8, body.as_bytes())
}

/// Every document the list serves at `now`: newest first, amendments inside the
/// invoice they amend.
fn items(now: OffsetDateTime) -> Vec<Value> {
    let mut items: Vec<Value> = synthetic(now).into_iter().map(|(_, item)| item).collect();
    if let Ok(Value::Object(mut fixture)) = serde_json::from_str::<Value>(FIXTURE_INVOICES) {
        if let Some(Value::Array(documented)) = fixture.remove("items") {
            items.extend(documented);
        }
    }
    items
}

/// The synthetic monthly invoices: a Recurring one in USD on the 8th of each of the
/// last [`SYNTHETIC_MONTHS`] months (the current month's once its date has come),
/// paid but for the last two; every third month a OneTime one in EUR, every sixth
/// with an adjustment note. Ids and amounts follow from the month.
fn synthetic(now: OffsetDateTime) -> Vec<(Vec<SimInvoice>, Value)> {
    let mut out = Vec::new();
    let this_month = now.date().replace_day(1).unwrap_or(now.date());
    for back in 0..SYNTHETIC_MONTHS {
        let Some(month) = months_back(this_month, back) else {
            continue;
        };
        let Some(day) = month.replace_day(8).ok() else {
            continue;
        };
        let at = day
            .with_time(Time::from_hms_milli(1, 22, 47, 603).unwrap_or(Time::MIDNIGHT))
            .assume_utc();
        if at > now {
            continue;
        }
        let serial = month.year() * 100 + i32::from(u8::from(month.month()));
        let mut rng = SplitMix64(fnv1a(&serial.to_be_bytes()));
        let total = round2(9_000.0 + rng.next_f64() * 6_000.0);
        let paid = if back >= 2 { -total } else { 0.0 };
        let id = format!("G{serial:09}");
        out.push(document(
            &id,
            at,
            total,
            paid,
            "USD",
            "$",
            "Recurring",
            "invoice",
            None,
            Vec::new(),
        ));
        if back % 3 == 1 {
            let id = format!("H{serial:09}");
            let total = round2(500.0 + rng.next_f64() * 1_500.0);
            let at = at + Duration::days(2);
            let mut amendments = Vec::new();
            if back % 6 == 1 {
                let note = document(
                    &format!("J{serial:09}"),
                    at + Duration::hours(17),
                    round2(-total / 10.0),
                    0.0,
                    "EUR",
                    "€",
                    "OneTime",
                    "adjustment_note",
                    Some(&id),
                    Vec::new(),
                );
                amendments.push(note);
            }
            out.push(document(
                &id,
                at,
                total,
                if back >= 2 { -total } else { 0.0 },
                "EUR",
                "€",
                "OneTime",
                "invoice",
                None,
                amendments,
            ));
        }
    }
    out
}

fn months_back(first_of_month: time::Date, back: i64) -> Option<time::Date> {
    let index = i64::from(first_of_month.year()) * 12 + i64::from(u8::from(first_of_month.month()))
        - 1
        - back;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = time::Month::try_from(u8::try_from(index.rem_euclid(12) + 1).ok()?).ok()?;
    time::Date::from_calendar_date(year, month, 1).ok()
}

/// One Invoice in the documented shape.
#[allow(clippy::too_many_arguments)]
fn document(
    id: &str,
    at: OffsetDateTime,
    total: f64,
    paid: f64,
    currency: &str,
    symbol: &str,
    invoice_type: &str,
    document_type: &str,
    amends: Option<&str>,
    amendments: Vec<(Vec<SimInvoice>, Value)>,
) -> (Vec<SimInvoice>, Value) {
    let date = crate::codec::invoice_date(at);
    let prefixed = format!("{invoice_type}-{id}");
    let mut item = json!({
        "id": id,
        "invoiceDate": date,
        "totalCharges": amount(total, true),
        "paidAmount": amount(paid, true),
        "currencyCode": currency,
        "currencySymbol": symbol,
        "pdfDownloadLink": format!("/invoices/{id}/documents/statement"),
        "taxReceipts": [],
        "invoiceDetails": [{
            "invoiceLineItemType": "billing_line_items",
            "billingProvider": if invoice_type == "OneTime" { "one_time" } else { "azure" },
            "links": {"self": {"uri": format!("/invoices/{prefixed}/lineitems/Azure/BillingLineItems"), "method": "GET", "headers": []}},
            "attributes": {"objectType": "InvoiceDetail"},
        }],
        "documentType": document_type,
        "invoiceType": invoice_type,
        "links": {"self": {"uri": format!("/invoices/{prefixed}"), "method": "GET", "headers": []}},
        "attributes": {"objectType": "Invoice"},
    });
    if let Some(amends) = amends {
        item["amendsOf"] = Value::from(amends);
    }
    let mut documents = vec![SimInvoice {
        id: id.to_owned(),
        date: at.unix_timestamp() as f64 + f64::from(at.millisecond()) / 1e3,
        amends: amends.map(str::to_owned),
    }];
    if !amendments.is_empty() {
        let mut nested = Vec::with_capacity(amendments.len());
        for (docs, value) in amendments {
            documents.extend(docs);
            nested.push(value);
        }
        item["amendments"] = Value::Array(nested);
    }
    (documents, item)
}

/// Every document the list serves now, amendments included, with its date.
pub(crate) fn documents() -> Vec<SimInvoice> {
    let mut out: Vec<SimInvoice> = synthetic(OffsetDateTime::now_utc())
        .into_iter()
        .flat_map(|(docs, _)| docs)
        .collect();
    // The documented ones (fixture `invoices.json`).
    for (id, date, amends) in [
        ("D02005YFHI", 1_484_956_800.0, None),
        ("G000024130", 1_518_052_967.603_895, None),
        ("G000024131", 1_518_115_477.538_145_6, Some("G000024130")),
    ] {
        out.push(SimInvoice {
            id: id.to_owned(),
            date,
            amends: amends.map(str::to_owned),
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn synthetic_invoices_are_monthly_past_dated_and_unique() {
        let now = OffsetDateTime::now_utc();
        let docs = documents();
        let mut ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "unique ids");
        assert!(docs
            .iter()
            .all(|d| d.date <= now.unix_timestamp() as f64 + 1.0));
        let recurring = docs
            .iter()
            .filter(|d| d.id.starts_with('G') && d.id.len() == 10 && d.date > 1.6e9)
            .count();
        assert!((23..=24).contains(&recurring), "{recurring}");
        assert!(docs
            .iter()
            .any(|d| d.id == "G000024131" && d.amends.as_deref() == Some("G000024130")));
        assert!(docs
            .iter()
            .any(|d| d.id.starts_with('J') && d.amends.is_some()));
        assert_eq!(
            months_back(time::macros::date!(2026 - 01 - 01), 1),
            Some(time::macros::date!(2025 - 12 - 01))
        );
        assert_eq!(
            months_back(time::macros::date!(2026 - 03 - 01), 14),
            Some(time::macros::date!(2025 - 01 - 01))
        );
    }

    #[tokio::test]
    async fn the_list_pages_by_offset_with_next_links_without_v1() {
        let (sim, client, token) = signed_in().await;
        let mut url = format!("{}/v1/invoices?size=100&offset=0", sim.url());
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let body: Value = client
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            pages += 1;
            let items = body["items"].as_array().unwrap();
            assert!(items.len() <= 5);
            seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
            let Some(next) = body["links"]["next"]["uri"].as_str() else {
                break;
            };
            assert!(next.starts_with("/invoices?size=5&offset="), "{next}");
            url = format!("{}/v1{next}", sim.url());
        }
        let listed = documents().iter().filter(|d| d.amends.is_none()).count();
        assert_eq!(seen.len(), listed);
        assert_eq!(pages, listed.div_ceil(5));
        assert!(seen.contains(&"D02005YFHI".to_owned()));
        assert_eq!(sim.stats().invoices, pages as u64);

        sim.knobs().set_invoices_status(Some(403));
        for path in ["/v1/invoices", "/v1/invoices/summaries"] {
            let resp = client
                .get(format!("{}{path}", sim.url()))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 403, "{path}");
        }
        sim.knobs().set_invoices_status(None);
        let summaries: Value = client
            .get(format!("{}/v1/invoices/summaries", sim.url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(summaries["items"].as_array().unwrap().len(), 3);
        let bad = client
            .get(format!("{}/v1/invoices?size=x", sim.url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
    }
}
