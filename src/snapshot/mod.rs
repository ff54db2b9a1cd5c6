//! The snapshot: everything the exporter knows, as one part per collector (plus the
//! customer list), and the keep-last-good rule that merges a run's results into a
//! part.
//!
//! A [`Part`] holds one [`Fetched`] per key (a customer id, or an invoice id): the
//! last good value, whether the last try succeeded, and when the value was fetched.
//! [`merge`] is the one place the rule lives, a pure function:
//!
//! - a key fetched in this run takes the new value, `success` and the fetch time;
//! - a key whose fetch failed keeps its last good value and fetch time, with
//!   `success` false (a key never fetched has no value);
//! - a key not in this run's results is kept while the run goes on
//!   ([`Stage::Progress`]) and dropped when it ends ([`Stage::Final`]): it is no
//!   longer monitored.
//!
//! A collector whose whole fetch failed (a discovery that failed, a 403 on a
//! partner-level call) reports every previous key as failed ([`failed_keys`]), so
//! everything stays, marked failed.
//!
//! Parts are immutable once built and shared by `Arc`; a [`Snapshot`] maps part
//! names to them, type-erased ([`AnyPart`]) so that adding a collector adds no field
//! here. The cache file ([`cache`]) is the snapshot on disk.

pub mod cache;

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One key's state in a part: the keep-last-good record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fetched<T> {
    /// The last good value; `None` until a fetch of the key has succeeded.
    pub value: Option<T>,
    /// Whether the last try succeeded.
    pub success: bool,
    /// When `value` was fetched, Unix seconds.
    pub last_success: Option<f64>,
}

/// A collector's part: one [`Fetched`] per key, sorted by key, each key once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Part<T> {
    pub entries: Vec<(String, Fetched<T>)>,
    /// End of the collector's last run in which everything succeeded, Unix seconds.
    pub last_success: Option<f64>,
}

impl<T> Default for Part<T> {
    fn default() -> Self {
        Part {
            entries: Vec::new(),
            last_success: None,
        }
    }
}

impl<T> Part<T> {
    /// Builds a part from entries in any order; of a key given twice, the first stays.
    pub fn from_entries(mut entries: Vec<(String, Fetched<T>)>, last_success: Option<f64>) -> Self {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, first| later.0 == first.0);
        Part {
            entries,
            last_success,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Fetched<T>> {
        self.entries
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|(_, f)| f)
    }

    /// The last good value of `key`, if any.
    pub fn value(&self, key: &str) -> Option<&T> {
        self.get(key).and_then(|f| f.value.as_ref())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries whose last try failed.
    pub fn failed(&self) -> usize {
        self.entries.iter().filter(|(_, f)| !f.success).count()
    }
}

/// What a run found for one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// Fetched at `at` (Unix seconds).
    Fetched { value: T, at: f64 },
    /// The fetch failed: the last good value stays.
    Failed,
}

/// Whether a run is still going (keys not fetched yet stay) or has ended (keys not
/// in its results leave).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Progress,
    Final,
}

/// Merges a run's results into the previous part, as the module docs say. Of a key
/// given twice in `results`, the later result wins. `last_success` is carried over;
/// the caller sets it at the end of a fully successful run. The results are taken by
/// value: a final merge moves the fetched values instead of copying them.
pub fn merge<T: Clone>(
    previous: &Part<T>,
    results: impl IntoIterator<Item = (String, Outcome<T>)>,
    stage: Stage,
) -> Part<T> {
    let mut merged: Vec<(String, Fetched<T>)> = Vec::with_capacity(previous.len());
    if stage == Stage::Progress {
        merged.extend(previous.entries.iter().cloned());
    }
    for (key, outcome) in results {
        let fetched = match outcome {
            Outcome::Fetched { value, at } => Fetched {
                value: Some(value),
                success: true,
                last_success: Some(at),
            },
            Outcome::Failed => {
                let old = previous.get(&key);
                Fetched {
                    value: old.and_then(|o| o.value.clone()),
                    success: false,
                    last_success: old.and_then(|o| o.last_success),
                }
            }
        };
        merged.push((key, fetched));
    }
    // Stable: of equal keys, the one pushed last (a result over a previous entry, a
    // later result over an earlier one) ends last, and is the one kept.
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    let mut entries: Vec<(String, Fetched<T>)> = Vec::with_capacity(merged.len());
    for entry in merged {
        match entries.last_mut() {
            Some(last) if last.0 == entry.0 => *last = entry,
            _ => entries.push(entry),
        }
    }
    Part {
        entries,
        last_success: previous.last_success,
    }
}

/// Every key of `previous`, failed: the results of a run whose whole fetch failed.
pub fn failed_keys<T>(previous: &Part<T>) -> Vec<(String, Outcome<T>)> {
    previous
        .entries
        .iter()
        .map(|(k, _)| (k.clone(), Outcome::Failed))
        .collect()
}

/// A part of any value type, as the snapshot holds it.
pub trait AnyPart: Any + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    /// The part as the cache file holds it.
    fn to_json(&self) -> serde_json::Result<serde_json::Value>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn last_success(&self) -> Option<f64>;
}

impl<T: Serialize + Send + Sync + 'static> AnyPart for Part<T> {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::to_value(self)
    }
    fn len(&self) -> usize {
        self.entries.len()
    }
    fn last_success(&self) -> Option<f64> {
        self.last_success
    }
}

/// Everything known: the parts by name.
#[derive(Clone, Default)]
pub struct Snapshot {
    parts: BTreeMap<&'static str, Arc<dyn AnyPart>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.parts.iter().map(|(k, p)| (k, p.len())))
            .finish()
    }
}

