//! Everything Prometheus sees: the exporter's own metrics and the exposition of the
//! snapshot.
//!
//! Two kinds of series, kept apart on purpose:
//!
//! - **Snapshot series** (costs, customer info, budgets, per-customer fetch status)
//!   are rendered from a [`Snapshot`] once per poll into an [`Exposition`]: gzip,
//!   compressed once, and the plain text decompressed from it once, when a scrape
//!   first asks for it. A customer absent from the snapshot is absent from `/metrics`
//!   by construction. This is the part whose size grows with the number of
//!   customers, so a scrape only hands on shared bytes, without copying them.
//! - **Live series** ([`Telemetry`]: API requests, poll outcomes, auth failures,
//!   refresh-token persist failures, build info, `process_*`) live in the exporter's own `prometheus::Registry` (no
//!   global registry) and are encoded at each scrape; their size does not depend on
//!   the number of customers.
//!
//! The `prometheus` crate is used only here, so replacing it stays cheap.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::model::{earliest, latest};
use crate::snapshot::Snapshot;

/// The content type of the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Endpoint label values of `partnercenter_api_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Customers,
    ServiceCosts,
    GenerateToken,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Customers => "customers",
            Endpoint::ServiceCosts => "servicecosts",
            Endpoint::GenerateToken => "generatetoken",
        }
    }
}

/// Every `reason` of `partnercenter_auth_failures_total`: the Azure AD `error`
/// values (RFC 6749 §5.2 and Azure AD's additions), `other` for an unknown one,
/// `transport` for no usable answer, `generatetoken` for a refused exchange. All are
/// exported from the start at 0, so `increase()` sees the first failure.
pub const AUTH_FAILURE_REASONS: &[&str] = &[
    "invalid_request",
    "invalid_grant",
    "unauthorized_client",
    "invalid_client",
    "unsupported_grant_type",
    "invalid_resource",
    "invalid_scope",
    "interaction_required",
    "temporarily_unavailable",
    "server_error",
    "access_denied",
    "other",
    "transport",
    "generatetoken",
];

/// Outcome label values of `partnercenter_polls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollResult {
    Success,
    Partial,
    Failure,
}

