//! The command line: [`Flags`], every field optional so that "not given" is
//! visible, plus each registered collector's flags, added to clap's command at parse
//! time ([`Flags::parse_args`]).

use std::path::PathBuf;

use clap::Parser;

/// The subcommands (DESIGN: "Subcommands"). They take the exporter's flags, before
/// or after their name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum Subcommand {
    /// Sign in once from a terminal (device code flow, with MFA) and write the
    /// refresh token to --auth.refresh-token-file.
    Login,
    /// Validate the configuration, sign in, fetch a few customers' data from each
    /// enabled collector and report what the exporter would export.
    Check,
}

/// Raw command-line flags. Every flag also reads `PARTNERCENTER_` + its name in upper
/// snake case.
#[derive(Debug, Default, Parser)]
#[command(
    name = "partnercenter-exporter",
    version,
    about = "Prometheus exporter for Microsoft Partner Center (CSP) costs.",
    long_about = "Prometheus exporter for Microsoft Partner Center (CSP) costs.\n\n\
        Its collectors run in the background, each every --collector.NAME.interval \
        (default --poll.interval): each customer's MostRecent service costs, and every \
        customer's estimated usage of the month against its Partner Center budget. It \
        serves the last results on /metrics: a scrape never waits on Partner Center. \
        Secrets are read from files or the environment, never from flags."
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
    /// `login` or `check`; none runs the exporter.
    #[command(subcommand)]
    pub subcommand: Option<Subcommand>,
}

/// A collector's flags as given.
#[derive(Debug, Clone, Default)]
pub struct CollectorFlags {
    pub name: &'static str,
    pub enable: bool,
    pub disable: bool,
    pub interval: Option<String>,
    /// Its settings as given, by key.
    pub options: Vec<(&'static str, String)>,
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
            for o in c.options {
                command = command.arg(
                    Arg::new(o.flag)
                        .long(o.flag)
                        .env(o.env)
                        .value_name(match o.kind {
                            crate::collectors::OptionKind::Duration => "DURATION",
                            crate::collectors::OptionKind::Count { .. } => "N",
                        })
                        .help(format!("{} [default: {}].", o.help, o.default)),
                );
            }
        }
        // Every flag is global, so that `login --auth.tenant …` and
        // `--auth.tenant … login` both work.
        let ids: Vec<clap::Id> = command
            .get_arguments()
            .filter(|a| !a.is_positional())
            .map(|a| a.get_id().clone())
            .collect();
        for id in ids {
            command = command.mut_arg(id, |a| a.global(true));
        }
        let top = command.try_get_matches_from(args)?;
        // A subcommand's matches hold the global flags given on either side of it.
        let subcommand = match top.subcommand_name() {
            Some("login") => Some(Subcommand::Login),
            Some("check") => Some(Subcommand::Check),
            _ => None,
        };
        let matches = top.subcommand().map_or(&top, |(_, m)| m);
        let mut flags = Flags::from_arg_matches(matches)?;
        flags.subcommand = subcommand;
        flags.collectors = crate::collectors::COLLECTORS
            .iter()
            .map(|c| CollectorFlags {
                name: c.name,
                enable: matches.get_flag(c.flag),
                disable: matches.get_flag(c.no_flag),
                interval: matches.get_one::<String>(c.interval_flag).cloned(),
                options: c
                    .options
                    .iter()
                    .filter_map(|o| Some((o.key, matches.get_one::<String>(o.flag)?.clone())))
                    .collect(),
            })
            .collect();
        Ok(flags)
    }
}
