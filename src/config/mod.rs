//! Configuration: command-line flags, environment variables and the YAML file,
//! validated once into the typed [`Config`] the exporter runs with.
//!
//! As in ripgrep, flags are parsed into a raw struct ([`Flags`], [`flags`]), merged
//! with the file ([`file`]; flags and environment win), and converted once, one
//! setting at a time ([`values`]); every error names the flag or file key and says
//! what to do. Secret files are read here and nowhere else: [`read_secret`] is their
//! one reader (auth re-reads the refresh-token file with it), and secrets leave this
//! module as [`SecretString`]s. It never logs.

mod file;
mod flags;
#[cfg(test)]
mod tests;
mod values;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

pub use flags::{CollectorFlags, Flags, Subcommand};
pub use values::{normalize_listen_address, read_secret};

use file::{read_file_config, FileConfig};
use values::{
    collector_settings, customer_selection, duration_setting, number_setting, read_secret_file,
    url_setting,
};

/// A customer named in the configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerConfig {
    /// The customer's tenant id.
    pub id: String,
    /// Overrides the name from Partner Center.
    #[serde(default)]
    pub name: Option<String>,
    /// Budget in the customer's billing currency.
    #[serde(default)]
    pub budget: Option<f64>,
}

/// How the exporter signs in to Azure AD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    RefreshToken,
    Password,
    ClientCredentials,
}

/// Which Azure AD token endpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AadEndpoint {
    /// `/oauth2/token` with `resource=`.
    V1,
    /// `/oauth2/v2.0/token` with `scope=…/.default`.
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// Where the refresh token comes from and goes to.
#[derive(Clone)]
pub struct AuthConfig {
    pub authority: String,
    pub tenant: String,
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub grant: Grant,
    pub endpoint: AadEndpoint,
    /// The refresh token read at start (grant `refresh-token`).
    pub refresh_token: Option<SecretString>,
    /// Where rotated refresh tokens are written back.
    pub refresh_token_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub csp_token_exchange: bool,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<SecretString>| if s.is_some() { "[REDACTED]" } else { "None" };
        f.debug_struct("AuthConfig")
            .field("authority", &self.authority)
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("client_secret", &redacted(&self.client_secret))
            .field("grant", &self.grant)
            .field("endpoint", &self.endpoint)
            .field("refresh_token", &redacted(&self.refresh_token))
            .field("refresh_token_file", &self.refresh_token_file)
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("csp_token_exchange", &self.csp_token_exchange)
            .finish()
    }
}

/// Poll settings.
#[derive(Debug, Clone)]
pub struct PollConfig {
    pub interval: Duration,
    pub timeout: Duration,
    pub concurrency: usize,
    /// Requests per minute to Partner Center.
    pub rate_limit: u32,
    pub cache_file: Option<PathBuf>,
}

/// A collector's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorSettings {
    pub name: &'static str,
    pub enabled: bool,
    pub interval: Duration,
    /// Its settings beyond on/off and interval, by key, each validated.
    pub options: Vec<(&'static str, crate::collectors::OptionValue)>,
}

impl CollectorSettings {
    /// The duration setting `key`, if the collector has one.
    pub fn duration(&self, key: &str) -> Option<Duration> {
        self.options.iter().find_map(|(k, v)| match v {
            crate::collectors::OptionValue::Duration(d) if *k == key => Some(*d),
            _ => None,
        })
    }

    /// The count setting `key`, if the collector has one.
    pub fn count(&self, key: &str) -> Option<u64> {
        self.options.iter().find_map(|(k, v)| match v {
            crate::collectors::OptionValue::Count(n) if *k == key => Some(*n),
            _ => None,
        })
    }
}

/// Which customers to monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerSelection {
    /// Monitor every customer found by `GET /v1/customers`.
    pub discover: bool,
    /// With `discover`, overrides (name, budget) by id; without, the list itself.
    pub customers: Vec<CustomerConfig>,
}

/// The validated configuration the exporter runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port` to bind (`:PORT` became `0.0.0.0:PORT`).
    pub listen_address: String,
    pub telemetry_path: String,
    pub web_config_file: Option<PathBuf>,
    pub poll: PollConfig,
    /// Every registered collector, in registry order, enabled or not.
    pub collectors: Vec<CollectorSettings>,
    pub customers: CustomerSelection,
    pub partner_center_url: String,
    pub auth: AuthConfig,
    pub demo: bool,
    pub log_level: tracing::Level,
    pub log_format: LogFormat,
    /// Things worth a warning once logging is up (e.g. a secret file readable by others).
    pub warnings: Vec<String>,
    /// `login` or `check`; none runs the exporter.
    pub subcommand: Option<Subcommand>,
    /// `--config.file`, for the command `login` prints.
    pub config_file: Option<PathBuf>,
}

/// A configuration error: one line naming the flag or key and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn new(msg: impl Into<String>) -> ConfigError {
        ConfigError(msg.into())
    }
}

