//! Configuration: command-line flags, environment variables and the YAML file,
//! validated once into the typed [`Config`] the exporter runs with.
//!
//! As in ripgrep, flags are parsed into a raw struct ([`Flags`], every field
//! optional so that "not given" is visible), merged with the file (flags and
//! environment win), and converted once; every error names the flag or file key and
//! says what to do. Secret files are read here and nowhere else: [`read_secret`] is
//! their one reader (auth re-reads the refresh-token file with it), and secrets leave
//! this module as [`SecretString`]s. It never logs.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use secrecy::SecretString;
use serde::Deserialize;

/// Raw command-line flags. Every flag also reads `PARTNERCENTER_` + its name in upper
/// snake case.
#[derive(Debug, Default, Parser)]
#[command(
    name = "partnercenter-exporter",
    version,
    about = "Prometheus exporter for Microsoft Partner Center (CSP) service costs.",
    long_about = "Prometheus exporter for Microsoft Partner Center (CSP) service costs.\n\n\
        It polls each customer's MostRecent service-costs summary in the background every \
        --poll.interval and serves the last results on /metrics: a scrape never waits on \
        Partner Center. Secrets are read from files or the environment, never from flags."
)]
pub struct Flags {
    /// YAML configuration file (auth, poll settings, customers with names and budgets).
    #[arg(
        long = "config.file",
        env = "PARTNERCENTER_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub config_file: Option<PathBuf>,
    /// Address to serve on: ":PORT" (all interfaces) or "HOST:PORT" [default: :10026].
    #[arg(
        long = "web.listen-address",
        env = "PARTNERCENTER_WEB_LISTEN_ADDRESS",
        value_name = "ADDR"
    )]
    pub listen_address: Option<String>,
    /// Path under which to expose metrics [default: /metrics].
    #[arg(
        long = "web.telemetry-path",
        env = "PARTNERCENTER_WEB_TELEMETRY_PATH",
        value_name = "PATH"
    )]
    pub telemetry_path: Option<String>,
    /// Web configuration file (exporter-toolkit format) for TLS and basic auth.
    #[arg(
        long = "web.config.file",
        env = "PARTNERCENTER_WEB_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub web_config_file: Option<PathBuf>,
    /// Time between polls of Partner Center, e.g. 30m, 6h [default: 1h].
    #[arg(
        long = "poll.interval",
        env = "PARTNERCENTER_POLL_INTERVAL",
        value_name = "DURATION"
    )]
    pub poll_interval: Option<String>,
    /// Time limit of one HTTP request to Partner Center or Azure AD [default: 30s].
    #[arg(
        long = "poll.timeout",
        env = "PARTNERCENTER_POLL_TIMEOUT",
        value_name = "DURATION"
    )]
    pub poll_timeout: Option<String>,
    /// Requests to Partner Center in flight at once [default: 4].
    #[arg(
        long = "poll.concurrency",
        env = "PARTNERCENTER_POLL_CONCURRENCY",
        value_name = "N"
    )]
    pub poll_concurrency: Option<String>,
    /// Requests per minute to Partner Center, at most [default: 300].
    #[arg(
        long = "poll.rate-limit",
        env = "PARTNERCENTER_POLL_RATE_LIMIT",
        value_name = "N"
    )]
    pub poll_rate_limit: Option<String>,
    /// File holding the last snapshot, written after each poll and loaded at start.
    #[arg(
        long = "poll.cache-file",
        env = "PARTNERCENTER_POLL_CACHE_FILE",
        value_name = "FILE"
    )]
    pub poll_cache_file: Option<PathBuf>,
    /// Comma-separated customer ids; none (here and in the file) = every customer.
    #[arg(
        long = "customers",
        env = "PARTNERCENTER_CUSTOMERS",
        value_name = "IDS"
    )]
    pub customers: Option<String>,
    /// Partner Center API base URL [default: https://api.partnercenter.microsoft.com].
    #[arg(
        long = "partner-center.url",
        env = "PARTNERCENTER_PARTNER_CENTER_URL",
        value_name = "URL"
    )]
    pub partner_center_url: Option<String>,
    /// Azure AD authority [default: https://login.microsoftonline.com].
    #[arg(
        long = "auth.authority",
        env = "PARTNERCENTER_AUTH_AUTHORITY",
        value_name = "URL"
    )]
    pub auth_authority: Option<String>,
    /// The partner's tenant id or domain (required unless --demo).
    #[arg(
        long = "auth.tenant",
        env = "PARTNERCENTER_AUTH_TENANT",
        value_name = "TENANT"
    )]
    pub auth_tenant: Option<String>,
    /// Application (client) id (required unless --demo).
    #[arg(
        long = "auth.client-id",
        env = "PARTNERCENTER_AUTH_CLIENT_ID",
        value_name = "ID"
    )]
    pub auth_client_id: Option<String>,
    /// File holding the client secret (or set PARTNERCENTER_CLIENT_SECRET).
    #[arg(
        long = "auth.client-secret-file",
        env = "PARTNERCENTER_AUTH_CLIENT_SECRET_FILE",
        value_name = "FILE"
    )]
    pub auth_client_secret_file: Option<PathBuf>,
    /// refresh-token (App+User, recommended), password (legacy) or client-credentials [default: refresh-token].
    #[arg(
        long = "auth.grant",
        env = "PARTNERCENTER_AUTH_GRANT",
        value_name = "GRANT"
    )]
    pub auth_grant: Option<String>,
    /// File holding the refresh token; rotated tokens are written back to it (mode 0600).
    #[arg(
        long = "auth.refresh-token-file",
        env = "PARTNERCENTER_AUTH_REFRESH_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub auth_refresh_token_file: Option<PathBuf>,
    /// User name for the password grant.
    #[arg(
        long = "auth.username",
        env = "PARTNERCENTER_AUTH_USERNAME",
        value_name = "USER"
    )]
    pub auth_username: Option<String>,
    /// File holding the password (or set PARTNERCENTER_PASSWORD).
    #[arg(
        long = "auth.password-file",
        env = "PARTNERCENTER_AUTH_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub auth_password_file: Option<PathBuf>,
    /// Azure AD token endpoint: v1 (resource=) or v2 (scope=.../.default) [default: v1].
    #[arg(
        long = "auth.endpoint",
        env = "PARTNERCENTER_AUTH_ENDPOINT",
        value_name = "V"
    )]
    pub auth_endpoint: Option<String>,
    /// Legacy: trade the Azure AD token for a Partner Center token at /generatetoken.
    #[arg(
        long = "auth.csp-token-exchange",
        env = "PARTNERCENTER_AUTH_CSP_TOKEN_EXCHANGE"
    )]
    pub auth_csp_token_exchange: bool,
    /// Serve from a built-in simulated Partner Center with synthetic customers; needs no credentials.
    #[arg(long = "demo", env = "PARTNERCENTER_DEMO")]
    pub demo: bool,
    /// Log level: error, warn, info, debug, trace [default: info].
    #[arg(
        long = "log.level",
        env = "PARTNERCENTER_LOG_LEVEL",
        value_name = "LEVEL"
    )]
    pub log_level: Option<String>,
    /// Log format: logfmt or json [default: logfmt].
    #[arg(
        long = "log.format",
        env = "PARTNERCENTER_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    pub log_format: Option<String>,
    /// `--collector.NAME`, `--no-collector.NAME`, `--collector.NAME.interval` of each
    /// registered collector: not derived, added by [`Flags::parse_args`].
    #[arg(skip)]
    pub collectors: Vec<CollectorFlags>,
}

