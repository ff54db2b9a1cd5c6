//! The snapshot: everything the exporter knows about the monitored customers after
//! a poll, and its cache file.
//!
//! A [`Snapshot`] is immutable once built. The poller builds a complete new one at
//! the end of every poll and swaps it in; scrapes and the landing page read whichever
//! one is current without waiting. The cache file (`--poll.cache-file`) is the same
//! snapshot on disk, in a versioned JSON format, written atomically so that a crash
//! at any moment leaves either the previous complete file or the new complete file.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::CostLine;

/// The format version of the cache file. A file of any other version is ignored.
pub const CACHE_FORMAT_VERSION: u32 = 1;

/// What the exporter knows after a poll.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Monitored customers, sorted by id so the exposition is stable.
    pub customers: Vec<CustomerSnapshot>,
    /// End of the last poll in which every customer succeeded, Unix seconds.
    pub poll_last_success: Option<f64>,
}

/// One customer's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerSnapshot {
    pub id: String,
    /// From the config file, else from Partner Center's company profile.
    pub name: String,
    pub domain: String,
    /// From the config file, in the customer's billing currency.
    pub budget: Option<f64>,
    /// The last good figures (kept when a later fetch fails); empty when Partner
    /// Center has no data for the customer.
    pub costs: Vec<CostLine>,
    /// Whether the last fetch succeeded (404 "no data" counts as success).
    pub fetch_success: bool,
    /// When `costs` were fetched, Unix seconds; `None` before the first success.
    pub last_success: Option<f64>,
}

impl CustomerSnapshot {
    /// The currency the customer is billed in, as Partner Center reports it.
    pub fn currency(&self) -> Option<&str> {
        self.costs.first().map(|c| c.currency.as_str())
    }

    /// After-tax spend summed per currency (almost always one currency).
    pub fn after_tax_by_currency(&self) -> Vec<(&str, f64)> {
        let mut sums: Vec<(&str, f64)> = Vec::new();
        for line in &self.costs {
            match sums.iter_mut().find(|(c, _)| *c == line.currency) {
                Some((_, sum)) => *sum += line.after_tax,
                None => sums.push((&line.currency, line.after_tax)),
            }
        }
        sums
    }
}

impl Snapshot {
    pub fn customer(&self, id: &str) -> Option<&CustomerSnapshot> {
        self.customers
            .binary_search_by(|c| c.id.as_str().cmp(id))
            .ok()
            .and_then(|i| self.customers.get(i))
    }
}

/// Why a cache file was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid cache file ({reason})")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path} has format version {found}, this exporter reads version {CACHE_FORMAT_VERSION}"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Serialize)]
struct CacheFileOut<'a> {
    version: u32,
    exporter_version: &'a str,
    snapshot: &'a Snapshot,
}

#[derive(Deserialize)]
struct CacheHeader {
    version: u32,
}

#[derive(Deserialize)]
struct CacheFileIn {
    snapshot: Snapshot,
}

/// Loads a cache file. `Ok(None)` when the file does not exist (a first start).
pub fn load_cache(path: &Path) -> Result<Option<Snapshot>, CacheError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CacheError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    let corrupt = |e: serde_json::Error| CacheError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let header: CacheHeader = serde_json::from_slice(&bytes).map_err(corrupt)?;
    if header.version != CACHE_FORMAT_VERSION {
        return Err(CacheError::Version {
            path: path.to_owned(),
            found: header.version,
        });
    }
    let file: CacheFileIn = serde_json::from_slice(&bytes).map_err(corrupt)?;
    let mut snapshot = file.snapshot;
    // Customer ids are keyed in lower case; files written before that may differ.
    for c in &mut snapshot.customers {
        c.id.make_ascii_lowercase();
    }
    snapshot.customers.sort_by(|a, b| a.id.cmp(&b.id));
    snapshot.customers.dedup_by(|a, b| a.id == b.id);
    Ok(Some(snapshot))
}

