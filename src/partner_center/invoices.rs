//! Wire types and tolerant parsers of the partner's invoices
//! (`GET /v1/invoices`) and unpaid balances (`GET /v1/invoices/summaries`),
//! docs/partner-center.md §7.
//!
//! This module owns the shape of an `Invoice` and an `InvoiceSummary` and the rules
//! for what Partner Center sends in them: amendments (adjustment notes) nested in
//! the invoice they amend, each a document of its own; `documentType` in snake case
//! with unknown values mapped to `unknown` (the SDK maps them to `None` rather than
//! failing); `invoiceType` an opaque string; dates with 7-digit fractions, with and
//! without `Z`, and .NET's `0001-01-01T00:00:00` for "none"; the summaries' array
//! under `items` (the example) or `collectionOfSummary` (the resource table). An item
//! that cannot be used (no id, no currency, no numeric amount, not an object) costs
//! only itself and is counted; only a body that is not such a collection fails.
//!
//! It does no I/O and never panics on input; following `links.next` is the client's
//! job.

use serde::{Deserialize, Serialize};

use crate::partner_center::model::{
    parse_json, parse_timestamp, strip_bom, BodyError, CollectionLinks, Lenient, Link,
};

/// Characters kept of a label value taken from a body (an id, an invoice type): a
/// value beyond it is not one Partner Center writes, and a label must stay small.
const MAX_LABEL_CHARS: usize = 64;

/// The invoice type of a document that names none.
pub const UNKNOWN: &str = "unknown";

/// One invoice or amendment, as the exporter keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    /// `id`: the document number, e.g. `D02005YFHI`.
    pub id: String,
    /// `invoiceType` as sent (`Recurring`, `OneTime`, …), else `unknown`.
    pub invoice_type: String,
    /// `documentType`: `invoice`, `void_note`, `adjustment_note` or `unknown`.
    pub document_type: String,
    /// `currencyCode`.
    pub currency: String,
    /// `totalCharges`.
    pub total_charges: f64,
    /// `paidAmount`: negative when a payment was received; `None` when absent.
    pub paid_amount: Option<f64>,
    /// `invoiceDate` as Unix seconds; `None` when absent or "none".
    pub date: Option<f64>,
    /// `amendsOf`: the document an amendment amends.
    pub amends: Option<String>,
}

/// What one page of `GET /v1/invoices` holds.
#[derive(Debug, Default)]
pub struct InvoicesPage {
    /// Each invoice followed by its amendments, in the order sent.
    pub invoices: Vec<Invoice>,
    /// Items (or amendments) that are no usable document.
    pub skipped: usize,
    /// `links.next`, to be followed verbatim.
    pub next: Option<Link>,
}

/// One currency's account balance, as the exporter keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceSummary {
    /// `currencyCode`.
    pub currency: String,
    /// `balanceAmount`: the total of unpaid invoices.
    pub balance: f64,
    /// `lastPaymentAmount`.
    pub last_payment_amount: Option<f64>,
    /// `lastPaymentDate` as Unix seconds; `None` for "none".
    pub last_payment: Option<f64>,
    /// `latestInvoiceDate` as Unix seconds; `None` for "none".
    pub latest_invoice: Option<f64>,
}