/// A collector's flags as given.
#[derive(Debug, Clone, Default)]
pub struct CollectorFlags {
    pub name: &'static str,
    pub enable: bool,
    pub disable: bool,
    pub interval: Option<String>,
}

impl Flags {
    /// Parses `args` (the program name first): the derived flags plus each
    /// registered collector's flags, as node_exporter names them.
    pub fn parse_args<I, T>(args: I) -> Result<Flags, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{Arg, ArgAction, CommandFactory, FromArgMatches};
        let mut command = Flags::command();
        for c in crate::collectors::COLLECTORS {
            let default = if c.enabled_by_default { "on" } else { "off" };
            command = command
                .arg(
                    Arg::new(c.flag)
                        .long(c.flag)
                        .env(c.env)
                        .action(ArgAction::SetTrue)
                        .help(format!(
                            "Enable the {} collector: {} [default: {default}].",
                            c.name, c.about
                        )),
                )
                .arg(
                    Arg::new(c.no_flag)
                        .long(c.no_flag)
                        .env(c.no_env)
                        .action(ArgAction::SetTrue)
                        .help(format!("Disable the {} collector.", c.name)),
                )
                .arg(
                    Arg::new(c.interval_flag)
                        .long(c.interval_flag)
                        .env(c.interval_env)
                        .value_name("DURATION")
                        .help(format!(
                            "Time between runs of the {} collector [default: --poll.interval].",
                            c.name
                        )),
                );
        }
        let matches = command.try_get_matches_from(args)?;
        let mut flags = Flags::from_arg_matches(&matches)?;
        flags.collectors = crate::collectors::COLLECTORS
            .iter()
            .map(|c| CollectorFlags {
                name: c.name,
                enable: matches.get_flag(c.flag),
                disable: matches.get_flag(c.no_flag),
                interval: matches.get_one::<String>(c.interval_flag).cloned(),
            })
            .collect();
        Ok(flags)
    }
}

