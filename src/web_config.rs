//! The web configuration file (`--web.config.file`): TLS, basic auth and extra
//! response headers, in the format of the Prometheus exporter-toolkit
//! (<https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md>),
//! so a file written for node_exporter works here too.
//!
//! This module owns reading and validating that file once at start-up (including the
//! certificate, key and CA files it names, so a bad file stops the process before it
//! serves), building the rustls server configuration, rebuilding it when the
//! certificate files change on disk, and checking `Authorization: Basic` credentials
//! against bcrypt hashes.
//!
//! It does not serve anything: `server.rs` asks [`TlsAcceptorSource::acceptor`] for an
//! acceptor per connection, calls [`BasicAuth::check`] per request and adds
//! [`WebConfig::headers`] to every response. It must never log a password, an
//! `Authorization` header, a password hash or key material.
//!
//! Where rustls cannot do what Go's `crypto/tls` does (TLS 1.0/1.1, CBC cipher suites,
//! the P-521 curve), the file is rejected with a message saying so rather than
//! silently served differently. `rate_limit` is accepted only when disabled
//! (`interval: 0`).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, SupportedKxGroup, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedCipherSuite, SupportedProtocolVersion,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio_rustls::TlsAcceptor;

/// The `WWW-Authenticate` value to send with a 401 when basic auth is enabled.
pub const WWW_AUTHENTICATE: &str = "Basic realm=\"partnercenter-exporter\"";

/// The `WWW-Authenticate` value to send with a 401 when basic auth is enabled.
pub fn www_authenticate() -> &'static str {
    WWW_AUTHENTICATE
}

/// How often [`TlsAcceptorSource::acceptor`] looks at the certificate files, at most.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How many successful (user, password) pairs [`BasicAuth`] remembers, as
/// exporter-toolkit does (its cache holds 100 entries).
const AUTH_CACHE_SIZE: usize = 100;

