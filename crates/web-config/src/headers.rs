//! `http_server_config.headers`: the response headers a web config may set.
//!
//! Owns which headers may be configured and with which values, as exporter-toolkit
//! allows them; it does not add them to responses (the server does).

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};

use crate::Problem;

/// The headers exporter-toolkit lets a web config set, with their allowed values
/// (empty: any value). Anything else is refused, as there.
const CONFIGURABLE_HEADERS: [(&str, HeaderName, &[&str]); 5] = [
    (
        "Strict-Transport-Security",
        http::header::STRICT_TRANSPORT_SECURITY,
        &[],
    ),
    (
        "X-Content-Type-Options",
        http::header::X_CONTENT_TYPE_OPTIONS,
        &["nosniff"],
    ),
    (
        "X-Frame-Options",
        http::header::X_FRAME_OPTIONS,
        &["deny", "sameorigin"],
    ),
    ("X-XSS-Protection", http::header::X_XSS_PROTECTION, &[]),
    (
        "Content-Security-Policy",
        http::header::CONTENT_SECURITY_POLICY,
        &[],
    ),
];

/// Validates the configured headers; blank values are dropped.
pub(crate) fn validate(
    headers: BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, Problem> {
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let key = format!("http_server_config.headers.{name}");
        let Some((_, header_name, allowed)) = CONFIGURABLE_HEADERS
            .iter()
            .find(|(known, _, _)| known.eq_ignore_ascii_case(&name))
        else {
            let names: Vec<&str> = CONFIGURABLE_HEADERS.iter().map(|(n, _, _)| *n).collect();
            return Err(Problem::new(
                key,
                format!(
                    "this header cannot be configured (allowed: {})",
                    names.join(", ")
                ),
            ));
        };
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(Problem::new(
                key,
                format!(
                    "invalid value {value:?} (expected one of {})",
                    allowed.join(", ")
                ),
            ));
        }
        if value.is_empty() {
            // "Unset if blank", as documented by exporter-toolkit.
            continue;
        }
        if out.iter().any(|(n, _)| n == header_name) {
            return Err(Problem::new(key, "set more than once"));
        }
        let header_value = HeaderValue::from_str(&value)
            .map_err(|_| Problem::new(key, "not a valid HTTP header value"))?;
        out.push((header_name.clone(), header_value));
    }
    Ok(out)
}