/// The YAML file. Unknown keys are errors: a typo must not pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    auth: FileAuth,
    #[serde(default)]
    poll: FilePoll,
    #[serde(default)]
    web: FileWeb,
    #[serde(default)]
    partner_center: FilePartnerCenter,
    #[serde(default)]
    customers: Option<Vec<CustomerConfig>>,
    /// Per collector, by name.
    #[serde(default)]
    collectors: std::collections::BTreeMap<String, FileCollector>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCollector {
    enabled: Option<bool>,
    interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    tenant: Option<String>,
    client_id: Option<String>,
    grant: Option<String>,
    endpoint: Option<String>,
    authority: Option<String>,
    refresh_token_file: Option<PathBuf>,
    client_secret_file: Option<PathBuf>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    csp_token_exchange: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePoll {
    interval: Option<String>,
    timeout: Option<String>,
    concurrency: Option<u64>,
    rate_limit: Option<u64>,
    cache_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWeb {
    listen_address: Option<String>,
    telemetry_path: Option<String>,
    config_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePartnerCenter {
    url: Option<String>,
}

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
    pub fn from_flags(flags: Flags, env: SecretEnv) -> Result<Config, ConfigError> {
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
                .or(file.web.listen_address)
                .as_deref()
                .unwrap_or(":10026"),
        )?;
        let telemetry_path = flags
            .telemetry_path
            .or(file.web.telemetry_path)
            .unwrap_or_else(|| "/metrics".to_owned());
        if !telemetry_path.starts_with('/')
            || telemetry_path.len() < 2
            || telemetry_path.starts_with("/-/")
        {
            return Err(ConfigError::new(format!(
                "--web.telemetry-path: {telemetry_path:?} must start with '/' and name a path other than / and /-/…"
            )));
        }

        let interval = duration_setting(
            flags.poll_interval.or(file.poll.interval),
            "--poll.interval",
            "1h",
        )?;
        let timeout = duration_setting(
            flags.poll_timeout.or(file.poll.timeout),
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
            flags.poll_concurrency,
            file.poll.concurrency,
            "--poll.concurrency",
            4,
            1..=1024,
        )? as usize;
        let rate_limit = number_setting(
            flags.poll_rate_limit,
            file.poll.rate_limit,
            "--poll.rate-limit",
            300,
            1..=1_000_000,
        )? as u32;
        let poll = PollConfig {
            interval,
            timeout,
            concurrency,
            rate_limit,
            cache_file: flags.poll_cache_file.or(file.poll.cache_file),
        };

        let collectors = collector_settings(&flags.collectors, file.collectors, interval)?;
        let customers = customer_selection(flags.customers.as_deref(), file.customers, &file_name)?;
        let partner_center_url = url_setting(
            flags.partner_center_url.or(file.partner_center.url),
            "--partner-center.url",
            "https://api.partnercenter.microsoft.com",
        )?;
        let authority = url_setting(
            flags.auth_authority.or(file.auth.authority),
            "--auth.authority",
            "https://login.microsoftonline.com",
        )?;

        let grant = match flags
            .auth_grant
            .or(file.auth.grant)
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
            .or(file.auth.endpoint)
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

        let demo = flags.demo;
        let tenant = flags.auth_tenant.or(file.auth.tenant).unwrap_or_default();
        let client_id = flags
            .auth_client_id
            .or(file.auth.client_id)
            .unwrap_or_default();
        let secret_file = flags
            .auth_client_secret_file
            .or(file.auth.client_secret_file);
        let refresh_token_file = flags
            .auth_refresh_token_file
            .or(file.auth.refresh_token_file);
        let username = flags.auth_username.or(file.auth.username);
        let password_file = flags.auth_password_file.or(file.auth.password_file);
        let csp_token_exchange =
            flags.auth_csp_token_exchange || file.auth.csp_token_exchange.unwrap_or(false);

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
                    &mut warnings,
                )?),
                None => env.client_secret,
            };
            match grant {
                Grant::RefreshToken => {
                    let Some(path) = auth.refresh_token_file.clone() else {
                        return Err(ConfigError::new(
                            "--auth.refresh-token-file: required with --auth.grant refresh-token (a file holding the refresh token from the one-time consent)",
                        ));
                    };
                    auth.refresh_token = Some(read_secret_file(
                        &path,
                        "--auth.refresh-token-file",
                        &mut warnings,
                    )?);
                }
                Grant::Password => {
                    if auth.username.as_deref().is_none_or(|u| u.trim().is_empty()) {
                        return Err(ConfigError::new(
                            "--auth.username: required with --auth.grant password",
                        ));
                    }
                    auth.password = match password_file {
                        Some(path) => Some(read_secret_file(
                            &path,
                            "--auth.password-file",
                            &mut warnings,
                        )?),
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

        let web_config_file = flags.web_config_file.or(file.web.config_file);
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
        })
    }
}

