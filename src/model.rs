//! Wire types of Azure AD and Partner Center, and the parsers that turn response
//! bodies into them.
//!
//! This module owns every `serde` shape the exporter reads from the network and the
//! rules for tolerating what the services actually send (API.md §1f, §2, §3, §4): a
//! leading UTF-8 BOM, numbers as strings or JSON numbers, integer or float amounts,
//! 7-digit fractional timestamps, unknown fields, and optional everything. It does no
//! I/O and never panics on input: every parser returns a [`BodyError`].

use std::time::{SystemTime, UNIX_EPOCH};

use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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

/// A successful token response, from AAD v1, AAD v2 or `generatetoken` (API.md §1f).
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: SecretString,
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    #[serde(default)]
    pub expires_in: Option<StringOrNumber>,
}

/// An Azure AD error body (API.md §1g).
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

/// A Partner Center error body (API.md §4), or the 429 body (`statusCode`/`message`).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ApiErrorBody {
    #[serde(default)]
    pub code: Option<StringOrNumber>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// A page of `GET /v1/customers` (API.md §3).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomersPage {
    #[serde(default)]
    pub items: Vec<Customer>,
    #[serde(default)]
    pub links: Option<CollectionLinks>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    pub id: String,
    #[serde(default)]
    pub company_profile: Option<CompanyProfile>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CompanyProfile {
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub company_name: Option<String>,
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

/// `ServiceCostsSummary` (API.md §2b, §2c). Only `details` is read: the root-level
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

/// Parses a service-costs body into cost lines, one per invoice type.
///
/// An absent or empty `details` is a customer with nothing to report. A detail that
/// lacks its invoice type, currency or amounts makes the whole body unusable: a
/// partial figure would be a wrong figure.
pub fn parse_service_costs(body: &[u8]) -> Result<Vec<CostLine>, BodyError> {
    let summary: ServiceCostsSummary = parse_json(body)?;
    let details = summary.details.unwrap_or_default();
    // Sized exactly: 10,000 customers keep these for the life of a snapshot.
    let mut lines = Vec::with_capacity(details.len());
    for detail in details {
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
        let amount = |value: Option<f64>, field: &'static str| {
            let v = value.ok_or(BodyError::Missing(field))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(BodyError::Invalid {
                    field,
                    value: v.to_string(),
                })
            }
        };
        lines.push(CostLine {
            pretax: amount(s.pretax_total, "details[].summary.pretaxTotal")?,
            tax: amount(s.tax, "details[].summary.tax")?,
            after_tax: amount(s.after_tax_total, "details[].summary.afterTaxTotal")?,
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
        });
    }
    Ok(lines)
}

/// Parses a Partner Center timestamp (`2019-04-30T23:59:59.9999999Z`, with or without
/// the `Z`) into seconds since the Unix epoch. Absent or empty is `None`.
pub fn parse_timestamp(value: Option<&str>, field: &'static str) -> Result<Option<f64>, BodyError> {
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let invalid = || BodyError::Invalid {
        field,
        value: text.chars().take(64).collect(),
    };
    let time = humantime::parse_rfc3339_weak(text).map_err(|_| invalid())?;
    Ok(Some(unix_seconds(time)))
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

/// Seconds since the Unix epoch, negative before it.
pub fn unix_seconds(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DOCUMENTED: &str = include_str!("../tests/fixtures/servicecosts-mostrecent.json");

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
            parse_json(include_bytes!("../tests/fixtures/token-v1.json")).unwrap();
        assert_eq!(v1.expires_in.unwrap().as_secs(), Some(3600));
        let v2: TokenResponse =
            parse_json(include_bytes!("../tests/fixtures/token-v2.json")).unwrap();
        assert_eq!(v2.expires_in.unwrap().as_secs(), Some(3599));
    }

    #[test]
    fn aadsts_code_from_codes_or_description() {
        let body: AadErrorBody = parse_json(include_bytes!(
            "../tests/fixtures/aad-error-invalid-grant.json"
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
            parse_json(include_bytes!("../tests/fixtures/customers-page.json")).unwrap();
        assert_eq!(page.items.len(), 2);
        let next = page.links.unwrap().next.unwrap();
        assert_eq!(next.uri, "/v1/customers?size=2&seekOperation=Next");
        assert_eq!(next.headers[0].key, "MS-ContinuationToken");
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
    }
}
