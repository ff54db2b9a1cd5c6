//! The exporter in this process: the `Application` built from flags with short
//! retry waits, serving on 127.0.0.1:0 without a background poll loop, so that a
//! test runs each collector itself and sees every outcome.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use partnercenter_exporter::app::Application;
use partnercenter_exporter::collectors::{PollOutcome, Runner};
use partnercenter_exporter::config::{Config, Flags, SecretEnv};
use partnercenter_exporter::http::retry::Backoff;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// An exporter in this process, serving without a background poll loop: tests
/// call [`poll`](InProcess::poll) or a collector's `poll_once`.
pub struct InProcess {
    pub addr: SocketAddr,
    /// The service-costs collector's scheduler.
    pub poller: Arc<dyn Runner>,
    /// The usage collector's scheduler, if enabled.
    pub usage: Option<Arc<dyn Runner>>,
    /// Every enabled collector's scheduler.
    collectors: Vec<Arc<dyn Runner>>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Retry waits of milliseconds instead of seconds: 4 retries, at most 3 s of
/// waiting per call.
pub fn fast_backoff() -> Backoff {
    Backoff::new(
        Duration::from_millis(20),
        Duration::from_millis(200),
        4,
        Duration::from_secs(3),
    )
}

/// A finished run's result and number of failed targets; panics if the run did
/// not start because another one was running.
pub fn finished(outcome: PollOutcome) -> (String, usize) {
    match outcome {
        PollOutcome::Finished { result, failed, .. } => (result.as_str().to_owned(), failed),
        PollOutcome::AlreadyRunning => panic!("poll did not run"),
    }
}

impl InProcess {
    /// Builds the application from `args` (without the program name) and serves it.
    pub(crate) async fn start(args: &[String]) -> InProcess {
        let mut all = vec!["partnercenter-exporter".to_owned()];
        all.extend_from_slice(args);
        let flags = Flags::parse_args(all).expect("flags");
        let mut config = Config::from_flags(flags, SecretEnv::default()).expect("config");
        let app = Application::build_with_backoff(&mut config, fast_backoff())
            .await
            .expect("builds");
        let addr = app.local_addr();
        let poller = app
            .collector("servicecosts")
            .expect("servicecosts is enabled");
        let usage = app.collector("usage");
        let collectors = partnercenter_exporter::collectors::COLLECTORS
            .iter()
            .filter_map(|c| app.collector(c.name))
            .collect();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.serve_only(shutdown.clone()));
        InProcess {
            addr,
            poller,
            usage,
            collectors,
            shutdown,
            task: Some(task),
        }
    }

    /// The scheduler of the collector `name`; panics if it is not enabled.
    pub fn collector(&self, name: &str) -> Arc<dyn Runner> {
        self.collectors
            .iter()
            .find(|c| c.name() == name)
            .cloned()
            .unwrap_or_else(|| panic!("the {name} collector is not enabled"))
    }

    /// One service-costs run: its result and number of failed customers.
    pub async fn poll(&self) -> (String, usize) {
        finished(self.poller.poll_once().await)
    }

    /// `http://{addr}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `GET /metrics`, which must answer 200, parsed.
    pub async fn metrics(&self) -> Metrics {
        let (status, body) = super::get(self.url("/metrics")).await;
        assert_eq!(status, 200);
        Metrics::parse(&body)
    }

    /// Cancels the server and waits until it has drained.
    pub(crate) async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
