//! Everything Prometheus sees: the exporter's own metrics, and the encoding of the
//! collectors' parts.
//!
//! Two kinds of series, kept apart on purpose:
//!
//! - **Part series** (costs, usage, customer info, per-customer fetch status) are
//!   rendered by each collector from its part of the snapshot into an
//!   [`Exposition`] when that part changes: gzip, compressed once, and the plain text
//!   decompressed from it once, when a scrape first asks for it. A scrape sends the
//!   parts one after the other (gzip members concatenate), so a part that did not
//!   change is never encoded again. This is what grows with the number of customers,
//!   so a scrape only hands on shared bytes, without copying them.
//! - **Live series** ([`Telemetry`]: API requests, runs of each collector, auth
//!   failures, refresh-token persist failures, build info, `process_*`) live in the
//!   exporter's own `prometheus::Registry` (no global registry) and are encoded at
//!   each scrape; their size does not depend on the number of customers.
//!
//! [`Render`] is the text-format writer the collectors render with. The
//! `prometheus` crate is used only here, so replacing it stays cheap.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The content type of the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A fixed set of label values: an enum with `ALL` (every value, in one list) and
/// `as_str`, so a label's values can neither grow nor be mistyped.
macro_rules! label_values {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every value, in the order exported.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }
    };
}

label_values! {
    /// Endpoint label values of `partnercenter_api_requests_total`.
    Endpoint {
        Token => "token",
        Customers => "customers",
        ServiceCosts => "servicecosts",
        UsageRecords => "usagerecords",
        GenerateToken => "generatetoken",
    }
}

label_values! {
    /// Every `reason` of `partnercenter_auth_failures_total`: the Azure AD `error`
    /// values (RFC 6749 §5.2 and Azure AD's additions), `other` for an unknown one,
    /// `transport` for no usable answer, `generatetoken` for a refused exchange. All
    /// are exported from the start at 0, so `increase()` sees the first failure.
    AuthFailureReason {
        InvalidRequest => "invalid_request",
        InvalidGrant => "invalid_grant",
        UnauthorizedClient => "unauthorized_client",
        InvalidClient => "invalid_client",
        UnsupportedGrantType => "unsupported_grant_type",
        InvalidResource => "invalid_resource",
        InvalidScope => "invalid_scope",
        InteractionRequired => "interaction_required",
        TemporarilyUnavailable => "temporarily_unavailable",
        ServerError => "server_error",
        AccessDenied => "access_denied",
        Other => "other",
        Transport => "transport",
        GenerateToken => "generatetoken",
    }
}

impl AuthFailureReason {
    /// The reason of an Azure AD `error` value: one of the known ones, else `other`,
    /// so a strange answer cannot grow the label's cardinality.
    pub fn of_aad_error(error: &str) -> AuthFailureReason {
        AuthFailureReason::ALL
            .iter()
            .copied()
            .filter(|r| {
                !matches!(
                    r,
                    AuthFailureReason::Other
                        | AuthFailureReason::Transport
                        | AuthFailureReason::GenerateToken
                )
            })
            .find(|r| r.as_str() == error)
            .unwrap_or(AuthFailureReason::Other)
    }
}

label_values! {
    /// Outcome label values of `partnercenter_polls_total`.
    PollResult {
        Success => "success",
        Partial => "partial",
        Failure => "failure",
    }
}

/// The exporter's live self-metrics, in its own registry.
pub struct Telemetry {
    registry: Registry,
    api_requests: IntCounterVec,
    api_duration: HistogramVec,
    auth_failures: IntCounterVec,
    /// Rotated refresh tokens not written to their file: a restart would sign in
    /// with an older one, so an alert should fire before that restart.
    refresh_token_persist_failures: IntCounter,
    polls: IntCounterVec,
    poll_duration: GaugeVec,
    poll_in_progress: IntGaugeVec,
    poll_last_success: GaugeVec,
    poll_targets: IntGaugeVec,
    poll_targets_done: IntGaugeVec,
}

/// A collector's runs, as the landing page shows them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunStatus {
    pub in_progress: bool,
    pub targets: i64,
    pub done: i64,
    pub last_success: Option<f64>,
    /// Runs finished: successes, partial, failures.
    pub runs: [u64; 3],
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    // Registration fails only on duplicate or inconsistent descriptors, which the
    // fixed set below cannot have; a failure would show in tests as a missing metric.
    if let Err(err) = registry.register(Box::new(c.clone())) {
        tracing::error!(error = %err, "metric registration failed");
    }
    c
}

