//! The HTTP server: `/metrics`, the landing page, `/-/healthy` and `/-/ready`.
//!
//! A few routes on bare hyper, a `match` on method and path, one small function per
//! response. A scrape only sends each part's pre-encoded exposition (gzip, or the
//! plain text decompressed from it once per change), shared rather than copied, and
//! appends the live self-metrics; it never waits on a collector or on Partner
//! Center. Each connection is served on its own task with a header
//! read timeout and a header size limit, and the number of connections is bounded,
//! so a slow or hostile client costs one connection, never the server. Shutdown is a
//! parameter ([`serve`] takes a `CancellationToken`): stop accepting, mark not ready,
//! let in-flight requests finish under a deadline.

mod landing;

pub use landing::{landing_html, CollectorView};

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::collectors::state::SharedState;
use crate::exposition::{gzip_stored, CONTENT_TYPE};
use crate::telemetry::Telemetry;
use crate::web_config::{BasicAuth, TlsAcceptorSource, WebConfig};

/// Connections served at once, at most; more wait in the kernel's accept queue.
/// High enough that hundreds of slow or idle clients (each cut after
/// [`HEADER_READ_TIMEOUT`]) never make Prometheus's scrape wait for a free slot;
/// lowered to half the open-files limit where that is smaller ([`connection_limit`]).
const MAX_CONNECTIONS: usize = 8192;
/// Time a client has to send a request head, counted from the connection's start
/// or from the end of its previous response (so it is the keep-alive idle timeout
/// too). Prometheus sends its request in one packet.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// How long in-flight requests may take to finish at shutdown.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// What the request handlers need.
pub struct ServerState {
    pub shared: Arc<SharedState>,
    pub telemetry: Arc<Telemetry>,
    pub telemetry_path: String,
    /// False until start-up is complete, false again once shutdown begins.
    pub ready: AtomicBool,
    pub basic_auth: Option<BasicAuth>,
    pub extra_headers: Vec<(header::HeaderName, HeaderValue)>,
    /// The enabled collectors, their intervals and plans, for the landing page.
    pub collectors: Vec<(&'static str, Duration, crate::collectors::Plan)>,
}

impl ServerState {
    pub fn new(
        shared: Arc<SharedState>,
        telemetry: Arc<Telemetry>,
        telemetry_path: String,
        web: Option<&WebConfig>,
        collectors: Vec<(&'static str, Duration, crate::collectors::Plan)>,
    ) -> ServerState {
        ServerState {
            shared,
            telemetry,
            telemetry_path,
            collectors,
            ready: AtomicBool::new(false),
            basic_auth: web.and_then(WebConfig::basic_auth),
            extra_headers: web.map(|w| w.headers().to_vec()).unwrap_or_default(),
        }
    }
}

/// A response body of a few chunks, sent as they are.
///
/// A scrape answers with the cached exposition of each part followed by the live
/// self-metrics. All are `Bytes`: the cached parts are shared by reference with
/// every other scrape of the same publication, so a scrape allocates and copies only
/// the few KiB of live metrics, never a body that grows with the number of customers
/// (15 MiB at 10,000 customers, once per concurrent scrape). The exact length is
/// known, so the response carries `Content-Length`.
pub struct Body {
    chunks: Vec<Bytes>,
}

impl Body {
    fn one(chunk: Bytes) -> Body {
        Body {
            chunks: vec![chunk],
        }
    }

