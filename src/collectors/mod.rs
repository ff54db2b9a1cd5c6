//! The collectors: the seam every kind of Partner Center data plugs into, and the
//! scheduler that runs them.
//!
//! A [`Collector`] says what it fetches (per customer, or once for the partner), how
//! it turns answers into values, and how its part renders. Everything else lives
//! here once: the timer of each collector (`--collector.NAME.interval`), at most one
//! run of each at a time, the shared customer list ([`discovery`]), the fan-out over
//! customers with at most `--poll.concurrency` requests in flight (the client's rate
//! limit and concurrency bound are shared by all collectors), keep-last-good
//! ([`crate::snapshot::merge`]), progressive publishing, the run self-metrics and
//! the cache file.
//!
//! A run of a per-customer collector publishes what it has fetched every
//! [`PROGRESS_EVERY`] (less often for a part that takes long to encode), merged
//! into its previous part, so that a cold start of
//! thousands of customers shows its first customers within seconds; customers no
//! longer monitored leave at the end of the run. A partner-level run makes its few
//! requests and publishes once. A run that is cancelled (shutdown) publishes no
//! final part and writes no cache file; what it published on the way stays served.
//!
//! Adding a collector: one file with a type that implements [`Collector`], one line
//! in [`COLLECTORS`], and its route in the simulator.

pub mod customers;
pub mod discovery;
pub mod invoices;
pub mod lineitems;
pub mod servicecosts;
pub mod state;
pub mod usage;

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::config::{CollectorSettings, CustomerSelection};
use crate::exposition::Render;
use crate::partner_center::client::{ApiError, PartnerCenterClient};
use crate::partner_center::model::unix_seconds;
use crate::snapshot::cache::{load_part, save_cache, PartLoader};
use crate::snapshot::{failed_keys, merge, Outcome, Part, Snapshot, Stage};
use crate::telemetry::{PollResult, Telemetry};
use discovery::{Discovery, Target};
use state::{PartKind, SharedState};

/// How often a long per-customer run publishes what it has fetched so far, at most.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// A progress publication that took `t` is followed by the next one no sooner than
/// `t` times this: a large part (10,000 customers take about 0.3 s to encode)
/// publishes less often, so that encoding stays a small share of a run.
const PROGRESS_COST_FACTOR: u32 = 50;

/// What a collector fetches per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// One fetch per monitored customer; needs the customer list.
    EachCustomer,
    /// Partner-level requests, once per run, whatever the number of customers.
    Partner,
}

/// What one fetch is for.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Customer(&'a Target),
    Partner,
}

/// A kind of Partner Center data, fetched on its own schedule into its own part.
pub trait Collector: Send + Sync + Sized + 'static {
    /// What the part holds per key.
    type Value: Clone + std::fmt::Debug + Send + Sync + Serialize + DeserializeOwned + 'static;

    /// The collector's name: in flags, the `collector` label, the cache file.
    const NAME: &'static str;
    const PLAN: Plan;

    /// Fetches one customer's values ([`Scope::Customer`]: keyed by its id) or the
    /// partner's ([`Scope::Partner`]). An error fails the whole scope: its previous
    /// values stay, marked failed.
    fn fetch(
        &self,
        api: &Api<'_>,
        scope: Scope<'_>,
    ) -> impl Future<Output = Result<Vec<(String, Self::Value)>, ApiError>> + Send;

    /// Renders the part: every family's `# HELP`/`# TYPE`, even without samples.
    fn render(&self, snapshot: &Snapshot, part: &Part<Self::Value>, out: &mut Render<'_>);

    /// The other parts whose values the part's series may read.
    const READS: &'static [&'static str] = &[];

    /// What Partner Center's 403 means for this collector, for the log line: the
    /// permission the signed-in account lacks.
    const FORBIDDEN: &'static str = "the signed-in user may lack the role this data needs";

    /// Whether the part's series read one of [`Collector::READS`] now (and so must
    /// be rendered again when it changes).
    fn reads_others(&self, _part: &Part<Self::Value>) -> bool {
        false
    }

    /// Called with the part a run ends with, before it is published: for what a
    /// collector says once per run (a summary line).
    fn finished(&self, _part: &Part<Self::Value>) {}

    /// The text size the part renders to, about.
    fn size_hint(&self, part: &Part<Self::Value>) -> usize {
        part.len().saturating_mul(300)
    }
}

