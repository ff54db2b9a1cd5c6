//! Wire types of Azure AD and Partner Center, and the parsers that turn response
//! bodies into them.
//!
//! This module owns every `serde` shape the exporter reads from the network and the
//! rules for tolerating what the services actually send (docs/partner-center.md §1, §2, §3, §4): a
//! leading UTF-8 BOM, numbers as strings or JSON numbers, integer or float amounts,
//! timestamps with 7-digit fractions, UTC offsets, dates before 1970 and .NET's
//! "none" date, customer list items of the wrong shape (each costs only itself),
//! details repeated for one invoice type and currency (merged), unknown fields, and
//! optional everything. It does no I/O and never panics on input: every parser
//! returns a [`BodyError`].

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use super::time::{parse_timestamp, unix_seconds};

/// The largest response body the exporter reads. A page of 500 customers is about
/// 300 KiB and a service-costs summary about 2 KiB; anything far beyond is refused.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Why a response body could not be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum BodyError {
    /// The body is not the JSON document expected (malformed, wrong types, HTML).
    #[error("unexpected response body: {0}")]
    Malformed(String),
    /// A field the exporter needs is absent.
    #[error("response body lacks {0}")]
    Missing(&'static str),
    /// A field is present but its value cannot be used.
    #[error("response body has an invalid {field}: {value:?}")]
    Invalid { field: &'static str, value: String },
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("response body larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
}

/// Strips a leading UTF-8 byte-order mark (EF BB BF), which Partner Center has been
/// seen to send and `serde_json` rejects.
pub fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

/// Parses a JSON body after stripping a BOM. The error message keeps only serde's
/// position and category, never the body itself (it may hold a token).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, BodyError> {
    serde_json::from_slice(strip_bom(body)).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Io => "i/o",
            serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Data => "wrong shape",
            serde_json::error::Category::Eof => "truncated JSON",
        };
        BodyError::Malformed(format!("{what} at line {} column {}", e.line(), e.column()))
    })
}

/// A number that Azure AD sends as a JSON string (v1) or a JSON number (v2).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum StringOrNumber {
    Number(serde_json::Number),
    String(String),
}

impl StringOrNumber {
    /// The value as whole seconds, if it is a non-negative number in either form.
    pub fn as_secs(&self) -> Option<u64> {
        match self {
            StringOrNumber::Number(n) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
            StringOrNumber::String(s) => s.trim().parse::<u64>().ok(),
        }
    }

    /// The value as text, whichever form it came in (for Partner Center error codes).
    pub fn to_text(&self) -> String {
        match self {
            StringOrNumber::Number(n) => n.to_string(),
            StringOrNumber::String(s) => s.clone(),
        }
    }
}

/// A successful token response, from AAD v1, AAD v2 or `generatetoken` (docs/partner-center.md §1).
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: SecretString,
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    #[serde(default)]
    pub expires_in: Option<StringOrNumber>,
}

/// An Azure AD error body (docs/partner-center.md §1).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct AadErrorBody {
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_codes: Vec<u64>,
    #[serde(default)]
    pub error_description: Option<String>,
}

impl AadErrorBody {
    /// The first AADSTS code: from `error_codes`, else read off the description.
    pub fn aadsts_code(&self) -> Option<u64> {
        if let Some(code) = self.error_codes.first() {
            return Some(*code);
        }
        let description = self.error_description.as_deref()?;
        let rest = &description[description.find("AADSTS")? + "AADSTS".len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    }
}

/// A Partner Center error body (docs/partner-center.md §4): only its `code` is
/// used (its `description` may quote the request, and is not logged).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ApiErrorBody {
    #[serde(default)]
    pub code: Option<StringOrNumber>,
}

/// A page of `GET /v1/customers` (at most 500 items). Each item is read on its
/// own: an item of the wrong shape costs that item, not the page.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomersPage {
    #[serde(default)]
    pub items: Vec<Lenient<Customer>>,
    #[serde(default)]
    pub links: Option<CollectionLinks>,
}

