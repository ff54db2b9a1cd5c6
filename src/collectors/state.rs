//! What scrapes read: the snapshot and one pre-encoded [`Exposition`] per part,
//! swapped in together.
//!
//! [`SharedState::publish`] replaces one part and encodes only what changed: that
//! part, and the parts whose series read other parts (a budget's currency comes from
//! the service costs). Every other part's exposition is shared with the previous
//! publication, so a scrape costs the same however often collectors publish, and a
//! publication costs the encoding of one part, not of everything.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::metrics::{Exposition, Render};
use crate::snapshot::{AnyPart, Snapshot};

/// A part as the publisher knows it: how it renders.
pub trait PartKind: Send + Sync {
    fn name(&self) -> &'static str;
    fn render(&self, snapshot: &Snapshot, out: &mut Render<'_>);
    /// Whether the part's series read other parts of `snapshot`.
    fn reads_others(&self, snapshot: &Snapshot) -> bool;
    /// The text size the part renders to, about.
    fn size_hint(&self, snapshot: &Snapshot) -> usize;
}

/// The snapshot and the exposition of each part, in the order of the kinds.
pub struct Published {
    pub snapshot: Snapshot,
    pub expositions: Vec<Arc<Exposition>>,
}

/// State shared between the collectors and the server.
pub struct SharedState {
    kinds: Vec<Arc<dyn PartKind>>,
    published: ArcSwap<Published>,
    /// One publication at a time, so that none is lost between load and store.
    publishing: Mutex<()>,
}

impl SharedState {
    /// Encodes every part of `snapshot`. `kinds` fix the order of `/metrics`.
    pub fn new(kinds: Vec<Arc<dyn PartKind>>, snapshot: Snapshot) -> SharedState {
        let expositions = kinds
            .iter()
            .map(|k| Arc::new(encode(k.as_ref(), &snapshot)))
            .collect();
        SharedState {
            kinds,
            published: ArcSwap::from_pointee(Published {
                snapshot,
                expositions,
            }),
            publishing: Mutex::new(()),
        }
    }

    /// The current snapshot and expositions; never waits on a collector.
    pub fn load(&self) -> Arc<Published> {
        self.published.load_full()
    }

    pub fn kinds(&self) -> &[Arc<dyn PartKind>] {
        &self.kinds
    }

    /// Replaces the part `name` and encodes what changed.
    pub fn publish(&self, name: &'static str, part: Arc<dyn AnyPart>) {
        let _one = self
            .publishing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.published.load_full();
        let snapshot = current.snapshot.with(name, part);
        let expositions = self
            .kinds
            .iter()
            .zip(&current.expositions)
            .map(|(kind, old)| {
                if kind.name() == name || kind.reads_others(&snapshot) {
                    Arc::new(encode(kind.as_ref(), &snapshot))
                } else {
                    old.clone()
                }
            })
            .collect();
        self.published.store(Arc::new(Published {
            snapshot,
            expositions,
        }));
    }
}

fn encode(kind: &dyn PartKind, snapshot: &Snapshot) -> Exposition {
    Exposition::render(kind.size_hint(snapshot), |out| kind.render(snapshot, out))
}