/// A collector as the registry knows it: name, default, help, flags.
#[derive(Debug, Clone, Copy)]
pub struct Info {
    pub name: &'static str,
    pub enabled_by_default: bool,
    pub about: &'static str,
    /// `collector.NAME`, `no-collector.NAME`, `collector.NAME.interval`.
    pub flag: &'static str,
    pub no_flag: &'static str,
    pub interval_flag: &'static str,
    /// Their environment variables.
    pub env: &'static str,
    pub no_env: &'static str,
    pub interval_env: &'static str,
    /// Its settings beyond on/off and interval (`--collector.NAME.KEY`).
    pub options: &'static [OptionInfo],
    /// Reads the collector's part from the cache file.
    pub load: PartLoader,
    /// Builds the collector from its settings.
    pub build: fn(&CollectorSettings) -> Registered,
}

/// A setting of one collector beyond on/off and interval: the flag
/// `--collector.NAME.KEY`, its environment variable, the file key
/// `collectors.NAME.KEY` (with `_` for `-`), and its default.
#[derive(Debug, Clone, Copy)]
pub struct OptionInfo {
    /// `history`, `max-subscriptions`.
    pub key: &'static str,
    /// `collector.NAME.KEY`.
    pub flag: &'static str,
    pub env: &'static str,
    pub kind: OptionKind,
    pub default: &'static str,
    pub help: &'static str,
}

impl OptionInfo {
    /// The key in the config file's `collectors.NAME` map.
    pub fn file_key(&self) -> String {
        self.key.replace('-', "_")
    }
}

/// What a collector setting holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptionKind {
    /// A duration longer than zero (`400d`).
    Duration,
    /// A whole number in `min..=max`.
    Count { min: u64, max: u64 },
}

/// A collector setting's validated value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionValue {
    Duration(Duration),
    Count(u64),
}

/// [`OptionInfo`] from the collector's name and the setting's key, each in lower and
/// upper snake case.
#[macro_export]
macro_rules! collector_option {
    ($name:literal, $upper:literal, $key:literal, $key_upper:literal, $kind:expr, $default:literal, $help:literal) => {
        $crate::collectors::OptionInfo {
            key: $key,
            flag: concat!("collector.", $name, ".", $key),
            env: concat!("PARTNERCENTER_COLLECTOR_", $upper, "_", $key_upper),
            kind: $kind,
            default: $default,
            help: $help,
        }
    };
}

/// [`Info`] from the collector's name in lower and upper snake case, its type and
/// how to build it (and its settings, if it has any).
#[macro_export]
macro_rules! collector_info {
    ($name:literal, $upper:literal, $default:expr, $about:literal, $ty:ty, $build:expr) => {
        $crate::collector_info!($name, $upper, $default, $about, $ty, $build, &[])
    };
    ($name:literal, $upper:literal, $default:expr, $about:literal, $ty:ty, $build:expr, $options:expr) => {
        $crate::collectors::Info {
            name: $name,
            enabled_by_default: $default,
            about: $about,
            flag: concat!("collector.", $name),
            no_flag: concat!("no-collector.", $name),
            interval_flag: concat!("collector.", $name, ".interval"),
            env: concat!("PARTNERCENTER_COLLECTOR_", $upper),
            no_env: concat!("PARTNERCENTER_NO_COLLECTOR_", $upper),
            interval_env: concat!("PARTNERCENTER_COLLECTOR_", $upper, "_INTERVAL"),
            options: $options,
            load: $crate::snapshot::cache::load_part::<<$ty as $crate::collectors::Collector>::Value>,
            build: $build,
        }
    };
}

