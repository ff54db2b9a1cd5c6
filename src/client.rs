//! The Partner Center REST client: customer discovery and service-cost summaries.
//!
//! Every request goes through one path ([`PartnerCenterClient::get`]) that waits on the
//! shared rate limiter (`--poll.rate-limit`), carries a fresh bearer token and the
//! `Accept`, `MS-RequestId` and `MS-CorrelationId` headers, is cut by the
//! request timeout, is counted in `partnercenter_api_requests_total`, and is retried
//! on 429, 5xx, timeouts and connection errors with full-jitter backoff (at least the
//! server's `Retry-After`, all waits of one call together within the backoff's
//! `max_total`), keeping the same `MS-RequestId` across the retries of one
//! call. A 401 is retried once with a renewed token, renewals coalesced as
//! [`crate::auth`] describes (a 401 on a token that was itself the renewal after a
//! 401 in this poll is final); 400, 403 and 404 are never retried. Bodies are read with a size limit and parsed by [`crate::model`].
//!
//! The client does not decide what a failure means for the snapshot: that is the
//! poller's job.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::Retryable;
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::StatusCode;

use crate::auth::{transport_kind, AuthError, Authenticator};
use crate::metrics::{Endpoint, Telemetry};
use crate::model::{
    parse_json, parse_service_costs, ApiErrorBody, BodyError, CostLine, CustomersPage,
    MAX_BODY_BYTES,
};
use crate::retry::{read_body_limited, Backoff, RetryAfter, RetryBudget};

/// Customers asked for per page: Partner Center's maximum (API.md §3).
pub const PAGE_SIZE: usize = 500;
/// Pages followed at most: 5 million customers, far beyond any partner; a guard
/// against a next link that loops.
const MAX_PAGES: usize = 10_000;

/// Why a Partner Center call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// An HTTP error answer (after retries, where retried).
    #[error("HTTP {status}{}", code.as_ref().map(|c| format!(" (code {c})")).unwrap_or_default())]
    Status {
        status: u16,
        code: Option<String>,
        /// The server's `Retry-After`, the floor of the next wait.
        retry_after: Option<RetryAfter>,
    },
    /// No usable answer: connection refused or reset, timeout.
    #[error("{0}")]
    Transport(&'static str),
    /// An answer whose body could not be used.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The customers list kept pointing at further pages beyond any real size.
    #[error("customer list paging did not end after {MAX_PAGES} pages")]
    Paging,
}

impl ApiError {
    /// A fixed, low-cardinality name for logs and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::Auth(_) => "auth",
            ApiError::Status { status: 429, .. } => "throttled",
            ApiError::Status { status: 401, .. } => "unauthorized",
            ApiError::Status { status: 403, .. } => "forbidden",
            ApiError::Status { status, .. } if *status >= 500 => "server_error",
            ApiError::Status { .. } => "client_error",
            ApiError::Transport("timeout") => "timeout",
            ApiError::Transport(_) => "transport",
            ApiError::Body(BodyError::TooLarge) => "body_too_large",
            ApiError::Body(_) => "bad_body",
            ApiError::Paging => "paging",
        }
    }

    fn is_retryable(&self) -> bool {
        match self {
            ApiError::Status { status, .. } => *status == 429 || *status >= 500,
            ApiError::Transport(_) => true,
            // A body cut short by a timeout or reset is a transport failure.
            ApiError::Body(BodyError::Malformed(m)) => m.starts_with("body read failed"),
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<RetryAfter> {
        match self {
            ApiError::Status {
                retry_after: Some(r),
                ..
            } => Some(*r),
            _ => None,
        }
    }
}

/// A customer found by discovery.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveredCustomer {
    pub id: String,
    pub name: String,
    pub domain: String,
}

/// The Partner Center client, shared by the poller's tasks.
pub struct PartnerCenterClient {
    http: reqwest::Client,
    base_url: String,
    auth: Arc<Authenticator>,
    limiter: DefaultDirectRateLimiter,
    telemetry: Arc<Telemetry>,
    backoff: Backoff,
}

