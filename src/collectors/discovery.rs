//! The customer list every per-customer collector fetches for, shared.
//!
//! With discovery (no customers configured) it is `GET /v1/customers`, with names,
//! domains and budgets from the configuration laid over it; with an explicit list it
//! is that list, with names asked of Partner Center only when one is missing (and
//! whose failure costs only the names). Each run of a per-customer collector asks
//! for a list newer than its own previous run: a list another collector made since
//! then serves it (two collectors on the same schedule share one discovery, and a
//! caller that comes while one is under way waits for it); otherwise it discovers
//! anew, so that every run sees customers that came and went.
//!
//! A discovery that finds no customer at all when some were known fails: an empty
//! list is far likelier a fault upstream than a partner without customers. Each
//! success publishes the `customers` part ([`super::customers`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::config::{CustomerConfig, CustomerSelection};
use crate::partner_center::client::{ApiError, DiscoveredCustomer};
use crate::snapshot::{Fetched, Part};

use super::customers::{CustomerInfo, NAME as CUSTOMERS};
use super::{log_failure, now, Shared};

/// One customer to fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Tenant id, lower case.
    pub id: String,
    pub name: String,
    pub domain: String,
    pub budget: Option<f64>,
}

impl Target {
    fn new(found: DiscoveredCustomer, config: Option<&CustomerConfig>) -> Target {
        Target {
            name: config.and_then(|c| c.name.clone()).unwrap_or(found.name),
            budget: config.and_then(|c| c.budget),
            id: found.id,
            domain: found.domain,
        }
    }
}

/// The shared customer list.
pub struct Discovery {
    selection: CustomerSelection,
    /// The last list, when and for which collector it was made; the lock is held
    /// while one is made.
    last: tokio::sync::Mutex<Option<Made>>,
}

struct Made {
    at: Instant,
    by: &'static str,
    targets: Arc<Vec<Target>>,
}

impl Discovery {
    pub fn new(selection: CustomerSelection) -> Discovery {
        Discovery {
            selection,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The customers for a run of `collector`, each once: the last list if another
    /// collector made it after `since` (the start of this collector's previous
    /// run), else a new one.
    pub async fn targets(
        &self,
        shared: &Shared,
        collector: &'static str,
        since: Option<Instant>,
    ) -> Result<Arc<Vec<Target>>, ApiError> {
        let mut last = self.last.lock().await;
        if let (Some(made), Some(since)) = (last.as_ref(), since) {
            if made.by != collector && made.at >= since {
                return Ok(made.targets.clone());
            }
        }
        let started = Instant::now();
        let mut targets = self.fetch(shared).await?;
        let mut seen = std::collections::HashSet::with_capacity(targets.len());
        targets.retain(|t| seen.insert(t.id.clone()));
        let known = shared
            .state
            .load()
            .snapshot
            .any_part(CUSTOMERS)
            .map_or(0, |p| p.len());
        if targets.is_empty() && self.selection.discover && known > 0 {
            return Err(ApiError::EmptyList { known });
        }
        let targets = Arc::new(targets);
        publish(shared, &targets);
        *last = Some(Made {
            at: started,
            by: collector,
            targets: targets.clone(),
        });
        Ok(targets)
    }

    async fn fetch(&self, shared: &Shared) -> Result<Vec<Target>, ApiError> {
        let overrides: HashMap<String, &CustomerConfig> = self
            .selection
            .customers
            .iter()
            .map(|c| (c.id.to_ascii_lowercase(), c))
            .collect();
        if self.selection.discover {
            let found = shared.client.list_customers().await?;
            return Ok(found
                .into_iter()
                .map(|d| {
                    let config = overrides.get(&d.id.to_ascii_lowercase()).copied();
                    Target::new(d, config)
                })
                .collect());
        }
        let mut names: HashMap<String, DiscoveredCustomer> = HashMap::new();
        if self.selection.customers.iter().any(|c| c.name.is_none()) {
            match shared.client.list_customers().await {
                Ok(found) => {
                    names = found
                        .into_iter()
                        .map(|d| (d.id.to_ascii_lowercase(), d))
                        .collect()
                }
                Err(err @ ApiError::Auth(_)) => return Err(err),
                Err(err) => log_failure("discovery", "customer discovery (for names) failed", &err),
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
}

/// Publishes the list as the `customers` part.
fn publish(shared: &Shared, targets: &[Target]) {
    let at = now();
    let entries = targets
        .iter()
        .map(|t| {
            (
                t.id.clone(),
                Fetched {
                    value: Some(CustomerInfo {
                        name: t.name.clone(),
                        domain: t.domain.clone(),
                        budget: t.budget,
                    }),
                    success: true,
                    last_success: Some(at),
                },
            )
        })
        .collect();
    shared
        .state
        .publish(CUSTOMERS, Arc::new(Part::from_entries(entries, Some(at))));
}