/// Writes the cache file atomically: a temporary file in the same directory, fsync,
/// rename over the old file, fsync of the directory. Mode 0600: spend per customer
/// is commercially sensitive.
pub fn save_cache(path: &Path, snapshot: &Snapshot) -> Result<(), CacheError> {
    let body = serde_json::to_vec(&CacheFileOut {
        version: CACHE_FORMAT_VERSION,
        exporter_version: env!("CARGO_PKG_VERSION"),
        snapshot,
    })
    .map_err(|e| CacheError::Write {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    })?;
    write_atomically(path, &body).map_err(|source| CacheError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Replaces `path` with `contents` so that readers (and a restart after a crash) see
/// either the old or the new contents, never a mix. The file gets mode 0600.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("path has no file name"))?;
    // Unique per write: two processes may share a PID (PID 1 in two containers on
    // one volume), and a writer must never truncate another's temporary file.
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// An exclusive lock on a state file (the refresh-token file, the cache file), held
/// for the life of the process, so that a second exporter on the same files refuses
/// to start instead of revoking the first one's refresh tokens.
///
/// The lock is an `flock` on a sidecar file `.NAME.lock` beside the state file:
/// the state file itself is replaced by rename on every write, and a lock on the old
/// inode would not stop a second process from locking the new one. The sidecar
/// holds the PID of its holder, for the message of the refused process.
#[derive(Debug)]
pub struct StateLock {
    /// Kept open: the lock lasts as long as this descriptor.
    _file: File,
    pub path: PathBuf,
}

/// Why a state file could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{state} is in use by another exporter{holder} (lock {lock}); two exporters must not share a refresh token file or a cache file: each signs in with the token the other one has already rotated")]
    Held {
        state: PathBuf,
        lock: PathBuf,
        holder: String,
    },
    #[error("cannot lock {lock}: {source}")]
    Io {
        lock: PathBuf,
        source: std::io::Error,
    },
}

impl StateLock {
    /// Locks `state` (which need not exist yet) or says who holds it.
    pub fn acquire(state: &Path) -> Result<StateLock, LockError> {
        use rustix::fs::{flock, FlockOperation};
        let dir = match state.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut name = std::ffi::OsString::from(".");
        name.push(state.file_name().unwrap_or_default());
        name.push(".lock");
        let lock = dir.join(name);
        let io = |source| LockError::Io {
            lock: lock.clone(),
            source,
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&lock).map_err(io)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let holder = fs::read_to_string(&lock)
                    .ok()
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty() && t.len() < 32)
                    .map(|pid| format!(" (pid {pid})"))
                    .unwrap_or_default();
                return Err(LockError::Held {
                    state: state.to_owned(),
                    lock,
                    holder,
                });
            }
            Err(err) => return Err(io(err.into())),
        }
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(StateLock {
            _file: file,
            path: lock,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            customers: vec![CustomerSnapshot {
                id: "a".into(),
                name: "A \"quoted\"".into(),
                domain: "a.example".into(),
                budget: Some(100.0),
                costs: vec![CostLine {
                    invoice_type: "Recurring".into(),
                    currency: "USD".into(),
                    pretax: 1.5,
                    tax: 0.25,
                    after_tax: 1.75,
                    period_start: Some(1.0),
                    period_end: None,
                }],
                fetch_success: true,
                last_success: Some(1234.5),
            }],
            poll_last_success: Some(99.0),
        }
    }

    #[test]
    fn cache_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        assert!(load_cache(&path).unwrap().is_none());
        save_cache(&path, &sample()).unwrap();
        assert_eq!(load_cache(&path).unwrap(), Some(sample()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // No temporary file left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn timestamps_and_amounts_round_trip_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let mut snapshot = sample();
        snapshot.customers[0].last_success = Some(1_795_395_090.565_894_1);
        snapshot.customers[0].costs[0].after_tax = 0.1 + 0.2;
        save_cache(&path, &snapshot).unwrap();
        assert_eq!(load_cache(&path).unwrap(), Some(snapshot));
    }

    #[test]
    fn ids_of_older_files_are_read_in_lower_case() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let mut upper = sample();
        upper.customers[0].id = "AE1D5B32-F9FF-4252-B2BF-40E21937A51A".into();
        save_cache(&path, &upper).unwrap();
        let loaded = load_cache(&path).unwrap().unwrap();
        assert_eq!(
            loaded.customers[0].id,
            "ae1d5b32-f9ff-4252-b2bf-40e21937a51a"
        );
    }

    #[test]
    fn a_state_file_is_locked_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("refresh_token");
        let first = StateLock::acquire(&state).unwrap();
        let err = StateLock::acquire(&state).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{text}");
        assert!(
            text.contains("refresh_token") && text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        let _again = StateLock::acquire(&state).unwrap();
    }

    #[test]
    fn temporary_names_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // Many writers in one process (one PID): every write lands whole.
        std::thread::scope(|scope| {
            for i in 0..8 {
                let path = path.clone();
                scope.spawn(move || {
                    for _ in 0..20 {
                        write_atomically(&path, format!("{i}{}", "x".repeat(4096)).as_bytes())
                            .unwrap();
                    }
                });
            }
        });
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 4097);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_truncated_and_foreign_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        save_cache(&path, &sample()).unwrap();
        let good = fs::read(&path).unwrap();
        fs::write(&path, &good[..good.len() / 2]).unwrap();
        assert!(matches!(load_cache(&path), Err(CacheError::Corrupt { .. })));
        fs::write(&path, b"\x00\x01garbage").unwrap();
        assert!(matches!(load_cache(&path), Err(CacheError::Corrupt { .. })));
        fs::write(&path, br#"{"version":99,"snapshot":{}}"#).unwrap();
        assert!(matches!(
            load_cache(&path),
            Err(CacheError::Version { found: 99, .. })
        ));
    }
}