/// Salt and digest of a bcrypt hash of a string nobody sends; an unknown user is
/// verified against it (with the configured cost) so that it costs as much as a
/// wrong password and user names cannot be told apart by response time.
const DUMMY_BCRYPT_TAIL: &str = "It2ZcKOQkSGgTfz/2UtKDe5nTwACq59Bk5WGgWDOqtU56oS//Dj2C";

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
        let raw = parse_yaml(&text).map_err(|message| WebConfigError::Syntax {
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
            Some(RawHttp { headers, .. }) => validate_headers(headers.unwrap_or_default())?,
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
struct Problem {
    key: String,
    message: String,
}

impl Problem {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------
// The file as written. Everything is a plain string here; `from_raw` turns it
// into typed values so that error messages can name the key.
// ---------------------------------------------------------------------------

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    rate_limit: Option<RawRateLimit>,
}

#[derive(Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

impl RawTls {
    /// Empty strings mean "not set", as in Go.
    fn normalized(self) -> Self {
        fn set(value: Option<String>) -> Option<String> {
            value.filter(|v| !v.is_empty())
        }
        RawTls {
            cert: set(self.cert),
            key: set(self.key),
            client_ca: set(self.client_ca),
            cert_file: set(self.cert_file),
            key_file: set(self.key_file),
            client_auth_type: set(self.client_auth_type),
            client_ca_file: set(self.client_ca_file),
            min_version: set(self.min_version),
            max_version: set(self.max_version),
            ..self
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[allow(dead_code)] // accepted for compatibility; the server speaks HTTP/1.1 only
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    interval: Option<String>,
    #[allow(dead_code)] // accepted for compatibility; only meaningful with an interval
    burst: Option<i64>,
}

/// Parses the YAML text; `None` for an empty document.
fn parse_yaml(text: &str) -> Result<Option<RawConfig>, String> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    serde_saphyr::from_str_with_options::<Option<RawConfig>>(text, options).map_err(|err| {
        err.to_string()
            .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
            .replace('\n', " ")
    })
}

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

// ---------------------------------------------------------------------------
// http_server_config.headers
// ---------------------------------------------------------------------------

/// The headers exporter-toolkit lets a web config set, with their allowed values
/// (empty: any value). Anything else is refused, as there.
const CONFIGURABLE_HEADERS: [(&str, HeaderName, &[&str]); 5] = [
    (
        "Strict-Transport-Security",
        http::header::STRICT_TRANSPORT_SECURITY,
        &[],
    ),
    (
        "X-Content-Type-Options",
        http::header::X_CONTENT_TYPE_OPTIONS,
        &["nosniff"],
    ),
    (
        "X-Frame-Options",
        http::header::X_FRAME_OPTIONS,
        &["deny", "sameorigin"],
    ),
    ("X-XSS-Protection", http::header::X_XSS_PROTECTION, &[]),
    (
        "Content-Security-Policy",
        http::header::CONTENT_SECURITY_POLICY,
        &[],
    ),
];

fn validate_headers(
    headers: BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, Problem> {
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let key = format!("http_server_config.headers.{name}");
        let Some((_, header_name, allowed)) = CONFIGURABLE_HEADERS
            .iter()
            .find(|(known, _, _)| known.eq_ignore_ascii_case(&name))
        else {
            let names: Vec<&str> = CONFIGURABLE_HEADERS.iter().map(|(n, _, _)| *n).collect();
            return Err(Problem::new(
                key,
                format!(
                    "this header cannot be configured (allowed: {})",
                    names.join(", ")
                ),
            ));
        };
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(Problem::new(
                key,
                format!(
                    "invalid value {value:?} (expected one of {})",
                    allowed.join(", ")
                ),
            ));
        }
        if value.is_empty() {
            // "Unset if blank", as documented by exporter-toolkit.
            continue;
        }
        if out.iter().any(|(n, _)| n == header_name) {
            return Err(Problem::new(key, "set more than once"));
        }
        let header_value = HeaderValue::from_str(&value)
            .map_err(|_| Problem::new(key, "not a valid HTTP header value"))?;
        out.push((header_name.clone(), header_value));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// tls_server_config: typed settings
// ---------------------------------------------------------------------------

const CERT_FILE: &str = "tls_server_config.cert_file";
const CERT: &str = "tls_server_config.cert";
const KEY_FILE: &str = "tls_server_config.key_file";
const KEY: &str = "tls_server_config.key";
const CLIENT_CA_FILE: &str = "tls_server_config.client_ca_file";
const CLIENT_CA: &str = "tls_server_config.client_ca";
const CLIENT_AUTH_TYPE: &str = "tls_server_config.client_auth_type";
const CLIENT_ALLOWED_SANS: &str = "tls_server_config.client_allowed_sans";
const MIN_VERSION: &str = "tls_server_config.min_version";
const MAX_VERSION: &str = "tls_server_config.max_version";
const CIPHER_SUITES: &str = "tls_server_config.cipher_suites";
const CURVE_PREFERENCES: &str = "tls_server_config.curve_preferences";

/// Where a PEM document comes from: a file (re-read when it changes) or the web
/// config itself.
enum PemSource {
    File(PathBuf),
    Inline(SecretString),
}

/// A PEM document and the key of the web config that named it.
struct PemInput {
    key: &'static str,
    source: PemSource,
}

impl fmt::Debug for PemInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            PemSource::File(path) => write!(f, "{}", path.display()),
            PemSource::Inline(_) => write!(f, "[inline {}]", self.key),
        }
    }
}

impl PemInput {
    fn from_raw(
        file: Option<String>,
        inline: Option<String>,
        (file_key, inline_key): (&'static str, &'static str),
        dir: &Path,
    ) -> Result<Option<PemInput>, Problem> {
        match (file, inline) {
            (Some(_), Some(_)) => Err(Problem::new(
                file_key,
                format!("cannot be combined with {inline_key}; set only one of them"),
            )),
            (Some(file), None) => Ok(Some(PemInput {
                key: file_key,
                source: PemSource::File(dir.join(file)),
            })),
            (None, Some(pem)) => Ok(Some(PemInput {
                key: inline_key,
                source: PemSource::Inline(SecretString::from(pem)),
            })),
            (None, None) => Ok(None),
        }
    }

    fn path(&self) -> Option<&Path> {
        match &self.source {
            PemSource::File(path) => Some(path),
            PemSource::Inline(_) => None,
        }
    }

    /// The document's bytes; `f` sees them while they are in memory.
    fn with_bytes<T>(&self, f: impl FnOnce(&[u8]) -> Result<T, String>) -> Result<T, Problem> {
        let result = match &self.source {
            PemSource::File(path) => match std::fs::read(path) {
                Ok(bytes) => f(SecretSlice::from(bytes).expose_secret())
                    .map_err(|message| format!("{}: {message}", path.display())),
                Err(err) => Err(format!("cannot read {}: {err}", path.display())),
            },
            PemSource::Inline(pem) => f(pem.expose_secret().as_bytes()),
        };
        result.map_err(|message| Problem::new(self.key, message))
    }

    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, Problem> {
        self.with_bytes(|bytes| {
            let certs = CertificateDer::pem_slice_iter(bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| format!("not valid PEM: {err}"))?;
            if certs.is_empty() {
                return Err("no CERTIFICATE found in the PEM data".to_owned());
            }
            Ok(certs)
        })
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, Problem> {
        self.with_bytes(|bytes| {
            PrivateKeyDer::from_pem_slice(bytes).map_err(|err| match err {
                rustls_pki_types::pem::Error::NoItemsFound => {
                    "no PRIVATE KEY found in the PEM data".to_owned()
                }
                err => format!("not valid PEM: {err}"),
            })
        })
    }
}

/// `client_auth_type`, with the meaning of Go's `tls.ClientAuthType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    const NAMES: [(&'static str, ClientAuth); 5] = [
        ("NoClientCert", ClientAuth::NoClientCert),
        ("RequestClientCert", ClientAuth::RequestClientCert),
        ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
        (
            "VerifyClientCertIfGiven",
            ClientAuth::VerifyClientCertIfGiven,
        ),
        (
            "RequireAndVerifyClientCert",
            ClientAuth::RequireAndVerifyClientCert,
        ),
    ];

    fn parse(value: Option<&str>) -> Result<ClientAuth, Problem> {
        let Some(value) = value else {
            return Ok(ClientAuth::NoClientCert);
        };
        if value == "RequireClientCert" {
            // Old spelling exporter-toolkit still accepts.
            return Ok(ClientAuth::RequireAnyClientCert);
        }
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == value)
            .map(|(_, auth)| *auth)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::NAMES.iter().map(|(n, _)| *n).collect();
                Problem::new(
                    CLIENT_AUTH_TYPE,
                    format!(
                        "unknown value {value:?} (expected one of {})",
                        names.join(", ")
                    ),
                )
            })
    }

    fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, auth)| *auth == self)
            .map_or("NoClientCert", |(name, _)| *name)
    }

    /// Whether a presented certificate is checked against `client_ca_file`.
    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }

    /// Whether a handshake without a client certificate fails.
    fn mandatory(self) -> bool {
        matches!(
            self,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    fn parse(key: &'static str, value: Option<&str>, default: TlsVersion) -> Result<Self, Problem> {
        match value {
            None => Ok(default),
            Some("TLS12") => Ok(TlsVersion::Tls12),
            Some("TLS13") => Ok(TlsVersion::Tls13),
            Some(old @ ("TLS10" | "TLS11")) => Err(Problem::new(
                key,
                format!("{old} is not supported by rustls (use TLS12 or TLS13)"),
            )),
            Some(other) => Err(Problem::new(
                key,
                format!("unknown value {other:?} (expected one of TLS12, TLS13)"),
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS12",
            TlsVersion::Tls13 => "TLS13",
        }
    }

    fn rustls(self) -> &'static SupportedProtocolVersion {
        match self {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        }
    }
}

/// The TLS 1.2 suites rustls (ring) has, by their Go names.
fn rustls_tls12_suite(name: &str) -> Option<SupportedCipherSuite> {
    use rustls::crypto::ring::cipher_suite as cs;
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

const RUSTLS_TLS12_SUITE_NAMES: [&str; 6] = [
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// TLS 1.3 suites: Go accepts their names but, as TLS 1.3 suites are not
/// configurable there, ignores them. So do we.
const TLS13_SUITE_NAMES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Suites Go knows (secure or insecure) that rustls does not implement.
const GO_ONLY_SUITE_NAMES: [&str; 16] = [
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

fn parse_cipher_suites(names: &[String]) -> Result<Vec<SupportedCipherSuite>, Problem> {
    let mut suites: Vec<SupportedCipherSuite> = Vec::new();
    for name in names {
        if let Some(suite) = rustls_tls12_suite(name) {
            if !suites.iter().any(|s| s.suite() == suite.suite()) {
                suites.push(suite);
            }
        } else if TLS13_SUITE_NAMES.contains(&name.as_str()) {
            continue;
        } else if GO_ONLY_SUITE_NAMES.contains(&name.as_str()) {
            return Err(Problem::new(
                CIPHER_SUITES,
                format!(
                    "{name:?} is not supported by rustls (supported: {})",
                    RUSTLS_TLS12_SUITE_NAMES.join(", ")
                ),
            ));
        } else {
            return Err(Problem::new(
                CIPHER_SUITES,
                format!(
                    "unknown cipher suite {name:?} (supported: {})",
                    RUSTLS_TLS12_SUITE_NAMES.join(", ")
                ),
            ));
        }
    }
    Ok(suites)
}

fn parse_curves(names: &[String]) -> Result<Vec<&'static dyn SupportedKxGroup>, Problem> {
    use rustls::crypto::ring::kx_group;
    let mut groups: Vec<&'static dyn SupportedKxGroup> = Vec::new();
    for name in names {
        let group: &'static dyn SupportedKxGroup = match name.as_str() {
            "X25519" => kx_group::X25519,
            "CurveP256" => kx_group::SECP256R1,
            "CurveP384" => kx_group::SECP384R1,
            "CurveP521" => {
                return Err(Problem::new(
                    CURVE_PREFERENCES,
                    "\"CurveP521\" is not supported by rustls (supported: X25519, CurveP256, CurveP384)",
                ))
            }
            other => {
                return Err(Problem::new(
                    CURVE_PREFERENCES,
                    format!(
                        "unknown curve {other:?} (expected one of CurveP256, CurveP384, CurveP521, X25519)"
                    ),
                ))
            }
        };
        if !groups.iter().any(|g| g.name() == group.name()) {
            groups.push(group);
        }
    }
    Ok(groups)
}

/// `tls_server_config`, validated. Everything but the PEM documents is fixed at load.
struct TlsSettings {
    cert: PemInput,
    key: PemInput,
    client_ca: Option<PemInput>,
    client_auth: ClientAuth,
    /// `client_allowed_sans`; `None` when not configured.
    allowed_sans: Option<Arc<[String]>>,
    min_version: TlsVersion,
    max_version: TlsVersion,
    /// ring, restricted to the configured TLS 1.2 suites and key-exchange groups.
    provider: Arc<CryptoProvider>,
    /// `prefer_server_cipher_suites` (default true): choose by our order, not the client's.
    prefer_server_cipher_suites: bool,
}

impl TlsSettings {
    fn from_raw(raw: RawTls, dir: &Path) -> Result<TlsSettings, Problem> {
        let cert = PemInput::from_raw(raw.cert_file, raw.cert, (CERT_FILE, CERT), dir)?
            .ok_or_else(|| {
                Problem::new(
                    CERT_FILE,
                    "required when tls_server_config is set (or give the PEM inline as cert)",
                )
            })?;
        let key =
            PemInput::from_raw(raw.key_file, raw.key, (KEY_FILE, KEY), dir)?.ok_or_else(|| {
                Problem::new(
                    KEY_FILE,
                    "required when tls_server_config is set (or give the PEM inline as key)",
                )
            })?;
        let client_ca = PemInput::from_raw(
            raw.client_ca_file,
            raw.client_ca,
            (CLIENT_CA_FILE, CLIENT_CA),
            dir,
        )?;
        let client_auth = ClientAuth::parse(raw.client_auth_type.as_deref())?;
        match (&client_ca, client_auth) {
            (None, auth) if auth.verifies() => {
                return Err(Problem::new(
                    CLIENT_CA_FILE,
                    format!("required when client_auth_type is {}", auth.name()),
                ))
            }
            (Some(ca), ClientAuth::NoClientCert) => {
                return Err(Problem::new(
                    ca.key,
                    "set, but client_auth_type is NoClientCert; set client_auth_type \
                     (RequireAndVerifyClientCert verifies client certificates against it)",
                ))
            }
            _ => {}
        }
        let allowed_sans = match raw.client_allowed_sans {
            None => None,
            Some(sans) if sans.is_empty() => {
                return Err(Problem::new(
                    CLIENT_ALLOWED_SANS,
                    "empty: no client could connect (remove it to allow any SAN)",
                ))
            }
            Some(_) if !client_auth.mandatory() => {
                return Err(Problem::new(
                    CLIENT_ALLOWED_SANS,
                    "requires client_auth_type to be RequireAnyClientCert or \
                     RequireAndVerifyClientCert",
                ))
            }
            Some(sans) => Some(Arc::from(sans)),
        };
        let min_version =
            TlsVersion::parse(MIN_VERSION, raw.min_version.as_deref(), TlsVersion::Tls12)?;
        let max_version =
            TlsVersion::parse(MAX_VERSION, raw.max_version.as_deref(), TlsVersion::Tls13)?;
        if min_version > max_version {
            return Err(Problem::new(
                MIN_VERSION,
                format!(
                    "{} is above max_version {}",
                    min_version.name(),
                    max_version.name()
                ),
            ));
        }

        let mut provider = rustls::crypto::ring::default_provider();
        let cipher_suites = raw.cipher_suites.unwrap_or_default();
        let tls12 = parse_cipher_suites(&cipher_suites)?;
        // As in Go, a non-empty list replaces the TLS 1.2 defaults even when it
        // names only TLS 1.3 suites (which leaves TLS 1.2 without any).
        if !cipher_suites.is_empty() {
            provider
                .cipher_suites
                .retain(|s| s.version() == &rustls::version::TLS13);
            provider.cipher_suites.extend(tls12);
        }
        let groups = parse_curves(raw.curve_preferences.as_deref().unwrap_or_default())?;
        if !groups.is_empty() {
            provider.kx_groups = groups;
        }

        Ok(TlsSettings {
            cert,
            key,
            client_ca,
            client_auth,
            allowed_sans,
            min_version,
            max_version,
            provider: Arc::new(provider),
            prefer_server_cipher_suites: raw.prefer_server_cipher_suites.unwrap_or(true),
        })
    }

    /// The files to watch, in a fixed order.
    fn watched_files(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(PemInput::path)
    }

    fn stamps(&self) -> Vec<Option<FileStamp>> {
        self.watched_files().map(FileStamp::of).collect()
    }

    /// Reads the PEM documents and builds a server config from them.
    fn build(&self) -> Result<Arc<ServerConfig>, Problem> {
        let certs = self.cert.certificates()?;
        let key = self.key.private_key()?;
        let verifier = self.client_verifier()?;
        let versions: Vec<&'static SupportedProtocolVersion> =
            [TlsVersion::Tls12, TlsVersion::Tls13]
                .into_iter()
                .filter(|v| (self.min_version..=self.max_version).contains(v))
                .map(TlsVersion::rustls)
                .collect();
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&versions)
            .map_err(|err| {
                tracing::debug!(error = %err, "rustls refused the protocol versions");
                Problem::new(
                    CIPHER_SUITES,
                    format!(
                        "no listed suite can be used with TLS versions {} to {} \
                         (only TLS 1.2 suites can be chosen)",
                        self.min_version.name(),
                        self.max_version.name()
                    ),
                )
            })?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|err| {
                Problem::new(
                    self.key.key,
                    format!("cannot use this key with the certificate: {err}"),
                )
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.ignore_client_order = self.prefer_server_cipher_suites;
        Ok(Arc::new(config))
    }

    fn client_verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, Problem> {
        let roots = match &self.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in ca.certificates()? {
                    roots.add(cert).map_err(|err| {
                        Problem::new(ca.key, format!("not a usable CA certificate: {err}"))
                    })?;
                }
                Some((ca.key, Arc::new(roots)))
            }
            None => None,
        };
        let algorithms = self.provider.signature_verification_algorithms;
        let verifier: Arc<dyn ClientCertVerifier> = match (self.client_auth, roots) {
            (ClientAuth::NoClientCert, _) => WebPkiClientVerifier::no_client_auth(),
            (ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert, roots) => {
                Arc::new(AnyClientCert {
                    mandatory: self.client_auth.mandatory(),
                    hints: roots.map(|(_, r)| r.subjects()).unwrap_or_default(),
                    algorithms,
                })
            }
            (auth, Some((key, roots))) => {
                let builder =
                    WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&self.provider));
                let builder = if auth.mandatory() {
                    builder
                } else {
                    builder.allow_unauthenticated()
                };
                builder.build().map_err(|err| {
                    Problem::new(key, format!("cannot verify client certificates: {err}"))
                })?
            }
            (auth, None) => {
                return Err(Problem::new(
                    CLIENT_CA_FILE,
                    format!("required when client_auth_type is {}", auth.name()),
                ))
            }
        };
        Ok(match &self.allowed_sans {
            Some(allowed) => Arc::new(AllowedSans {
                inner: verifier,
                allowed: Arc::clone(allowed),
            }),
            None => verifier,
        })
    }
}

