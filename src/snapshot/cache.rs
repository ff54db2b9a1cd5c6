//! The cache file (`--poll.cache-file`): the snapshot on disk, every part with its
//! fetch times, in a versioned JSON format, written atomically so that a crash at
//! any moment leaves either the previous complete file or the new complete file; and
//! the exclusive locks on state files.
//!
//! Each part is stored under its name and read back by its collector's loader; a
//! part that does not load (a collector's format changed, or the file was edited) is
//! skipped with a warning and the other parts are served. A file of another format
//! version is ignored as a whole.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{AnyPart, Part, Snapshot};

/// The format version of the cache file. A file of any other version is ignored.
/// Version 1 held one snapshot of service costs; version 2 holds parts.
pub const CACHE_FORMAT_VERSION: u32 = 2;

/// Reads one part from its JSON form.
pub type PartLoader = fn(serde_json::Value) -> serde_json::Result<Arc<dyn AnyPart>>;

/// The loader of a part of `T`s: keys sorted and each once, whatever the file says.
pub fn load_part<T>(value: serde_json::Value) -> serde_json::Result<Arc<dyn AnyPart>>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let part: Part<T> = serde_json::from_value(value)?;
    Ok(Arc::new(Part::from_entries(
        part.entries,
        part.last_success,
    )))
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
    parts: BTreeMap<&'a str, serde_json::Value>,
}

#[derive(Deserialize)]
struct CacheHeader {
    version: u32,
}

#[derive(Deserialize)]
struct CacheFileIn {
    parts: BTreeMap<String, serde_json::Value>,
}

/// A loaded cache file.
#[derive(Debug)]
pub struct Loaded {
    pub snapshot: Snapshot,
    /// One line per part that was skipped, for the log.
    pub skipped: Vec<String>,
}

/// Loads a cache file: each part named in `loaders` that the file holds. `Ok(None)`
/// when the file does not exist (a first start).
pub fn load_cache(
    path: &Path,
    loaders: &[(&'static str, PartLoader)],
) -> Result<Option<Loaded>, CacheError> {
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
    let mut file: CacheFileIn = serde_json::from_slice(&bytes).map_err(corrupt)?;
    let mut snapshot = Snapshot::default();
    let mut skipped = Vec::new();
    for (name, load) in loaders {
        let Some(value) = file.parts.remove(*name) else {
            continue;
        };
        match load(value) {
            Ok(part) => snapshot = snapshot.with(name, part),
            Err(err) => skipped.push(format!("part {name}: {err}")),
        }
    }
    Ok(Some(Loaded { snapshot, skipped }))
}

/// Writes the cache file atomically: a temporary file in the same directory, fsync,
/// rename over the old file, fsync of the directory. Mode 0600: spend per customer
/// is commercially sensitive.
pub fn save_cache(path: &Path, snapshot: &Snapshot) -> Result<(), CacheError> {
    let write_error = |e: serde_json::Error| CacheError::Write {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    };
    let mut parts = BTreeMap::new();
    for (name, part) in snapshot.parts() {
        parts.insert(name, part.to_json().map_err(write_error)?);
    }
    let body = serde_json::to_vec(&CacheFileOut {
        version: CACHE_FORMAT_VERSION,
        exporter_version: env!("CARGO_PKG_VERSION"),
        parts,
    })
    .map_err(write_error)?;
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

    use crate::snapshot::Fetched;

    fn loaders() -> Vec<(&'static str, PartLoader)> {
        vec![
            ("numbers", load_part::<f64>),
            ("words", load_part::<String>),
        ]
    }

    fn sample() -> Snapshot {
        let numbers: Part<f64> = Part::from_entries(
            vec![(
                "ae1d5b32-f9ff-4252-b2bf-40e21937a51a".into(),
                Fetched {
                    value: Some(0.1 + 0.2),
                    success: true,
                    last_success: Some(1_795_395_090.565_894_1),
                },
            )],
            Some(99.0),
        );
        let words: Part<String> = Part::from_entries(
            vec![(
                "k".into(),
                Fetched {
                    value: Some("A \"quoted\"\n".into()),
                    success: false,
                    last_success: None,
                },
            )],
            None,
        );
        Snapshot::default()
            .with("numbers", Arc::new(numbers))
            .with("words", Arc::new(words))
    }

    fn assert_same(a: &Snapshot, b: &Snapshot) {
        assert_eq!(a.part::<f64>("numbers"), b.part::<f64>("numbers"));
        assert_eq!(a.part::<String>("words"), b.part::<String>("words"));
    }

    #[test]
    fn every_part_round_trips_exactly_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        assert!(load_cache(&path, &loaders()).unwrap().is_none());
        save_cache(&path, &sample()).unwrap();
        let loaded = load_cache(&path, &loaders()).unwrap().unwrap();
        assert!(loaded.skipped.is_empty());
        assert_same(&loaded.snapshot, &sample());
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
    fn a_part_that_does_not_load_is_skipped_and_the_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        fs::write(
            &path,
            r#"{"version":2,"parts":{"numbers":{"entries":[["b",{"value":2.0,"success":true,"last_success":5.0}],["a",{"value":1.0,"success":true,"last_success":5.0}]],"last_success":null},"words":{"entries":"nonsense"},"unknown":{}}}"#,
        )
        .unwrap();
        let loaded = load_cache(&path, &loaders()).unwrap().unwrap();
        assert_eq!(loaded.skipped.len(), 1, "{:?}", loaded.skipped);
        assert!(loaded.skipped[0].contains("words"));
        let numbers = loaded.snapshot.part::<f64>("numbers").unwrap();
        assert_eq!(numbers.entries[0].0, "a", "sorted on load");
        assert!(loaded.snapshot.part::<String>("words").is_none());
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
    fn corrupt_truncated_old_and_foreign_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        save_cache(&path, &sample()).unwrap();
        let good = fs::read(&path).unwrap();
        let load = || load_cache(&path, &loaders());
        fs::write(&path, &good[..good.len() / 2]).unwrap();
        assert!(matches!(load(), Err(CacheError::Corrupt { .. })));
        fs::write(&path, b"\x00\x01garbage").unwrap();
        assert!(matches!(load(), Err(CacheError::Corrupt { .. })));
        fs::write(&path, br#"{"version":1,"snapshot":{"customers":[]}}"#).unwrap();
        assert!(matches!(load(), Err(CacheError::Version { found: 1, .. })));
        fs::write(&path, br#"{"version":99,"snapshot":{}}"#).unwrap();
        assert!(matches!(load(), Err(CacheError::Version { found: 99, .. })));
    }
}
