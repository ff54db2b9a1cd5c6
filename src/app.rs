//! Start-up and lifecycle: wires config → auth → client → collectors → metrics →
//! server.
//!
//! [`Application::build`] does everything that can fail at start (demo simulator,
//! web config, cache file, binding the listener) and reports the bound address, so
//! tests start the real application on port 0. [`Application::run_until`] runs the
//! collectors, each on its own timer, and the server until the shutdown token is
//! cancelled, then stops them all.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::collectors::customers::{self, Customers};
use crate::collectors::state::{PartKind, SharedState};
use crate::collectors::{self as collectors_mod, part_loaders, run_every, Runner, Shared};
use crate::config::{Config, CustomerConfig, CustomerSelection, Grant};
use crate::http::retry::Backoff;
use crate::partner_center::client::PartnerCenterClient;
use crate::server::{serve, ServerState};
use crate::simulator::{SimCosts, Simulator, SimulatorConfig};
use crate::snapshot::cache::{load_cache, StateLock};
use crate::snapshot::Snapshot;
use crate::telemetry::Telemetry;
use crate::web_config::{TlsAcceptorSource, WebConfig};

/// A built, listening exporter.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<TlsAcceptorSource>,
    runners: Vec<Arc<dyn Runner>>,
    server_state: Arc<ServerState>,
    /// The simulated Partner Center of `--demo`, kept alive with the application.
    simulator: Option<Simulator>,
    /// Exclusive locks on the state files, held until the application is dropped.
    _locks: Vec<StateLock>,
}

impl Application {
    /// Builds the exporter and binds its listener. The cache file, if any, is loaded
    /// before the listener opens, so the first scrape already shows the last values.
    pub async fn build(mut config: Config) -> anyhow::Result<Application> {
        Self::build_with_backoff(&mut config, Backoff::standard()).await
    }

    /// As [`Application::build`], with another retry policy (tests use short waits).
    pub async fn build_with_backoff(
        config: &mut Config,
        backoff: Backoff,
    ) -> anyhow::Result<Application> {
        let simulator = if config.demo {
            Some(start_demo(config).await?)
        } else {
            None
        };
        if config.auth.grant == Grant::ClientCredentials {
            tracing::warn!(
                "--auth.grant client-credentials gives an app-only token: Partner Center lists customers with it but refuses service costs, which need App+User (refresh-token grant)"
            );
        }
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }

        // Before anything reads or writes them: a second exporter on the same state
        // files would sign in with tokens this one has already rotated.
        let mut locks = Vec::new();
        let state_files = [
            config
                .auth
                .refresh_token_file
                .as_ref()
                .filter(|_| config.auth.grant == Grant::RefreshToken),
            config.poll.cache_file.as_ref(),
        ];
        for path in state_files.into_iter().flatten() {
            locks.push(StateLock::acquire(path)?);
        }

        let web = match &config.web_config_file {
            Some(path) => Some(WebConfig::load(path)?),
            None => None,
        };

        let enabled: Vec<&'static str> = config
            .collectors
            .iter()
            .filter(|c| c.enabled)
            .map(|c| c.name)
            .collect();
        if enabled.is_empty() {
            tracing::warn!(
                "every collector is disabled: only the exporter's own metrics are served"
            );
        }
        let telemetry = Arc::new(Telemetry::new(&enabled).context("creating metrics")?);
        let http = reqwest::Client::builder()
            .timeout(config.poll.timeout)
            .connect_timeout(config.poll.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!(
                "partnercenter-exporter/",
                env!("CARGO_PKG_VERSION")
            ))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("creating the HTTP client")?;
        let auth = Arc::new(Authenticator::new(
            http.clone(),
            config.auth.clone(),
            config.partner_center_url.clone(),
            telemetry.clone(),
            backoff.clone(),
        ));
        let client = Arc::new(PartnerCenterClient::new(
            http,
            config.partner_center_url.clone(),
            auth.clone(),
            config.poll.rate_limit,
            config.poll.concurrency,
            telemetry.clone(),
            backoff,
        ));

