//! The server: the loopback listener ([`serve`]), what happens to every request
//! around its route ([`handle`]: latency, the in-flight count, the Partner
//! Center headers of docs/partner-center.md §4, the request log) and the
//! responses every route builds: JSON bodies (with the BOM knob), Partner Center
//! errors (§4), 401s, the documented 429 (§5) and the gate of the Partner Center
//! API routes (throttling, the error rate, then the bearer token).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::knobs::ApiFault;
use crate::routes::{route, Endpoint};
use crate::state::{LoggedRequest, Shared};
use crate::tokens::Principal;
use crate::util::header_str;

const FIXTURE_429: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/throttled-429.json"
));
pub(crate) const JSON_UTF8: &str = "application/json; charset=utf-8";
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The body of every response: whole, or streamed (the huge body).
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Decrements the in-flight counter when the request ends (or is cancelled).
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.in_flight_max.fetch_max(now, Ordering::SeqCst);
        InFlight(&shared.in_flight)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    /// A JSON body as given, after a BOM if the BOM knob is on.
    pub(crate) fn json_bytes(
        &self,
        status: StatusCode,
        content_type: &'static str,
        body: &[u8],
    ) -> Response<Body> {
        let mut bytes = Vec::with_capacity(body.len() + BOM.len());
        if self.knobs.bom() {
            bytes.extend_from_slice(BOM);
        }
        bytes.extend_from_slice(body);
        response(status, Some(content_type), full(bytes))
    }

    /// A value serialized as JSON, with `application/json; charset=utf-8`.
    pub(crate) fn json<T: Serialize>(&self, status: StatusCode, value: &T) -> Response<Body> {
        match serde_json::to_vec(value) {
            Ok(body) => self.json_bytes(status, JSON_UTF8, &body),
            Err(_) => empty(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// An error in the Partner Center shape (docs/partner-center.md §4).
    pub(crate) fn pc_error(
        &self,
        status: StatusCode,
        code: Value,
        description: &str,
    ) -> Response<Body> {
        self.json(
            status,
            &PcError {
                code,
                description,
                data: [],
                source: "PartnerFD",
            },
        )
    }

    /// 403 for an app-only token on a route that supports App+User only.
    pub(crate) fn app_user_only(&self) -> Response<Body> {
        self.pc_error(
            StatusCode::FORBIDDEN,
            Value::from(2032),
            "Access denied: this scenario supports authentication with App+User credentials only.",
        )
    }

    /// 401 in the Partner Center shape, with its `WWW-Authenticate` challenge.
    pub(crate) fn unauthorized(&self, code: Value, description: &str) -> Response<Body> {
        let mut resp = self.pc_error(StatusCode::UNAUTHORIZED, code, description);
        challenge(&mut resp);
        resp
    }

    /// The documented 429 (docs/partner-center.md §4), with the number of seconds adjusted.
    pub(crate) fn throttled(&self, secs: u64) -> Response<Body> {
        let body = FIXTURE_429.replace(
            "Try again in 57 seconds",
            &format!("Try again in {secs} seconds"),
        );
        let mut resp = self.json_bytes(
            StatusCode::TOO_MANY_REQUESTS,
            "application/json",
            body.as_bytes(),
        );
        set_header(&mut resp, header::RETRY_AFTER, &secs.to_string());
        resp
    }

    /// Partner Center API routes: throttling and error-rate faults, then the token.
    /// The error is the response to send (boxed: responses are large).
    pub(crate) fn api_gate(&self, headers: &HeaderMap) -> Result<Principal, Box<Response<Body>>> {
        match self.knobs.api_fault() {
            Some(ApiFault::Throttle(secs)) => return Err(Box::new(self.throttled(secs))),
            Some(ApiFault::Unavailable) => {
                return Err(Box::new(self.pc_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Value::from(503),
                    "The service is busy. Try again later.",
                )))
            }
            None => {}
        }
        self.authorize(headers)
    }

    /// [`Shared::api_gate`] for a route that supports App+User only: an app-only
    /// token gets 403.
    pub(crate) fn app_user_gate(&self, headers: &HeaderMap) -> Result<(), Box<Response<Body>>> {
        if self.api_gate(headers)?.app_only {
            return Err(Box::new(self.app_user_only()));
        }
        Ok(())
    }
}

/// The Partner Center error body (docs/partner-center.md §4).
#[derive(Serialize)]
struct PcError<'a> {
    code: Value,
    description: &'a str,
    data: [(); 0],
    source: &'static str,
}