/// Every collector, in the order their parts appear on `/metrics`.
pub const COLLECTORS: &[Info] = &[
    servicecosts::INFO,
    usage::INFO,
    invoices::INFO,
    lineitems::INFO,
];

/// A built collector: its part's renderer and its scheduler, to be started.
pub struct Registered {
    pub kind: Arc<dyn PartKind>,
    start: Box<dyn FnOnce(Arc<Shared>, Duration) -> Arc<dyn Runner> + Send>,
}

/// Registers a collector: its part kind and its scheduler share one instance.
pub fn register<C: Collector>(collector: C) -> Registered {
    let collector = Arc::new(collector);
    Registered {
        kind: Arc::new(CollectorKind(collector.clone())),
        start: Box::new(move |shared, interval| {
            Arc::new(Scheduler {
                collector,
                shared,
                interval,
                running: tokio::sync::Mutex::new(()),
                last_start: std::sync::Mutex::new(None),
            })
        }),
    }
}

/// The loaders of every part the cache file may hold (all collectors, enabled or
/// not, and the customer list).
pub fn part_loaders() -> Vec<(&'static str, PartLoader)> {
    let mut loaders = vec![(
        customers::NAME,
        load_part::<customers::CustomerInfo> as PartLoader,
    )];
    loaders.extend(COLLECTORS.iter().map(|info| (info.name, info.load)));
    loaders
}

/// What a collector's fetch may use.
pub struct Api<'a> {
    pub client: &'a PartnerCenterClient,
    monitored: Option<&'a HashSet<String>>,
    telemetry: &'a Telemetry,
    name: &'static str,
}

impl Api<'_> {
    /// Whether the customer is monitored (always, when all customers are).
    pub fn monitors(&self, customer_id: &str) -> bool {
        self.monitored.is_none_or(|m| m.contains(customer_id))
    }

    /// A partner-level run found more requests to make (a next page).
    pub fn add_targets(&self, more: usize) {
        let status = self.telemetry.run_status(self.name);
        let total = usize::try_from(status.targets)
            .unwrap_or(0)
            .saturating_add(more);
        self.telemetry.set_targets(self.name, total);
    }

    /// A partner-level run made one of its requests.
    pub fn target_done(&self) {
        self.telemetry.target_done(self.name);
    }
}

/// What every collector's runs share.
pub struct Shared {
    pub client: Arc<PartnerCenterClient>,
    pub auth: Arc<Authenticator>,
    pub selection: CustomerSelection,
    /// The monitored ids, when they are listed rather than discovered.
    monitored: Option<HashSet<String>>,
    pub concurrency: usize,
    pub state: Arc<SharedState>,
    pub telemetry: Arc<Telemetry>,
    pub cache_file: Option<PathBuf>,
    pub discovery: Discovery,
    /// One cache write at a time, each of the snapshot as it is then.
    cache_writer: tokio::sync::Mutex<()>,
}

impl Shared {
    pub fn new(
        client: Arc<PartnerCenterClient>,
        auth: Arc<Authenticator>,
        selection: CustomerSelection,
        concurrency: usize,
        state: Arc<SharedState>,
        telemetry: Arc<Telemetry>,
        cache_file: Option<PathBuf>,
    ) -> Shared {
        let monitored = (!selection.discover).then(|| {
            selection
                .customers
                .iter()
                .map(|c| c.id.to_ascii_lowercase())
                .collect()
        });
        Shared {
            discovery: Discovery::new(selection.clone()),
            client,
            auth,
            selection,
            monitored,
            concurrency: concurrency.max(1),
            state,
            telemetry,
            cache_file,
            cache_writer: tokio::sync::Mutex::new(()),
        }
    }