/// A limiter that paces `per_minute` requests evenly, with a burst of two seconds'
/// worth (at least one request) so that a server enforcing the same rate with any
/// bucket of a few seconds never answers 429.
pub fn rate_limiter(per_minute: u32) -> DefaultDirectRateLimiter {
    let per_minute = per_minute.max(1);
    let period = Duration::from_secs_f64(60.0 / f64::from(per_minute));
    let burst = NonZeroU32::new((per_minute / 30).max(1)).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    RateLimiter::direct(quota)
}

impl PartnerCenterClient {
    pub fn new(
        http: reqwest::Client,
        base_url: String,
        auth: Arc<Authenticator>,
        rate_limit_per_minute: u32,
        telemetry: Arc<Telemetry>,
        backoff: Backoff,
    ) -> PartnerCenterClient {
        PartnerCenterClient {
            http,
            base_url,
            auth,
            limiter: rate_limiter(rate_limit_per_minute),
            telemetry,
            backoff,
        }
    }

    /// Every customer of the partner, following `links.next` (API.md §3).
    #[tracing::instrument(skip(self))]
    pub async fn list_customers(&self) -> Result<Vec<DiscoveredCustomer>, ApiError> {
        let mut url = format!("{}/v1/customers?size={PAGE_SIZE}", self.base_url);
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut customers = Vec::new();
        for _ in 0..MAX_PAGES {
            let body = self.get(Endpoint::Customers, &url, &headers).await?;
            let page: CustomersPage = parse_json(&body)?;
            for item in page.items {
                if item.id.is_empty() {
                    continue;
                }
                let profile = item.company_profile.unwrap_or_default();
                customers.push(DiscoveredCustomer {
                    id: item.id,
                    name: profile.company_name.unwrap_or_default(),
                    domain: profile.domain.unwrap_or_default(),
                });
            }
            let Some(next) = page.links.and_then(|l| l.next) else {
                tracing::debug!(customers = customers.len(), "customer discovery finished");
                return Ok(customers);
            };
            url = resolve_link(&self.base_url, &next.uri);
            headers = next.headers.into_iter().map(|h| (h.key, h.value)).collect();
        }
        Err(ApiError::Paging)
    }

