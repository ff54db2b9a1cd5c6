//! The web configuration file of the Prometheus exporter-toolkit
//! (<https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md>):
//! TLS, basic auth and extra response headers, so that a file written for
//! node_exporter works for a server built on hyper and rustls too.
//!
//! This crate owns reading and validating that file once at start-up (including the
//! certificate, key and CA files it names, so that a bad file stops the process
//! before it serves), building the rustls server configuration, rebuilding it when
//! the certificate files change on disk, and checking `Authorization: Basic`
//! credentials against bcrypt hashes.
//!
//! It does not serve anything: the server asks [`TlsAcceptorSource::acceptor`] for
//! an acceptor per connection, calls [`BasicAuth::check`] per request and adds
//! [`WebConfig::headers`] to every response. It must never log a password, an
//! `Authorization` header, a password hash or key material.
//!
//! Where rustls cannot do what Go's `crypto/tls` does (TLS 1.0/1.1, CBC cipher suites,
//! the P-521 curve), the file is rejected with a message saying so rather than
//! silently served differently. `rate_limit` is accepted only when disabled
//! (`interval: 0`).
//!
//! # Layout
//!
//! - this file: [`WebConfig`], the whole file validated, and [`WebConfigError`].
//! - `raw`: the file as written (its serde shape) and the YAML parsing.
//! - `headers`: `http_server_config.headers`, the response headers a file may set.
//! - `tls`: `tls_server_config` turned into typed settings (PEM sources, versions,
//!   cipher suites, curves), and the rustls server configuration built from them.
//! - `client_cert`: `client_auth_type` and the client certificate verifiers,
//!   including the `client_allowed_sans` check.
//! - `acceptor`: [`TlsAcceptorSource`], the current TLS acceptor, rebuilt when the
//!   certificate files change.
//! - `basic_auth`: [`BasicAuth`], `basic_auth_users` checked against bcrypt hashes.

mod acceptor;
mod basic_auth;
mod client_cert;
mod headers;
mod raw;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use http::{HeaderName, HeaderValue};

pub use acceptor::TlsAcceptorSource;
pub use basic_auth::BasicAuth;

use raw::{RawConfig, RawHttp, RawRateLimit, RawTls};
use tls::TlsSettings;

/// A loaded and validated web configuration file.
#[derive(Debug, Default)]
pub struct WebConfig {
    tls: Option<TlsAcceptorSource>,
    basic_auth: Option<BasicAuth>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Why a web configuration file was refused. `Display` is one line naming the file
/// and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file itself could not be read.
    #[error("web config {}: cannot read the file: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is not valid YAML, or has an unknown key or a value of the wrong type.
    #[error("web config {}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    /// A key has a value that is not acceptable (including files it names).
    #[error("web config {}: {key}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

impl WebConfig {
    /// Reads, parses and validates the file at `path`, and reads the certificate,
    /// key and CA files it names. Relative file names are taken relative to the
    /// directory of `path`, as exporter-toolkit does.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| WebConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let raw = raw::parse_yaml(&text).map_err(|message| WebConfigError::Syntax {
            path: path.to_owned(),
            message,
        })?;
        let dir = path.parent().unwrap_or_else(|| Path::new(""));
        Self::from_raw(raw.unwrap_or_default(), dir).map_err(|problem| WebConfigError::Invalid {
            path: path.to_owned(),
            key: problem.key,
            message: problem.message,
        })
    }

    /// The TLS acceptor source, or `None` when the file configures no TLS.
    pub fn tls(&self) -> Option<TlsAcceptorSource> {
        self.tls.clone()
    }

    /// The basic-auth checker, or `None` when `basic_auth_users` is absent or empty.
    pub fn basic_auth(&self) -> Option<BasicAuth> {
        self.basic_auth.clone()
    }

    /// `http_server_config.headers`, to add to every response.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    fn from_raw(raw: RawConfig, dir: &Path) -> Result<WebConfig, Problem> {
        let RawConfig {
            tls_server_config,
            http_server_config,
            basic_auth_users,
            rate_limit,
        } = raw;
        if let Some(rate_limit) = rate_limit {
            check_rate_limit(&rate_limit)?;
        }
        let headers = match http_server_config {
            Some(RawHttp { headers, .. }) => headers::validate(headers.unwrap_or_default())?,
            None => Vec::new(),
        };
        let tls = match tls_server_config.map(RawTls::normalized) {
            Some(raw) if raw != RawTls::default() => {
                Some(TlsAcceptorSource::new(TlsSettings::from_raw(raw, dir)?)?)
            }
            _ => None,
        };
        let basic_auth = match basic_auth_users {
            Some(users) if !users.is_empty() => Some(BasicAuth::new(users)?),
            _ => None,
        };
        Ok(WebConfig {
            tls,
            basic_auth,
            headers,
        })
    }
}

/// What is wrong with one key; becomes [`WebConfigError::Invalid`] at load, or a
/// warning when a certificate reload fails. Never holds secret material.
#[derive(Debug)]
pub(crate) struct Problem {
    pub(crate) key: String,
    pub(crate) message: String,
}

impl Problem {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// `rate_limit` is accepted only when it is disabled.
fn check_rate_limit(rate_limit: &RawRateLimit) -> Result<(), Problem> {
    let disabled = match rate_limit.interval.as_deref().map(str::trim) {
        None | Some("") | Some("0") => true,
        Some(interval) => humantime::parse_duration(interval).is_ok_and(|d| d.is_zero()),
    };
    if disabled {
        Ok(())
    } else {
        Err(Problem::new(
            "rate_limit.interval",
            "rate limiting is not supported by partnercenter-exporter \
             (remove rate_limit, or set interval to 0)",
        ))
    }
}

/// Locks `mutex`, carrying on if a panicking holder poisoned it (the state is
/// always left consistent).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