    async fn write_cache(&self) {
        let Some(path) = self.cache_file.clone() else {
            return;
        };
        let _one_at_a_time = self.cache_writer.lock().await;
        let published = self.state.load();
        let written =
            tokio::task::spawn_blocking(move || save_cache(&path, &published.snapshot)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "cannot write the cache file"),
            Err(err) => tracing::warn!(error = %err, "cache writer failed"),
        }
    }
}

/// Starts the schedulers of the enabled collectors.
pub fn start(
    registered: Vec<(CollectorSettings, Registered)>,
    shared: &Arc<Shared>,
) -> Vec<Arc<dyn Runner>> {
    registered
        .into_iter()
        .filter(|(settings, _)| settings.enabled)
        .map(|(settings, r)| (r.start)(shared.clone(), settings.interval))
        .collect()
}

/// The result of one call to [`Runner::poll_once`].
#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome {
    /// The run finished and its part was published.
    Finished {
        result: PollResult,
        /// Keys in the part (customers, for a per-customer collector).
        customers: usize,
        failed: usize,
    },
    /// A run of this collector was going on; this one did not start.
    AlreadyRunning,
}

/// A collector's scheduler, type-erased.
pub trait Runner: Send + Sync {
    fn name(&self) -> &'static str;
    fn interval(&self) -> Duration;
    /// What the collector fetches per run: its progress counts customers or requests.
    fn plan(&self) -> Plan;
    /// Runs the collector once, now (tests drive runs with it).
    fn poll_once(&self) -> Pin<Box<dyn Future<Output = PollOutcome> + Send + '_>>;
}

/// Runs `runner` at once and then every interval until `shutdown`. A run in
/// progress when shutdown comes is abandoned.
pub async fn run_every(runner: Arc<dyn Runner>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(runner.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => {
                tracing::info!(collector = runner.name(), "run cancelled by shutdown; the published data stays");
                return;
            }
            _ = runner.poll_once() => {}
        }
    }
}

struct Scheduler<C: Collector> {
    collector: Arc<C>,
    shared: Arc<Shared>,
    interval: Duration,
    /// Held for the whole run: a second run finds it taken and does not start.
    running: tokio::sync::Mutex<()>,
    /// When the previous run started.
    last_start: std::sync::Mutex<Option<Instant>>,
}

impl<C: Collector> Runner for Scheduler<C> {
    fn name(&self) -> &'static str {
        C::NAME
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn plan(&self) -> Plan {
        C::PLAN
    }

    fn poll_once(&self) -> Pin<Box<dyn Future<Output = PollOutcome> + Send + '_>> {
        Box::pin(self.run_once())
    }
}

impl<C: Collector> Scheduler<C> {
    async fn run_once(&self) -> PollOutcome {
        let Ok(_running) = self.running.try_lock() else {
            tracing::warn!(
                collector = C::NAME,
                "a run is still going on; not starting another"
            );
            return PollOutcome::AlreadyRunning;
        };
        let shared = &self.shared;
        let started = Instant::now();
        shared.auth.begin_poll();
        shared.telemetry.run_started(C::NAME, 0);
        // The guard resets poll_in_progress even if this future is dropped midway.
        let guard = InProgress(&shared.telemetry, C::NAME, started);

        // The previous part is shared, not copied; holding only it (not the whole
        // publication) lets the old expositions go once a progress publication
        // replaces them.
        let held = shared.state.load().snapshot.any_part(C::NAME).cloned();
        let empty = Part::default();
        let previous: &Part<C::Value> = held
            .as_deref()
            .and_then(|p| p.as_any().downcast_ref())
            .unwrap_or(&empty);
        let (mut part, result, failed) = match C::PLAN {
            Plan::EachCustomer => self.run_customers(previous).await,
            Plan::Partner => self.run_partner(previous).await,
        };
        let ended = now();
        if result == PollResult::Success {
            part.last_success = Some(ended);
        }
        let customers = part.len();
        self.collector.finished(&part);
        shared.state.publish(C::NAME, Arc::new(part));
        // The cache is on disk before the run counts as finished.
        shared.write_cache().await;
        drop(guard);
        shared
            .telemetry
            .run_finished(C::NAME, Some(result), started.elapsed(), ended);
        tracing::info!(
            collector = C::NAME,
            result = result.as_str(),
            customers,
            failed,
            duration = ?started.elapsed(),
            "run finished"
        );
        PollOutcome::Finished {
            result,
            customers,
            failed,
        }
    }

