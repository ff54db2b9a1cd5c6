//! The Partner Center REST client: customer discovery, service-cost summaries and
//! line items, usage records, invoices and invoice summaries.
//!
//! Every request goes through one path ([`PartnerCenterClient::get`]) that waits for
//! one of `--poll.concurrency` slots and on the rate limiter (`--poll.rate-limit`),
//! both shared by all collectors, carries a fresh bearer token and the
//! `Accept`, `MS-RequestId` and `MS-CorrelationId` headers, is cut by the
//! request timeout, is counted in `partnercenter_api_requests_total`, and is retried
//! on 429, 5xx, timeouts and connection errors with full-jitter backoff (at least the
//! server's `Retry-After`, all waits of one call together within the backoff's
//! `max_total`), keeping the same `MS-RequestId` across the retries of one
//! call. A 401 is retried once with a renewed token, renewals coalesced as
//! [`crate::auth`] describes (a 401 on a token that was itself the renewal after a
//! 401 in this poll is final); 400, 403 and 404 are never retried. Bodies are read with a size limit and parsed by [`crate::model`].
//!
//! Discovery follows the customer list's next links and returns each customer
//! once, keyed by its tenant GUID in lower case; items without one are skipped
//! (the bookkeeping is `partner_center::discovery`). A list whose next links loop,
//! or that goes on beyond any real size, fails discovery (kind `paging`) instead of
//! growing without bound. The invoice list and line items are walked the same way
//! ([`PartnerCenterClient::walk`]), and a next link to another host ends the walk.
//!
//! The client does not decide what a failure means for the snapshot: that is the
//! collectors' job.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::Retryable;
use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::StatusCode;

use crate::auth::{AuthError, Authenticator};
use crate::http::retry::{Backoff, RetryAfter, RetryBudget};
use crate::http::{read_body_limited, ReadError, TransportError};
use crate::partner_center::discovery::Discovery;
use crate::partner_center::invoices::{
    parse_invoice_summaries, parse_invoices, Invoice, InvoiceSummary,
};
use crate::partner_center::lineitems::{parse_line_items, LineItem};
use crate::partner_center::model::{
    parse_json, parse_service_costs, ApiErrorBody, BodyError, CostLine, CustomersPage, Link,
    MAX_BODY_BYTES,
};
use crate::partner_center::usage::{parse_usage_records, UsageRecord};
use crate::telemetry::{Endpoint, Telemetry};