/// Each registered collector's settings: flags, then the file's `collectors:`, then
/// the collector's default (interval: `--poll.interval`).
fn collector_settings(
    flags: &[CollectorFlags],
    mut file: std::collections::BTreeMap<String, FileCollector>,
    poll_interval: Duration,
) -> Result<Vec<CollectorSettings>, ConfigError> {
    let mut settings = Vec::new();
    for info in crate::collectors::COLLECTORS {
        let given = flags.iter().find(|f| f.name == info.name);
        let from_file = file.remove(info.name).unwrap_or_default();
        let enabled = match given {
            Some(f) if f.enable && f.disable => {
                return Err(ConfigError::new(format!(
                    "--{} and --{}: both given; give one",
                    info.flag, info.no_flag
                )))
            }
            Some(f) if f.enable => true,
            Some(f) if f.disable => false,
            _ => from_file.enabled.unwrap_or(info.enabled_by_default),
        };
        let interval = match given.and_then(|f| f.interval.clone()) {
            Some(text) => duration_setting(Some(text), &format!("--{}", info.interval_flag), "")?,
            None => match from_file.interval {
                Some(text) => duration_setting(
                    Some(text),
                    &format!("collectors.{}.interval", info.name),
                    "",
                )?,
                None => poll_interval,
            },
        };
        settings.push(CollectorSettings {
            name: info.name,
            enabled,
            interval,
        });
    }
    if let Some(unknown) = file.keys().next() {
        let known: Vec<&str> = crate::collectors::COLLECTORS
            .iter()
            .map(|c| c.name)
            .collect();
        return Err(ConfigError::new(format!(
            "collectors.{unknown}: unknown collector; known collectors: {}",
            known.join(", ")
        )));
    }
    Ok(settings)
}