    fn api(&self) -> Api<'_> {
        Api {
            client: &self.shared.client,
            monitored: self.shared.monitored.as_ref(),
            telemetry: &self.shared.telemetry,
            name: C::NAME,
        }
    }

    /// Fetches every monitored customer, publishing progress on the way.
    async fn run_customers(
        &self,
        previous: &Part<C::Value>,
    ) -> (Part<C::Value>, PollResult, usize) {
        let shared = &self.shared;
        let since = self
            .last_start
            .lock()
            .map(|mut last| last.replace(Instant::now()))
            .unwrap_or_default();
        let targets = match shared.discovery.targets(shared, C::NAME, since).await {
            Ok(t) => t,
            Err(err) => {
                log_failure_of(C::NAME, "customer discovery failed", &err, C::FORBIDDEN);
                let part = merge(previous, failed_keys(previous), Stage::Final);
                let failed = part.len();
                return (part, PollResult::Failure, failed);
            }
        };
        shared.telemetry.set_targets(C::NAME, targets.len());
        let api = self.api();
        let collector = &self.collector;
        let api_ref = &api;
        // Owned targets: a closure over borrowed ones is not `Send` for every lifetime.
        let fetches = futures::stream::iter(targets.iter().cloned())
            .map(|target| async move {
                let fetched = collector.fetch(api_ref, Scope::Customer(&target)).await;
                (target, fetched, now())
            })
            .buffer_unordered(shared.concurrency);
        let mut fetches = std::pin::pin!(fetches);
        let mut results: Vec<(String, Outcome<C::Value>)> = Vec::with_capacity(targets.len());
        let mut failed = 0;
        let mut first_error: Option<ApiError> = None;
        // Results already published by a progress publication.
        let mut published = 0;
        let progress = tokio::time::sleep(PROGRESS_EVERY);
        let mut progress = std::pin::pin!(progress);
        loop {
            tokio::select! {
                next = fetches.next() => {
                    let Some((target, fetched, at)) = next else { break };
                    shared.telemetry.target_done(C::NAME);
                    match fetched {
                        Ok(values) => results.extend(
                            values.into_iter().map(|(k, value)| (k, Outcome::Fetched { value, at })),
                        ),
                        Err(err) => {
                            failed += 1;
                            tracing::debug!(collector = C::NAME, customer_id = %target.id, error = %err, kind = err.kind(), "fetch failed");
                            first_error.get_or_insert(err);
                            results.push((target.id.clone(), Outcome::Failed));
                        }
                    }
                }
                _ = &mut progress => {
                    // Nothing new since the last publication: nothing to encode.
                    let mut wait = PROGRESS_EVERY;
                    if results.len() > published {
                        published = results.len();
                        let encoding = Instant::now();
                        let part = merge(previous, results.iter().cloned(), Stage::Progress);
                        shared.state.publish(C::NAME, Arc::new(part));
                        // At most about 2% of the time goes to progress publications.
                        wait = wait.max(encoding.elapsed().saturating_mul(PROGRESS_COST_FACTOR));
                    }
                    progress.as_mut().reset(tokio::time::Instant::now() + wait);
                }
            }
        }
        if let Some(err) = &first_error {
            log_failure_of(
                C::NAME,
                &format!("{failed} of {} customers failed", targets.len()),
                err,
                C::FORBIDDEN,
            );
        }
        let result = match failed {
            0 => PollResult::Success,
            n if n == targets.len() => PollResult::Failure,
            _ => PollResult::Partial,
        };
        (merge(previous, results, Stage::Final), result, failed)
    }

    /// Makes the partner-level requests.
    async fn run_partner(&self, previous: &Part<C::Value>) -> (Part<C::Value>, PollResult, usize) {
        self.shared.telemetry.set_targets(C::NAME, 1);
        let api = self.api();
        match self.collector.fetch(&api, Scope::Partner).await {
            Ok(values) => {
                let at = now();
                let results: Vec<_> = values
                    .into_iter()
                    .map(|(k, value)| (k, Outcome::Fetched { value, at }))
                    .collect();
                (
                    merge(previous, results, Stage::Final),
                    PollResult::Success,
                    0,
                )
            }
            Err(err) => {
                log_failure_of(C::NAME, "the run failed", &err, C::FORBIDDEN);
                let part = merge(previous, failed_keys(previous), Stage::Final);
                let failed = part.len();
                (part, PollResult::Failure, failed)
            }
        }
    }
}

