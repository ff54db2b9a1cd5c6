//! Wire types and the parser of a customer's service-cost line items
//! (`GET /v1/customers/{id}/servicecosts/MostRecent/lineitems`,
//! docs/partner-center.md §8).
//!
//! This module owns the shape of a `ServiceCostLineItem` and the rules for what
//! Partner Center sends in it: ids in upper case (made lower case, as the customer
//! ids are), amounts with 15 fractional digits (`17.219999999999999`), an
//! `invoiceType` that the documentation's table does not list (absent is its own
//! value, `unknown`, not an error), dates without `Z` (not read: the period is the
//! summary's). An item without an amount or a currency makes the whole body
//! unusable, as a service-costs detail does: a subscription total that silently
//! missed an item would be a wrong figure. An item without a subscription id counts
//! under `unknown`, so that the customer's total stays whole.
//!
//! It does no I/O and never panics on input; following `links.next` is the client's
//! job.

use serde::Deserialize;

use crate::partner_center::model::{
    parse_json, strip_bom, BodyError, CollectionLinks, Lenient, Link,
};

/// What an absent id, name or invoice type is exported as.
pub const UNKNOWN: &str = "unknown";
/// Characters kept of a name (subscription, offer): longer ones are cut, so that
/// one odd item cannot make a label of any size.
const MAX_NAME_CHARS: usize = 128;

/// One line item, as the exporter reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct LineItem {
    /// `subscriptionId`, lower case; `unknown` when absent.
    pub subscription_id: String,
    /// `subscriptionFriendlyName`.
    pub subscription_name: String,
    /// `offerId`, lower case.
    pub offer_id: String,
    /// `offerName`.
    pub offer_name: String,
    /// `invoiceType` as sent, else `unknown`.
    pub invoice_type: String,
    /// `currencyCode`.
    pub currency: String,
    pub pretax: f64,
    pub tax: f64,
    pub after_tax: f64,
}

/// One body's items and its next link, if any.
#[derive(Debug, Default)]
pub struct LineItemsPage {
    pub items: Vec<LineItem>,
    pub next: Option<Link>,
}

#[derive(Deserialize)]
struct WireCollection {
    #[serde(default)]
    items: Option<Vec<WireItem>>,
    #[serde(default)]
    links: Option<CollectionLinks>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireItem {
    #[serde(default)]
    subscription_id: Lenient<String>,
    #[serde(default)]
    subscription_friendly_name: Lenient<String>,
    #[serde(default)]
    offer_id: Lenient<String>,
    #[serde(default)]
    offer_name: Lenient<String>,
    #[serde(default)]
    invoice_type: Lenient<String>,
    #[serde(default)]
    currency_code: Lenient<String>,
    #[serde(default)]
    pretax_total: Lenient<f64>,
    #[serde(default)]
    tax: Lenient<f64>,
    #[serde(default)]
    after_tax_total: Lenient<f64>,
}

/// Parses one body of line items (after a BOM, if any).
pub fn parse_line_items(body: &[u8]) -> Result<LineItemsPage, BodyError> {
    if strip_bom(body).trim_ascii_start().first() != Some(&b'{') {
        return Err(BodyError::Malformed("not a JSON object".to_owned()));
    }
    let wire: WireCollection = parse_json(body)?;
    let items = wire
        .items
        .unwrap_or_default()
        .into_iter()
        .map(item)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LineItemsPage {
        items,
        next: wire.links.and_then(|l| l.next),
    })
}