fn read_file_config(path: &Path) -> Result<FileConfig, ConfigError> {
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

/// Reads a secret file: its value is the text without a leading UTF-8 byte-order
/// mark (Windows editors write one, and Azure AD would take it as part of the
/// secret) and without surrounding whitespace (the trailing newline editors add).
/// `Ok(None)` when nothing is left.
pub fn read_secret(path: &Path) -> std::io::Result<Option<SecretString>> {
    let text = std::fs::read_to_string(path)?;
    let value = secret_value(&text);
    Ok((!value.is_empty()).then(|| SecretString::from(value.to_owned())))
}

/// The value of a secret file's text (see [`read_secret`]).
fn secret_value(text: &str) -> &str {
    text.strip_prefix('\u{FEFF}').unwrap_or(text).trim()
}

/// Reads a secret file with [`read_secret`] for `flag`; an empty one is an error.
/// Warns when the file is readable by group or others.
fn read_secret_file(
    path: &Path,
    flag: &str,
    warnings: &mut Vec<String>,
) -> Result<SecretString, ConfigError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError::new(format!("{flag}: cannot read {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        warnings.push(format!(
            "{flag}: {} is readable by group or others (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    read_secret(path)
        .map_err(|e| ConfigError::new(format!("{flag}: cannot read {}: {e}", path.display())))?
        .ok_or_else(|| ConfigError::new(format!("{flag}: {} is empty", path.display())))
}

/// `:PORT` → `0.0.0.0:PORT`; `HOST:PORT` and `[V6]:PORT` kept. The port is checked.
pub fn normalize_listen_address(value: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| {
        ConfigError::new(format!(
            "--web.listen-address: {value:?} {why}; use :PORT or HOST:PORT, e.g. :10026"
        ))
    };
    let (host, port) = value.rsplit_once(':').ok_or_else(|| bad("has no port"))?;
    port.parse::<u16>()
        .map_err(|_| bad("has an invalid port"))?;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad("has an IPv6 host without brackets"));
    }
    Ok(format!("{host}:{port}"))
}

fn duration_setting(
    value: Option<String>,
    flag: &str,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        ConfigError::new(format!(
            "{flag}: {text:?} is not a duration ({e}); use e.g. 30s, 5m, 1h"
        ))
    })?;
    if d.is_zero() {
        return Err(ConfigError::new(format!(
            "{flag}: must be longer than zero"
        )));
    }
    Ok(d)
}

fn number_setting(
    flag_value: Option<String>,
    file_value: Option<u64>,
    flag: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let n = match flag_value {
        Some(text) => text
            .trim()
            .parse::<u64>()
            .map_err(|_| ConfigError::new(format!("{flag}: {text:?} is not a whole number")))?,
        None => file_value.unwrap_or(default),
    };
    if !range.contains(&n) {
        return Err(ConfigError::new(format!(
            "{flag}: {n} is out of range; use {} to {}",
            range.start(),
            range.end()
        )));
    }
    Ok(n)
}

fn url_setting(value: Option<String>, flag: &str, default: &str) -> Result<String, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    let url = text.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(url.to_owned()),
        _ => Err(ConfigError::new(format!(
            "{flag}: {text:?} is not an http(s) URL"
        ))),
    }
}

