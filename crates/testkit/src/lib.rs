//! The one place the test setup of partnercenter-exporter lives, for the
//! integration tests (`tests/it`), the benchmark (`benches/exporter`) and the
//! web-config crate's tests. It is a dev-dependency only and is never published.
//!
//! # Layout
//!
//! - `app` (feature `exporter`): `TestApp`, the builder that owns a simulated
//!   Azure AD and Partner Center, a temporary directory with the exporter's secret
//!   and state files, and the exporter under test, started as the real binary
//!   (`spawn_binary`) or as an in-process `Application` with short retry waits
//!   (`start_in_process`). `Running` is such an exporter with its setup; `Binary`
//!   and `InProcess` are the two kinds of exporter.
//! - [`metrics`]: a parser of the Prometheus text format ([`Metrics`]) and cheap
//!   line scans for large expositions ([`metrics::sample`], [`metrics::count_series`]).
//! - [`prometheus`]: a real Prometheus server (scraping, evaluating rule files,
//!   sending alerts) and `promtool check metrics`.
//! - [`alertmanager`]: a real Alertmanager, `amtool`, and a webhook receiver that
//!   records the notifications Alertmanager delivers.
//! - [`certs`]: a throw-away CA and the leaves it issues, and rustls clients that
//!   trust it.
//! - [`host`]: what a test needs from the machine: free loopback ports, programs
//!   on `PATH`, files only their owner may read.
//! - [`logs`]: reading the exporter's logfmt lines.
//!
//! What it must not do: assert what a particular test is about. Helpers here wait,
//! start, parse and clean up (every child process is killed when its guard drops,
//! also on panic); the assertions stay in the tests.

// A panic in test support is a test failure with its message, which is what a
// `Result` would be turned into anyway: unwrap and expect are the clearer form here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod alertmanager;
#[cfg(feature = "exporter")]
pub mod app;
pub mod certs;
pub mod host;
pub mod logs;
pub mod metrics;
pub mod prometheus;

pub use alertmanager::{Alertmanager, Notification, WebhookReceiver};
#[cfg(feature = "exporter")]
pub use app::{
    exporter_binary, finished, redeem_refresh_token, run_to_exit, simulator, Binary, InProcess,
    Running, TestApp,
};
pub use host::{find_on_path, free_port, secret_file, secret_file_bytes};
pub use logs::field;
pub use metrics::{Metrics, SERVICECOSTS, USAGE};
pub use prometheus::{promtool_check_metrics, Prometheus};

/// Installs the process-wide TLS crypto provider (ring) that reqwest and the
/// exporter use. Idempotent; everything here that makes a client calls it.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Sends `request` and reads its answer as JSON; panics if either fails.
async fn send_for_json(request: reqwest::RequestBuilder) -> serde_json::Value {
    let answer = request.send().await.expect("request sent");
    answer.json().await.expect("a JSON answer")
}