        // The customer list first, then the collectors' parts in registry order.
        let registered: Vec<_> = collectors_mod::COLLECTORS
            .iter()
            .zip(&config.collectors)
            .map(|(info, settings)| (settings.clone(), (info.build)(settings)))
            .collect();
        let mut kinds: Vec<Arc<dyn PartKind>> = vec![Arc::new(Customers)];
        kinds.extend(
            registered
                .iter()
                .filter(|(settings, _)| settings.enabled)
                .map(|(_, r)| r.kind.clone()),
        );
        let snapshot = match &config.poll.cache_file {
            Some(path) => load_initial_snapshot(path, &enabled),
            None => Snapshot::default(),
        };
        for name in &enabled {
            if let Some(at) = snapshot.any_part(name).and_then(|p| p.last_success()) {
                telemetry.restore_last_success(name, at);
            }
        }
        let shared = Arc::new(SharedState::new(kinds, snapshot));
        let context = Arc::new(Shared::new(
            client,
            auth,
            config.customers.clone(),
            config.poll.concurrency,
            shared.clone(),
            telemetry.clone(),
            config.poll.cache_file.clone(),
        ));
        let runners = collectors_mod::start(registered, &context);

        let listener = bind(&config.listen_address).await?;
        let local_addr = listener.local_addr()?;
        let tls = web.as_ref().and_then(WebConfig::tls);
        let server_state = Arc::new(ServerState::new(
            shared,
            telemetry,
            config.telemetry_path.clone(),
            web.as_ref(),
            runners
                .iter()
                .map(|r| (r.name(), r.interval(), r.plan()))
                .collect(),
        ));
        let schedule = runners
            .iter()
            .map(|r| {
                format!(
                    "{} every {}",
                    r.name(),
                    humantime::format_duration(r.interval())
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        tracing::info!(
            address = %local_addr,
            tls = tls.is_some(),
            telemetry_path = %config.telemetry_path,
            collectors = %schedule,
            "listening"
        );
        Ok(Application {
            listener,
            local_addr,
            tls,
            runners,
            server_state,
            simulator,
            _locks: locks,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The scheduler of an enabled collector, for tests that drive runs with
    /// `poll_once`.
    pub fn collector(&self, name: &str) -> Option<Arc<dyn Runner>> {
        self.runners.iter().find(|r| r.name() == name).cloned()
    }

    /// The demo simulator, if running with `--demo`.
    pub fn simulator(&self) -> Option<&Simulator> {
        self.simulator.as_ref()
    }

    /// Serves and polls until `shutdown` is cancelled; returns once drained.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.run(shutdown, true).await
    }

    /// Serves until `shutdown` without running the collectors in the background
    /// (tests call `poll_once` themselves).
    pub async fn serve_only(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.run(shutdown, false).await
    }

    async fn run(self, shutdown: CancellationToken, poll: bool) -> anyhow::Result<()> {
        self.server_state.ready.store(true, Ordering::SeqCst);
        let poller = poll.then(|| tokio::spawn(run_all(self.runners, shutdown.child_token())));
        let server = tokio::spawn(serve(
            self.listener,
            self.tls,
            self.server_state,
            shutdown.clone(),
        ));
        let result = match poller {
            Some(poller) => supervise(poller, shutdown.clone()).await,
            None => Ok(()),
        };
        // A failed collector has cancelled `shutdown`: the server drains and stops too.
        if let Err(err) = server.await {
            tracing::error!(error = %err, "the server task failed");
        }
        if let Some(sim) = self.simulator {
            sim.shutdown().await;
        }
        tracing::info!("stopped");
        result
    }
}

/// Waits for a background task that must run until `shutdown`. If it ends before
/// (a panic, which the panic hook has logged), the exporter must not go on serving
/// data that no longer changes with `/-/ready` answering 200: it cancels `shutdown`
/// and returns the error, so the process exits non-zero and its supervisor
/// restarts it.
pub async fn supervise(
    task: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let outcome = task.await;
    if shutdown.is_cancelled() && outcome.is_ok() {
        return Ok(());
    }
    shutdown.cancel();
    let why = match outcome {
        Ok(()) => "ended unexpectedly".to_owned(),
        Err(err) if err.is_panic() => "panicked".to_owned(),
        Err(err) => format!("failed: {err}"),
    };
    tracing::error!("a collector {why}; stopping so that the supervisor restarts the exporter");
    anyhow::bail!("a collector {why}")
}

/// Runs every collector on its timer until `shutdown`. It returns before only if a
/// collector's loop ended, and panics if one panicked, so that [`supervise`] sees it.
async fn run_all(runners: Vec<Arc<dyn Runner>>, shutdown: CancellationToken) {
    let mut set = tokio::task::JoinSet::new();
    for runner in runners {
        set.spawn(run_every(runner, shutdown.clone()));
    }
    while let Some(ended) = set.join_next().await {
        match ended {
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            _ if shutdown.is_cancelled() => {}
            // A loop that ends before shutdown: the others are aborted with the set.
            _ => return,
        }
    }
    // No collector at all: wait for shutdown like one.
    shutdown.cancelled().await;
}

/// The cache file's parts of the customer list and of the enabled collectors.
fn load_initial_snapshot(path: &std::path::Path, enabled: &[&str]) -> Snapshot {
    let loaders: Vec<_> = part_loaders()
        .into_iter()
        .filter(|(name, _)| *name == customers::NAME || enabled.contains(name))
        .collect();
    match load_cache(path, &loaders) {
        Ok(Some(loaded)) => {
            for skipped in &loaded.skipped {
                tracing::warn!(path = %path.display(), "ignoring a part of the cache file: {skipped}");
            }
            let parts = loaded
                .snapshot
                .parts()
                .map(|(name, part)| format!("{name}={}", part.len()))
                .collect::<Vec<_>>()
                .join(" ");
            tracing::info!(
                path = %path.display(),
                parts = %parts,
                "serving the cached snapshot until the collectors' first runs end"
            );
            loaded.snapshot
        }
        Ok(None) => {
            tracing::info!(path = %path.display(), "no cache file yet; it is written after the first run");
            Snapshot::default()
        }
        Err(err) => {
            tracing::warn!(error = %err, "ignoring the cache file; it is rewritten after the first run");
            Snapshot::default()
        }
    }
}

async fn bind(address: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("--web.listen-address: cannot listen on {address}"))
}

/// Starts the built-in simulator and points the configuration at it: its URL, its
/// credentials (refresh-token grant, kept in memory), and budgets for a few customers
/// so the budget panels and alerts have something to show.
async fn start_demo(config: &mut Config) -> anyhow::Result<Simulator> {
    let sim = Simulator::start(SimulatorConfig::default())
        .await
        .context("starting the demo simulator")?;
    let creds = sim.credentials();
    config.partner_center_url = sim.url();
    config.auth.authority = sim.url();
    config.auth.tenant = creds.tenant;
    config.auth.client_id = creds.client_id;
    config.auth.client_secret = Some(SecretString::from(creds.client_secret));
    config.auth.grant = Grant::RefreshToken;
    config.auth.refresh_token = Some(SecretString::from(creds.refresh_token));
    config.auth.refresh_token_file = None;
    if config.customers.discover && config.customers.customers.is_empty() {
        config.customers = CustomerSelection {
            discover: true,
            customers: demo_budgets(&sim),
        };
    }
    tracing::info!(url = %sim.url(), customers = sim.customers().len(), "demo: simulated Partner Center started");
    Ok(sim)
}

/// Budgets for every fifth customer: alternately under and over current spend.
fn demo_budgets(sim: &Simulator) -> Vec<CustomerConfig> {
    sim.customers()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 5 == 2)
        .filter_map(|(i, c)| {
            let SimCosts::Generated(details) = &c.costs else {
                return None;
            };
            let spend: f64 = details.iter().map(|d| d.pretax + d.tax).sum();
            let factor = if i % 10 == 2 { 1.5 } else { 0.8 };
            Some(CustomerConfig {
                id: c.id,
                name: None,
                budget: Some((spend * factor).round().max(1.0)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_background_task_stops_the_exporter() {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(async {
            tokio::task::yield_now().await;
            panic!("boom");
        });
        let result = supervise(task, shutdown.clone()).await;
        assert!(result.unwrap_err().to_string().contains("panicked"));
        assert!(shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn a_task_ending_at_shutdown_is_fine() {
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { token.cancelled().await });
        shutdown.cancel();
        assert!(supervise(task, shutdown).await.is_ok());
    }

    #[tokio::test]
    async fn a_task_ending_early_stops_the_exporter() {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(async {});
        assert!(supervise(task, shutdown.clone()).await.is_err());
        assert!(shutdown.is_cancelled());
    }
}
