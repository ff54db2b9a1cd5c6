//! The web config file as written: its serde shape and the YAML parsing.
//!
//! Everything is a plain string or list here, with no meaning attached; the
//! modules that own a section turn it into typed values, so that their error
//! messages can name the key. Unknown keys are refused, as exporter-toolkit does.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) tls_server_config: Option<RawTls>,
    pub(crate) http_server_config: Option<RawHttp>,
    pub(crate) basic_auth_users: Option<BTreeMap<String, String>>,
    pub(crate) rate_limit: Option<RawRateLimit>,
}

#[derive(Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) cert: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) client_ca: Option<String>,
    pub(crate) cert_file: Option<String>,
    pub(crate) key_file: Option<String>,
    pub(crate) client_auth_type: Option<String>,
    pub(crate) client_ca_file: Option<String>,
    pub(crate) client_allowed_sans: Option<Vec<String>>,
    pub(crate) min_version: Option<String>,
    pub(crate) max_version: Option<String>,
    pub(crate) cipher_suites: Option<Vec<String>>,
    pub(crate) prefer_server_cipher_suites: Option<bool>,
    pub(crate) curve_preferences: Option<Vec<String>>,
}

impl RawTls {
    /// Empty strings mean "not set", as in Go.
    pub(crate) fn normalized(self) -> Self {
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
pub(crate) struct RawHttp {
    #[allow(dead_code)] // accepted for compatibility; the server speaks HTTP/1.1 only
    http2: Option<bool>,
    pub(crate) headers: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub(crate) interval: Option<String>,
    #[allow(dead_code)] // accepted for compatibility; only meaningful with an interval
    burst: Option<i64>,
}

/// Parses the YAML text; `None` for an empty document.
pub(crate) fn parse_yaml(text: &str) -> Result<Option<RawConfig>, String> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    serde_saphyr::from_str_with_options::<Option<RawConfig>>(text, options).map_err(|err| {
        err.to_string()
            .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
            .replace('\n', " ")
    })
}
