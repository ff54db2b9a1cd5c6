//! What scrapes read: the snapshot and one pre-encoded [`Exposition`] per part,
//! swapped in together.
//!
//! [`SharedState::publish`] replaces one part and encodes only what changed: that
//! part, and the parts whose series read it (a budget's currency comes from the
//! service costs). Every other part's exposition is shared with the previous
//! publication, so a scrape costs the same however often collectors publish, and a
//! publication costs the encoding of one part, not of everything. Where the plain
//! text of a part was being scraped, the new one's is decompressed ahead, in the
//! background, so a plain scrape after a publication does not wait for it.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::exposition::{Exposition, Render};
use crate::snapshot::{AnyPart, Snapshot};

/// A part as the publisher knows it: how it renders.
pub trait PartKind: Send + Sync {
    fn name(&self) -> &'static str;
    fn render(&self, snapshot: &Snapshot, out: &mut Render<'_>);
    /// Whether the part's series read the part `changed` as it is in `snapshot`
    /// (and so must be encoded again now that it changed).
    fn reads(&self, changed: &str, snapshot: &Snapshot) -> bool;
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
                if kind.name() == name || kind.reads(name, &snapshot) {
                    let new = Arc::new(encode(kind.as_ref(), &snapshot));
                    if old.text_ready() {
                        warm_text(&new);
                    }
                    new
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

/// Decompresses the plain text of `exposition` in the background: someone scrapes
/// the plain text (the previous one was asked for), and the next such scrape should
/// not wait for it. A scrape that comes first waits for the same decompression.
fn warm_text(exposition: &Arc<Exposition>) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let exposition = exposition.clone();
        runtime.spawn(async move {
            exposition.text().await;
        });
    }
}

fn encode(kind: &dyn PartKind, snapshot: &Snapshot) -> Exposition {
    Exposition::render(kind.size_hint(snapshot), |out| kind.render(snapshot, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::Family;
    use crate::snapshot::{Fetched, Part};

    const F: Family = Family {
        name: "partnercenter_test",
        help: "Test.",
    };

    /// A part of numbers; `reader` reads the part `a`.
    struct Kind {
        name: &'static str,
        reader: bool,
    }

    impl PartKind for Kind {
        fn name(&self) -> &'static str {
            self.name
        }
        fn render(&self, snapshot: &Snapshot, out: &mut Render<'_>) {
            out.header(&F);
            let own = snapshot.part::<f64>(self.name).map_or(0, Part::len);
            let read = snapshot.part::<f64>("a").map_or(0, Part::len);
            out.sample(&F, &[("part", self.name)], (own * 100 + read) as f64);
        }
        fn reads(&self, changed: &str, _snapshot: &Snapshot) -> bool {
            self.reader && changed == "a"
        }
        fn size_hint(&self, _snapshot: &Snapshot) -> usize {
            100
        }
    }

    fn part(n: usize) -> Arc<dyn AnyPart> {
        let entries = (0..n)
            .map(|i| {
                (
                    format!("k{i}"),
                    Fetched {
                        value: Some(1.0),
                        success: true,
                        last_success: None,
                    },
                )
            })
            .collect();
        Arc::new(Part::<f64>::from_entries(entries, None))
    }

    #[tokio::test]
    async fn a_publication_encodes_the_part_and_its_readers_only() {
        let kinds: Vec<Arc<dyn PartKind>> = vec![
            Arc::new(Kind {
                name: "a",
                reader: false,
            }),
            Arc::new(Kind {
                name: "b",
                reader: false,
            }),
            Arc::new(Kind {
                name: "c",
                reader: true,
            }),
        ];
        let state = SharedState::new(kinds, Snapshot::default());
        let before = state.load();
        state.publish("a", part(2));
        let after = state.load();
        assert!(!Arc::ptr_eq(&before.expositions[0], &after.expositions[0]));
        assert!(
            Arc::ptr_eq(&before.expositions[1], &after.expositions[1]),
            "b does not read a"
        );
        assert!(
            !Arc::ptr_eq(&before.expositions[2], &after.expositions[2]),
            "c reads a"
        );
        let text = String::from_utf8(after.expositions[2].text().await.to_vec()).unwrap();
        assert!(text.contains("partnercenter_test{part=\"c\"} 2"), "{text}");
        assert!(
            !after.expositions[0].text_ready(),
            "nobody asked for a's text"
        );

        state.publish("b", part(3));
        let last = state.load();
        assert!(Arc::ptr_eq(&after.expositions[0], &last.expositions[0]));
        assert!(!Arc::ptr_eq(&after.expositions[1], &last.expositions[1]));
        assert!(
            Arc::ptr_eq(&after.expositions[2], &last.expositions[2]),
            "c does not read b"
        );
        assert_eq!(last.snapshot.part::<f64>("a").map(Part::len), Some(2));

        // c's text was scraped: the next c is decompressed ahead.
        state.publish("a", part(4));
        let warm = state.load();
        for _ in 0..100 {
            if warm.expositions[2].text_ready() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(warm.expositions[2].text_ready());
        assert!(!warm.expositions[0].text_ready());
    }
}