impl Snapshot {
    /// The part `name`, if it is there and holds values of type `T`.
    pub fn part<T: 'static>(&self, name: &str) -> Option<&Part<T>> {
        self.parts.get(name)?.as_any().downcast_ref::<Part<T>>()
    }

    pub fn any_part(&self, name: &str) -> Option<&Arc<dyn AnyPart>> {
        self.parts.get(name)
    }

    /// A snapshot with `part` as `name`, the other parts shared.
    pub fn with(&self, name: &'static str, part: Arc<dyn AnyPart>) -> Snapshot {
        let mut parts = self.parts.clone();
        parts.insert(name, part);
        Snapshot { parts }
    }

    pub fn parts(&self) -> impl Iterator<Item = (&'static str, &Arc<dyn AnyPart>)> {
        self.parts.iter().map(|(k, v)| (*k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(value: i32, at: f64) -> Outcome<i32> {
        Outcome::Fetched { value, at }
    }

    fn fetched(value: Option<i32>, success: bool, at: Option<f64>) -> Fetched<i32> {
        Fetched {
            value,
            success,
            last_success: at,
        }
    }

    fn previous() -> Part<i32> {
        Part::from_entries(
            vec![
                ("b".into(), fetched(Some(2), true, Some(10.0))),
                ("a".into(), fetched(Some(1), true, Some(10.0))),
                ("c".into(), fetched(None, false, None)),
            ],
            Some(10.0),
        )
    }

    #[test]
    fn a_success_replaces_and_a_failure_keeps_the_last_good_value() {
        let results = vec![
            ("a".to_owned(), ok(11, 20.0)),
            ("b".to_owned(), Outcome::Failed),
            ("d".to_owned(), Outcome::Failed),
        ];
        let merged = merge(&previous(), results, Stage::Final);
        assert_eq!(
            merged.entries,
            vec![
                ("a".to_owned(), fetched(Some(11), true, Some(20.0))),
                ("b".to_owned(), fetched(Some(2), false, Some(10.0))),
                ("d".to_owned(), fetched(None, false, None)),
            ],
            "c is no longer monitored and leaves at the end"
        );
        assert_eq!(merged.last_success, Some(10.0));
    }

    #[test]
    fn keys_not_fetched_yet_stay_while_the_run_goes_on() {
        let results = vec![("c".to_owned(), ok(3, 20.0))];
        let merged = merge(&previous(), results, Stage::Progress);
        assert_eq!(
            merged.entries,
            vec![
                ("a".to_owned(), fetched(Some(1), true, Some(10.0))),
                ("b".to_owned(), fetched(Some(2), true, Some(10.0))),
                ("c".to_owned(), fetched(Some(3), true, Some(20.0))),
            ]
        );
    }

    #[test]
    fn a_run_that_failed_as_a_whole_keeps_everything_marked_failed() {
        let previous = previous();
        let merged = merge(&previous, failed_keys(&previous), Stage::Final);
        assert_eq!(merged.len(), 3);
        assert_eq!(merged.failed(), 3);
        assert_eq!(merged.value("a"), Some(&1));
        assert_eq!(merged.get("a").unwrap().last_success, Some(10.0));
    }

    #[test]
    fn from_entries_sorts_and_keeps_the_first_of_a_key() {
        let part = Part::from_entries(
            vec![
                ("b".into(), fetched(Some(1), true, None)),
                ("a".into(), fetched(Some(2), true, None)),
                ("b".into(), fetched(Some(3), true, None)),
            ],
            None,
        );
        assert_eq!(part.value("a"), Some(&2));
        assert_eq!(part.value("b"), Some(&1));
        assert_eq!(part.len(), 2);
    }

    #[test]
    fn parts_are_found_by_name_and_type() {
        let snapshot = Snapshot::default().with("p", Arc::new(previous()));
        assert_eq!(snapshot.part::<i32>("p").map(Part::len), Some(3));
        assert!(snapshot.part::<String>("p").is_none());
        assert!(snapshot.part::<i32>("q").is_none());
    }

    proptest! {
        /// Whatever the results, the merge is sorted, each key once, every result's
        /// key present; on a final merge exactly the results' keys.
        #[test]
        fn merges_are_sorted_unique_and_complete(
            old in proptest::collection::vec(("[a-e]", any::<bool>()), 0..8),
            new in proptest::collection::vec(("[a-g]", any::<bool>()), 0..8),
            progress in any::<bool>(),
        ) {
            let previous = Part::from_entries(
                old.iter().map(|(k, s)| (k.clone(), fetched(Some(1), *s, Some(1.0)))).collect(),
                None,
            );
            let results: Vec<(String, Outcome<i32>)> = new
                .iter()
                .map(|(k, s)| (k.clone(), if *s { ok(2, 2.0) } else { Outcome::Failed }))
                .collect();
            let stage = if progress { Stage::Progress } else { Stage::Final };
            let merged = merge(&previous, results.clone(), stage);
            let keys: Vec<&str> = merged.entries.iter().map(|(k, _)| k.as_str()).collect();
            let mut sorted = keys.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(&keys, &sorted);
            for (k, _) in &results {
                prop_assert!(merged.get(k).is_some());
            }
            if !progress {
                prop_assert!(keys.iter().all(|k| results.iter().any(|(r, _)| r == k)));
            }
            // A failed key never loses a value it had.
            for (k, f) in &merged.entries {
                if !f.success && previous.value(k).is_some() {
                    prop_assert_eq!(f.value, Some(1));
                }
            }
        }
    }
}