/// Accepts connections until shutdown, then gives them two seconds to finish.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            () = shared.cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        .serve_connection(TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(err) = conn.await {
                            tracing::trace!(error = %err, "simulator connection ended with an error");
                        }
                    });
                }
                Err(err) => {
                    tracing::debug!(error = %err, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(2), graceful.shutdown()).await;
}

/// The ids a Partner Center response echoes (docs/partner-center.md §4).
struct RequestIds {
    request_id: Option<String>,
    correlation_id: Option<String>,
}

/// One request: counted, delayed by the latency knob, routed, logged.
async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let at = Instant::now();
    let path = req.uri().path().to_owned();
    let endpoint = Endpoint::classify(&path);
    let ids = RequestIds {
        request_id: header_str(req.headers(), "ms-requestid").map(str::to_owned),
        correlation_id: header_str(req.headers(), "ms-correlationid").map(str::to_owned),
    };
    shared.count_arrival(endpoint);
    let in_flight = endpoint.is_api().then(|| InFlight::enter(&shared));

    let latency = shared.knobs.latency();
    if !latency.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(latency) => {}
            () = shared.cancel.cancelled() => {}
        }
    }
    let mut resp = route(&shared, endpoint, &path, req).await;
    drop(in_flight);

    if !matches!(endpoint, Endpoint::Token | Endpoint::DeviceCode) {
        add_partner_center_headers(&shared, &mut resp, &ids);
    }
    shared.record(LoggedRequest {
        endpoint,
        path,
        status: resp.status().as_u16(),
        ms_request_id: ids.request_id,
        at,
    });
    Ok(resp)
}

/// `MS-RequestId` and `MS-CorrelationId` echoed (or new), `MS-CV`, `MS-ServerId`.
fn add_partner_center_headers(shared: &Shared, resp: &mut Response<Body>, ids: &RequestIds) {
    let request_id = ids
        .request_id
        .clone()
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    let correlation_id = ids
        .correlation_id
        .clone()
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    let cv = format!(
        "{}.0",
        STANDARD_NO_PAD.encode(&Uuid::new_v4().as_bytes()[..12])
    );
    set_header(resp, HeaderName::from_static("ms-requestid"), &request_id);
    set_header(
        resp,
        HeaderName::from_static("ms-correlationid"),
        &correlation_id,
    );
    set_header(resp, HeaderName::from_static("ms-cv"), &cv);
    set_header(
        resp,
        HeaderName::from_static("ms-serverid"),
        &shared.server_id,
    );
}

/// A whole body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A response with this status, content type (if any) and body.
pub(crate) fn response(
    status: StatusCode,
    content_type: Option<&'static str>,
    body: Body,
) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Some(content_type) = content_type {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    resp
}

/// A response with this status and no body.
pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    response(status, None, full(Bytes::new()))
}

/// The `WWW-Authenticate` challenge of Partner Center 401s.
pub(crate) fn challenge(resp: &mut Response<Body>) {
    set_header(
        resp,
        header::WWW_AUTHENTICATE,
        "OAuth realm=urn:cpsvc:cpid:00000000-0000-0000-0000-000000000000",
    );
}

/// Sets a header; values that are not valid header values are skipped.
pub(crate) fn set_header(resp: &mut Response<Body>, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, value);
    }
}