/// Customers asked for per page: Partner Center's maximum (docs/partner-center.md §3).
pub const PAGE_SIZE: usize = 500;
/// Items read from the customer list at most, over all its pages: far beyond the
/// largest partner, and a bound on what a list that never ends can cost.
const MAX_LISTED: usize = 1_000_000;
/// Pages followed at most: every item of [`MAX_LISTED`] on pages of a fifth of the
/// size asked for.
const MAX_PAGES: usize = MAX_LISTED / (PAGE_SIZE / 5);
/// Invoices asked for per page of `GET /v1/invoices`.
pub const INVOICE_PAGE_SIZE: usize = 100;
/// Documents read from the invoice list at most: a partner invoiced monthly in a
/// dozen currencies for a century has fewer.
const MAX_INVOICES: usize = 100_000;
/// Pages of the invoice list followed at most.
const MAX_INVOICE_PAGES: usize = 1_000;
/// Pages of one customer's line items followed at most (the list is unpaged as
/// documented), and items read at most: far beyond a customer's few hundred.
const MAX_LINE_ITEM_PAGES: usize = 100;
const MAX_LINE_ITEMS: usize = 100_000;

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
    /// No usable answer: connection refused or reset, timeout, a body cut short.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// An answer whose body could not be used.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The customers list is not one a real partner has: its next links loop, or
    /// it goes on beyond any real size.
    #[error("{what} paging stopped at page {page}: {reason}")]
    Paging {
        what: &'static str,
        page: usize,
        reason: &'static str,
    },
    /// The customers list is empty although customers were known: far likelier a
    /// fault upstream than a partner whose customers all left at once.
    #[error("Partner Center listed no customers although {known} were known")]
    EmptyList { known: usize },
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
            ApiError::Transport(TransportError::Timeout) => "timeout",
            ApiError::Transport(_) => "transport",
            ApiError::Body(BodyError::TooLarge) => "body_too_large",
            ApiError::Body(_) => "bad_body",
            ApiError::Paging { .. } => "paging",
            ApiError::EmptyList { .. } => "empty_list",
        }
    }

    fn is_retryable(&self) -> bool {
        match self {
            ApiError::Status { status, .. } => *status == 429 || *status >= 500,
            ApiError::Transport(_) => true,
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

/// The Partner Center client, shared by every collector's tasks.
pub struct PartnerCenterClient {
    http: reqwest::Client,
    base_url: String,
    auth: Arc<Authenticator>,
    limiter: DefaultDirectRateLimiter,
    /// `--poll.concurrency`: requests in flight at once, over all collectors.
    in_flight: tokio::sync::Semaphore,
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
        concurrency: usize,
        telemetry: Arc<Telemetry>,
        backoff: Backoff,
    ) -> PartnerCenterClient {
        PartnerCenterClient {
            http,
            base_url,
            auth,
            limiter: rate_limiter(rate_limit_per_minute),
            in_flight: tokio::sync::Semaphore::new(concurrency.max(1)),
            telemetry,
            backoff,
        }
    }

    /// Every customer of the partner, following `links.next` until a page has none:
    /// each once, in the order first listed, with its id in lower case. Items
    /// without a customer GUID are skipped with one warning for the whole list.
    #[tracing::instrument(skip(self))]
    pub async fn list_customers(&self) -> Result<Vec<DiscoveredCustomer>, ApiError> {
        let mut url = format!("{}/v1/customers?size={PAGE_SIZE}", self.base_url);
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut discovery = Discovery::new(MAX_LISTED, MAX_PAGES);
        loop {
            let body = self.get(Endpoint::Customers, &url, &headers).await?;
            let page: CustomersPage = parse_json(&body)?;
            let Some(next) = discovery.add_page(page)? else {
                return Ok(discovery.finish());
            };
            url = resolve_link(&self.base_url, &next.uri);
            headers = next.headers.into_iter().map(|h| (h.key, h.value)).collect();
        }
    }

    /// Every customer's usage record of the current month
    /// (`GET /v1/customers/usagerecords`): one request, plus the next pages if a
    /// page links to one (none is documented). `on_page` is called after each page
    /// with whether another follows. Of a customer listed twice, the first record
    /// stays; items without a customer GUID or a total are skipped with one warning.
    #[tracing::instrument(skip(self, on_page))]
    pub async fn usage_records(
        &self,
        on_page: &(dyn Fn(bool) + Send + Sync),
    ) -> Result<Vec<UsageRecord>, ApiError> {
        let mut url = format!("{}/v1/customers/usagerecords", self.base_url);
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut records: Vec<UsageRecord> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut skipped = 0usize;
        let mut pages = 0usize;
        loop {
            let body = self.get(Endpoint::UsageRecords, &url, &headers).await?;
            let page = parse_usage_records(&body)?;
            pages = pages.saturating_add(1);
            skipped = skipped.saturating_add(page.skipped);
            let known = records.len();
            for record in page.records {
                if seen.insert(record.customer_id.clone()) {
                    records.push(record);
                } else {
                    skipped = skipped.saturating_add(1);
                }
            }
            let stop = |reason| ApiError::Paging {
                what: "usage records",
                page: pages,
                reason,
            };
            if records.len() > MAX_LISTED {
                return Err(stop(TOO_MANY_LISTED));
            }
            on_page(page.next.is_some());
            let Some(next) = page.next else { break };
            if records.len() == known {
                return Err(stop(LOOPING));
            }
            if pages >= MAX_PAGES {
                return Err(stop(TOO_MANY_PAGES));
            }
            url = resolve_link(&self.base_url, &next.uri);
            headers = next.headers.into_iter().map(|h| (h.key, h.value)).collect();
        }
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "usage records skipped: no customer GUID, no total, or a customer listed twice"
            );
        }
        Ok(records)
    }

    /// The partner's invoices and their amendments, every page
    /// (`GET /v1/invoices?size=…&offset=…`, docs/partner-center.md §7), followed as
    /// [`PartnerCenterClient::walk`] says. `on_page` is called after each page with
    /// whether another follows. Of a document listed twice, the first stays.
    #[tracing::instrument(skip(self, on_page))]
    pub async fn invoices(
        &self,
        on_page: &(dyn Fn(bool) + Send + Sync),
    ) -> Result<Vec<Invoice>, ApiError> {
        let url = format!(
            "{}/v1/invoices?size={INVOICE_PAGE_SIZE}&offset=0",
            self.base_url
        );
        let mut invoices: Vec<Invoice> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut skipped = 0usize;
        let walk = Walk {
            endpoint: Endpoint::Invoices,
            what: "invoices",
            max_pages: MAX_INVOICE_PAGES,
        };
        self.walk(walk, url, |body, _| {
            let page = parse_invoices(&body)?;
            skipped = skipped.saturating_add(page.skipped);
            for invoice in page.invoices {
                if seen.insert(invoice.id.clone()) {
                    invoices.push(invoice);
                } else {
                    skipped = skipped.saturating_add(1);
                }
            }
            if invoices.len() > MAX_INVOICES {
                return Err(PageError::Stop(TOO_MANY_LISTED));
            }
            on_page(page.next.is_some());
            Ok(page.next)
        })
        .await?;
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "invoices skipped: no id, currency or total, or a document listed twice"
            );
        }
        Ok(invoices)
    }

    /// The partner's account balance per currency (`GET /v1/invoices/summaries`).
    #[tracing::instrument(skip(self))]
    pub async fn invoice_summaries(&self) -> Result<Vec<InvoiceSummary>, ApiError> {
        let url = format!("{}/v1/invoices/summaries", self.base_url);
        let body = self.get(Endpoint::InvoiceSummaries, &url, &[]).await?;
        let parsed = parse_invoice_summaries(&body)?;
        if parsed.skipped > 0 {
            tracing::warn!(
                skipped = parsed.skipped,
                "invoice summaries skipped: no currency or balance, or a currency listed twice"
            );
        }
        Ok(parsed.summaries)
    }

    /// The customer's `MostRecent` service-cost line items; `None` when Partner
    /// Center has no data for the customer (404). Unpaged as documented; a
    /// `links.next` is followed as [`PartnerCenterClient::walk`] says.
    #[tracing::instrument(skip(self))]
    pub async fn line_items(&self, customer_id: &str) -> Result<Option<Vec<LineItem>>, ApiError> {
        let url = format!(
            "{}/v1/customers/{}/servicecosts/MostRecent/lineitems",
            self.base_url,
            encode_path_segment(customer_id)
        );
        let mut items: Vec<LineItem> = Vec::new();
        let walk = Walk {
            endpoint: Endpoint::LineItems,
            what: "line items",
            max_pages: MAX_LINE_ITEM_PAGES,
        };
        let walked = self
            .walk(walk, url, |body, _| {
                let page = parse_line_items(&body)?;
                items.extend(page.items);
                if items.len() > MAX_LINE_ITEMS {
                    return Err(PageError::Stop(TOO_MANY_LISTED));
                }
                Ok(page.next)
            })
            .await;
        match walked {
            Ok(_) => Ok(Some(items)),
            Err(ApiError::Status { status: 404, .. }) if items.is_empty() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Follows a collection from `url` through its next links, verbatim (the `/v1`
    /// prefix added where a link lacks it) and with their headers. Each page's body
    /// goes to `page` (with the page's number, from 1), which keeps what it needs and
    /// returns the page's next link, or why the collection is not a real one. A link
    /// already followed, one to another host (the token must not leave Partner
    /// Center), or more than `max_pages` pages end the walk with a paging error
    /// instead of a loop. Returns the number of pages read.
    async fn walk(
        &self,
        walk: Walk,
        mut url: String,
        mut page: impl FnMut(Bytes, usize) -> Result<Option<Link>, PageError>,
    ) -> Result<usize, ApiError> {
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut visited: HashSet<String> = HashSet::new();
        let mut pages = 0usize;
        loop {
            visited.insert(url.clone());
            let body = self.get(walk.endpoint, &url, &headers).await?;
            pages = pages.saturating_add(1);
            let stop = |reason| ApiError::Paging {
                what: walk.what,
                page: pages,
                reason,
            };
            let next = page(body, pages).map_err(|e| match e {
                PageError::Body(b) => ApiError::Body(b),
                PageError::Stop(reason) => stop(reason),
            })?;
            let Some(next) = next else { return Ok(pages) };
            if pages >= walk.max_pages {
                return Err(stop(TOO_MANY_PAGES));
            }
            if is_foreign(&self.base_url, &next.uri) {
                return Err(stop(FOREIGN_HOST));
            }
            url = resolve_link(&self.base_url, &next.uri);
            if visited.contains(&url) {
                return Err(stop(LOOPING));
            }
            headers = next.headers.into_iter().map(|h| (h.key, h.value)).collect();
        }
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
        // A permit per attempt, not per call: a call waiting to retry holds none.
        let _permit = self.in_flight.acquire().await.ok();
        let send = |bearer: String| async move {
            self.limiter.until_ready().await;
            self.send(endpoint, url, headers, request_id, correlation_id, &bearer)
                .await
        };
        let token = self.auth.token().await?;
        let mut response = send(token.bearer()).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            // The token may have been revoked or expired early: try once more with a
            // renewed one, unless this one already was the renewal after a 401.
            if let Some(token) = self.auth.renew_after_rejection(&token).await? {
                response = send(token.bearer()).await?;
            }
        }
        let status = response.status();
        let retry_after = RetryAfter::from_headers(response.headers());
        let body = read_body_limited(response, MAX_BODY_BYTES)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => ApiError::Body(BodyError::TooLarge),
                ReadError::Transport(t) => ApiError::Transport(t),
            })?;
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
                Err(ApiError::Transport(TransportError::of(&e)))
            }
        }
    }
}