fn customer_selection(
    flag: Option<&str>,
    file: Option<Vec<CustomerConfig>>,
    file_name: &str,
) -> Result<CustomerSelection, ConfigError> {
    let mut file = file.unwrap_or_default();
    for i in 0..file.len() {
        let key = |field: &str| format!("--config.file {file_name}: customers[{i}].{field}");
        let c = &mut file[i];
        // A typo in an id must not pass as a customer without data (Partner Center
        // answers 404, which means "no data").
        c.id = crate::model::normalize_customer_id(&c.id).ok_or_else(|| {
            ConfigError::new(format!(
                "{}: {:?} is not a customer id; give the customer's tenant id, a GUID such as ae1d5b32-f9ff-4252-b2bf-40e21937a51a",
                key("id"),
                c.id
            ))
        })?;
        if let Some(b) = c.budget {
            if !b.is_finite() || b < 0.0 {
                return Err(ConfigError::new(format!(
                    "{}: {b} must be a positive number",
                    key("budget")
                )));
            }
        }
        if file[..i].iter().any(|o| o.id == file[i].id) {
            return Err(ConfigError::new(format!(
                "{}: {} is listed twice",
                key("id"),
                file[i].id
            )));
        }
    }
    let Some(flag) = flag.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(CustomerSelection {
            discover: file.is_empty(),
            customers: file,
        });
    };
    // The flag picks the customers; names and budgets for them still come from the file.
    let mut customers: Vec<CustomerConfig> = Vec::new();
    for text in flag.split(',').map(str::trim) {
        let id = crate::model::normalize_customer_id(text).ok_or_else(|| {
            ConfigError::new(format!(
                "--customers: {text:?} is not a customer id; give comma-separated tenant ids (GUIDs such as ae1d5b32-f9ff-4252-b2bf-40e21937a51a)"
            ))
        })?;
        if customers.iter().any(|c| c.id == id) {
            continue;
        }
        let from_file = file.iter().find(|c| c.id == id);
        customers.push(CustomerConfig {
            name: from_file.and_then(|c| c.name.clone()),
            budget: from_file.and_then(|c| c.budget),
            id,
        });
    }
    Ok(CustomerSelection {
        discover: false,
        customers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::io::Write;

    fn flags(args: &[&str]) -> Flags {
        let mut all = vec!["partnercenter-exporter"];
        all.extend_from_slice(args);
        Flags::parse_args(all).unwrap()
    }

    fn secret_file(dir: &Path, name: &str, value: &str) -> String {
        let path = dir.join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, "{value}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn defaults_with_demo() {
        let c = Config::from_flags(flags(&["--demo"]), SecretEnv::default()).unwrap();
        assert_eq!(c.listen_address, "0.0.0.0:10026");
        assert_eq!(c.telemetry_path, "/metrics");
        assert_eq!(c.poll.interval, Duration::from_secs(3600));
        assert_eq!(c.poll.timeout, Duration::from_secs(30));
        assert_eq!(c.poll.concurrency, 4);
        assert_eq!(c.poll.rate_limit, 300);
        assert!(c.customers.discover);
        assert_eq!(c.auth.grant, Grant::RefreshToken);
        assert_eq!(c.auth.endpoint, AadEndpoint::V1);
    }

    #[test]
    fn file_is_read_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let token = secret_file(dir.path(), "rt", "refresh-token-value");
        let secret = secret_file(dir.path(), "cs", "client-secret-value");
        let yaml = format!(
            "auth:\n  tenant: contoso.onmicrosoft.com\n  client_id: 11111111-2222-3333-4444-555555555555\n  grant: refresh-token\n  refresh_token_file: {token}\n  client_secret_file: {secret}\npoll:\n  interval: 30m\n  concurrency: 8\n  rate_limit: 100\ncustomers:\n  - id: ae1d5b32-f9ff-4252-b2bf-40e21937a51a\n    name: Fabrikam\n    budget: 1500\n  - id: b44bb1fb-8d9a-4ba7-9a1a-1f2a8a4e7b01\n"
        );
        let path = dir.path().join("config.yml");
        std::fs::write(&path, yaml).unwrap();
        let c = Config::from_flags(
            flags(&[
                "--config.file",
                path.to_str().unwrap(),
                "--poll.concurrency",
                "2",
            ]),
            SecretEnv::default(),
        )
        .unwrap();
        assert_eq!(c.poll.interval, Duration::from_secs(1800));
        assert_eq!(c.poll.concurrency, 2, "the flag wins over the file");
        assert_eq!(c.poll.rate_limit, 100);
        assert_eq!(c.auth.tenant, "contoso.onmicrosoft.com");
        assert_eq!(
            c.auth.refresh_token.as_ref().unwrap().expose_secret(),
            "refresh-token-value"
        );
        assert_eq!(
            c.auth.client_secret.as_ref().unwrap().expose_secret(),
            "client-secret-value"
        );
        assert!(!c.customers.discover);
        assert_eq!(c.customers.customers.len(), 2);
        assert_eq!(c.customers.customers[0].budget, Some(1500.0));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let debug = format!("{c:?}");
        assert!(!debug.contains("refresh-token-value") && !debug.contains("client-secret-value"));
        assert!(debug.contains("[REDACTED]"));

        // --customers picks the list; names and budgets still come from the file.
        let c = Config::from_flags(
            flags(&[
                "--config.file",
                path.to_str().unwrap(),
                "--customers",
                "AE1D5B32-F9FF-4252-B2BF-40E21937A51A, cafecafe-0000-4000-8000-00000000cafe,ae1d5b32-f9ff-4252-b2bf-40e21937a51a",
            ]),
            SecretEnv::default(),
        )
        .unwrap();
        // Ids are compared in lower case and given once.
        assert_eq!(c.customers.customers.len(), 2);
        assert_eq!(
            c.customers.customers[0].id,
            "ae1d5b32-f9ff-4252-b2bf-40e21937a51a"
        );
        assert_eq!(c.customers.customers[0].name.as_deref(), Some("Fabrikam"));
        assert_eq!(
            c.customers.customers[1].id,
            "cafecafe-0000-4000-8000-00000000cafe"
        );
    }

    #[test]
    fn errors_name_the_flag_or_key() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["--demo", "--poll.interval", "soon"], "--poll.interval"),
            (vec!["--demo", "--poll.interval", "0s"], "--poll.interval"),
            (
                vec!["--demo", "--poll.concurrency", "0"],
                "--poll.concurrency",
            ),
            (vec!["--demo", "--poll.rate-limit=-5"], "--poll.rate-limit"),
            (
                vec!["--demo", "--web.listen-address", "10026"],
                "--web.listen-address",
            ),
            (
                vec!["--demo", "--web.listen-address", ":http"],
                "--web.listen-address",
            ),
            (vec!["--demo", "--auth.grant", "magic"], "--auth.grant"),
            (vec!["--demo", "--auth.endpoint", "v3"], "--auth.endpoint"),
            (vec!["--demo", "--log.level", "loud"], "--log.level"),
            (
                vec!["--demo", "--partner-center.url", "ftp://x"],
                "--partner-center.url",
            ),
            (
                vec!["--demo", "--web.telemetry-path", "metrics"],
                "--web.telemetry-path",
            ),
            (vec![], "--auth.tenant"),
            (vec!["--auth.tenant", "t"], "--auth.client-id"),
            (
                vec!["--auth.tenant", "t", "--auth.client-id", "c"],
                "--auth.refresh-token-file",
            ),
            (
                vec![
                    "--auth.tenant",
                    "t",
                    "--auth.client-id",
                    "c",
                    "--auth.refresh-token-file",
                    "/nonexistent/rt",
                ],
                "--auth.refresh-token-file",
            ),
            (
                vec![
                    "--auth.tenant",
                    "t",
                    "--auth.client-id",
                    "c",
                    "--auth.grant",
                    "password",
                ],
                "--auth.username",
            ),
            (
                vec![
                    "--auth.tenant",
                    "t",
                    "--auth.client-id",
                    "c",
                    "--auth.grant",
                    "client-credentials",
                ],
                "--auth.client-secret-file",
            ),
        ];
        for (args, flag) in cases {
            let err = Config::from_flags(flags(&args), SecretEnv::default()).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with(flag), "{args:?}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
        let path = dir.path().join("c.yml");
        std::fs::write(&path, "poll:\n  intervall: 1h\n").unwrap();
        let msg = Config::from_flags(
            flags(&["--demo", "--config.file", path.to_str().unwrap()]),
            SecretEnv::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.starts_with("--config.file") && msg.contains("intervall"),
            "{msg}"
        );
        std::fs::write(
            &path,
            "customers:\n  - id: ae1d5b32-f9ff-4252-b2bf-40e21937a51a\n    budget: -1\n",
        )
        .unwrap();
        let msg = Config::from_flags(
            flags(&["--demo", "--config.file", path.to_str().unwrap()]),
            SecretEnv::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("customers[0].budget"), "{msg}");
    }

    #[test]
    fn customer_ids_that_are_not_guids_are_refused() {
        for text in [
            "not-a-guid",
            "contoso.onmicrosoft.com",
            "ae1d5b32-f9ff-4252-b2bf-40e21937a51",
        ] {
            let msg = Config::from_flags(
                flags(&["--demo", "--customers", text]),
                SecretEnv::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(
                msg.starts_with("--customers:") && msg.contains(text),
                "{msg}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yml");
        std::fs::write(
            &path,
            "customers:\n  - id: ae1d5b32-f9ff-4252-b2bf-40e21937a51a\n  - id: b44bb1fb-8d9a-4ba7-9a1a-1f2a8a4e7b0\n",
        )
        .unwrap();
        let msg = Config::from_flags(
            flags(&["--demo", "--config.file", path.to_str().unwrap()]),
            SecretEnv::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("customers[1].id") && msg.contains("GUID"),
            "{msg}"
        );
        std::fs::write(
            &path,
            "customers:\n  - id: ae1d5b32-f9ff-4252-b2bf-40e21937a51a\n  - id: AE1D5B32-F9FF-4252-B2BF-40E21937A51A\n",
        )
        .unwrap();
        let msg = Config::from_flags(
            flags(&["--demo", "--config.file", path.to_str().unwrap()]),
            SecretEnv::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("customers[1].id") && msg.contains("listed twice"),
            "{msg}"
        );
    }

    #[test]
    fn group_readable_secret_file_warns() {
        let dir = tempfile::tempdir().unwrap();
        let token = secret_file(dir.path(), "rt", "x");
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = Config::from_flags(
            flags(&[
                "--auth.tenant",
                "t",
                "--auth.client-id",
                "c",
                "--auth.refresh-token-file",
                &token,
            ]),
            SecretEnv::default(),
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("chmod 600"));
    }

    #[test]
    fn secret_files_lose_a_byte_order_mark_and_surrounding_blanks() {
        assert_eq!(secret_value("\u{FEFF}s3cret\r\n"), "s3cret");
        assert_eq!(secret_value("\u{FEFF}  s3cret \n"), "s3cret");
        assert_eq!(secret_value("s3cret\n"), "s3cret");
        assert_eq!(secret_value("\u{FEFF}\n"), "");
        // Only a leading mark is one; inside the value it is the value's.
        assert_eq!(secret_value("s3\u{FEFF}cret"), "s3\u{FEFF}cret");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rt");
        std::fs::write(&path, b"\xEF\xBB\xBFrefresh-token-value\n").unwrap();
        let token = read_secret(&path).unwrap().unwrap();
        assert_eq!(token.expose_secret(), "refresh-token-value");
        std::fs::write(&path, b"\xEF\xBB\xBF \r\n").unwrap();
        assert!(read_secret(&path).unwrap().is_none());
        // The same reader serves the flags: a BOM-prefixed file configures the token.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, b"\xEF\xBB\xBFrefresh-token-value\n").unwrap();
        let c = Config::from_flags(
            flags(&[
                "--auth.tenant",
                "t",
                "--auth.client-id",
                "c",
                "--auth.refresh-token-file",
                path.to_str().unwrap(),
            ]),
            SecretEnv::default(),
        )
        .unwrap();
        assert_eq!(
            c.auth.refresh_token.unwrap().expose_secret(),
            "refresh-token-value"
        );
    }

    #[test]
    fn listen_address_forms() {
        assert_eq!(normalize_listen_address(":0").unwrap(), "0.0.0.0:0");
        assert_eq!(
            normalize_listen_address("127.0.0.1:9").unwrap(),
            "127.0.0.1:9"
        );
        assert_eq!(normalize_listen_address("[::1]:9").unwrap(), "[::1]:9");
        assert_eq!(
            normalize_listen_address("localhost:9").unwrap(),
            "localhost:9"
        );
        assert!(normalize_listen_address("::1:9").is_err());
    }
}