/// The caching headers of AAD token answers.
pub(crate) fn no_store(resp: &mut Response<Body>) {
    set_header(resp, header::CACHE_CONTROL, "no-store, no-cache");
    set_header(resp, header::PRAGMA, "no-cache");
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::codec::MAX_FORM_BODY;
    use crate::routes::servicecosts::FIXTURE_COSTS;
    use crate::synthetic::DOCUMENTED_ID;
    use crate::test_util::*;

    #[tokio::test]
    async fn rate_limit_answers_429_with_retry_after() {
        let (sim, client, token) = signed_in().await;
        sim.knobs().set_rate_limit(Some(60)); // bucket of 5
        let url = costs_url(&sim, DOCUMENTED_ID);
        for _ in 0..5 {
            assert_eq!(get(&client, &url, &token).await.status(), 200);
        }
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let secs: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&secs), "{secs}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["statusCode"], 429);
        assert_eq!(
            body["message"],
            format!("Rate limit is exceeded. Try again in {secs} seconds.")
        );
        // Token requests are not limited.
        assert_eq!(
            refresh_v1(&sim, &client, &sim.credentials().refresh_token)
                .await
                .0,
            200
        );
        assert_eq!(sim.stats().throttled, 1);
        sim.knobs().set_rate_limit(None);
        assert_eq!(get(&client, &url, &token).await.status(), 200);
    }

    #[tokio::test]
    async fn throttle_next_and_error_rate() {
        let (sim, client, token) = signed_in().await;
        let url = costs_url(&sim, DOCUMENTED_ID);
        sim.knobs().set_throttle_next(2, 7);
        for _ in 0..2 {
            let resp = get(&client, &url, &token).await;
            assert_eq!(resp.status(), 429);
            assert_eq!(resp.headers()["retry-after"], "7");
        }
        assert_eq!(get(&client, &url, &token).await.status(), 200);

        sim.knobs().set_error_rate(1.0);
        assert_eq!(get(&client, &url, &token).await.status(), 503);
        sim.knobs().set_error_rate(0.5);
        let mut failed = 0;
        for _ in 0..40 {
            if get(&client, &url, &token).await.status() == 503 {
                failed += 1;
            }
        }
        assert!((8..=32).contains(&failed), "{failed}");
        assert_eq!(sim.stats().throttled, 2);
    }

    #[tokio::test]
    async fn bom_knob_prefixes_json_bodies() {
        let (sim, client, token) = signed_in().await;
        let url = costs_url(&sim, DOCUMENTED_ID);
        sim.knobs().set_bom(true);
        let body = get(&client, &url, &token).await.bytes().await.unwrap();
        assert_eq!(&body[..3], BOM);
        assert_eq!(&body[3..], FIXTURE_COSTS.as_bytes());
        let resp = client
            .post(v1_url(&sim))
            .form(&[("grant_type", "password")])
            .send()
            .await
            .unwrap();
        assert!(resp.bytes().await.unwrap().starts_with(BOM));
        sim.knobs().set_bom(false);
        let body = get(&client, &url, &token).await.bytes().await.unwrap();
        assert_eq!(body, FIXTURE_COSTS.as_bytes());
    }

    #[tokio::test]
    async fn latency_and_in_flight_max() {
        let (sim, client, token) = signed_in().await;
        sim.knobs().set_latency(Duration::from_millis(200));
        let started = Instant::now();
        let url = costs_url(&sim, DOCUMENTED_ID);
        let requests = (0..4).map(|_| get(&client, &url, &token));
        let responses = futures::future::join_all(requests).await;
        assert!(responses.iter().all(|r| r.status() == 200));
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(sim.stats().in_flight_max, 4);
        assert_eq!(sim.stats().servicecosts, 4);
    }

    #[tokio::test]
    async fn garbage_requests_do_not_hurt_the_server() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sim = start().await;
        let client = client();
        for garbage in [
            &b"GARBAGE\r\n\r\n"[..],
            b"\x00\xff\xfe\r\n",
            b"GET /v1/customers HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        ] {
            let mut stream = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
            stream.write_all(garbage).await.unwrap();
            let mut buf = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut buf)).await;
        }
        let big = "x".repeat(MAX_FORM_BODY + 1);
        let resp = client.post(v1_url(&sim)).body(big).send().await.unwrap();
        assert_eq!(resp.status(), 413);
        let resp = client
            .post(v1_url(&sim))
            .body("grant_type=%zz%&client_id=%E2%28%A1&=&&")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let resp = client
            .get(format!("{}/v1//v1/customers", sim.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        let resp = client
            .get(format!("{}/nope", sim.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        let resp = client
            .delete(format!("{}/v1/customers", sim.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers()["allow"], "GET");
        let resp = client.get(v1_url(&sim)).send().await.unwrap();
        assert_eq!(resp.status(), 405);
        assert!(!user_token(&sim, &client).await.is_empty());
    }
}
