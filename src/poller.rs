//! The background poller: one poll at start, then one every `--poll.interval`.
//!
//! A poll discovers the customers (or takes them from the configuration), fetches
//! each one's service costs with at most `--poll.concurrency` requests in flight,
//! and builds a complete new [`Snapshot`] that is swapped in at the end, together
//! with its pre-encoded [`Exposition`]. A customer whose fetch failed keeps its last
//! good values with `fetch_success` 0; a customer no longer monitored is simply not
//! in the new snapshot. A discovery that fails, or that finds no customer at all
//! when some were known, is a failed poll that keeps every known customer that way:
//! an empty list is far likelier a fault upstream than a partner without customers.
//! A poll that is cancelled (shutdown) swaps nothing in.
//!
//! [`Poller::poll_once`] is public so tests drive polls without timers; a poll
//! already running is never started twice.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::client::{ApiError, DiscoveredCustomer, PartnerCenterClient};
use crate::config::CustomerSelection;
use crate::metrics::{Exposition, PollResult, Telemetry};
use crate::model::unix_seconds;
use crate::snapshot::{save_cache, CustomerSnapshot, Snapshot};

/// What scrapes read: the snapshot and its exposition, swapped together.
pub struct Published {
    pub snapshot: Snapshot,
    pub exposition: Exposition,
}

/// State shared between the poller and the server.
pub struct SharedState {
    published: ArcSwap<Published>,
}

impl SharedState {
    pub fn new(snapshot: Snapshot) -> SharedState {
        let exposition = Exposition::render(&snapshot);
        SharedState {
            published: ArcSwap::from_pointee(Published {
                snapshot,
                exposition,
            }),
        }
    }

    /// The current snapshot and exposition; never waits on the poller.
    pub fn load(&self) -> Arc<Published> {
        self.published.load_full()
    }

    fn publish(&self, snapshot: Snapshot) {
        let exposition = Exposition::render(&snapshot);
        self.published.store(Arc::new(Published {
            snapshot,
            exposition,
        }));
    }
}

/// The result of one call to [`Poller::poll_once`].
#[derive(Debug, Clone, PartialEq)]
pub enum PollOutcome {
    /// The poll finished and its snapshot was published.
    Finished {
        result: PollResult,
        customers: usize,
        failed: usize,
    },
    /// Another poll was running; this one did not start.
    AlreadyRunning,
}

pub struct Poller {
    client: Arc<PartnerCenterClient>,
    auth: Arc<Authenticator>,
    selection: CustomerSelection,
    concurrency: usize,
    cache_file: Option<PathBuf>,
    state: Arc<SharedState>,
    telemetry: Arc<Telemetry>,
    /// Held for the whole poll: a second poll finds it taken and does not start.
    running: tokio::sync::Mutex<()>,
}