/// A customer list item; the id is the customer's tenant id, a GUID (`None` when
/// absent, `null` or not a string).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    #[serde(default)]
    pub id: Lenient<String>,
    #[serde(default)]
    pub company_profile: Lenient<CompanyProfile>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CompanyProfile {
    #[serde(default)]
    pub domain: Lenient<String>,
    #[serde(default)]
    pub company_name: Lenient<String>,
}

/// A value that is `None` when the JSON holds anything but a `T` there (absent,
/// `null`, another type), instead of failing the whole body.
#[derive(Debug, Clone, PartialEq)]
pub struct Lenient<T>(pub Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Any JSON value is accepted here; only malformed JSON fails the body.
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(Lenient(T::deserialize(value).ok()))
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct CollectionLinks {
    #[serde(default)]
    pub next: Option<Link>,
}

/// A Partner Center `Link`: the next page is fetched from `uri` with `headers` added.
#[derive(Debug, Deserialize, Clone)]
pub struct Link {
    pub uri: String,
    #[serde(default)]
    pub headers: Vec<LinkHeader>,
}

#[derive(Debug, Deserialize, Clone)]
pub struct LinkHeader {
    pub key: String,
    pub value: String,
}

/// `ServiceCostsSummary` (docs/partner-center.md §2, §2). Only `details` is read: the root-level
/// totals are deprecated and duplicate the details.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCostsSummary {
    #[serde(default)]
    pub details: Option<Vec<ServiceCostsDetail>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCostsDetail {
    #[serde(default)]
    pub invoice_type: Option<String>,
    #[serde(default)]
    pub summary: Option<DetailSummary>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetailSummary {
    #[serde(default)]
    pub billing_start_date: Option<String>,
    #[serde(default)]
    pub billing_end_date: Option<String>,
    #[serde(default)]
    pub pretax_total: Option<f64>,
    #[serde(default)]
    pub tax: Option<f64>,
    #[serde(default)]
    pub after_tax_total: Option<f64>,
    #[serde(default)]
    pub currency_code: Option<String>,
}

/// One invoice type's figures for one customer: what the exporter publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostLine {
    pub invoice_type: String,
    pub currency: String,
    pub pretax: f64,
    pub tax: f64,
    pub after_tax: f64,
    /// Start of the billing period, seconds since the Unix epoch.
    pub period_start: Option<f64>,
    /// End of the billing period, seconds since the Unix epoch.
    pub period_end: Option<f64>,
}

/// Parses a service-costs body into cost lines, one per invoice type and currency.
///
/// An absent or empty `details` is a customer with nothing to report. A detail that
/// lacks its invoice type, currency or amounts makes the whole body unusable: a
/// partial figure would be a wrong figure. Details of one invoice type and currency
/// are merged into one line (amounts summed, the earliest start and the latest end),
/// in the order they first appear: two lines with one label set would be two
/// samples of one series, and Prometheus would keep only one of them.
pub fn parse_service_costs(body: &[u8]) -> Result<Vec<CostLine>, BodyError> {
    let summary: ServiceCostsSummary = parse_json(body)?;
    let details = summary.details.unwrap_or_default();
    let mut lines: Vec<CostLine> = Vec::with_capacity(details.len());
    // (invoice type, currency) → index in `lines`.
    let mut index: HashMap<(String, String), usize> = HashMap::with_capacity(details.len());
    for detail in details {
        let line = cost_line(detail)?;
        match index.entry((line.invoice_type.clone(), line.currency.clone())) {
            Entry::Occupied(at) => {
                if let Some(existing) = lines.get_mut(*at.get()) {
                    merge_into(existing, &line)?;
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(lines.len());
                lines.push(line);
            }
        }
    }
    // Sized exactly: 10,000 customers keep these for the life of a snapshot.
    lines.shrink_to_fit();
    Ok(lines)
}

/// One detail as a cost line, or why it is unusable.
fn cost_line(detail: ServiceCostsDetail) -> Result<CostLine, BodyError> {
    let invoice_type = detail
        .invoice_type
        .filter(|s| !s.is_empty())
        .ok_or(BodyError::Missing("details[].invoiceType"))?;
    let s = detail
        .summary
        .ok_or(BodyError::Missing("details[].summary"))?;
    let currency = s
        .currency_code
        .filter(|c| !c.is_empty())
        .ok_or(BodyError::Missing("details[].summary.currencyCode"))?;
    Ok(CostLine {
        pretax: finite(s.pretax_total, PRETAX)?,
        tax: finite(s.tax, TAX)?,
        after_tax: finite(s.after_tax_total, AFTER_TAX)?,
        period_start: parse_timestamp(
            s.billing_start_date.as_deref(),
            "details[].summary.billingStartDate",
        )?,
        period_end: parse_timestamp(
            s.billing_end_date.as_deref(),
            "details[].summary.billingEndDate",
        )?,
        invoice_type,
        currency,
    })
}

const PRETAX: &str = "details[].summary.pretaxTotal";
const TAX: &str = "details[].summary.tax";
const AFTER_TAX: &str = "details[].summary.afterTaxTotal";

/// An amount that is present and finite.
fn finite(value: Option<f64>, field: &'static str) -> Result<f64, BodyError> {
    let v = value.ok_or(BodyError::Missing(field))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(BodyError::Invalid {
            field,
            value: v.to_string(),
        })
    }
}

/// Adds `more` (of the same invoice type and currency) to `line`: amounts summed,
/// the period widened to cover both. Sums too large for an f64 are invalid.
fn merge_into(line: &mut CostLine, more: &CostLine) -> Result<(), BodyError> {
    line.pretax = finite(Some(line.pretax + more.pretax), PRETAX)?;
    line.tax = finite(Some(line.tax + more.tax), TAX)?;
    line.after_tax = finite(Some(line.after_tax + more.after_tax), AFTER_TAX)?;
    line.period_start = earliest(line.period_start, more.period_start);
    line.period_end = latest(line.period_end, more.period_end);
    Ok(())
}

/// The earlier of two optional times; a known time beats an unknown one.
pub fn earliest(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The later of two optional times; a known time beats an unknown one.
pub fn latest(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// A customer id in the one form the exporter keys and labels by: a GUID
/// (`8-4-4-4-12` hex digits, the customer's tenant id) in lower case. Partner
/// Center and operators write them in either case; anything else is `None`.
pub fn normalize_customer_id(text: &str) -> Option<String> {
    let text = text.trim();
    let groups: Vec<&str> = text.split('-').collect();
    let shaped = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()));
    shaped.then(|| text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DOCUMENTED: &str = include_str!("../../tests/fixtures/servicecosts-mostrecent.json");

    #[test]
    fn documented_body_gives_documented_values() {
        let lines = parse_service_costs(DOCUMENTED.as_bytes()).unwrap();
        assert_eq!(lines.len(), 2);
        let recurring = &lines[0];
        assert_eq!(recurring.invoice_type, "Recurring");
        assert_eq!(recurring.currency, "USD");
        assert_eq!(
            (recurring.pretax, recurring.tax, recurring.after_tax),
            (17.22, 0.0, 17.22)
        );
        let one_time = &lines[1];
        assert_eq!(one_time.invoice_type, "OneTime");
        assert_eq!(
            (one_time.pretax, one_time.tax, one_time.after_tax),
            (2.0, 0.2, 2.2)
        );
        // 2019-04-30T23:59:59.9999999Z
        let end = one_time.period_end.unwrap();
        assert!((end - 1_556_668_799.999_999_9).abs() < 1e-3, "{end}");
        assert_eq!(one_time.period_start, Some(1_554_076_800.0));
    }

    #[test]
    fn bom_is_stripped() {
        let mut body = b"\xEF\xBB\xBF".to_vec();
        body.extend_from_slice(DOCUMENTED.as_bytes());
        assert_eq!(parse_service_costs(&body).unwrap().len(), 2);
    }

    #[test]
    fn empty_or_absent_details_is_no_costs() {
        assert!(parse_service_costs(br#"{"details":[]}"#)
            .unwrap()
            .is_empty());
        assert!(parse_service_costs(br#"{"pretaxTotal":1}"#)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn bad_bodies_are_typed_errors() {
        assert!(matches!(
            parse_service_costs(b"<html>502 Bad Gateway</html>"),
            Err(BodyError::Malformed(_))
        ));
        assert!(matches!(
            parse_service_costs(
                br#"{"details":[{"invoiceType":"Recurring","summary":{"pretaxTotal":"x"}}]}"#
            ),
            Err(BodyError::Malformed(_))
        ));
        assert_eq!(
            parse_service_costs(br#"{"details":[{"invoiceType":"Recurring","summary":{"pretaxTotal":1,"tax":0,"afterTaxTotal":1}}]}"#),
            Err(BodyError::Missing("details[].summary.currencyCode"))
        );
        assert!(matches!(
            parse_service_costs(br#"{"details":[{"invoiceType":"R","summary":{"pretaxTotal":1,"tax":0,"afterTaxTotal":1,"currencyCode":"USD","billingEndDate":"yesterday"}}]}"#),
            Err(BodyError::Invalid { .. })
        ));
    }

    #[test]
    fn expires_in_as_string_or_number() {
        let v1: TokenResponse =
            parse_json(include_bytes!("../../tests/fixtures/token-v1.json")).unwrap();
        assert_eq!(v1.expires_in.unwrap().as_secs(), Some(3600));
        let v2: TokenResponse =
            parse_json(include_bytes!("../../tests/fixtures/token-v2.json")).unwrap();
        assert_eq!(v2.expires_in.unwrap().as_secs(), Some(3599));
    }

    #[test]
    fn aadsts_code_from_codes_or_description() {
        let body: AadErrorBody = parse_json(include_bytes!(
            "../../tests/fixtures/aad-error-invalid-grant.json"
        ))
        .unwrap();
        assert_eq!(body.error.as_deref(), Some("invalid_grant"));
        assert_eq!(body.aadsts_code(), Some(700082));
        let body: AadErrorBody =
            parse_json(br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret"}"#)
                .unwrap();
        assert_eq!(body.aadsts_code(), Some(7000215));
    }

    #[test]
    fn customers_page_with_next_link() {
        let page: CustomersPage =
            parse_json(include_bytes!("../../tests/fixtures/customers-page.json")).unwrap();
        assert_eq!(page.items.len(), 2);
        let first = page.items[0].0.as_ref().unwrap();
        assert_eq!(
            first.id.0.as_deref(),
            Some("b44bb1fb-8d9a-4ba7-9a1a-1f2a8a4e7b01")
        );
        let profile = first.company_profile.0.as_ref().unwrap();
        assert_eq!(profile.company_name.0.as_deref(), Some("Contoso"));
        assert_eq!(profile.domain.0.as_deref(), Some("contoso.onmicrosoft.com"));
        let next = page.links.unwrap().next.unwrap();
        assert_eq!(next.uri, "/v1/customers?size=2&seekOperation=Next");
        assert_eq!(next.headers[0].key, "MS-ContinuationToken");
    }

    #[test]
    fn a_broken_customer_item_costs_only_that_item() {
        let page: CustomersPage = parse_json(
            br#"{"items":[
                {"companyProfile":{"companyName":"No id"}},
                {"id":null},
                {"id":42,"companyProfile":{"companyName":"Numeric id"}},
                {"id":["x"]},
                "not an object",
                null,
                {"id":"ae1d5b32-f9ff-4252-b2bf-40e21937a51a","companyProfile":"not an object"},
                {"id":"b44bb1fb-8d9a-4ba7-9a1a-1f2a8a4e7b01","companyProfile":{"companyName":7,"domain":"d.example"}}
            ],"links":{"next":{"uri":"/v1/customers?seekOperation=Next"}}}"#,
        )
        .unwrap();
        let ids: Vec<Option<&str>> = page
            .items
            .iter()
            .map(|item| item.0.as_ref().and_then(|c| c.id.0.as_deref()))
            .collect();
        assert_eq!(
            ids,
            [
                None,
                None,
                None,
                None,
                None,
                None,
                Some("ae1d5b32-f9ff-4252-b2bf-40e21937a51a"),
                Some("b44bb1fb-8d9a-4ba7-9a1a-1f2a8a4e7b01"),
            ]
        );
        let last = page.items[7].0.as_ref().unwrap();
        let profile = last.company_profile.0.as_ref().unwrap();
        assert_eq!(profile.company_name.0, None);
        assert_eq!(profile.domain.0.as_deref(), Some("d.example"));
        assert!(page.links.unwrap().next.is_some());
        // Broken JSON is still a broken body.
        assert!(parse_json::<CustomersPage>(br#"{"items":[{"id":"a"}"#).is_err());
    }

    #[test]
    fn customer_ids_are_lower_case_guids() {
        assert_eq!(
            normalize_customer_id(" AE1D5B32-F9FF-4252-B2BF-40E21937A51A "),
            Some("ae1d5b32-f9ff-4252-b2bf-40e21937a51a".to_owned())
        );
        for bad in [
            "",
            "not-a-guid",
            "contoso.onmicrosoft.com",
            "ae1d5b32f9ff4252b2bf40e21937a51a",
            "{ae1d5b32-f9ff-4252-b2bf-40e21937a51a}",
            "ae1d5b32-f9ff-4252-b2bf-40e21937a51g",
            "ae1d5b32-f9ff-4252-b2bf-40e21937a51a-",
            "ae1d5b3-2f9ff-4252-b2bf-40e21937a51a",
        ] {
            assert_eq!(normalize_customer_id(bad), None, "{bad:?}");
        }
    }

    /// A body whose details are (invoice type, currency, pretax, tax, start, end).
    fn body_of(details: &[(&str, &str, f64, f64, &str, &str)]) -> Vec<u8> {
        let details: Vec<serde_json::Value> = details
            .iter()
            .map(|(invoice_type, currency, pretax, tax, start, end)| {
                serde_json::json!({
                    "invoiceType": invoice_type,
                    "summary": {
                        "billingStartDate": start,
                        "billingEndDate": end,
                        "pretaxTotal": pretax,
                        "tax": tax,
                        "afterTaxTotal": pretax + tax,
                        "currencyCode": currency,
                    }
                })
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({ "details": details })).unwrap()
    }

    #[test]
    fn details_of_one_invoice_type_and_currency_are_merged() {
        let body = body_of(&[
            (
                "Recurring",
                "USD",
                10.5,
                1.0,
                "2019-04-01T00:00:00Z",
                "2019-04-30T00:00:00Z",
            ),
            ("OneTime", "USD", 2.0, 0.2, "2019-04-01T00:00:00Z", ""),
            (
                "Recurring",
                "USD",
                4.25,
                0.5,
                "2019-03-15T00:00:00Z",
                "2019-04-15T00:00:00Z",
            ),
            (
                "Recurring",
                "EUR",
                7.0,
                0.0,
                "2019-01-01T00:00:00Z",
                "2019-12-31T00:00:00Z",
            ),
            ("OneTime", "USD", 3.0, 0.3, "", "2019-05-01T00:00:00Z"),
        ]);
        let lines = parse_service_costs(&body).unwrap();
        let keys: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| (l.invoice_type.as_str(), l.currency.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("Recurring", "USD"),
                ("OneTime", "USD"),
                ("Recurring", "EUR")
            ],
            "one line per invoice type and currency, in the order of first appearance"
        );
        let recurring = &lines[0];
        assert_eq!(
            (recurring.pretax, recurring.tax, recurring.after_tax),
            (10.5 + 4.25, 1.0 + 0.5, (10.5 + 1.0) + (4.25 + 0.5))
        );
        assert_eq!(
            recurring.period_start,
            Some(1_552_608_000.0),
            "the earliest start"
        );
        assert_eq!(
            recurring.period_end,
            Some(1_556_582_400.0),
            "the latest end"
        );
        let one_time = &lines[1];
        assert_eq!((one_time.pretax, one_time.tax), (5.0, 0.2 + 0.3));
        // A known date beats an absent one on either side.
        assert_eq!(one_time.period_start, Some(1_554_076_800.0));
        assert_eq!(one_time.period_end, Some(1_556_668_800.0));
        // The other currency is its own line, untouched.
        assert_eq!((lines[2].pretax, lines[2].after_tax), (7.0, 7.0));
        assert_eq!(lines.capacity(), lines.len());
    }

    #[test]
    fn merged_amounts_beyond_f64_are_invalid() {
        let body = body_of(&[
            ("Recurring", "USD", 1e308, 0.0, "", ""),
            ("Recurring", "USD", 1e308, 0.0, "", ""),
        ]);
        assert!(matches!(
            parse_service_costs(&body),
            Err(BodyError::Invalid {
                field: "details[].summary.pretaxTotal",
                ..
            })
        ));
    }

    fn timestamp(text: &str) -> Result<Option<f64>, BodyError> {
        parse_timestamp(Some(text), "t")
    }

    /// The date and time of Unix day `days` (Howard Hinnant's `civil_from_days`).
    fn civil_from_days(days: i64) -> (i64, i64, i64) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }

    proptest! {
        #[test]
        fn parsers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_service_costs(&body);
            let _ = parse_json::<CustomersPage>(&body);
            let _ = parse_json::<TokenResponse>(&body);
            let _ = parse_json::<AadErrorBody>(&body).map(|b| b.aadsts_code());
        }

        #[test]
        fn parsers_never_panic_on_json_like_text(body in r#"\{"details":\[\{"invoiceType":".{0,8}","summary":\{"pretaxTotal":[-0-9.e"]{0,12},"currencyCode":".{0,4}","billingEndDate":".{0,32}"\}\}\]\}"#) {
            let _ = parse_service_costs(body.as_bytes());
        }

        #[test]
        fn timestamps_never_panic(text in ".{0,40}") {
            let _ = parse_timestamp(Some(&text), "t");
        }

        #[test]
        fn timestamp_like_text_never_panics(text in r"[0-9]{0,5}-?[0-9]{0,3}-?[0-9]{0,3}[Tt ]?[0-9]{0,3}:?[0-9]{0,3}:?[0-9]{0,3}(\.[0-9]{0,12})?[Zz+-]?[0-9:]{0,6}") {
            let _ = parse_timestamp(Some(&text), "t");
        }

        #[test]
        fn timestamps_round_trip_with_any_offset(
            seconds in -2_208_988_800i64..253_402_300_800,
            offset_minutes in -1439i64..=1439,
            nanos in 0u32..1_000_000_000,
        ) {
            // Written as a clock at that offset would show it.
            let local = seconds + offset_minutes * 60;
            let (year, month, day) = civil_from_days(local.div_euclid(86_400));
            let in_day = local.rem_euclid(86_400);
            prop_assume!((1900..=9999).contains(&year));
            let sign = if offset_minutes < 0 { '-' } else { '+' };
            let text = format!(
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}{sign}{:02}:{:02}",
                in_day / 3600,
                in_day / 60 % 60,
                in_day % 60,
                offset_minutes.abs() / 60,
                offset_minutes.abs() % 60,
            );
            let want = seconds as f64 + f64::from(nanos) / 1e9;
            prop_assert_eq!(timestamp(&text), Ok(Some(want)), "{}", text);
        }

        #[test]
        fn timestamps_agree_with_humantime_where_it_accepts_them(
            text in r"(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|\+00:00)?"
        ) {
            if let Ok(time) = humantime::parse_rfc3339_weak(&text) {
                prop_assert_eq!(timestamp(&text), Ok(Some(unix_seconds(time))), "{}", text);
            } else {
                // Only impossible days (30 February) are refused by both.
                prop_assert!(timestamp(&text).is_err(), "{}", text);
            }
        }
    }
}