impl PollResult {
    pub fn as_str(self) -> &'static str {
        match self {
            PollResult::Success => "success",
            PollResult::Partial => "partial",
            PollResult::Failure => "failure",
        }
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
    poll_duration: Gauge,
    poll_in_progress: IntGauge,
    poll_last_success: Gauge,
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
    pub fn new() -> Result<Telemetry, prometheus::Error> {
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
        for reason in AUTH_FAILURE_REASONS {
            auth_failures.with_label_values(&[reason]);
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
                    "Polls of Partner Center finished, by result (partial: some customers failed).",
                ),
                &["result"],
            )?,
        );
        for result in [
            PollResult::Success,
            PollResult::Partial,
            PollResult::Failure,
        ] {
            polls.with_label_values(&[result.as_str()]);
        }
        let poll_duration = register(
            &registry,
            Gauge::new(
                "partnercenter_poll_duration_seconds",
                "Duration of the last complete poll of Partner Center.",
            )?,
        );
        let poll_in_progress = register(
            &registry,
            IntGauge::new(
                "partnercenter_poll_in_progress",
                "1 while a poll of Partner Center runs in the background.",
            )?,
        );
        let poll_last_success = register(
            &registry,
            Gauge::new(
                "partnercenter_poll_last_success_timestamp_seconds",
                "End of the last poll in which every customer succeeded (Unix time).",
            )?,
        );
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

    /// Counts a failed token request; `reason` must come from a fixed set of values.
    pub fn auth_failure(&self, reason: &str) {
        self.auth_failures.with_label_values(&[reason]).inc();
    }

    /// Counts a rotated refresh token that could not be written to its file.
    pub fn refresh_token_persist_failure(&self) {
        self.refresh_token_persist_failures.inc();
    }

    pub fn poll_started(&self) {
        self.poll_in_progress.set(1);
    }

    /// Records the end of a poll (or its cancellation, with `result` `None`).
    pub fn poll_finished(&self, result: Option<PollResult>, elapsed: Duration, ended_at: f64) {
        self.poll_in_progress.set(0);
        let Some(result) = result else { return };
        self.polls.with_label_values(&[result.as_str()]).inc();
        self.poll_duration.set(elapsed.as_secs_f64());
        if result == PollResult::Success {
            self.poll_last_success.set(ended_at);
        }
    }

    /// Restores the last-success time from a cached snapshot at start-up.
    pub fn restore_poll_last_success(&self, at: f64) {
        self.poll_last_success.set(at);
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
/// Capacity of a large exposition buffer, at least: see [`buffer`].
const LARGE_BUFFER: usize = 32 << 20;

/// A buffer for `size` bytes of exposition.
///
/// From 1 MiB on, its capacity is at least 32 MiB, which only reserves address space
/// (pages never written are never resident), but keeps glibc's malloc from holding on
/// to the memory: glibc maps allocations of 32 MiB and more directly and unmaps them
/// when freed, whereas smaller ones, once a large block has been freed (its mmap
/// threshold then rises to that size), come from per-thread arenas that keep freed
/// blocks. Allocated anew at every poll, 15 MiB buffers made the exporter's RSS grow
/// by about 10 MiB a poll in the benchmark (README, "Performance"), past 100 MiB.
fn buffer(size: usize) -> Vec<u8> {
    if size >= 1 << 20 {
        Vec::with_capacity(size.max(LARGE_BUFFER))
    } else {
        Vec::with_capacity(size)
    }
}

impl Exposition {
    pub fn render(snapshot: &Snapshot) -> Exposition {
        // The text format compresses about sevenfold: 250 bytes a customer.
        let out = buffer(1024 + snapshot.customers.len() * 250);
        let mut encoder = GzEncoder::new(out, Compression::default());
        let mut chunk = String::with_capacity(RENDER_CHUNK + 4096);
        // Writing to a Vec cannot fail.
        render_into(snapshot, &mut chunk, &mut |chunk: &mut String| {
            if chunk.len() >= RENDER_CHUNK {
                let _ = encoder.write_all(chunk.as_bytes());
                chunk.clear();
            }
        });
        let _ = encoder.write_all(chunk.as_bytes());
        Exposition {
            gzip: Bytes::from(encoder.finish().unwrap_or_default()),
            text: tokio::sync::OnceCell::new(),
        }
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

struct Family {
    name: &'static str,
    help: &'static str,
}

const PRETAX: Family = Family {
    name: "partnercenter_service_costs_pretax",
    help: "Pre-tax service costs of the customer's most recent billing period (details[].summary.pretaxTotal), as of the last background poll.",
};
const TAX: Family = Family {
    name: "partnercenter_service_costs_tax",
    help: "Tax on the service costs of the customer's most recent billing period (details[].summary.tax), as of the last background poll.",
};
const AFTER_TAX: Family = Family {
    name: "partnercenter_service_costs_after_tax",
    help: "After-tax service costs of the customer's most recent billing period (details[].summary.afterTaxTotal), as of the last background poll.",
};
const PERIOD_START: Family = Family {
    name: "partnercenter_service_costs_billing_period_start_timestamp_seconds",
    help: "Start of the billing period of the service costs (Unix time).",
};
const PERIOD_END: Family = Family {
    name: "partnercenter_service_costs_billing_period_end_timestamp_seconds",
    help: "End of the billing period of the service costs (Unix time).",
};
const INFO: Family = Family {
    name: "partnercenter_customer_info",
    help: "Monitored customer, with its name and domain; always 1.",
};
const BUDGET: Family = Family {
    name: "partnercenter_customer_budget",
    help: "Budget of the customer from the configuration file, in its billing currency.",
};
const FETCH_SUCCESS: Family = Family {
    name: "partnercenter_customer_fetch_success",
    help: "1 if the last background fetch of the customer's service costs succeeded (no data counts as success).",
};
const LAST_SUCCESS: Family = Family {
    name: "partnercenter_customer_last_success_timestamp_seconds",
    help: "When the customer's service costs were last fetched successfully (Unix time).",
};

/// Reads one figure of a cost line.
type LineValue<T> = fn(&crate::model::CostLine) -> T;

/// The billing period of one invoice type of a customer.
struct Period<'a> {
    invoice_type: &'a str,
    start: Option<f64>,
    end: Option<f64>,
}

/// Reads one end of a billing period.
type PeriodValue = fn(&Period<'_>) -> Option<f64>;

/// The billing period of each invoice type, in the order the types first appear.
/// The period gauges carry no currency label, so an invoice type billed in two
/// currencies has one period: the earliest start and the latest end of its lines.
fn periods_by_invoice_type(costs: &[crate::model::CostLine]) -> Vec<Period<'_>> {
    let mut periods: Vec<Period<'_>> = Vec::with_capacity(costs.len());
    // Invoice type → index in `periods`: linear in the lines, however many there are.
    let mut index: HashMap<&str, usize> = HashMap::new();
    for line in costs {
        let at = *index
            .entry(line.invoice_type.as_str())
            .or_insert(periods.len());
        match periods.get_mut(at) {
            Some(period) => {
                period.start = earliest(period.start, line.period_start);
                period.end = latest(period.end, line.period_end);
            }
            None => periods.push(Period {
                invoice_type: &line.invoice_type,
                start: line.period_start,
                end: line.period_end,
            }),
        }
    }
    periods
}

/// Renders the snapshot series in the text format 0.0.4.
pub fn render_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = String::new();
    render_into(snapshot, &mut out, &mut |_| {});
    out.into_bytes()
}

/// Renders the snapshot series, appending to `out` and calling `flush` after each
/// customer's samples of each family, so that the caller can hand on full chunks.
fn render_into(snapshot: &Snapshot, out: &mut String, flush: &mut dyn FnMut(&mut String)) {
    let money: [(&Family, LineValue<f64>); 3] = [
        (&PRETAX, |c| c.pretax),
        (&TAX, |c| c.tax),
        (&AFTER_TAX, |c| c.after_tax),
    ];
    for (family, value) in money {
        header(out, family);
        for customer in &snapshot.customers {
            for line in &customer.costs {
                sample(
                    out,
                    family,
                    &[
                        ("customer_id", &customer.id),
                        ("invoice_type", &line.invoice_type),
                        ("currency", &line.currency),
                    ],
                    value(line),
                );
            }
            flush(out);
        }
    }
    let periods: [(&Family, PeriodValue); 2] =
        [(&PERIOD_START, |p| p.start), (&PERIOD_END, |p| p.end)];
    for (family, value) in periods {
        header(out, family);
        for customer in &snapshot.customers {
            for period in periods_by_invoice_type(&customer.costs) {
                if let Some(v) = value(&period) {
                    sample(
                        out,
                        family,
                        &[
                            ("customer_id", &customer.id),
                            ("invoice_type", period.invoice_type),
                        ],
                        v,
                    );
                }
            }
            flush(out);
        }
    }
    header(out, &INFO);
    for c in &snapshot.customers {
        sample(
            out,
            &INFO,
            &[
                ("customer_id", &c.id),
                ("customer_name", &c.name),
                ("domain", &c.domain),
            ],
            1.0,
        );
        flush(out);
    }
    header(out, &BUDGET);
    for c in &snapshot.customers {
        if let (Some(budget), Some(currency)) = (c.budget, c.currency()) {
            sample(
                out,
                &BUDGET,
                &[("customer_id", &c.id), ("currency", currency)],
                budget,
            );
        }
        flush(out);
    }
    header(out, &FETCH_SUCCESS);
    for c in &snapshot.customers {
        let v = if c.fetch_success { 1.0 } else { 0.0 };
        sample(out, &FETCH_SUCCESS, &[("customer_id", &c.id)], v);
        flush(out);
    }
    header(out, &LAST_SUCCESS);
    for c in &snapshot.customers {
        if let Some(at) = c.last_success {
            sample(out, &LAST_SUCCESS, &[("customer_id", &c.id)], at);
        }
        flush(out);
    }
}

fn header(out: &mut String, family: &Family) {
    let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
    let _ = writeln!(out, "# TYPE {} gauge", family.name);
}

fn sample(out: &mut String, family: &Family, labels: &[(&str, &str)], value: f64) {
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
    use crate::model::parse_service_costs;
    use crate::snapshot::CustomerSnapshot;
    use proptest::prelude::*;

    fn documented_snapshot() -> Snapshot {
        let costs = parse_service_costs(include_bytes!(
            "../tests/fixtures/servicecosts-mostrecent.json"
        ))
        .unwrap();
        Snapshot {
            customers: vec![CustomerSnapshot {
                id: "ae1d5b32-f9ff-4252-b2bf-40e21937a51a".into(),
                name: "Fabrikam".into(),
                domain: "fabrikam.onmicrosoft.com".into(),
                budget: Some(1500.0),
                costs,
                fetch_success: true,
                last_success: Some(1_700_000_000.0),
            }],
            poll_last_success: None,
        }
    }

    #[test]
    fn documented_snapshot_exposition() {
        let text = String::from_utf8(render_snapshot(&documented_snapshot())).unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn vanished_customers_have_no_series() {
        let mut snapshot = documented_snapshot();
        snapshot.customers.clear();
        let text = String::from_utf8(render_snapshot(&snapshot)).unwrap();
        assert!(!text.contains("ae1d5b32"));
        assert!(text.contains("# TYPE partnercenter_service_costs_after_tax gauge"));
    }

    #[test]
    fn untrusted_names_are_escaped() {
        let mut snapshot = documented_snapshot();
        snapshot.customers[0].name = "Evil \"Corp\"\\\n<script>alert(1)</script> Ünïcödé".into();
        let text = String::from_utf8(render_snapshot(&snapshot)).unwrap();
        let info = text
            .lines()
            .find(|l| l.starts_with("partnercenter_customer_info{"))
            .unwrap();
        assert_eq!(
            info,
            "partnercenter_customer_info{customer_id=\"ae1d5b32-f9ff-4252-b2bf-40e21937a51a\",customer_name=\"Evil \\\"Corp\\\"\\\\\\n<script>alert(1)</script> Ünïcödé\",domain=\"fabrikam.onmicrosoft.com\"} 1"
        );
    }

    /// Every sample line's series (name and labels) occurs once.
    fn assert_unique_series(text: &str) {
        let mut seen = std::collections::HashSet::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, _) = line.rsplit_once(' ').unwrap();
            assert!(seen.insert(series), "two samples of {series} in\n{text}");
        }
    }

    #[test]
    fn an_invoice_type_in_two_currencies_has_one_period() {
        let mut snapshot = documented_snapshot();
        let line = |invoice_type: &str, currency: &str, start: Option<f64>, end: Option<f64>| {
            crate::model::CostLine {
                invoice_type: invoice_type.into(),
                currency: currency.into(),
                pretax: 1.0,
                tax: 0.0,
                after_tax: 1.0,
                period_start: start,
                period_end: end,
            }
        };
        snapshot.customers[0].costs = vec![
            line("Recurring", "USD", Some(200.0), Some(300.0)),
            line("OneTime", "USD", None, Some(250.0)),
            line("Recurring", "EUR", Some(100.0), Some(290.0)),
            line("OneTime", "EUR", Some(150.0), None),
        ];
        let text = String::from_utf8(render_snapshot(&snapshot)).unwrap();
        assert_unique_series(&text);
        let samples = |family: &str| -> Vec<&str> {
            text.lines()
                .filter(|l| l.starts_with(&format!("{family}{{")))
                .collect()
        };
        let id = "customer_id=\"ae1d5b32-f9ff-4252-b2bf-40e21937a51a\"";
        assert_eq!(
            samples(PERIOD_START.name),
            [
                format!(
                    "{}{{{id},invoice_type=\"Recurring\"}} 100",
                    PERIOD_START.name
                ),
                format!("{}{{{id},invoice_type=\"OneTime\"}} 150", PERIOD_START.name),
            ]
        );
        assert_eq!(
            samples(PERIOD_END.name),
            [
                format!("{}{{{id},invoice_type=\"Recurring\"}} 300", PERIOD_END.name),
                format!("{}{{{id},invoice_type=\"OneTime\"}} 250", PERIOD_END.name),
            ]
        );
        // The money series keep one sample per currency.
        assert_eq!(samples(AFTER_TAX.name).len(), 4);
    }

    /// The documented customer, repeated under `n` distinct ids.
    fn many_customers(n: usize) -> Snapshot {
        let one = documented_snapshot().customers.remove(0);
        Snapshot {
            customers: (0..n)
                .map(|i| CustomerSnapshot {
                    id: format!("{i:08}-f9ff-4252-b2bf-40e21937a51a"),
                    name: format!("Customer {i}"),
                    ..one.clone()
                })
                .collect(),
            poll_last_success: None,
        }
    }

    #[tokio::test]
    async fn exposition_text_and_gzip_match_the_render() {
        // Large enough to be rendered and compressed in several chunks.
        let snapshot = many_customers(500);
        let want = render_snapshot(&snapshot);
        assert!(want.len() > 3 * RENDER_CHUNK);
        let exposition = Exposition::render(&snapshot);
        assert_eq!(exposition.text().await, want);
        assert_eq!(exposition.text().await, want, "the text is kept");
        assert_eq!(gunzip(&exposition.gzip), want);
    }

    #[tokio::test]
    async fn expositions_of_any_size_round_trip() {
        for n in [800, 300, 0, 600] {
            let snapshot = many_customers(n);
            let exposition = Exposition::render(&snapshot);
            assert_eq!(exposition.text().await, render_snapshot(&snapshot));
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
        let t = Telemetry::new().unwrap();
        t.observe_request(Endpoint::ServiceCosts, Some(200), Duration::from_millis(5));
        t.observe_request(Endpoint::Token, None, Duration::from_millis(5));
        t.auth_failure("invalid_grant");
        let mut out = Vec::new();
        t.encode(&mut out);
        let text = String::from_utf8(out).unwrap();
        for name in [
            "partnercenter_api_requests_total{code=\"200\",endpoint=\"servicecosts\"} 1",
            "partnercenter_api_requests_total{code=\"error\",endpoint=\"token\"} 1",
            "partnercenter_api_request_duration_seconds_bucket",
            "partnercenter_auth_failures_total{reason=\"invalid_grant\"} 1",
            "partnercenter_auth_failures_total{reason=\"transport\"} 0",
            "partnercenter_polls_total{result=\"partial\"} 0",
            "partnercenter_poll_duration_seconds",
            "partnercenter_poll_in_progress 0",
            "partnercenter_poll_last_success_timestamp_seconds",
            "partnercenter_exporter_build_info{",
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
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