// ---------------------------------------------------------------------------
// Client certificate verifiers
// ---------------------------------------------------------------------------

/// `RequestClientCert` / `RequireAnyClientCert`: asks for a certificate and accepts
/// any, without checking who issued it (as Go does). The handshake signature is
/// still checked, so the client must hold the certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    /// Subjects of `client_ca_file`, if given, sent as hints as Go does.
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `client_allowed_sans`: after `inner` accepts the certificate, one of its DNS,
/// e-mail, IP or URI SANs must equal an allowed value exactly (no wildcard
/// matching), as in exporter-toolkit.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Arc<[String]>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let sans = subject_alt_names(end_entity);
        if sans.iter().any(|san| self.allowed.contains(san)) {
            Ok(verified)
        } else {
            tracing::debug!(
                presented = ?sans,
                "client certificate refused: none of its SANs is in client_allowed_sans"
            );
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The DNS, e-mail, IP and URI subject alternative names of a DER certificate,
/// spelled as Go's `x509.Certificate` fields print them. Empty if the certificate
/// has none or cannot be read.
fn subject_alt_names(cert: &[u8]) -> Vec<String> {
    read_subject_alt_names(cert).unwrap_or_default()
}

/// One DER element: (tag, contents, what follows).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags do not occur where we look
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (len_bytes, after) = rest.split_at(count);
        rest = after;
        len_bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b))
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

