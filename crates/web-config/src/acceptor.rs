//! [`TlsAcceptorSource`]: the TLS acceptor for new connections, rebuilt from the
//! TLS settings when the certificate, key or client CA files change on disk.
//!
//! Owns when to reload and what to keep when a reload fails (the previous
//! acceptor, with a warning); what a reload builds is the TLS settings' job.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio_rustls::TlsAcceptor;

use crate::tls::TlsSettings;
use crate::{lock, Problem};

/// How often [`TlsAcceptorSource::acceptor`] looks at the certificate files, at most.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What identifies a version of a file cheaply: a changed stamp means re-read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl FileStamp {
    /// `None` when the file cannot be stat'ed (e.g. missing during a rotation).
    pub(crate) fn of(path: &Path) -> Option<FileStamp> {
        // `metadata` follows symlinks, so Kubernetes' `..data` swaps are seen.
        std::fs::metadata(path).ok().map(|meta| FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }
}

/// Hands out the TLS acceptor for new connections. Cheap to clone; all clones
/// share one acceptor and reload state.
#[derive(Clone)]
pub struct TlsAcceptorSource {
    inner: Arc<TlsInner>,
}

struct TlsInner {
    settings: TlsSettings,
    /// Held only for a stat (at most once a second) and, when a file changed, for
    /// the rebuild; never across an `.await`.
    state: Mutex<TlsState>,
}

struct TlsState {
    acceptor: TlsAcceptor,
    /// Stamps of the watched files as of the last load attempt (good or bad), so a
    /// broken file is reported once, not every second.
    stamps: Vec<Option<FileStamp>>,
    last_check: Instant,
}

impl TlsAcceptorSource {
    pub(crate) fn new(settings: TlsSettings) -> Result<TlsAcceptorSource, Problem> {
        // Stamp before reading: a change during the read is then seen next time.
        let stamps = settings.stamps();
        let config = settings.build()?;
        Ok(TlsAcceptorSource {
            inner: Arc::new(TlsInner {
                settings,
                state: Mutex::new(TlsState {
                    acceptor: TlsAcceptor::from(config),
                    stamps,
                    last_check: Instant::now(),
                }),
            }),
        })
    }

    /// The acceptor to use for a new connection. At most once a second this stats
    /// the certificate, key and client CA files, and when one changed (modification
    /// time or size) it reloads them. If the reload fails, it logs a warning and
    /// keeps serving the previous certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        let mut state = lock(&self.inner.state);
        let now = Instant::now();
        if now.duration_since(state.last_check) >= RELOAD_CHECK_INTERVAL {
            state.last_check = now;
            let stamps = self.inner.settings.stamps();
            if stamps != state.stamps {
                state.stamps = stamps;
                match self.inner.settings.build() {
                    Ok(config) => {
                        state.acceptor = TlsAcceptor::from(config);
                        tracing::info!("TLS certificate files changed; reloaded them");
                    }
                    Err(problem) => tracing::warn!(
                        key = %problem.key,
                        error = %problem.message,
                        "TLS certificate files changed but cannot be loaded; \
                         keeping the previous certificate"
                    ),
                }
            }
        }
        state.acceptor.clone()
    }
}

impl fmt::Debug for TlsAcceptorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.inner.settings;
        f.debug_struct("TlsAcceptorSource")
            .field("cert", &s.cert)
            .field("key", &s.key)
            .field("client_ca", &s.client_ca)
            .field("client_auth_type", &s.client_auth.name())
            .field("client_allowed_sans", &s.allowed_sans)
            .field("min_version", &s.min_version.name())
            .field("max_version", &s.max_version.name())
            .finish_non_exhaustive()
    }
}
