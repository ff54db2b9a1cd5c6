//! What more than one Partner Center route serves: the `attributes` and `links`
//! shapes, paging by `MS-ContinuationToken` (docs/partner-center.md §3) with the
//! tokens themselves, and the statuses a knob forces on a route (with the
//! documented 401 and 403 bodies, §4).

use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
use base64::Engine as _;
use http::{HeaderMap, Response, StatusCode};
use serde::Serialize;
use serde_json::Value;

use crate::codec::Form;
use crate::server::{challenge, empty, Body, JSON_UTF8};
use crate::state::Shared;
use crate::util::header_str;

pub(crate) const FIXTURE_403: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/error-403-no-relationship.json"
));
pub(crate) const FIXTURE_401_MFA: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/error-401-mfa.json"
));

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Attributes {
    pub(crate) object_type: &'static str,
}

#[derive(Serialize)]
pub(crate) struct Link {
    uri: String,
    method: &'static str,
    headers: Vec<LinkHeader>,
}

#[derive(Serialize)]
struct LinkHeader {
    key: &'static str,
    value: String,
}

impl Link {
    /// A `GET` link without headers.
    pub(crate) fn get(uri: String) -> Self {
        Link {
            uri,
            method: "GET",
            headers: Vec::new(),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct PageLinks {
    #[serde(rename = "self")]
    pub(crate) self_link: Link,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) next: Option<Link>,
}

/// Where the page asked for starts: `None` for the first page, else the offset in
/// the `MS-ContinuationToken` of a `seekOperation=Next` request. The error is the
/// response to send.
pub(crate) fn seek_offset(
    shared: &Shared,
    headers: &HeaderMap,
    query: &Form,
) -> Result<Option<usize>, Box<Response<Body>>> {
    match query.get("seekOperation") {
        None => return Ok(None),
        Some(op) if op.eq_ignore_ascii_case("next") || op == "0" => {}
        Some(_) => {
            return Err(Box::new(shared.pc_error(
                StatusCode::BAD_REQUEST,
                Value::from(400),
                "Unsupported seekOperation; only Next is supported.",
            )))
        }
    }
    match header_str(headers, "ms-continuationtoken")
        .and_then(|token| shared.parse_continuation(token))
    {
        Some(offset) => Ok(Some(offset)),
        None => Err(Box::new(shared.pc_error(
            StatusCode::BAD_REQUEST,
            Value::from(400),
            "The MS-ContinuationToken header is missing or invalid.",
        ))),
    }
}

/// The `links.next` of a page: `GET` of `/v1/` and `path` (or of `path` alone, as
/// some Partner Center answers have it: [`Knobs::set_next_link_without_v1`]), with
/// an `MS-ContinuationToken` header for `offset` (and `nonce`, see
/// [`Shared::continuation_token`]).
///
/// [`Knobs::set_next_link_without_v1`]: crate::Knobs::set_next_link_without_v1
pub(crate) fn next_link(shared: &Shared, path: &str, offset: usize, nonce: Option<u64>) -> Link {
    let prefix = if shared.knobs.next_link_without_v1() {
        ""
    } else {
        "/v1/"
    };
    Link {
        uri: format!("{prefix}{path}"),
        method: "GET",
        headers: vec![LinkHeader {
            key: "MS-ContinuationToken",
            value: shared.continuation_token(offset, nonce),
        }],
    }
}

/// Continuation tokens: the offset, masked, behind a per-simulator salt, in
/// standard base64 (written padded, read with or without padding).
impl Shared {
    /// A token for `offset`; with a nonce, one that no other token equals.
    pub(crate) fn continuation_token(&self, offset: usize, nonce: Option<u64>) -> String {
        let mut bytes = self.salt.to_be_bytes().to_vec();
        bytes.extend_from_slice(&((offset as u64) ^ self.offset_mask()).to_be_bytes());
        if let Some(nonce) = nonce {
            bytes.extend_from_slice(&nonce.to_be_bytes());
        }
        STANDARD_PAD_INDIFFERENT.encode(&bytes)
    }

    /// The offset of a token this simulator issued; `None` for any other text.
    pub(crate) fn parse_continuation(&self, token: &str) -> Option<usize> {
        let bytes = STANDARD_PAD_INDIFFERENT.decode(token.trim()).ok()?;
        let (salt, rest) = bytes.split_at_checked(8)?;
        if salt != self.salt.to_be_bytes() {
            return None;
        }
        let (offset, nonce) = rest.split_at_checked(8)?;
        if !(nonce.is_empty() || nonce.len() == 8) {
            return None;
        }
        let offset = u64::from_be_bytes(offset.try_into().ok()?) ^ self.offset_mask();
        usize::try_from(offset).ok()
    }

    fn offset_mask(&self) -> u64 {
        self.salt.rotate_left(17) ^ 0x9E37_79B9_7F4A_7C15
    }
}

/// What the service-costs routes check first: an App+User token, and the one
/// billing period there is, `MostRecent` in any case (docs/partner-center.md §2, §8).
/// The error is the response to send.
pub(crate) fn most_recent_gate(
    shared: &Shared,
    headers: &HeaderMap,
    period: &str,
) -> Result<(), Box<Response<Body>>> {
    shared.app_user_gate(headers)?;
    if !period.eq_ignore_ascii_case("MostRecent") {
        return Err(Box::new(shared.pc_error(
            StatusCode::BAD_REQUEST,
            Value::from(400),
            "Invalid billing period. The only supported value is MostRecent.",
        )));
    }
    Ok(())
}

/// The status a knob forces: 401 → the documented MFA body, 403 → the documented
/// no-relationship body, 429 → the documented throttled body, others → a Partner
/// Center error (statuses below 200 count as 500).
pub(crate) fn forced_status(shared: &Shared, status: u16) -> Response<Body> {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.as_u16() >= 200)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status.as_u16() {
        204 | 205 | 304 => empty(status),
        401 => {
            let mut resp = shared.json_bytes(status, JSON_UTF8, FIXTURE_401_MFA.as_bytes());
            challenge(&mut resp);
            resp
        }
        403 => shared.json_bytes(status, JSON_UTF8, FIXTURE_403.as_bytes()),
        404 => shared.pc_error(status, Value::from(1000), "Not found."),
        429 => shared.throttled(1),
        500 => shared.pc_error(status, Value::from(800_003), "Unexpected service error."),
        code => shared.pc_error(
            status,
            Value::from(code),
            status.canonical_reason().unwrap_or("Error"),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use crate::SimulatorConfig;

    #[test]
    fn base64_and_continuation_tokens_round_trip() {
        let decode = |text: &str| STANDARD_PAD_INDIFFERENT.decode(text).ok();
        assert_eq!(STANDARD_PAD_INDIFFERENT.encode(b"hello"), "aGVsbG8=");
        assert_eq!(URL_SAFE_NO_PAD.encode(b"hello"), "aGVsbG8");
        assert_eq!(decode("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(
            decode("aGVsbG8"),
            Some(b"hello".to_vec()),
            "padding optional"
        );
        assert_eq!(decode("a*b"), None);
        let shared = Shared::new(&SimulatorConfig {
            customers: 0,
            ..SimulatorConfig::default()
        });
        for offset in [0, 10, 500, usize::MAX] {
            let token = shared.continuation_token(offset, None);
            assert_eq!(shared.parse_continuation(&token), Some(offset));
            let token = shared.continuation_token(offset, Some(7));
            assert_eq!(shared.parse_continuation(&token), Some(offset));
        }
        let token = shared.continuation_token(10, None);
        let mut tampered = token.into_bytes();
        tampered[2] = if tampered[2] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            shared.parse_continuation(std::str::from_utf8(&tampered).unwrap()),
            None
        );
    }
}