fn read_subject_alt_names(cert: &[u8]) -> Option<Vec<String>> {
    const SEQUENCE: u8 = 0x30;
    const EXTENSIONS: u8 = 0xa3; // [3] EXPLICIT in TBSCertificate
    const OID: u8 = 0x06;
    const BOOLEAN: u8 = 0x01;
    const OCTET_STRING: u8 = 0x04;
    const SUBJECT_ALT_NAME: [u8; 3] = [0x55, 0x1d, 0x11]; // 2.5.29.17

    let (SEQUENCE, certificate, _) = der_element(cert)? else {
        return None;
    };
    let (SEQUENCE, mut tbs, _) = der_element(certificate)? else {
        return None;
    };
    while !tbs.is_empty() {
        let (tag, contents, rest) = der_element(tbs)?;
        tbs = rest;
        if tag != EXTENSIONS {
            continue;
        }
        let (SEQUENCE, mut extensions, _) = der_element(contents)? else {
            return None;
        };
        while !extensions.is_empty() {
            let (_, extension, rest) = der_element(extensions)?;
            extensions = rest;
            let (OID, oid, mut fields) = der_element(extension)? else {
                return None;
            };
            if oid != SUBJECT_ALT_NAME {
                continue;
            }
            let (mut tag, mut value, rest) = der_element(fields)?;
            if tag == BOOLEAN {
                fields = rest;
                (tag, value, _) = der_element(fields)?;
            }
            if tag != OCTET_STRING {
                return None;
            }
            let (SEQUENCE, mut names, _) = der_element(value)? else {
                return None;
            };
            let mut out = Vec::new();
            while !names.is_empty() {
                let (tag, name, rest) = der_element(names)?;
                names = rest;
                match tag {
                    // [1] rfc822Name, [2] dNSName, [6] uniformResourceIdentifier
                    0x81 | 0x82 | 0x86 => {
                        if let Ok(name) = std::str::from_utf8(name) {
                            out.push(name.to_owned());
                        }
                    }
                    // [7] iPAddress
                    0x87 => {
                        if let Ok(v4) = <[u8; 4]>::try_from(name) {
                            out.push(Ipv4Addr::from(v4).to_string());
                        } else if let Ok(v6) = <[u8; 16]>::try_from(name) {
                            let v6 = Ipv6Addr::from(v6);
                            // Go prints IPv4-mapped addresses in dotted form.
                            let ip = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
                            out.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
            return Some(out);
        }
    }
    Some(Vec::new())
}

// ---------------------------------------------------------------------------
// TlsAcceptorSource: the current acceptor, rebuilt when the files change
// ---------------------------------------------------------------------------

/// What identifies a version of a file cheaply: a changed stamp means re-read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl FileStamp {
    /// `None` when the file cannot be stat'ed (e.g. missing during a rotation).
    fn of(path: &Path) -> Option<FileStamp> {
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
    fn new(settings: TlsSettings) -> Result<TlsAcceptorSource, Problem> {
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

/// Locks `mutex`, carrying on if a panicking holder poisoned it (the state is
/// always left consistent).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// Basic auth
// ---------------------------------------------------------------------------

/// Checks `Authorization: Basic` credentials against `basic_auth_users`. Cheap to
/// clone; clones share the cache.
#[derive(Clone)]
pub struct BasicAuth {
    inner: Arc<BasicAuthInner>,
}

struct BasicAuthInner {
    /// User name → bcrypt hash, validated at load.
    users: BTreeMap<String, String>,
    /// What an unknown user is verified against: same cost as the dearest real hash.
    dummy_hash: String,
    /// Recently verified (user, password) pairs, oldest first, so that repeated
    /// scrapes do not pay for bcrypt each time (exporter-toolkit does the same).
    /// Only successes are kept.
    cache: Mutex<VecDeque<CachedCredential>>,
    /// One bcrypt at a time, as exporter-toolkit does: a flood of bad passwords
    /// then costs one core, not the whole blocking pool.
    /// The permit moves into the blocking task, so a cancelled request does not
    /// free the slot while its bcrypt still runs.
    bcrypt_slot: Arc<tokio::sync::Semaphore>,
    /// How many bcrypt verifications ran; lets tests see that unknown users pay too.
    #[cfg(test)]
    verifications: std::sync::atomic::AtomicUsize,
}

struct CachedCredential {
    user: String,
    password: SecretSlice<u8>,
}

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> Result<BasicAuth, Problem> {
        let mut max_cost = 0;
        for (user, hash) in &users {
            let key = format!("basic_auth_users.{user}");
            let parts: bcrypt::HashParts = hash
                .parse()
                .map_err(|err| Problem::new(&key, format!("not a bcrypt hash: {err}")))?;
            let cost = parts.get_cost();
            if !(4..=31).contains(&cost) {
                return Err(Problem::new(
                    key,
                    format!("bcrypt cost {cost} is outside 4..=31"),
                ));
            }
            max_cost = max_cost.max(cost);
        }
        Ok(BasicAuth {
            inner: Arc::new(BasicAuthInner {
                users,
                dummy_hash: format!("$2b${max_cost:02}${DUMMY_BCRYPT_TAIL}"),
                cache: Mutex::new(VecDeque::with_capacity(AUTH_CACHE_SIZE)),
                bcrypt_slot: Arc::new(tokio::sync::Semaphore::new(1)),
                #[cfg(test)]
                verifications: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// Whether `authorization` (the request's `Authorization` header, if any)
    /// carries `Basic` credentials of a configured user. bcrypt runs on the
    /// blocking pool; an unknown user costs as much as a wrong password.
    pub async fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let inner = &self.inner;
        if inner.is_cached(&user, &password) {
            return true;
        }
        let Ok(slot) = Arc::clone(&inner.bcrypt_slot).acquire_owned().await else {
            return false; // never closed
        };
        // Another request may have verified the same pair while we waited.
        if inner.is_cached(&user, &password) {
            return true;
        }
        let known_hash = inner.users.get(&user);
        let hash = known_hash.unwrap_or(&inner.dummy_hash).clone();
        #[cfg(test)]
        inner
            .verifications
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let verified = tokio::task::spawn_blocking(move || {
            let secret = password.expose_secret();
            // Go's bcrypt refuses passwords over 72 bytes; the crate would truncate.
            let ok = bcrypt::verify(secret, &hash).unwrap_or(false) && secret.len() <= 72;
            drop(slot);
            (ok, password)
        })
        .await;
        let Ok((matches, password)) = verified else {
            return false;
        };
        let ok = matches && known_hash.is_some();
        if ok {
            let mut cache = lock(&inner.cache);
            if cache.len() >= AUTH_CACHE_SIZE {
                cache.pop_front();
            }
            cache.push_back(CachedCredential { user, password });
        }
        ok
    }

    #[cfg(test)]
    fn verifications(&self) -> usize {
        self.inner
            .verifications
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl BasicAuthInner {
    fn is_cached(&self, user: &str, password: &SecretSlice<u8>) -> bool {
        let password = password.expose_secret();
        lock(&self.cache).iter().any(|cached| {
            cached.user == user && bool::from(cached.password.expose_secret().ct_eq(password))
        })
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted;
        impl fmt::Debug for Redacted {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[REDACTED]")
            }
        }
        struct Users<'a>(&'a BTreeMap<String, String>);
        impl fmt::Debug for Users<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.keys().map(|user| (user, Redacted)))
                    .finish()
            }
        }
        f.debug_struct("BasicAuth")
            .field("users", &Users(&self.inner.users))
            .finish_non_exhaustive()
    }
}

/// `Basic base64(user:password)`, as Go's `Request.BasicAuth` reads it: the scheme
/// is case-insensitive and followed by one space; standard base64 with padding.
fn parse_basic(value: &HeaderValue) -> Option<(String, SecretSlice<u8>)> {
    const PREFIX: &[u8] = b"Basic ";
    let bytes = value.as_bytes();
    if bytes.len() < PREFIX.len() || !bytes[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let decoded = SecretSlice::from(
        base64::engine::general_purpose::STANDARD
            .decode(&bytes[PREFIX.len()..])
            .ok()?,
    );
    let decoded = decoded.expose_secret();
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = std::str::from_utf8(&decoded[..colon]).ok()?.to_owned();
    let password = SecretSlice::from(decoded[colon + 1..].to_vec());
    Some((user, password))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        SanType,
    };
    use rustls::pki_types::{PrivatePkcs8KeyDer, ServerName};
    use tempfile::TempDir;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::TlsConnector;

    // ---- test PKI -------------------------------------------------------

    struct Ca {
        der: CertificateDer<'static>,
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    struct Leaf {
        der: CertificateDer<'static>,
        pem: String,
        key_pem: String,
        key_der: Vec<u8>,
    }

    impl Ca {
        fn new(name: &str) -> Ca {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            Ca {
                der: cert.der().clone(),
                pem: cert.pem(),
                issuer: Issuer::new(params, key),
            }
        }

        fn leaf(&self, sans: Vec<SanType>) -> Leaf {
            let mut params = CertificateParams::default();
            params.subject_alt_names = sans;
            params.distinguished_name.push(DnType::CommonName, "leaf");
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            Leaf {
                der: cert.der().clone(),
                pem: cert.pem(),
                key_pem: key.serialize_pem(),
                key_der: key.serialize_der(),
            }
        }
    }

    fn dns(name: &str) -> SanType {
        SanType::DnsName(name.try_into().unwrap())
    }

    /// A directory with `server.crt`, `server.key` (for localhost, issued by `ca`),
    /// `ca.crt`, and a web config file written by `load`.
    struct Fixture {
        dir: TempDir,
        ca: Ca,
        server: Leaf,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let ca = Ca::new("test CA");
            let server = ca.leaf(vec![dns("localhost")]);
            let fixture = Fixture { dir, ca, server };
            fixture.write_server_files(&fixture.server);
            fixture.write("ca.crt", &fixture.ca.pem);
            fixture
        }

        fn write(&self, name: &str, contents: &str) {
            std::fs::write(self.dir.path().join(name), contents).unwrap();
        }

        fn write_server_files(&self, leaf: &Leaf) {
            self.write("server.crt", &leaf.pem);
            self.write("server.key", &leaf.key_pem);
        }

        fn config_path(&self) -> PathBuf {
            self.dir.path().join("web.yml")
        }

        fn load(&self, yaml: &str) -> Result<WebConfig, WebConfigError> {
            self.write("web.yml", yaml);
            WebConfig::load(&self.config_path())
        }

        fn tls(&self, extra: &str) -> TlsAcceptorSource {
            let yaml = format!(
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}"
            );
            self.load(&yaml).unwrap().tls().unwrap()
        }
    }

    // ---- handshakes over loopback ---------------------------------------

    fn client_config(
        ca: &Ca,
        versions: &[&'static SupportedProtocolVersion],
        client_cert: Option<&Leaf>,
    ) -> rustls::ClientConfig {
        let mut roots = RootCertStore::empty();
        roots.add(ca.der.clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
        let mut config = match client_cert {
            Some(leaf) => builder
                .with_client_auth_cert(
                    vec![leaf.der.clone()],
                    PrivatePkcs8KeyDer::from(leaf.key_der.clone()).into(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }

    const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

    struct Outcome {
        server_cert: CertificateDer<'static>,
        suite: rustls::CipherSuite,
    }

    /// One connection: handshake, the server sends "hello" and closes. Ok only if
    /// both sides succeed.
    async fn handshake(
        source: &TlsAcceptorSource,
        client: rustls::ClientConfig,
    ) -> Result<Outcome, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = source.acceptor();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let mut tls = acceptor
                .accept(tcp)
                .await
                .map_err(|e| format!("server handshake: {e}"))?;
            tls.write_all(b"hello")
                .await
                .map_err(|e| format!("server write: {e}"))?;
            tls.shutdown()
                .await
                .map_err(|e| format!("server shutdown: {e}"))?;
            Ok::<(), String>(())
        });
        let client = async move {
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let mut tls = TlsConnector::from(Arc::new(client))
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .map_err(|e| format!("client handshake: {e}"))?;
            let mut received = Vec::new();
            tls.read_to_end(&mut received)
                .await
                .map_err(|e| format!("client read: {e}"))?;
            if received != b"hello" {
                return Err(format!("client read {received:?}"));
            }
            let (_, connection) = tls.get_ref();
            assert_eq!(connection.alpn_protocol(), Some(&b"http/1.1"[..]));
            Ok(Outcome {
                server_cert: connection.peer_certificates().unwrap()[0].clone(),
                suite: connection.negotiated_cipher_suite().unwrap().suite(),
            })
        };
        let limit = Duration::from_secs(10);
        let client = tokio::time::timeout(limit, client)
            .await
            .map_err(|_| "client timed out".to_owned())?;
        let server = tokio::time::timeout(limit, server)
            .await
            .map_err(|_| "server timed out".to_owned())?
            .unwrap();
        server?;
        client
    }

    #[tokio::test]
    async fn tls_without_client_auth() {
        let fx = Fixture::new();
        let source = fx.tls("");
        let outcome = handshake(&source, client_config(&fx.ca, BOTH, None))
            .await
            .unwrap();
        assert_eq!(outcome.server_cert, fx.server.der);
        // A client certificate is not asked for, so one offered is harmless.
        let client = fx.ca.leaf(vec![dns("client.example")]);
        handshake(&source, client_config(&fx.ca, BOTH, Some(&client)))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn require_and_verify_client_cert() {
        let fx = Fixture::new();
        let source =
            fx.tls("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n");
        let client = fx.ca.leaf(vec![dns("client.example")]);
        handshake(&source, client_config(&fx.ca, BOTH, Some(&client)))
            .await
            .unwrap();
        for versions in [BOTH, &[&rustls::version::TLS12][..]] {
            let err = handshake(&source, client_config(&fx.ca, versions, None)).await;
            let err = err.err().expect("a client without a certificate got in");
            assert!(err.contains("peer sent no certificates"), "{err}");
        }
        let stranger = Ca::new("other CA").leaf(vec![dns("client.example")]);
        let err = handshake(&source, client_config(&fx.ca, BOTH, Some(&stranger))).await;
        assert!(err.is_err(), "a certificate from another CA got in");
    }

    #[tokio::test]
    async fn require_any_client_cert_accepts_any_issuer_but_needs_one() {
        let fx = Fixture::new();
        let source = fx.tls("  client_auth_type: RequireAnyClientCert\n");
        let stranger = Ca::new("other CA").leaf(vec![dns("client.example")]);
        handshake(&source, client_config(&fx.ca, BOTH, Some(&stranger)))
            .await
            .unwrap();
        assert!(handshake(&source, client_config(&fx.ca, BOTH, None))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn verify_client_cert_if_given() {
        let fx = Fixture::new();
        let source =
            fx.tls("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n");
        handshake(&source, client_config(&fx.ca, BOTH, None))
            .await
            .unwrap();
        let good = fx.ca.leaf(vec![dns("client.example")]);
        handshake(&source, client_config(&fx.ca, BOTH, Some(&good)))
            .await
            .unwrap();
        let stranger = Ca::new("other CA").leaf(vec![dns("client.example")]);
        assert!(
            handshake(&source, client_config(&fx.ca, BOTH, Some(&stranger)))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn client_allowed_sans() {
        let fx = Fixture::new();
        let source = fx.tls(
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
             client_allowed_sans: [prometheus.example, 10.0.0.7]\n",
        );
        let by_dns = fx.ca.leaf(vec![dns("prometheus.example")]);
        handshake(&source, client_config(&fx.ca, BOTH, Some(&by_dns)))
            .await
            .unwrap();
        let by_ip = fx
            .ca
            .leaf(vec![SanType::IpAddress("10.0.0.7".parse().unwrap())]);
        handshake(&source, client_config(&fx.ca, BOTH, Some(&by_ip)))
            .await
            .unwrap();
        let other = fx.ca.leaf(vec![dns("grafana.example")]);
        assert!(
            handshake(&source, client_config(&fx.ca, BOTH, Some(&other)))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn min_version_tls13_refuses_tls12_client() {
        let fx = Fixture::new();
        let source = fx.tls("  min_version: TLS13\n");
        let tls12_only = client_config(&fx.ca, &[&rustls::version::TLS12], None);
        assert!(handshake(&source, tls12_only).await.is_err());
        let tls13_only = client_config(&fx.ca, &[&rustls::version::TLS13], None);
        handshake(&source, tls13_only).await.unwrap();
    }

    #[tokio::test]
    async fn cipher_suites_restrict_tls12() {
        let fx = Fixture::new();
        let source = fx.tls(
            "  max_version: TLS12\n  cipher_suites:\n    - TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\n  \
             curve_preferences: [CurveP384]\n",
        );
        let outcome = handshake(&source, client_config(&fx.ca, BOTH, None))
            .await
            .unwrap();
        assert_eq!(
            outcome.suite,
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        );
    }

    #[tokio::test]
    async fn certificate_rotation_is_picked_up() {
        let fx = Fixture::new();
        let source = fx.tls("");
        let client = || client_config(&fx.ca, BOTH, None);
        let first = handshake(&source, client()).await.unwrap().server_cert;
        assert_eq!(first, fx.server.der);

        let rotated = fx.ca.leaf(vec![dns("localhost")]);
        fx.write_server_files(&rotated);
        tokio::time::sleep(RELOAD_CHECK_INTERVAL + Duration::from_millis(200)).await;
        let second = handshake(&source, client()).await.unwrap().server_cert;
        assert_eq!(second, rotated.der);
        assert_ne!(second, first);
    }

    #[tokio::test]
    async fn broken_rotation_keeps_the_previous_certificate() {
        let fx = Fixture::new();
        let source = fx.tls("");
        let client = || client_config(&fx.ca, BOTH, None);
        fx.write("server.crt", "not a certificate");
        tokio::time::sleep(RELOAD_CHECK_INTERVAL + Duration::from_millis(200)).await;
        let served = handshake(&source, client()).await.unwrap().server_cert;
        assert_eq!(served, fx.server.der);

        // Once the files are good again, they are used.
        let rotated = fx.ca.leaf(vec![dns("localhost")]);
        fx.write_server_files(&rotated);
        tokio::time::sleep(RELOAD_CHECK_INTERVAL + Duration::from_millis(200)).await;
        let served = handshake(&source, client()).await.unwrap().server_cert;
        assert_eq!(served, rotated.der);
    }

    #[tokio::test]
    async fn inline_cert_and_key() {
        let fx = Fixture::new();
        let indent = |pem: &str| {
            pem.lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        };
        let yaml = format!(
            "tls_server_config:\n  cert: |\n{}  key: |\n{}",
            indent(&fx.server.pem),
            indent(&fx.server.key_pem)
        );
        let config = fx.load(&yaml).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        let source = config.tls().unwrap();
        let outcome = handshake(&source, client_config(&fx.ca, BOTH, None))
            .await
            .unwrap();
        assert_eq!(outcome.server_cert, fx.server.der);
    }

    // ---- parsing and validation ------------------------------------------

    #[test]
    fn empty_configs_enable_nothing() {
        let fx = Fixture::new();
        for yaml in [
            "",
            "# nothing here\n",
            "{}",
            "---\n",
            "tls_server_config:\n",
            "tls_server_config: {}\n",
            "tls_server_config:\n  cert_file: \"\"\n",
            "basic_auth_users: {}\n",
            "http_server_config:\n  http2: false\n",
            "rate_limit:\n  interval: 0s\n  burst: 10\n",
        ] {
            let config = fx.load(yaml).unwrap_or_else(|e| panic!("{yaml:?}: {e}"));
            assert!(config.tls().is_none(), "{yaml:?}");
            assert!(config.basic_auth().is_none(), "{yaml:?}");
            assert!(config.headers().is_empty(), "{yaml:?}");
        }
    }

    #[test]
    fn full_config_parses() {
        let fx = Fixture::new();
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let yaml = format!(
            r#"
tls_server_config:
  cert_file: server.crt
  key_file: {dir}/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  client_allowed_sans: [prometheus.example]
  min_version: TLS12
  max_version: TLS13
  cipher_suites:
    - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    - TLS_AES_128_GCM_SHA256
  prefer_server_cipher_suites: false
  curve_preferences: [X25519, CurveP256]
http_server_config:
  http2: true
  headers:
    X-Frame-Options: deny
    x-content-type-options: nosniff
    Strict-Transport-Security: max-age=31536000
    Content-Security-Policy: ""
basic_auth_users:
  alice: "{hash}"
rate_limit:
  interval: 0
"#,
            dir = fx.dir.path().display()
        );
        let config = fx.load(&yaml).unwrap();
        assert!(config.tls().is_some());
        assert!(config.basic_auth().is_some());
        let headers: Vec<(&str, &str)> = config
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            headers,
            [
                ("strict-transport-security", "max-age=31536000"),
                ("x-frame-options", "deny"),
                ("x-content-type-options", "nosniff"),
            ]
        );
        let debug = format!("{config:?}");
        assert!(debug.contains("alice"), "{debug}");
        assert!(debug.contains("[REDACTED]"), "{debug}");
        assert!(!debug.contains(&hash), "{debug}");
        assert!(!debug.contains(&hash[7..]), "{debug}");
    }

    /// Each bad file, the key its error must name, and what it must say.
    #[test]
    fn errors_name_file_and_key() {
        let fx = Fixture::new();
        let other_key = fx.ca.leaf(vec![dns("localhost")]).key_pem;
        fx.write("other.key", &other_key);
        let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
        let cases: Vec<(String, &str)> = vec![
            ("foo: 1\n".into(), "unknown field `foo`"),
            (format!("{tls}  bogus: 1\n"), "unknown field `bogus`"),
            ("http_server_config:\n  http3: true\n".into(), "unknown field `http3`"),
            ("tls_server_config: [1]\n".into(), "line 1"),
            (
                format!("{tls}  client_auth_type: Foo\n"),
                "tls_server_config.client_auth_type: unknown value \"Foo\" (expected one of \
                 NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, \
                 RequireAndVerifyClientCert)",
            ),
            (
                format!("{tls}  min_version: TLS11\n"),
                "tls_server_config.min_version: TLS11 is not supported by rustls",
            ),
            (
                format!("{tls}  max_version: TLS10\n"),
                "tls_server_config.max_version: TLS10 is not supported by rustls",
            ),
            (
                format!("{tls}  max_version: SSL3\n"),
                "tls_server_config.max_version: unknown value \"SSL3\"",
            ),
            (
                format!("{tls}  min_version: TLS13\n  max_version: TLS12\n"),
                "tls_server_config.min_version: TLS13 is above max_version TLS12",
            ),
            (
                format!("{tls}  cipher_suites: [TLS_RSA_WITH_AES_128_GCM_SHA256]\n"),
                "tls_server_config.cipher_suites: \"TLS_RSA_WITH_AES_128_GCM_SHA256\" is not \
                 supported by rustls",
            ),
            (
                format!("{tls}  cipher_suites: [TLS_NOPE]\n"),
                "tls_server_config.cipher_suites: unknown cipher suite \"TLS_NOPE\"",
            ),
            (
                format!("{tls}  curve_preferences: [CurveP521]\n"),
                "tls_server_config.curve_preferences: \"CurveP521\" is not supported by rustls",
            ),
            (
                format!("{tls}  curve_preferences: [Curve25519]\n"),
                "tls_server_config.curve_preferences: unknown curve \"Curve25519\"",
            ),
            (
                "tls_server_config:\n  key_file: server.key\n".into(),
                "tls_server_config.cert_file: required",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n".into(),
                "tls_server_config.key_file: required",
            ),
            (
                "tls_server_config:\n  min_version: TLS13\n".into(),
                "tls_server_config.cert_file: required",
            ),
            (
                "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n".into(),
                "tls_server_config.cert_file: cannot read ",
            ),
            (
                format!("{tls}  cert: inline\n"),
                "tls_server_config.cert_file: cannot be combined with tls_server_config.cert",
            ),
            (
                "tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n".into(),
                "no CERTIFICATE found",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n".into(),
                "tls_server_config.key_file: ",
            ),
            (
                "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n".into(),
                "tls_server_config.key_file: cannot use this key with the certificate",
            ),
            (
                format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"),
                "tls_server_config.client_ca_file: required when client_auth_type is \
                 RequireAndVerifyClientCert",
            ),
            (
                format!("{tls}  client_auth_type: VerifyClientCertIfGiven\n"),
                "tls_server_config.client_ca_file: required when client_auth_type is \
                 VerifyClientCertIfGiven",
            ),
            (
                format!("{tls}  client_ca_file: ca.crt\n"),
                "tls_server_config.client_ca_file: set, but client_auth_type is NoClientCert",
            ),
            (
                format!(
                    "{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n"
                ),
                "tls_server_config.client_ca_file: ",
            ),
            (
                format!(
                    "{tls}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n  \
                     client_allowed_sans: [a.example]\n"
                ),
                "tls_server_config.client_allowed_sans: requires client_auth_type",
            ),
            (
                format!("{tls}  client_auth_type: RequireAnyClientCert\n  client_allowed_sans: []\n"),
                "tls_server_config.client_allowed_sans: empty",
            ),
            (
                format!("{tls}  max_version: TLS12\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"),
                "tls_server_config.cipher_suites: no listed suite can be used with TLS versions TLS12 to TLS12",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    x-frame-options: deny\n"
                    .into(),
                "http_server_config.headers.x-frame-options: set more than once",
            ),
            (
                "http_server_config:\n  headers:\n    Authorization: x\n".into(),
                "http_server_config.headers.Authorization: this header cannot be configured",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n".into(),
                "http_server_config.headers.X-Frame-Options: invalid value \"allow\" (expected \
                 one of deny, sameorigin)",
            ),
            (
                "http_server_config:\n  headers:\n    Content-Security-Policy: \"a\\nb\"\n".into(),
                "http_server_config.headers.Content-Security-Policy: not a valid HTTP header value",
            ),
            (
                "basic_auth_users:\n  alice: plaintext\n".into(),
                "basic_auth_users.alice: not a bcrypt hash",
            ),
            (
                "basic_auth_users:\n  bob: \"$2y$03$It2ZcKOQkSGgTfz/2UtKDe5nTwACq59Bk5WGgWDOqtU56oS//Dj2C\"\n"
                    .into(),
                "basic_auth_users.bob: bcrypt cost 3",
            ),
            (
                "basic_auth_users:\n  a: x\n  a: y\n".into(),
                "duplicate mapping key",
            ),
            (
                "rate_limit:\n  interval: 1s\n  burst: 5\n".into(),
                "rate_limit.interval: rate limiting is not supported",
            ),
        ];
        let prefix = format!("web config {}: ", fx.config_path().display());
        for (yaml, expected) in cases {
            let err = fx
                .load(&yaml)
                .err()
                .unwrap_or_else(|| panic!("accepted: {yaml}"));
            let message = err.to_string();
            assert!(message.starts_with(&prefix), "{message}");
            assert!(
                message.contains(expected),
                "{yaml}\n=> {message}\n!= {expected}"
            );
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn client_auth_type_message_is_exact() {
        let fx = Fixture::new();
        let err = fx
            .load("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Foo\n")
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "web config {}: tls_server_config.client_auth_type: unknown value \"Foo\" \
                 (expected one of NoClientCert, RequestClientCert, RequireAnyClientCert, \
                 VerifyClientCertIfGiven, RequireAndVerifyClientCert)",
                fx.config_path().display()
            )
        );
        assert!(matches!(err, WebConfigError::Invalid { ref key, .. } if key == CLIENT_AUTH_TYPE));
    }

    #[test]
    fn missing_config_file() {
        let err = WebConfig::load(Path::new("/nonexistent/web.yml"))
            .err()
            .unwrap();
        assert!(matches!(err, WebConfigError::Read { .. }));
        assert!(
            err.to_string()
                .starts_with("web config /nonexistent/web.yml: cannot read"),
            "{err}"
        );
    }

    #[test]
    fn subject_alt_names_are_read_like_go() {
        let ca = Ca::new("san CA");
        let leaf = ca.leaf(vec![
            dns("a.example"),
            SanType::IpAddress("192.0.2.1".parse().unwrap()),
            SanType::IpAddress("2001:db8::1".parse().unwrap()),
            SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
            SanType::URI("spiffe://example/prometheus".try_into().unwrap()),
        ]);
        assert_eq!(
            subject_alt_names(&leaf.der),
            [
                "a.example",
                "192.0.2.1",
                "2001:db8::1",
                "ops@example.com",
                "spiffe://example/prometheus"
            ]
        );
        assert!(subject_alt_names(&ca.der).is_empty());
        assert!(subject_alt_names(b"\x30\x82\xff").is_empty());
        assert!(subject_alt_names(&leaf.der[..leaf.der.len() / 2]).is_empty());
    }

    // ---- basic auth -------------------------------------------------------

    fn basic(user: &str, password: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    fn basic_auth(fx: &Fixture) -> BasicAuth {
        let alice = bcrypt::hash("s3cret", 4).unwrap();
        let bob = bcrypt::hash("hunter2", 5).unwrap();
        let yaml = format!("basic_auth_users:\n  alice: \"{alice}\"\n  bob: '{bob}'\n");
        fx.load(&yaml).unwrap().basic_auth().unwrap()
    }

    #[tokio::test]
    async fn basic_auth_accepts_right_password_and_caches_it() {
        let fx = Fixture::new();
        let auth = basic_auth(&fx);
        assert!(auth.check(Some(&basic("alice", "s3cret"))).await);
        assert_eq!(auth.verifications(), 1);
        // Cached: the second scrape pays no bcrypt, also through a clone.
        assert!(auth.clone().check(Some(&basic("alice", "s3cret"))).await);
        assert_eq!(auth.verifications(), 1);
        // Scheme is case-insensitive, as in Go.
        let lower = HeaderValue::from_str(
            &basic("bob", "hunter2")
                .to_str()
                .unwrap()
                .replace("Basic", "basic"),
        )
        .unwrap();
        assert!(auth.check(Some(&lower)).await);
        assert_eq!(auth.verifications(), 2);
    }

    #[tokio::test]
    async fn basic_auth_refuses_wrong_password() {
        let fx = Fixture::new();
        let auth = basic_auth(&fx);
        assert!(!auth.check(Some(&basic("alice", "wrong"))).await);
        assert!(!auth.check(Some(&basic("alice", "s3cret "))).await);
        let long = format!("s3cret{}", "x".repeat(70)); // bcrypt sees only 72 bytes
        assert!(!auth.check(Some(&basic("alice", &long))).await);
        // A user's password does not open another user.
        assert!(!auth.check(Some(&basic("bob", "s3cret"))).await);
        assert_eq!(auth.verifications(), 4);
        // Failures are not cached: each one pays bcrypt.
        assert!(!auth.check(Some(&basic("alice", "wrong"))).await);
        assert_eq!(auth.verifications(), 5);
    }

    #[tokio::test]
    async fn basic_auth_unknown_user_pays_for_bcrypt() {
        let fx = Fixture::new();
        let auth = basic_auth(&fx);
        assert!(!auth.check(Some(&basic("mallory", "s3cret"))).await);
        assert_eq!(auth.verifications(), 1);
        // The dummy hash costs as much as the dearest configured one (bob: 5).
        let dummy: bcrypt::HashParts = auth.inner.dummy_hash.parse().unwrap();
        assert_eq!(dummy.get_cost(), 5);
        assert!(!bcrypt::verify("s3cret", &auth.inner.dummy_hash).unwrap());
    }

    #[tokio::test]
    async fn basic_auth_refuses_missing_or_malformed_headers() {
        let fx = Fixture::new();
        let auth = basic_auth(&fx);
        assert!(!auth.check(None).await);
        let token = base64::engine::general_purpose::STANDARD.encode("alice");
        for value in [
            "".to_owned(),
            "Basic".to_owned(),
            "Basic ".to_owned(),
            "Bearer abc".to_owned(),
            "Basic !!!not-base64!!!".to_owned(),
            format!("Basic {token}"), // no colon
            format!(
                "Basic  {}",
                &basic("alice", "s3cret").to_str().unwrap()[6..]
            ), // two spaces
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(b"\xff\xfe:x")
            ),
        ] {
            let header = HeaderValue::from_str(&value).unwrap();
            assert!(!auth.check(Some(&header)).await, "{value:?}");
        }
        assert_eq!(auth.verifications(), 0);
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn send_sync<T: Send + Sync + Clone + 'static>(_: &T) {}
        fn send<T: Send>(_: T) {}
        let fx = Fixture::new();
        send_sync(&fx.tls(""));
        let auth = basic_auth(&fx);
        send_sync(&auth);
        send(auth.check(None));
        assert_eq!(auth.verifications(), 0);
    }

    #[test]
    fn www_authenticate_names_the_realm() {
        assert_eq!(www_authenticate(), "Basic realm=\"partnercenter-exporter\"");
        assert!(HeaderValue::from_str(www_authenticate()).is_ok());
    }
}