impl Poller {
    pub fn new(
        client: Arc<PartnerCenterClient>,
        auth: Arc<Authenticator>,
        selection: CustomerSelection,
        concurrency: usize,
        cache_file: Option<PathBuf>,
        state: Arc<SharedState>,
        telemetry: Arc<Telemetry>,
    ) -> Poller {
        Poller {
            client,
            auth,
            selection,
            concurrency: concurrency.max(1),
            cache_file,
            state,
            telemetry,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Polls at start and then every `interval` until `shutdown`. A poll in progress
    /// when shutdown comes is abandoned: nothing of it is published or cached.
    pub async fn run(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // Dropping the poll resets partnercenter_poll_in_progress.
                    tracing::info!("poll cancelled by shutdown; the previous snapshot stays");
                    return;
                }
                _ = self.poll_once() => {}
            }
        }
    }

    /// Runs one complete poll and publishes its snapshot.
    pub async fn poll_once(&self) -> PollOutcome {
        let Ok(_running) = self.running.try_lock() else {
            tracing::warn!("a poll is still running; not starting another");
            return PollOutcome::AlreadyRunning;
        };
        let started = Instant::now();
        self.telemetry.poll_started();
        self.auth.begin_poll();
        // The guard resets poll_in_progress even if this future is dropped midway.
        let guard = InProgress(&self.telemetry, started);

        let previous = self.state.load();
        let (snapshot, result, failed) = self.build_snapshot(&previous.snapshot).await;
        let customers = snapshot.customers.len();
        let ended = now();
        let mut snapshot = snapshot;
        snapshot.poll_last_success = if result == PollResult::Success {
            Some(ended)
        } else {
            previous.snapshot.poll_last_success
        };
        self.state.publish(snapshot);
        // The cache is on disk before the poll counts as finished.
        self.write_cache().await;
        drop(guard);
        self.telemetry
            .poll_finished(Some(result), started.elapsed(), ended);
        tracing::info!(
            result = result.as_str(),
            customers,
            failed,
            duration = ?started.elapsed(),
            "poll finished"
        );
        PollOutcome::Finished {
            result,
            customers,
            failed,
        }
    }

    async fn build_snapshot(&self, previous: &Snapshot) -> (Snapshot, PollResult, usize) {
        let targets = match self.targets().await {
            Ok(t) => t,
            Err(err) => {
                self.log_failure("customer discovery failed", &err);
                return kept_as_failed(previous);
            }
        };
        if targets.is_empty() && self.selection.discover && !previous.customers.is_empty() {
            tracing::warn!(
                known = previous.customers.len(),
                "customer discovery failed: Partner Center listed no customers although some were known; they keep their last values"
            );
            return kept_as_failed(previous);
        }

        let client = &self.client;
        let mut results: Vec<(Target, FetchResult)> = futures::stream::iter(targets)
            .map(|target| async move {
                let result = client.service_costs(&target.id).await;
                (target, result)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        results.sort_by(|a, b| a.0.id.cmp(&b.0.id));

        let fetched_at = now();
        let mut failed = 0;
        let mut first_error: Option<ApiError> = None;
        let mut customers = Vec::with_capacity(results.len());
        for (target, result) in results {
            let old = previous.customer(&target.id);
            let (costs, fetch_success, last_success) = match result {
                Ok(costs) => (costs.unwrap_or_default(), true, Some(fetched_at)),
                Err(err) => {
                    failed += 1;
                    tracing::debug!(customer_id = %target.id, error = %err, kind = err.kind(), "fetch failed");
                    first_error.get_or_insert(err);
                    match old {
                        Some(o) => (o.costs.clone(), false, o.last_success),
                        None => (Vec::new(), false, None),
                    }
                }
            };
            customers.push(CustomerSnapshot {
                id: target.id,
                name: target.name,
                domain: target.domain,
                budget: target.budget,
                costs,
                fetch_success,
                last_success,
            });
        }
        customers.dedup_by(|a, b| a.id == b.id);
        if let Some(err) = &first_error {
            self.log_failure(
                &format!("{failed} of {} customers failed", customers.len()),
                err,
            );
        }
        let result = match failed {
            0 => PollResult::Success,
            n if n == customers.len() => PollResult::Failure,
            _ => PollResult::Partial,
        };
        (
            Snapshot {
                customers,
                poll_last_success: None,
            },
            result,
            failed,
        )
    }

    /// The customers to fetch this poll, each once, with names, domains and budgets.
    async fn targets(&self) -> Result<Vec<Target>, ApiError> {
        let mut targets = self.all_targets().await?;
        let mut seen = HashSet::with_capacity(targets.len());
        targets.retain(|t| seen.insert(t.id.clone()));
        Ok(targets)
    }

    async fn all_targets(&self) -> Result<Vec<Target>, ApiError> {
        let overrides: HashMap<String, &crate::config::CustomerConfig> = self
            .selection
            .customers
            .iter()
            .map(|c| (c.id.to_ascii_lowercase(), c))
            .collect();
        if self.selection.discover {
            let found = self.client.list_customers().await?;
            return Ok(found
                .into_iter()
                .map(|d| {
                    let config = overrides.get(&d_key(&d)).copied();
                    Target::new(d, config)
                })
                .collect());
        }
        // An explicit list: names come from the file, else from discovery, which is
        // only asked when a name is missing, and whose failure costs only names.
        let mut names: HashMap<String, DiscoveredCustomer> = HashMap::new();
        if self.selection.customers.iter().any(|c| c.name.is_none()) {
            match self.client.list_customers().await {
                Ok(found) => names = found.into_iter().map(|d| (d_key(&d), d)).collect(),
                Err(err @ ApiError::Auth(_)) => return Err(err),
                Err(err) => self.log_failure("customer discovery (for names) failed", &err),
            }
        }
        Ok(self
            .selection
            .customers
            .iter()
            .map(|c| {
                let id = c.id.to_ascii_lowercase();
                let found = names.remove(&id);
                let base = found.unwrap_or_else(|| DiscoveredCustomer {
                    id,
                    name: String::new(),
                    domain: String::new(),
                });
                Target::new(base, Some(c))
            })
            .collect())
    }

    fn log_failure(&self, what: &str, err: &ApiError) {
        match err {
            ApiError::Auth(auth) if auth.needs_operator() => tracing::error!(
                reason = auth.reason(),
                error = %auth,
                "{what}: Azure AD sign-in needs an operator; the last good data is still served"
            ),
            _ => {
                tracing::warn!(kind = err.kind(), error = %err, "{what}; failed customers keep their last values")
            }
        }
    }

    async fn write_cache(&self) {
        let Some(path) = self.cache_file.clone() else {
            return;
        };
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

/// Without the customer list the customers are unknown: every known one is kept,
/// with its last values, marked as failed.
fn kept_as_failed(previous: &Snapshot) -> (Snapshot, PollResult, usize) {
    let mut kept = previous.clone();
    for c in &mut kept.customers {
        c.fetch_success = false;
    }
    let failed = kept.customers.len();
    (kept, PollResult::Failure, failed)
}

fn d_key(d: &DiscoveredCustomer) -> String {
    d.id.to_ascii_lowercase()
}

/// A customer's fetch: its cost lines, `None` for no data, or why it failed.
type FetchResult = Result<Option<Vec<crate::model::CostLine>>, ApiError>;

/// One customer to fetch.
struct Target {
    id: String,
    name: String,
    domain: String,
    budget: Option<f64>,
}

impl Target {
    fn new(found: DiscoveredCustomer, config: Option<&crate::config::CustomerConfig>) -> Target {
        Target {
            name: config.and_then(|c| c.name.clone()).unwrap_or(found.name),
            budget: config.and_then(|c| c.budget),
            id: found.id,
            domain: found.domain,
        }
    }
}

/// Clears `partnercenter_poll_in_progress` when a poll is dropped before its end.
struct InProgress<'a>(&'a Telemetry, Instant);

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.poll_finished(None, self.1.elapsed(), now());
    }
}

fn now() -> f64 {
    unix_seconds(SystemTime::now())
}