/// What [`PartnerCenterClient::walk`] walks, for its requests and errors.
struct Walk {
    endpoint: Endpoint,
    what: &'static str,
    max_pages: usize,
}

/// Why a page ends a walk: a body that could not be used, or a collection that is
/// not a real one (the reason of [`ApiError::Paging`]).
enum PageError {
    Body(BodyError),
    Stop(&'static str),
}

impl From<BodyError> for PageError {
    fn from(e: BodyError) -> Self {
        PageError::Body(e)
    }
}

/// Why a collection (the customer list, invoices, line items) is not followed further.
pub(super) const LOOPING: &str =
    "the page adds nothing new yet links to a next page (a next link that loops)";
pub(super) const TOO_MANY_LISTED: &str = "more customers listed than any partner has";
pub(super) const TOO_MANY_PAGES: &str = "more pages than any partner's list has";
const FOREIGN_HOST: &str = "the next link points to another host";

/// Resolves a `links.next.uri`: absolute URLs on the same base are used as they are;
/// a path starting with `/v1/` is joined to the base; any other path gets `/v1` in
/// front (both forms exist, docs/partner-center.md §3 and Partner-Center-PowerShell#379).
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

/// Whether `uri` is an absolute URL that is not under `base_url`: a next link that
/// would take the bearer token elsewhere.
fn is_foreign(base_url: &str, uri: &str) -> bool {
    let uri = uri.trim();
    uri.contains("://")
        && !uri
            .strip_prefix(base_url)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
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
    fn invoice_links_resolve_and_other_hosts_are_foreign() {
        let base = "http://127.0.0.1:1";
        assert_eq!(
            resolve_link(base, "/invoices?size=2&offset=2"),
            "http://127.0.0.1:1/v1/invoices?size=2&offset=2"
        );
        for uri in [
            "/invoices?offset=2",
            "invoices?offset=2",
            "http://127.0.0.1:1/v1/invoices",
        ] {
            assert!(!is_foreign(base, uri), "{uri}");
        }
        for uri in [
            "https://evil.example/v1/invoices?offset=2",
            "http://127.0.0.1:10/v1/invoices",
            "http://127.0.0.1:1.evil.example/v1/invoices",
        ] {
            assert!(is_foreign(base, uri), "{uri}");
        }
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
        assert!(ApiError::Transport(TransportError::Timeout).is_retryable());
        assert!(ApiError::Transport(TransportError::Body).is_retryable());
        assert_eq!(
            ApiError::Transport(TransportError::Timeout).kind(),
            "timeout"
        );
        assert_eq!(
            ApiError::Transport(TransportError::Body).kind(),
            "transport"
        );
        assert!(!ApiError::Body(BodyError::TooLarge).is_retryable());
    }
}