#[derive(Deserialize)]
struct WireInvoices {
    #[serde(default)]
    items: Option<Vec<serde_json::Value>>,
    /// Read strictly: a `next` that is not a Link fails the body, because ignoring
    /// it would silently drop the pages behind it.
    #[serde(default)]
    links: Option<CollectionLinks>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireInvoice {
    #[serde(default)]
    id: Lenient<String>,
    #[serde(default)]
    invoice_date: Lenient<String>,
    #[serde(default)]
    total_charges: Lenient<f64>,
    #[serde(default)]
    paid_amount: Lenient<f64>,
    #[serde(default)]
    currency_code: Lenient<String>,
    #[serde(default)]
    document_type: Lenient<String>,
    #[serde(default)]
    invoice_type: Lenient<String>,
    #[serde(default)]
    amends_of: Lenient<String>,
    #[serde(default)]
    amendments: Lenient<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSummaries {
    #[serde(default)]
    items: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    collection_of_summary: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSummary {
    #[serde(default)]
    balance_amount: Lenient<f64>,
    #[serde(default)]
    currency_code: Lenient<String>,
    #[serde(default)]
    last_payment_date: Lenient<String>,
    #[serde(default)]
    last_payment_amount: Lenient<f64>,
    #[serde(default)]
    latest_invoice_date: Lenient<String>,
}

/// Fails a body that is not a JSON object (serde alone would take `[]` for an empty
/// collection).
fn require_object(body: &[u8]) -> Result<(), BodyError> {
    if strip_bom(body).trim_ascii_start().first() == Some(&b'{') {
        Ok(())
    } else {
        Err(BodyError::Malformed("not a JSON object".to_owned()))
    }
}

/// Parses one page of `GET /v1/invoices`.
pub fn parse_invoices(body: &[u8]) -> Result<InvoicesPage, BodyError> {
    require_object(body)?;
    let wire: WireInvoices = parse_json(body)?;
    let mut page = InvoicesPage {
        next: wire.links.and_then(|links| links.next),
        ..InvoicesPage::default()
    };
    for item in wire.items.unwrap_or_default() {
        add_document(&mut page, item, 0);
    }
    Ok(page)
}

/// Amendments are read one level deep: the documented shape has no amendment of an
/// amendment, and a body that nests without end must not recurse without end.
const MAX_DEPTH: usize = 1;

fn add_document(page: &mut InvoicesPage, item: serde_json::Value, depth: usize) {
    let wire = item
        .is_object()
        .then(|| serde_json::from_value::<WireInvoice>(item).ok())
        .flatten();
    let Some(mut wire) = wire else {
        page.skipped += 1;
        return;
    };
    let amendments = wire.amendments.0.take().unwrap_or_default();
    match invoice(wire) {
        Some(invoice) => page.invoices.push(invoice),
        None => page.skipped += 1,
    }
    if depth < MAX_DEPTH {
        for amendment in amendments {
            add_document(page, amendment, depth + 1);
        }
    } else {
        page.skipped += amendments.len();
    }
}

/// The document of one item, if it has an id, a currency and a total.
fn invoice(wire: WireInvoice) -> Option<Invoice> {
    let id = label_text(wire.id.0)?;
    let currency = label_text(wire.currency_code.0)?;
    let total_charges = wire.total_charges.0.filter(|v| v.is_finite())?;
    Some(Invoice {
        id,
        invoice_type: label_text(wire.invoice_type.0).unwrap_or_else(|| UNKNOWN.to_owned()),
        document_type: document_type(wire.document_type.0.as_deref()).to_owned(),
        currency,
        total_charges,
        paid_amount: wire.paid_amount.0.filter(|v| v.is_finite()),
        date: timestamp(wire.invoice_date.0.as_deref()),
        amends: label_text(wire.amends_of.0),
    })
}

/// `documentType` as a label value: the SDK's values in snake case whatever the
/// spelling on the wire (`void_note`, `VoidNote`), anything else `unknown`.
pub fn document_type(value: Option<&str>) -> &'static str {
    let Some(value) = value else { return UNKNOWN };
    let letters: String = value
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    match letters.as_str() {
        "invoice" => "invoice",
        "voidnote" => "void_note",
        "adjustmentnote" => "adjustment_note",
        _ => UNKNOWN,
    }
}

/// A non-empty text of label size, trimmed; `None` otherwise.
fn label_text(value: Option<String>) -> Option<String> {
    let value = value?;
    let value = value.trim();
    (!value.is_empty() && value.chars().count() <= MAX_LABEL_CHARS).then(|| value.to_owned())
}

/// A date as Unix seconds; a date that is not one is no date (it costs only itself).
fn timestamp(value: Option<&str>) -> Option<f64> {
    parse_timestamp(value, "date").ok().flatten()
}

/// What `GET /v1/invoices/summaries` holds.
#[derive(Debug, Default)]
pub struct Summaries {
    /// One per currency, in the order sent; of a currency listed twice, the first.
    pub summaries: Vec<InvoiceSummary>,
    pub skipped: usize,
}

/// Parses `GET /v1/invoices/summaries`: a collection of summaries, one per currency,
/// under `items` or `collectionOfSummary`.
pub fn parse_invoice_summaries(body: &[u8]) -> Result<Summaries, BodyError> {
    require_object(body)?;
    let wire: WireSummaries = parse_json(body)?;
    let items = wire
        .items
        .or(wire.collection_of_summary)
        .ok_or(BodyError::Missing("items"))?;
    let mut out = Summaries::default();
    for item in items {
        let summary = item
            .is_object()
            .then(|| serde_json::from_value::<WireSummary>(item).ok())
            .flatten()
            .and_then(summary);
        match summary {
            Some(s) if !out.summaries.iter().any(|o| o.currency == s.currency) => {
                out.summaries.push(s);
            }
            _ => out.skipped += 1,
        }
    }
    Ok(out)
}

fn summary(wire: WireSummary) -> Option<InvoiceSummary> {
    Some(InvoiceSummary {
        currency: label_text(wire.currency_code.0)?,
        balance: wire.balance_amount.0.filter(|v| v.is_finite())?,
        last_payment_amount: wire.last_payment_amount.0.filter(|v| v.is_finite()),
        last_payment: timestamp(wire.last_payment_date.0.as_deref()),
        latest_invoice: timestamp(wire.latest_invoice_date.0.as_deref()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const DOCUMENTED: &[u8] = include_bytes!("../../tests/fixtures/invoices.json");
    const SUMMARIES: &[u8] = include_bytes!("../../tests/fixtures/invoice-summaries.json");

    fn parse(value: serde_json::Value) -> InvoicesPage {
        parse_invoices(&serde_json::to_vec(&value).unwrap()).unwrap()
    }

    #[test]
    fn the_documented_invoices_and_their_amendment_give_three_documents() {
        let page = parse_invoices(DOCUMENTED).unwrap();
        assert_eq!(page.skipped, 0);
        assert_eq!(page.next.unwrap().uri, "/invoices?size=2&offset=2");
        assert_eq!(
            page.invoices,
            [
                Invoice {
                    id: "D02005YFHI".into(),
                    invoice_type: "Recurring".into(),
                    document_type: "invoice".into(),
                    currency: "GBP".into(),
                    total_charges: 24606.35,
                    paid_amount: Some(1000.0),
                    date: Some(1_484_956_800.0),
                    amends: None,
                },
                Invoice {
                    id: "G000024130".into(),
                    invoice_type: "OneTime".into(),
                    document_type: "void_note".into(),
                    currency: "CHF".into(),
                    total_charges: 586366.0,
                    paid_amount: Some(0.0),
                    date: Some(1_518_052_967.603_895),
                    amends: None,
                },
                Invoice {
                    id: "G000024131".into(),
                    invoice_type: "OneTime".into(),
                    document_type: "adjustment_note".into(),
                    currency: "CHF".into(),
                    total_charges: 107661.12,
                    paid_amount: Some(0.0),
                    date: Some(1_518_115_477.538_145_6),
                    amends: Some("G000024130".into()),
                },
            ]
        );
    }

    #[test]
    fn unknown_document_types_are_a_label_value_not_a_failure() {
        for (wire, label) in [
            (Some("invoice"), "invoice"),
            (Some("void_note"), "void_note"),
            (Some("VoidNote"), "void_note"),
            (Some("adjustment_note"), "adjustment_note"),
            (Some("credit_note"), UNKNOWN),
            (Some("none"), UNKNOWN),
            (Some(""), UNKNOWN),
            (None, UNKNOWN),
        ] {
            assert_eq!(document_type(wire), label, "{wire:?}");
        }
    }

    #[test]
    fn an_unusable_item_costs_only_itself() {
        let good = json!({"id": "A1", "totalCharges": 5, "currencyCode": "EUR",
                          "invoiceDate": "2024-05-01T00:00:00"});
        let page = parse(json!({"items": [
            good,
            {"id": "A2", "totalCharges": "5", "currencyCode": "EUR"},
            {"id": "A3", "totalCharges": 5},
            {"totalCharges": 5, "currencyCode": "EUR"},
            {"id": "x".repeat(65), "totalCharges": 5, "currencyCode": "EUR"},
            [1, 2],
            "text",
            {"id": "A4", "totalCharges": 7.5, "currencyCode": "EUR", "invoiceDate": "yesterday",
             "paidAmount": null, "invoiceType": 3, "documentType": {"x": 1}},
        ]}));
        let ids: Vec<&str> = page.invoices.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["A1", "A4"]);
        assert_eq!(page.skipped, 6);
        // No offset means UTC.
        assert_eq!(page.invoices[0].date, Some(1_714_521_600.0));
        let a4 = &page.invoices[1];
        assert_eq!(
            (
                a4.date,
                a4.paid_amount,
                a4.invoice_type.as_str(),
                a4.document_type.as_str()
            ),
            (None, None, UNKNOWN, UNKNOWN)
        );
    }

    #[test]
    fn amendments_nest_one_level_only() {
        let doc = |id: &str, amendments: serde_json::Value| json!({"id": id, "totalCharges": 1, "currencyCode": "USD", "amendments": amendments});
        let deep = doc("A", json!([doc("B", json!([doc("C", json!([]))]))]));
        let page = parse(json!({"items": [deep]}));
        let ids: Vec<&str> = page.invoices.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["A", "B"]);
        assert_eq!(page.skipped, 1);
    }

    #[test]
    fn bodies_that_are_no_collection_fail() {
        for body in [
            &b"[]"[..],
            b"",
            b"<html>",
            b"{\"items\": 3}",
            b"{\"items\": [], \"links\": {\"next\": 1}}",
        ] {
            assert!(
                parse_invoices(body).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let empty = parse_invoices(b"\xEF\xBB\xBF{}").unwrap();
        assert!(empty.invoices.is_empty() && empty.next.is_none());
    }

    #[test]
    fn summaries_give_one_balance_per_currency_and_none_for_the_none_date() {
        let s = parse_invoice_summaries(SUMMARIES).unwrap();
        assert_eq!(s.skipped, 0);
        let currencies: Vec<&str> = s.summaries.iter().map(|s| s.currency.as_str()).collect();
        assert_eq!(currencies, ["USD", "GBP", "CHF"]);
        assert_eq!(
            s.summaries[0],
            InvoiceSummary {
                currency: "USD".into(),
                balance: 751094.39,
                last_payment_amount: Some(1000.0),
                last_payment: Some(1_483_272_000.0),
                // "2018-03-16T00:00:00": no offset, UTC.
                latest_invoice: Some(1_521_158_400.0),
            }
        );
        let chf = &s.summaries[2];
        assert_eq!(chf.last_payment, None, "0001-01-01 is no payment");
        assert_eq!(chf.latest_invoice, Some(1_518_115_477.538_145_6));
    }

    #[test]
    fn summaries_are_read_under_either_name_and_a_currency_counts_once() {
        let item =
            |code: &str, balance: f64| json!({"currencyCode": code, "balanceAmount": balance});
        let body = json!({"collectionOfSummary": [item("EUR", 1.0), item("EUR", 2.0), item("SEK", 3.0),
                                                  {"currencyCode": "NOK"}, 7]});
        let s = parse_invoice_summaries(&serde_json::to_vec(&body).unwrap()).unwrap();
        let got: Vec<(&str, f64)> = s
            .summaries
            .iter()
            .map(|s| (s.currency.as_str(), s.balance))
            .collect();
        assert_eq!(got, [("EUR", 1.0), ("SEK", 3.0)]);
        assert_eq!(s.skipped, 3);
        assert!(matches!(
            parse_invoice_summaries(b"{\"totalCount\": 0}"),
            Err(BodyError::Missing("items"))
        ));
    }
}