impl Telemetry {
    /// The live metrics, with the run series of each of `collectors` exported from
    /// the start.
    pub fn new(collectors: &[&str]) -> Result<Telemetry, prometheus::Error> {
        let registry = Registry::new();
        let api_requests = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "partnercenter_api_requests_total",
                    "HTTP requests made to Azure AD and Partner Center, by endpoint and status code (error: no response).",
                ),
                &["endpoint", "code"],
            )?,
        );
        let api_duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "partnercenter_api_request_duration_seconds",
                    "Latency of HTTP requests to Azure AD and Partner Center.",
                )
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
                &["endpoint"],
            )?,
        );
        let auth_failures = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "partnercenter_auth_failures_total",
                    "Failed token requests, by Azure AD error value (transport: no usable answer).",
                ),
                &["reason"],
            )?,
        );
        for reason in AuthFailureReason::ALL {
            auth_failures.with_label_values(&[reason.as_str()]);
        }
        let refresh_token_persist_failures = register(
            &registry,
            IntCounter::new(
                "partnercenter_refresh_token_persist_failures_total",
                "Rotated refresh tokens that could not be written to --auth.refresh-token-file (a restart would sign in with an older token).",
            )?,
        );
        let polls = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "partnercenter_polls_total",
                    "Runs of each collector finished, by result (partial: some customers failed).",
                ),
                &["collector", "result"],
            )?,
        );
        let gauge = |name: &str, help: &str| -> Result<GaugeVec, prometheus::Error> {
            Ok(register(
                &registry,
                GaugeVec::new(Opts::new(name, help), &["collector"])?,
            ))
        };
        let int_gauge = |name: &str, help: &str| -> Result<IntGaugeVec, prometheus::Error> {
            Ok(register(
                &registry,
                IntGaugeVec::new(Opts::new(name, help), &["collector"])?,
            ))
        };
        let poll_duration = gauge(
            "partnercenter_poll_duration_seconds",
            "Duration of the collector's last complete run.",
        )?;
        let poll_in_progress = int_gauge(
            "partnercenter_poll_in_progress",
            "1 while a run of the collector goes on in the background.",
        )?;
        let poll_last_success = gauge(
            "partnercenter_poll_last_success_timestamp_seconds",
            "End of the collector's last run in which everything succeeded (Unix time).",
        )?;
        let poll_targets = int_gauge(
            "partnercenter_poll_targets",
            "What the collector's running (or last) run has to fetch: customers, or requests for a partner-level collector.",
        )?;
        let poll_targets_done = int_gauge(
            "partnercenter_poll_targets_done",
            "How many of partnercenter_poll_targets the running (or last) run has done.",
        )?;
        for name in collectors {
            for result in PollResult::ALL {
                polls.with_label_values(&[name, result.as_str()]);
            }
            poll_duration.with_label_values(&[name]);
            poll_in_progress.with_label_values(&[name]);
            poll_last_success.with_label_values(&[name]);
            poll_targets.with_label_values(&[name]);
            poll_targets_done.with_label_values(&[name]);
        }
        let build_info = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "partnercenter_exporter_build_info",
                    "Build information of partnercenter-exporter; always 1.",
                ),
                &["version", "revision", "rustc_version"],
            )?,
        );
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("PARTNERCENTER_EXPORTER_REVISION").unwrap_or("unknown"),
                option_env!("PARTNERCENTER_EXPORTER_RUSTC_VERSION").unwrap_or("unknown"),
            ])
            .set(1);
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Telemetry {
            registry,
            api_requests,
            api_duration,
            auth_failures,
            refresh_token_persist_failures,
            polls,
            poll_duration,
            poll_in_progress,
            poll_last_success,
            poll_targets,
            poll_targets_done,
        })
    }

    /// Records one HTTP request: `code` is the status, or `None` for no response.
    pub fn observe_request(&self, endpoint: Endpoint, code: Option<u16>, elapsed: Duration) {
        let code = code.map_or_else(|| "error".to_owned(), |c| c.to_string());
        self.api_requests
            .with_label_values(&[endpoint.as_str(), code.as_str()])
            .inc();
        self.api_duration
            .with_label_values(&[endpoint.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a failed token request.
    pub fn auth_failure(&self, reason: AuthFailureReason) {
        self.auth_failures
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    /// Counts a rotated refresh token that could not be written to its file.
    pub fn refresh_token_persist_failure(&self) {
        self.refresh_token_persist_failures.inc();
    }

    /// A run of `collector` starts with `targets` to fetch.
    pub fn run_started(&self, collector: &str, targets: usize) {
        self.poll_in_progress.with_label_values(&[collector]).set(1);
        self.set_targets(collector, targets);
        self.poll_targets_done
            .with_label_values(&[collector])
            .set(0);
    }

    /// The running run of `collector` has `targets` to fetch in all.
    pub fn set_targets(&self, collector: &str, targets: usize) {
        self.poll_targets
            .with_label_values(&[collector])
            .set(i64::try_from(targets).unwrap_or(i64::MAX));
    }

    /// One more target of the running run of `collector` is done.
    pub fn target_done(&self, collector: &str) {
        self.poll_targets_done.with_label_values(&[collector]).inc();
    }

    /// Records the end of a run (or its cancellation, with `result` `None`).
    pub fn run_finished(
        &self,
        collector: &str,
        result: Option<PollResult>,
        elapsed: Duration,
        ended_at: f64,
    ) {
        self.poll_in_progress.with_label_values(&[collector]).set(0);
        let Some(result) = result else { return };
        self.polls
            .with_label_values(&[collector, result.as_str()])
            .inc();
        self.poll_duration
            .with_label_values(&[collector])
            .set(elapsed.as_secs_f64());
        if result == PollResult::Success {
            self.poll_last_success
                .with_label_values(&[collector])
                .set(ended_at);
        }
    }

    /// Restores a collector's last-success time from the cache file at start-up.
    pub fn restore_last_success(&self, collector: &str, at: f64) {
        self.poll_last_success
            .with_label_values(&[collector])
            .set(at);
    }

    /// The state of `collector`'s runs, for the landing page.
    pub fn run_status(&self, collector: &str) -> RunStatus {
        RunStatus {
            in_progress: self.poll_in_progress.with_label_values(&[collector]).get() == 1,
            targets: self.poll_targets.with_label_values(&[collector]).get(),
            done: self.poll_targets_done.with_label_values(&[collector]).get(),
            last_success: Some(self.poll_last_success.with_label_values(&[collector]).get())
                .filter(|t| *t > 0.0),
            runs: [
                PollResult::Success,
                PollResult::Partial,
                PollResult::Failure,
            ]
            .map(|r| self.polls.with_label_values(&[collector, r.as_str()]).get()),
        }
    }

    /// Encodes the live metrics in the text format.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let families = self.registry.gather();
        if let Err(err) = TextEncoder::new().encode(&families, out) {
            tracing::error!(error = %err, "encoding self-metrics failed");
        }
    }
}

/// The snapshot's series, encoded once per poll.
///
/// The gzip form is what Prometheus asks for; it is rendered and compressed in
/// chunks, so rendering never holds the whole text (15 MiB at 10,000 customers) next
/// to the exposition still being served. The plain text is decompressed from it on the
/// first scrape that wants it and kept with it: a server scraped only by Prometheus
/// never holds it at all.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// Text format 0.0.4, gzip-compressed (one gzip member).
    pub gzip: Bytes,
    /// The same text uncompressed, once a scrape has asked for it.
    text: tokio::sync::OnceCell<Bytes>,
}

/// Text rendered before it is handed to the compressor.
const RENDER_CHUNK: usize = 64 * 1024;
use crate::memory::buffer;

impl Exposition {
    /// Encodes what `render` writes; `size_hint` is the expected text size.
    pub fn render(size_hint: usize, render: impl FnOnce(&mut Render<'_>)) -> Exposition {
        // The text format compresses about sevenfold.
        let out = buffer(1024 + size_hint / 6);
        let mut encoder = GzEncoder::new(out, Compression::default());
        {
            // Writing to a Vec cannot fail.
            let mut sink = |chunk: &str| {
                let _ = encoder.write_all(chunk.as_bytes());
            };
            let mut out = Render::new(&mut sink);
            render(&mut out);
            out.finish();
        }
        Exposition {
            gzip: Bytes::from(encoder.finish().unwrap_or_default()),
            text: tokio::sync::OnceCell::new(),
        }
    }

    /// Whether the plain text has been asked for (and so is kept).
    pub fn text_ready(&self) -> bool {
        self.text.initialized()
    }

    /// The text format, decompressed from [`Exposition::gzip`] on first use (on a
    /// blocking thread: 10,000 customers take about 30 ms) and kept.
    pub async fn text(&self) -> Bytes {
        let text = self.text.get_or_init(|| async {
            let gzip = self.gzip.clone();
            match tokio::task::spawn_blocking(move || gunzip(&gzip)).await {
                Ok(text) => text,
                // The runtime is shutting down: decompress here.
                Err(_) => gunzip(&self.gzip),
            }
        });
        text.await.clone()
    }
}

/// Decompresses one gzip member of ours into a buffer of the exact size.
fn gunzip(gzip: &[u8]) -> Bytes {
    use std::io::Read as _;
    // ISIZE, the member's uncompressed size, ends the member (RFC 1952 §2.3.1).
    let size = gzip
        .len()
        .checked_sub(4)
        .and_then(|at| gzip.get(at..))
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b: [u8; 4]| u32::from_le_bytes(b) as usize)
        // Deflate expands at most 1032-fold: a wrong ISIZE cannot reserve more.
        .min(gzip.len().saturating_mul(1032));
    let mut out = buffer(size);
    // Our own gzip of valid UTF-8: decompression cannot fail short of a bug, which
    // would show as a truncated exposition.
    if let Err(err) = flate2::read::GzDecoder::new(gzip).read_to_end(&mut out) {
        tracing::error!(error = %err, "decompressing the exposition failed");
    }
    Bytes::from(out)
}

/// Compresses `data` as one gzip member. Several members concatenated form a valid
/// gzip stream (RFC 1952 §2.2), which is how a scrape appends the live metrics to the
/// cached compressed snapshot without recompressing it.
pub fn gzip(data: &[u8], level: Compression) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), level);
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// `data` as one gzip member of stored (uncompressed) deflate blocks: how a scrape
/// appends the live metrics to the cached gzip. They are a few KiB; compressing them
/// would cost a compressor (about 300 KiB of state to allocate and clear) and more
/// CPU per scrape than the bytes saved are worth.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    const BLOCK: usize = u16::MAX as usize;
    let mut out = Vec::with_capacity(data.len() + data.len() / BLOCK * 5 + 23);
    // ID1 ID2, CM = deflate, no flags, no mtime, no extra flags, OS unknown.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let mut blocks = data.chunks(BLOCK).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        // BFINAL on the last block, BTYPE 00 (stored), then LEN and NLEN.
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// A metric family of a part: a gauge with its name and HELP text.
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
}