/// The process environment's secrets, passed in so tests need not touch it.
#[derive(Default)]
pub struct SecretEnv {
    pub client_secret: Option<SecretString>,
    pub password: Option<SecretString>,
}

impl SecretEnv {
    pub fn from_process() -> SecretEnv {
        let read = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .map(SecretString::from)
        };
        SecretEnv {
            client_secret: read("PARTNERCENTER_CLIENT_SECRET"),
            password: read("PARTNERCENTER_PASSWORD"),
        }
    }
}

impl Config {
    /// Parses the process's flags and environment. `Err` is a usage error (exit 2).
    pub fn from_args() -> Result<Config, ConfigError> {
        let flags = Flags::parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
        Config::from_flags(flags, SecretEnv::from_process())
    }

    /// Merges flags, the YAML file and defaults, and validates the result.
    pub fn from_flags(mut flags: Flags, env: SecretEnv) -> Result<Config, ConfigError> {
        let file = match &flags.config_file {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let file_name = flags
            .config_file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut warnings = Vec::new();

        let listen_address = normalize_listen_address(
            flags
                .listen_address
                .take()
                .or(file.web.listen_address)
                .as_deref()
                .unwrap_or(":10026"),
        )?;
        let telemetry_path =
            telemetry_path(flags.telemetry_path.take().or(file.web.telemetry_path))?;
        let poll = poll_config(&mut flags, file.poll, &mut warnings)?;
        let collectors = collector_settings(
            &flags.collectors,
            file.collectors,
            poll.interval,
            flags.demo,
        )?;
        let customers = customer_selection(flags.customers.as_deref(), file.customers, &file_name)?;
        let partner_center_url = url_setting(
            flags.partner_center_url.take().or(file.partner_center.url),
            "--partner-center.url",
            "https://api.partnercenter.microsoft.com",
        )?;
        let (log_level, log_format) = log_settings(&flags)?;
        let demo = flags.demo;
        let subcommand = flags.subcommand;
        if demo && subcommand.is_some() {
            return Err(ConfigError::new(
                "--demo: login and check work on a real tenant; run them without --demo",
            ));
        }
        let auth = auth_config(&mut flags, file.auth, env, &mut warnings)?;
        let web_config_file = flags.web_config_file.take().or(file.web.config_file);
        Ok(Config {
            listen_address,
            telemetry_path,
            web_config_file,
            poll,
            collectors,
            customers,
            partner_center_url,
            auth,
            demo,
            log_level,
            log_format,
            warnings,
            subcommand,
            config_file: flags.config_file.clone(),
        })
    }
}

/// `--web.telemetry-path`: a path of its own, neither `/` nor under `/-/`.
fn telemetry_path(value: Option<String>) -> Result<String, ConfigError> {
    let telemetry_path = value.unwrap_or_else(|| "/metrics".to_owned());
    if !telemetry_path.starts_with('/')
        || telemetry_path.len() < 2
        || telemetry_path.starts_with("/-/")
    {
        return Err(ConfigError::new(format!(
            "--web.telemetry-path: {telemetry_path:?} must start with '/' and name a path other than / and /-/…"
        )));
    }
    Ok(telemetry_path)
}

/// The `--poll.*` settings.
fn poll_config(
    flags: &mut Flags,
    file: file::FilePoll,
    warnings: &mut Vec<String>,
) -> Result<PollConfig, ConfigError> {
    let interval = duration_setting(
        flags.poll_interval.take().or(file.interval),
        "--poll.interval",
        "1h",
    )?;
    let timeout = duration_setting(
        flags.poll_timeout.take().or(file.timeout),
        "--poll.timeout",
        "30s",
    )?;
    if timeout > interval {
        warnings.push(format!(
            "--poll.timeout ({}) is longer than --poll.interval ({}); a slow poll delays the next one",
            humantime::format_duration(timeout),
            humantime::format_duration(interval)
        ));
    }
    let concurrency = number_setting(
        flags.poll_concurrency.take(),
        file.concurrency,
        "--poll.concurrency",
        4,
        1..=1024,
    )? as usize;
    let rate_limit = number_setting(
        flags.poll_rate_limit.take(),
        file.rate_limit,
        "--poll.rate-limit",
        300,
        1..=1_000_000,
    )? as u32;
    Ok(PollConfig {
        interval,
        timeout,
        concurrency,
        rate_limit,
        cache_file: flags.poll_cache_file.take().or(file.cache_file),
    })
}

/// `--log.level` and `--log.format`.
fn log_settings(flags: &Flags) -> Result<(tracing::Level, LogFormat), ConfigError> {
    let log_level = match flags.log_level.as_deref().unwrap_or("info") {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "info" => tracing::Level::INFO,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        other => {
            return Err(ConfigError::new(format!(
                "--log.level: unknown level {other:?}; use error, warn, info, debug or trace"
            )))
        }
    };
    let log_format = match flags.log_format.as_deref().unwrap_or("logfmt") {
        "logfmt" => LogFormat::Logfmt,
        "json" => LogFormat::Json,
        other => {
            return Err(ConfigError::new(format!(
                "--log.format: unknown format {other:?}; use logfmt or json"
            )))
        }
    };
    Ok((log_level, log_format))
}

/// The `--auth.*` settings, with the secrets read from their files (or the
/// environment). With `--demo` nothing is required: the demo supplies its own.
fn auth_config(
    flags: &mut Flags,
    file: file::FileAuth,
    env: SecretEnv,
    warnings: &mut Vec<String>,
) -> Result<AuthConfig, ConfigError> {
    let authority = url_setting(
        flags.auth_authority.take().or(file.authority),
        "--auth.authority",
        "https://login.microsoftonline.com",
    )?;

    let grant = match flags
        .auth_grant
        .take()
        .or(file.grant)
        .as_deref()
        .unwrap_or("refresh-token")
    {
        "refresh-token" | "refresh_token" => Grant::RefreshToken,
        "password" => Grant::Password,
        "client-credentials" | "client_credentials" => Grant::ClientCredentials,
        other => {
            return Err(ConfigError::new(format!(
                "--auth.grant: unknown grant {other:?}; use refresh-token, password or client-credentials"
            )))
        }
    };
    let endpoint = match flags
        .auth_endpoint
        .take()
        .or(file.endpoint)
        .as_deref()
        .unwrap_or("v1")
    {
        "v1" => AadEndpoint::V1,
        "v2" => AadEndpoint::V2,
        other => {
            return Err(ConfigError::new(format!(
                "--auth.endpoint: unknown endpoint {other:?}; use v1 or v2"
            )))
        }
    };
    let demo = flags.demo;
    let tenant = flags.auth_tenant.take().or(file.tenant).unwrap_or_default();
    let client_id = flags
        .auth_client_id
        .take()
        .or(file.client_id)
        .unwrap_or_default();
    let secret_file = flags
        .auth_client_secret_file
        .take()
        .or(file.client_secret_file);
    let refresh_token_file = flags
        .auth_refresh_token_file
        .take()
        .or(file.refresh_token_file);
    let username = flags.auth_username.take().or(file.username);
    let password_file = flags.auth_password_file.take().or(file.password_file);
    let csp_token_exchange =
        flags.auth_csp_token_exchange || file.csp_token_exchange.unwrap_or(false);

    let mut auth = AuthConfig {
        authority,
        tenant,
        client_id,
        client_secret: None,
        grant,
        endpoint,
        refresh_token: None,
        refresh_token_file,
        username,
        password: None,
        csp_token_exchange,
    };
    if !demo {
        if auth.tenant.trim().is_empty() {
            return Err(ConfigError::new(
                "--auth.tenant: required (the partner's tenant id or domain), or run with --demo",
            ));
        }
        if auth.client_id.trim().is_empty() {
            return Err(ConfigError::new(
                "--auth.client-id: required (the application's client id), or run with --demo",
            ));
        }
        auth.client_secret = match secret_file {
            Some(path) => Some(read_secret_file(
                &path,
                "--auth.client-secret-file",
                warnings,
            )?),
            None => env.client_secret,
        };
        if flags.subcommand == Some(Subcommand::Login) && grant != Grant::RefreshToken {
            return Err(ConfigError::new(
                "--auth.grant: login obtains a refresh token; use --auth.grant refresh-token (the default)",
            ));
        }
        match grant {
            Grant::RefreshToken => {
                let Some(path) = auth.refresh_token_file.clone() else {
                    return Err(ConfigError::new(
                        "--auth.refresh-token-file: required with --auth.grant refresh-token (a file holding the refresh token from the one-time consent)",
                    ));
                };
                // `login` writes the file: it need not exist yet.
                if flags.subcommand != Some(Subcommand::Login) {
                    auth.refresh_token = Some(read_secret_file(
                        &path,
                        "--auth.refresh-token-file",
                        warnings,
                    )?);
                }
            }
            Grant::Password => {
                if auth.username.as_deref().is_none_or(|u| u.trim().is_empty()) {
                    return Err(ConfigError::new(
                        "--auth.username: required with --auth.grant password",
                    ));
                }
                auth.password = match password_file {
                    Some(path) => Some(read_secret_file(&path, "--auth.password-file", warnings)?),
                    None => env.password,
                };
                if auth.password.is_none() {
                    return Err(ConfigError::new(
                        "--auth.password-file: required with --auth.grant password (or set PARTNERCENTER_PASSWORD)",
                    ));
                }
            }
            Grant::ClientCredentials => {
                if auth.client_secret.is_none() {
                    return Err(ConfigError::new(
                        "--auth.client-secret-file: required with --auth.grant client-credentials (or set PARTNERCENTER_CLIENT_SECRET)",
                    ));
                }
            }
        }
    }
    Ok(auth)
}
