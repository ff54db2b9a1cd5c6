//! The exporter's own live metrics: API requests, the runs of each collector,
//! sign-in failures, refresh-token persist failures, build info and `process_*`, in
//! the exporter's own `prometheus::Registry` (no global registry), encoded at each
//! scrape; their size does not depend on the number of customers. Label values that
//! form fixed sets are enums here, one list each.
//!
//! The `prometheus` crate is used only here, so replacing it stays cheap.

use std::time::Duration;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

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
        DeviceCode => "devicecode",
        Customers => "customers",
        ServiceCosts => "servicecosts",
        UsageRecords => "usagerecords",
        Invoices => "invoices",
        InvoiceSummaries => "invoicesummaries",
        LineItems => "lineitems",
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