/// The text-format writer a part renders with: it hands on chunks of about
/// [`RENDER_CHUNK`] bytes, so a large part is never held whole as text.
pub struct Render<'a> {
    buf: String,
    sink: &'a mut dyn FnMut(&str),
}

impl<'a> Render<'a> {
    pub fn new(sink: &'a mut dyn FnMut(&str)) -> Render<'a> {
        Render {
            buf: String::with_capacity(RENDER_CHUNK + 4096),
            sink,
        }
    }

    /// `# HELP` and `# TYPE` of a gauge family.
    pub fn header(&mut self, family: &Family) {
        let _ = writeln!(self.buf, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(self.buf, "# TYPE {} gauge", family.name);
    }

    /// One sample; label values are escaped.
    pub fn sample(&mut self, family: &Family, labels: &[(&str, &str)], value: f64) {
        let out = &mut self.buf;
        out.push_str(family.name);
        out.push('{');
        for (i, (name, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(name);
            out.push_str("=\"");
            escape_label_value(out, v);
            out.push('"');
        }
        out.push_str("} ");
        write_value(out, value);
        out.push('\n');
        if self.buf.len() >= RENDER_CHUNK {
            (self.sink)(&self.buf);
            self.buf.clear();
        }
    }

    fn finish(mut self) {
        if !self.buf.is_empty() {
            (self.sink)(&self.buf);
            self.buf.clear();
        }
    }
}

/// Renders into plain text, for tests and checks.
pub fn render_text(render: impl FnOnce(&mut Render<'_>)) -> String {
    let mut text = String::new();
    {
        let mut sink = |chunk: &str| text.push_str(chunk);
        let mut out = Render::new(&mut sink);
        render(&mut out);
        out.finish();
    }
    text
}

/// Escapes a label value per the text format: backslash, double quote and line feed.
pub fn escape_label_value(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `n` samples of one family, as a part would render them.
    fn many(n: usize) -> impl Fn(&mut Render<'_>) {
        const F: Family = Family {
            name: "partnercenter_test",
            help: "Test family.",
        };
        move |out: &mut Render<'_>| {
            out.header(&F);
            for i in 0..n {
                let id = format!("{i:08}-f9ff-4252-b2bf-40e21937a51a");
                out.sample(
                    &F,
                    &[("customer_id", &id), ("name", "Customer \"x\"")],
                    i as f64 * 0.1,
                );
            }
        }
    }

    #[tokio::test]
    async fn exposition_text_and_gzip_match_the_render() {
        // Large enough to be rendered and compressed in several chunks.
        let want = render_text(many(5000)).into_bytes();
        assert!(want.len() > 3 * RENDER_CHUNK);
        let exposition = Exposition::render(want.len(), many(5000));
        assert_eq!(exposition.text().await, want);
        assert_eq!(exposition.text().await, want, "the text is kept");
        assert_eq!(gunzip(&exposition.gzip), want);
    }

    #[tokio::test]
    async fn expositions_of_any_size_round_trip() {
        for n in [8000, 3000, 0, 6000] {
            let exposition = Exposition::render(0, many(n));
            assert_eq!(exposition.text().await, render_text(many(n)).into_bytes());
        }
    }

    #[test]
    fn gzip_members_concatenate() {
        use std::io::Read;
        let mut body = gzip(b"first\n", Compression::default());
        body.extend(gzip(b"second\n", Compression::fast()));
        let mut out = String::new();
        flate2::read::MultiGzDecoder::new(&body[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "first\nsecond\n");
    }

    #[test]
    fn telemetry_has_every_live_family() {
        let t = Telemetry::new(&["servicecosts", "usage"]).unwrap();
        t.run_started("usage", 3);
        t.target_done("usage");
        t.observe_request(Endpoint::ServiceCosts, Some(200), Duration::from_millis(5));
        t.observe_request(Endpoint::Token, None, Duration::from_millis(5));
        t.auth_failure(AuthFailureReason::InvalidGrant);
        let mut out = Vec::new();
        t.encode(&mut out);
        let text = String::from_utf8(out).unwrap();
        for name in [
            "partnercenter_api_requests_total{code=\"200\",endpoint=\"servicecosts\"} 1",
            "partnercenter_api_requests_total{code=\"error\",endpoint=\"token\"} 1",
            "partnercenter_api_request_duration_seconds_bucket",
            "partnercenter_auth_failures_total{reason=\"invalid_grant\"} 1",
            "partnercenter_auth_failures_total{reason=\"transport\"} 0",
            "partnercenter_polls_total{collector=\"servicecosts\",result=\"partial\"} 0",
            "partnercenter_polls_total{collector=\"usage\",result=\"failure\"} 0",
            "partnercenter_poll_duration_seconds{collector=\"usage\"} 0",
            "partnercenter_poll_in_progress{collector=\"servicecosts\"} 0",
            "partnercenter_poll_in_progress{collector=\"usage\"} 1",
            "partnercenter_poll_targets{collector=\"usage\"} 3",
            "partnercenter_poll_targets_done{collector=\"usage\"} 1",
            "partnercenter_poll_last_success_timestamp_seconds{collector=\"servicecosts\"} 0",
            "partnercenter_exporter_build_info{",
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
        let status = t.run_status("usage");
        assert!(status.in_progress);
        assert_eq!(
            (status.targets, status.done, status.last_success),
            (3, 1, None)
        );
        t.run_finished(
            "usage",
            Some(PollResult::Success),
            Duration::from_secs(2),
            50.0,
        );
        let status = t.run_status("usage");
        assert!(!status.in_progress);
        assert_eq!((status.last_success, status.runs), (Some(50.0), [1, 0, 0]));
    }

    proptest! {
        #[test]
        fn escaped_values_parse_back(value in ".{0,40}") {
            let mut out = String::new();
            escape_label_value(&mut out, &value);
            prop_assert!(!out.contains('\n'));
            // Unescape and compare.
            let mut back = String::new();
            let mut chars = out.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('n') => back.push('\n'),
                        Some(other) => back.push(other),
                        None => prop_assert!(false, "dangling backslash"),
                    }
                } else {
                    prop_assert!(c != '"', "unescaped quote");
                    back.push(c);
                }
            }
            prop_assert_eq!(back, value);
        }

        #[test]
        fn stored_gzip_decodes(data in proptest::collection::vec(any::<u8>(), 0..200_000)) {
            use std::io::Read;
            let mut body = gzip(b"cached\n", Compression::default());
            body.extend(gzip_stored(&data));
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut out).unwrap();
            prop_assert_eq!(&out[..7], b"cached\n");
            prop_assert_eq!(&out[7..], &data[..]);
        }

        #[test]
        fn values_render_as_numbers(v in any::<f64>()) {
            let mut out = String::new();
            write_value(&mut out, v);
            let parsed: f64 = match out.as_str() {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                s => s.parse().unwrap(),
            };
            prop_assert!(parsed == v || (v.is_nan() && parsed.is_nan()));
        }
    }
}