    /// The customer's `MostRecent` service costs; `None` when Partner Center has no
    /// data for the customer (404).
    #[tracing::instrument(skip(self))]
    pub async fn service_costs(
        &self,
        customer_id: &str,
    ) -> Result<Option<Vec<CostLine>>, ApiError> {
        let url = format!(
            "{}/v1/customers/{}/servicecosts/MostRecent",
            self.base_url,
            encode_path_segment(customer_id)
        );
        match self.get(Endpoint::ServiceCosts, &url, &[]).await {
            Ok(body) => Ok(Some(parse_service_costs(&body)?)),
            Err(ApiError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One call: retried as the module docs say, with one `MS-RequestId` throughout.
    async fn get(
        &self,
        endpoint: Endpoint,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<Bytes, ApiError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let mut budget = RetryBudget::of(&self.backoff);
        (|| self.attempt(endpoint, url, headers, &request_id, &correlation_id))
            .retry(self.backoff.clone())
            .when(ApiError::is_retryable)
            .adjust(|err, wait| budget.next_wait(wait, err.retry_after()))
            .notify(|err, wait| {
                tracing::debug!(endpoint = endpoint.as_str(), error = %err, wait = ?wait, "request failed; retrying");
            })
            .await
    }

    async fn attempt(
        &self,
        endpoint: Endpoint,
        url: &str,
        headers: &[(String, String)],
        request_id: &str,
        correlation_id: &str,
    ) -> Result<Bytes, ApiError> {
        let token = self.auth.token().await?;
        self.limiter.until_ready().await;
        let mut response = self
            .send(
                endpoint,
                url,
                headers,
                request_id,
                correlation_id,
                &token.bearer(),
            )
            .await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            // The token may have been revoked or expired early: try once more with a
            // renewed one, unless this one already was the renewal after a 401.
            if let Some(token) = self.auth.renew_after_rejection(&token).await? {
                self.limiter.until_ready().await;
                response = self
                    .send(
                        endpoint,
                        url,
                        headers,
                        request_id,
                        correlation_id,
                        &token.bearer(),
                    )
                    .await?;
            }
        }
        let status = response.status();
        let retry_after = RetryAfter::from_headers(response.headers());
        let body = read_body_limited(response, MAX_BODY_BYTES).await?;
        if status.is_success() {
            return Ok(body);
        }
        let error: ApiErrorBody = parse_json(&body).unwrap_or_default();
        Err(ApiError::Status {
            status: status.as_u16(),
            code: error.code.map(|c| c.to_text().chars().take(32).collect()),
            retry_after,
        })
    }

    async fn send(
        &self,
        endpoint: Endpoint,
        url: &str,
        headers: &[(String, String)],
        request_id: &str,
        correlation_id: &str,
        bearer: &str,
    ) -> Result<reqwest::Response, ApiError> {
        let mut request = self
            .http
            .get(url)
            .header(http::header::AUTHORIZATION, bearer)
            .header(http::header::ACCEPT, "application/json")
            .header("MS-RequestId", request_id)
            .header("MS-CorrelationId", correlation_id)
            .header("X-Locale", "en-US");
        for (key, value) in headers {
            request = request.header(key.as_str(), value.as_str());
        }
        let started = Instant::now();
        match request.send().await {
            Ok(response) => {
                self.telemetry.observe_request(
                    endpoint,
                    Some(response.status().as_u16()),
                    started.elapsed(),
                );
                Ok(response)
            }
            Err(e) => {
                self.telemetry
                    .observe_request(endpoint, None, started.elapsed());
                Err(ApiError::Transport(transport_kind(&e)))
            }
        }
    }
}

/// Resolves a `links.next.uri`: absolute URLs on the same base are used as they are;
/// a path starting with `/v1/` is joined to the base; any other path gets `/v1` in
/// front (both forms exist, API.md §3 and Partner-Center-PowerShell#379).
pub fn resolve_link(base_url: &str, uri: &str) -> String {
    let uri = uri.trim();
    if let Some(rest) = uri.strip_prefix(base_url) {
        if rest.starts_with('/') {
            return uri.to_owned();
        }
    }
    if uri.starts_with("/v1/") {
        format!("{base_url}{uri}")
    } else if let Some(rest) = uri.strip_prefix("v1/") {
        format!("{base_url}/v1/{rest}")
    } else if uri.starts_with('/') {
        format!("{base_url}/v1{uri}")
    } else {
        // An absolute URL elsewhere is not followed: the token must not leave the base.
        let path = uri
            .split_once("://")
            .map_or(uri, |(_, rest)| rest.find('/').map_or("", |i| &rest[i..]));
        if path.is_empty() || path == uri {
            format!("{base_url}/v1/{uri}")
        } else if path.starts_with("/v1/") {
            format!("{base_url}{path}")
        } else {
            format!("{base_url}/v1{path}")
        }
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986 §2.3).
fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_in_every_form() {
        let base = "http://127.0.0.1:1";
        let want = "http://127.0.0.1:1/v1/customers?size=500&seekOperation=Next";
        assert_eq!(
            resolve_link(base, "/v1/customers?size=500&seekOperation=Next"),
            want
        );
        assert_eq!(
            resolve_link(base, "customers?size=500&seekOperation=Next"),
            want
        );
        assert_eq!(
            resolve_link(base, "/customers?size=500&seekOperation=Next"),
            want
        );
        assert_eq!(
            resolve_link(base, "v1/customers?size=500&seekOperation=Next"),
            want
        );
        assert_eq!(resolve_link(base, want), want);
        // Another host is never called with our token.
        assert_eq!(
            resolve_link(
                base,
                "https://evil.example/v1/customers?size=500&seekOperation=Next"
            ),
            want
        );
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_path_segment("ae1d5b32-f9ff"), "ae1d5b32-f9ff");
        assert_eq!(encode_path_segment("a/../b c"), "a%2F..%2Fb%20c");
    }

    #[test]
    fn error_kinds_are_fixed() {
        let e = ApiError::Status {
            status: 429,
            code: None,
            retry_after: None,
        };
        assert_eq!(e.kind(), "throttled");
        assert!(e.is_retryable());
        for status in [400, 403, 404] {
            assert!(!ApiError::Status {
                status,
                code: None,
                retry_after: None
            }
            .is_retryable());
        }
        assert!(ApiError::Transport("timeout").is_retryable());
        assert!(!ApiError::Body(BodyError::TooLarge).is_retryable());
    }
}