fn item(wire: WireItem) -> Result<LineItem, BodyError> {
    let amount = |value: Lenient<f64>, field: &'static str| {
        let v = value.0.ok_or(BodyError::Missing(field))?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(BodyError::Invalid {
                field,
                value: v.to_string(),
            })
        }
    };
    Ok(LineItem {
        pretax: amount(wire.pretax_total, "items[].pretaxTotal")?,
        tax: amount(wire.tax, "items[].tax")?,
        after_tax: amount(wire.after_tax_total, "items[].afterTaxTotal")?,
        currency: text(wire.currency_code.0).ok_or(BodyError::Missing("items[].currencyCode"))?,
        subscription_id: text(wire.subscription_id.0)
            .map_or_else(|| UNKNOWN.to_owned(), |id| id.to_lowercase()),
        subscription_name: text(wire.subscription_friendly_name.0).unwrap_or_default(),
        offer_id: text(wire.offer_id.0)
            .map(|id| id.to_lowercase())
            .unwrap_or_default(),
        offer_name: text(wire.offer_name.0).unwrap_or_default(),
        invoice_type: text(wire.invoice_type.0).unwrap_or_else(|| UNKNOWN.to_owned()),
    })
}

/// A non-empty text, trimmed and cut to [`MAX_NAME_CHARS`].
fn text(value: Option<String>) -> Option<String> {
    let value = value?;
    let value = value.trim();
    (!value.is_empty()).then(|| value.chars().take(MAX_NAME_CHARS).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const DOCUMENTED: &[u8] = include_bytes!("../../tests/fixtures/servicecosts-lineitems.json");

    #[test]
    fn the_documented_items_parse_as_documented() {
        let page = parse_line_items(DOCUMENTED).unwrap();
        assert!(page.next.is_none());
        assert_eq!(page.items.len(), 2);
        let recurring = &page.items[1];
        assert_eq!(
            recurring.subscription_id,
            "71b5bcdd-51c8-4bf2-b704-d3432ee33064"
        );
        assert_eq!(
            recurring.subscription_name,
            "Project Pro for Office 365 (Government Pricing)"
        );
        assert_eq!(recurring.offer_id, "11e3c9a9-24a2-4cfd-9f60-a9797d68e296");
        assert_eq!(
            recurring.offer_name,
            "Project for Office 365 (Government Pricing)"
        );
        assert_eq!(recurring.invoice_type, "Recurring");
        assert_eq!(recurring.currency, "USD");
        assert_eq!(
            (recurring.pretax, recurring.tax, recurring.after_tax),
            (17.22, 0.0, 17.22)
        );
        assert_eq!(page.items[0].invoice_type, "OneTime");
        assert_eq!(page.items[0].after_tax, 0.0);
    }

    #[test]
    fn missing_ids_and_invoice_types_are_unknown_and_missing_amounts_fail() {
        let body = |item: serde_json::Value| serde_json::to_vec(&json!({"items": [item]})).unwrap();
        let page = parse_line_items(&body(json!({
            "currencyCode": "EUR", "pretaxTotal": 1, "tax": 0, "afterTaxTotal": 1,
            "subscriptionFriendlyName": "x".repeat(300),
        })))
        .unwrap();
        let item = &page.items[0];
        assert_eq!(
            (item.subscription_id.as_str(), item.invoice_type.as_str()),
            (UNKNOWN, UNKNOWN)
        );
        assert_eq!(item.subscription_name.chars().count(), MAX_NAME_CHARS);
        for (item, field) in [
            (
                json!({"currencyCode": "EUR", "tax": 0, "afterTaxTotal": 1}),
                "items[].pretaxTotal",
            ),
            (
                json!({"currencyCode": "EUR", "pretaxTotal": "1", "tax": 0, "afterTaxTotal": 1}),
                "items[].pretaxTotal",
            ),
            (
                json!({"pretaxTotal": 1, "tax": 0, "afterTaxTotal": 1}),
                "items[].currencyCode",
            ),
        ] {
            assert_eq!(
                parse_line_items(&body(item)).unwrap_err(),
                BodyError::Missing(field)
            );
        }
        assert!(parse_line_items(b"[]").is_err());
        assert!(parse_line_items(b"{\"items\": [3]}").is_err());
        assert!(parse_line_items(b"{}").unwrap().items.is_empty());
    }
}
