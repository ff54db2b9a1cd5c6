//! `tls_server_config`, validated into [`TlsSettings`], and the rustls server
//! configuration built from them.
//!
//! Owns the PEM sources (a file, re-read on every build, or inline PEM), the
//! protocol versions, cipher suites and curves, and the mapping of Go's names for
//! them onto rustls (ring). Choosing the client certificate verifier is
//! `client_cert`'s job; deciding when to rebuild is the acceptor's.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::{ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::acceptor::FileStamp;
use crate::client_cert::{self, ClientAuth};
use crate::raw::RawTls;
use crate::Problem;

pub(crate) const CERT_FILE: &str = "tls_server_config.cert_file";
const CERT: &str = "tls_server_config.cert";
const KEY_FILE: &str = "tls_server_config.key_file";
const KEY: &str = "tls_server_config.key";
pub(crate) const CLIENT_CA_FILE: &str = "tls_server_config.client_ca_file";
const CLIENT_CA: &str = "tls_server_config.client_ca";
pub(crate) const CLIENT_AUTH_TYPE: &str = "tls_server_config.client_auth_type";
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
pub(crate) struct PemInput {
    pub(crate) key: &'static str,
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

    pub(crate) fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, Problem> {
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TlsVersion {
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

    pub(crate) fn name(self) -> &'static str {
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
pub(crate) struct TlsSettings {
    pub(crate) cert: PemInput,
    pub(crate) key: PemInput,
    pub(crate) client_ca: Option<PemInput>,
    pub(crate) client_auth: ClientAuth,
    /// `client_allowed_sans`; `None` when not configured.
    pub(crate) allowed_sans: Option<Arc<[String]>>,
    pub(crate) min_version: TlsVersion,
    pub(crate) max_version: TlsVersion,
    /// ring, restricted to the configured TLS 1.2 suites and key-exchange groups.
    pub(crate) provider: Arc<CryptoProvider>,
    /// `prefer_server_cipher_suites` (default true): choose by our order, not the client's.
    prefer_server_cipher_suites: bool,
}

impl TlsSettings {
    pub(crate) fn from_raw(raw: RawTls, dir: &Path) -> Result<TlsSettings, Problem> {
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

    pub(crate) fn stamps(&self) -> Vec<Option<FileStamp>> {
        self.watched_files().map(FileStamp::of).collect()
    }

    /// Reads the PEM documents and builds a server config from them.
    pub(crate) fn build(&self) -> Result<Arc<ServerConfig>, Problem> {
        let certs = self.cert.certificates()?;
        let key = self.key.private_key()?;
        let verifier = client_cert::verifier(self)?;
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
}
