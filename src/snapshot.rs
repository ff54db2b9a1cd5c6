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
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
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
