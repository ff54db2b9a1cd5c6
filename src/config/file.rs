//! The YAML file (`--config.file`): its shape, with unknown keys as errors, and its
//! reader.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, CustomerConfig};

/// The YAML file. Unknown keys are errors: a typo must not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    #[serde(default)]
    pub(super) auth: FileAuth,
    #[serde(default)]
    pub(super) poll: FilePoll,
    #[serde(default)]
    pub(super) web: FileWeb,
    #[serde(default)]
    pub(super) partner_center: FilePartnerCenter,
    #[serde(default)]
    pub(super) customers: Option<Vec<CustomerConfig>>,
    /// Per collector, by name.
    #[serde(default)]
    pub(super) collectors: BTreeMap<String, FileCollector>,
}

/// A collector's entry. Its own settings are read as written and checked against
/// the collector's list of settings (an unknown key is an error that names it).
#[derive(Debug, Default, Deserialize)]
pub(super) struct FileCollector {
    pub(super) enabled: Option<bool>,
    pub(super) interval: Option<String>,
    #[serde(flatten)]
    pub(super) options: BTreeMap<String, FileScalar>,
}

/// A setting's value as written: `400d` or `20`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum FileScalar {
    Number(u64),
    Text(String),
}

impl FileScalar {
    pub(super) fn text(&self) -> String {
        match self {
            FileScalar::Number(n) => n.to_string(),
            FileScalar::Text(t) => t.clone(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAuth {
    pub(super) tenant: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) grant: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) authority: Option<String>,
    pub(super) refresh_token_file: Option<PathBuf>,
    pub(super) client_secret_file: Option<PathBuf>,
    pub(super) username: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) csp_token_exchange: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilePoll {
    pub(super) interval: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) concurrency: Option<u64>,
    pub(super) rate_limit: Option<u64>,
    pub(super) cache_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileWeb {
    pub(super) listen_address: Option<String>,
    pub(super) telemetry_path: Option<String>,
    pub(super) config_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilePartnerCenter {
    pub(super) url: Option<String>,
}

pub(super) fn read_file_config(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(format!(
            "--config.file: cannot read {}: {e}",
            path.display()
        ))
    })?;
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_saphyr::from_str(&text).map_err(|e| {
        let msg = e.to_string().replace('\n', " ");
        ConfigError::new(format!("--config.file {}: {}", path.display(), msg.trim()))
    })
}