    fn many(chunks: Vec<Bytes>) -> Body {
        Body { chunks }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let next = this.chunks.iter_mut().find(|c| !c.is_empty());
        Poll::Ready(next.map(|c| Ok(Frame::data(std::mem::take(c)))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.iter().all(Bytes::is_empty)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
    }
}

/// Serves until `shutdown`, then drains connections for at most [`DRAIN_DEADLINE`].
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptorSource>,
    state: Arc<ServerState>,
    shutdown: CancellationToken,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(connection_limit()));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(err) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = hyper::service::service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(&state, req).await) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEADER_BYTES.max(8192));
        match &tls {
            None => {
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(err) = conn.await {
                        tracing::debug!(%peer, error = %err, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            Some(tls) => {
                let acceptor = tls.acceptor();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    let stream = match handshake {
                        Ok(Ok(s)) => s,
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, error = %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(err) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %err, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
        }
    }
    state.ready.store(false, Ordering::SeqCst);
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::debug!("all connections closed"),
        _ = tokio::time::sleep(DRAIN_DEADLINE) => tracing::warn!("connections still open after the drain deadline"),
    }
}

/// Raises the soft limit of open files to the hard limit, as Go programs do at
/// start (systemd's default soft limit is 1,024), and returns the connection cap:
/// [`MAX_CONNECTIONS`], or half the open-files limit where that is lower, leaving
/// the rest for outbound connections and files.
pub fn connection_limit() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(max)) = (limit.current, limit.maximum) {
        if current < max {
            limit.current = Some(max);
            if setrlimit(Resource::Nofile, limit).is_err() {
                limit.current = Some(current);
            }
        }
    }
    let files = limit.current.map_or(MAX_CONNECTIONS, |n| {
        usize::try_from(n).unwrap_or(usize::MAX)
    });
    (files / 2).clamp(64, MAX_CONNECTIONS)
}

/// Routes one request.
pub async fn handle(state: &ServerState, req: Request<Incoming>) -> Response<Body> {
    let mut response = route(state, &req).await;
    for (name, value) in &state.extra_headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

async fn route(state: &ServerState, req: &Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let known = path == state.telemetry_path || matches!(path, "/" | "/-/healthy" | "/-/ready");
    if !known {
        return text(StatusCode::NOT_FOUND, "Not Found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if let Some(auth) = &state.basic_auth {
        if !auth.check(req.headers().get(header::AUTHORIZATION)).await {
            let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"partnercenter-exporter\""),
            );
            return r;
        }
    }
    match path {
        p if p == state.telemetry_path => metrics(state, req).await,
        "/" => landing(state),
        "/-/healthy" => text(StatusCode::OK, "Healthy\n"),
        _ => ready(state),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::one(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn ready(state: &ServerState) -> Response<Body> {
    if state.ready.load(Ordering::SeqCst) {
        text(StatusCode::OK, "Ready\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "Not Ready\n")
    }
}

/// Whether the client accepts gzip (RFC 9110 §12.5.3): an explicit `gzip` with a
/// q-value above zero, or `*` above zero when gzip is not named. An explicit
/// `gzip;q=0` wins over `*`; parameter names are case-insensitive (`Q=0`).
fn accepts_gzip(req: &Request<Incoming>) -> bool {
    let values = req
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok());
    gzip_acceptable(values)
}

fn gzip_acceptable<'a>(values: impl Iterator<Item = &'a str>) -> bool {
    let mut gzip: Option<bool> = None;
    let mut star: Option<bool> = None;
    for item in values.flat_map(|v| v.split(',')) {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let accepted = parts
            .filter_map(|p| p.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .is_none_or(|(_, q)| q.trim().parse::<f32>().is_ok_and(|q| q > 0.0));
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            // Of two mentions, a refusal wins.
            gzip = Some(gzip.unwrap_or(true) && accepted);
        } else if coding == "*" {
            star = Some(star.unwrap_or(true) && accepted);
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// The scrape: the cached exposition of each part plus the live self-metrics.
async fn metrics(state: &ServerState, req: &Request<Incoming>) -> Response<Body> {
    // The live metrics first: a collector publishes its part before it counts the
    // run, so a scrape that shows the run counted also shows its part.
    let mut live = Vec::with_capacity(16 * 1024);
    state.telemetry.encode(&mut live);
    let published = state.shared.load();
    let gzipped = accepts_gzip(req);
    // No copy of the cached parts: the response holds references to them.
    let mut chunks = Vec::with_capacity(published.expositions.len() + 1);
    for exposition in &published.expositions {
        chunks.push(if gzipped {
            exposition.gzip.clone()
        } else {
            exposition.text().await
        });
    }
    chunks.push(Bytes::from(if gzipped { gzip_stored(&live) } else { live }));
    let mut r = Response::new(Body::many(chunks));
    let headers = r.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    r
}

fn landing(state: &ServerState) -> Response<Body> {
    let published = state.shared.load();
    let collectors: Vec<CollectorView> = state
        .collectors
        .iter()
        .map(|(name, interval, plan)| CollectorView {
            name,
            interval: *interval,
            plan: *plan,
            status: state.telemetry.run_status(name),
        })
        .collect();
    let html = landing_html(&published.snapshot, &state.telemetry_path, &collectors);
    let mut r = Response::new(Body::one(Bytes::from(html)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_chosen_by_q_values() {
        let accepts = |v: &[&str]| gzip_acceptable(v.iter().copied());
        assert!(accepts(&["gzip"]));
        assert!(accepts(&["deflate, GZIP;q=0.5"]));
        assert!(accepts(&["*"]));
        assert!(accepts(&["br", "gzip"]));
        assert!(!accepts(&[]));
        assert!(!accepts(&["identity"]));
        assert!(!accepts(&["gzip;q=0"]));
        assert!(!accepts(&["gzip;Q=0"]));
        assert!(!accepts(&["gzip; q=0.000"]));
        assert!(!accepts(&["gzip;q=0, *"]));
        assert!(!accepts(&["*, gzip;q=0"]));
        assert!(!accepts(&["*;q=0"]));
        assert!(!accepts(&["gzip;q=bogus"]));
        assert!(accepts(&["gzip;level=1"]));
    }
}