/// One clear line for a failed run (or part of one).
pub fn log_failure(collector: &str, what: &str, err: &ApiError) {
    log_failure_of(
        collector,
        what,
        err,
        "the signed-in user may lack the role this data needs",
    );
}

/// [`log_failure`], with what a 403 means for this collector.
fn log_failure_of(collector: &str, what: &str, err: &ApiError, forbidden: &str) {
    match err {
        ApiError::Auth(auth) if auth.needs_operator() => tracing::error!(
            collector,
            reason = auth.reason().as_str(),
            error = %auth,
            "{what}: Azure AD sign-in needs an operator; the last good data is still served"
        ),
        ApiError::EmptyList { known } => tracing::warn!(
            collector,
            known,
            "{what}: Partner Center listed no customers although some were known; they keep their last values"
        ),
        ApiError::Status { status: 403, .. } => tracing::warn!(
            collector,
            kind = err.kind(),
            error = %err,
            "{what}; Partner Center refused it (403): {forbidden}; the last good values stay"
        ),
        _ => tracing::warn!(
            collector,
            kind = err.kind(),
            error = %err,
            "{what}; failed customers keep their last values"
        ),
    }
}

/// A collector's part, rendered by the collector.
struct CollectorKind<C: Collector>(Arc<C>);

impl<C: Collector> PartKind for CollectorKind<C> {
    fn name(&self) -> &'static str {
        C::NAME
    }

    fn render(&self, snapshot: &Snapshot, out: &mut Render<'_>) {
        let empty = Part::default();
        let part = snapshot.part::<C::Value>(C::NAME).unwrap_or(&empty);
        self.0.render(snapshot, part, out);
    }

    fn reads(&self, changed: &str, snapshot: &Snapshot) -> bool {
        C::READS.contains(&changed)
            && snapshot
                .part::<C::Value>(C::NAME)
                .is_some_and(|p| self.0.reads_others(p))
    }

    fn size_hint(&self, snapshot: &Snapshot) -> usize {
        snapshot
            .part::<C::Value>(C::NAME)
            .map_or(0, |p| self.0.size_hint(p))
    }
}

/// Clears `partnercenter_poll_in_progress` when a run is dropped before its end.
struct InProgress<'a>(&'a Telemetry, &'static str, Instant);

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.run_finished(self.1, None, self.2.elapsed(), now());
    }
}

pub fn now() -> f64 {
    unix_seconds(SystemTime::now())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every part of `snapshot` as `/metrics` shows it, in the order of the kinds.
    pub fn render_all(snapshot: &Snapshot) -> String {
        let mut kinds: Vec<Arc<dyn PartKind>> = vec![Arc::new(customers::Customers)];
        kinds.extend(COLLECTORS.iter().map(|info| {
            let settings = CollectorSettings {
                name: info.name,
                enabled: true,
                interval: Duration::from_secs(3600),
                options: Vec::new(),
            };
            (info.build)(&settings).kind
        }));
        kinds
            .iter()
            .map(|k| crate::exposition::render_text(|out| k.render(snapshot, out)))
            .collect()
    }
}
