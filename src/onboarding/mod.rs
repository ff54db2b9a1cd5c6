//! The onboarding subcommands, run from a terminal before the exporter is deployed
//! (DESIGN: "Subcommands"): [`login`] obtains the refresh token with the Azure AD
//! device code flow, [`check`] proves a configuration end to end. Both take the
//! exporter's validated [`Config`]; this module owns their exit statuses (0 done, 1 a
//! step failed, with one line saying what happened and what to do) and the shared
//! HTTP client. It never prints or logs a token or a secret: the only code shown is
//! the user code Microsoft asks the person to type.

pub mod check;
pub mod login;

use std::process::ExitCode;
use std::time::Duration;

use crate::config::{Config, Subcommand};

/// A failed step: what happened and what to do, printed as one line.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct StepFailed {
    /// The step that failed (`sign-in`, `customers`, a collector's name, …).
    pub step: String,
    /// What happened and the fix.
    pub message: String,
}

impl StepFailed {
    pub(crate) fn new(step: impl Into<String>, message: impl Into<String>) -> StepFailed {
        StepFailed {
            step: step.into(),
            message: message.into(),
        }
    }
}

/// Runs the subcommand of `config` to its exit status.
pub async fn run(subcommand: Subcommand, config: Config) -> ExitCode {
    let name = match subcommand {
        Subcommand::Login => "login",
        Subcommand::Check => "check",
    };
    for warning in &config.warnings {
        eprintln!("partnercenter-exporter {name}: warning: {warning}");
    }
    let (name, result) = match subcommand {
        Subcommand::Login => ("login", login::run(&config).await),
        Subcommand::Check => ("check", check::run(&config).await),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failed) => {
            eprintln!("partnercenter-exporter {name}: {failed}");
            ExitCode::FAILURE
        }
    }
}

/// The HTTP client of the subcommands: the exporter's timeouts, user agent and
/// redirect policy.
pub(crate) fn http_client(config: &Config) -> Result<reqwest::Client, StepFailed> {
    reqwest::Client::builder()
        .timeout(config.poll.timeout)
        .connect_timeout(config.poll.timeout.min(Duration::from_secs(10)))
        .user_agent(concat!(
            "partnercenter-exporter/",
            env!("CARGO_PKG_VERSION")
        ))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| StepFailed::new("start-up", format!("cannot create the HTTP client: {e}")))
}

/// The command that runs the exporter with this configuration's sign-in settings
/// (no secret: there is none on a command line).
pub(crate) fn exporter_command(config: &Config) -> String {
    let mut words = vec!["partnercenter-exporter".to_owned()];
    if let Some(file) = &config.config_file {
        words.push(format!(
            "--config.file {}",
            shell_word(&file.display().to_string())
        ));
    }
    words.push(format!("--auth.tenant {}", shell_word(&config.auth.tenant)));
    words.push(format!(
        "--auth.client-id {}",
        shell_word(&config.auth.client_id)
    ));
    if let Some(path) = &config.auth.refresh_token_file {
        words.push(format!(
            "--auth.refresh-token-file {}",
            shell_word(&path.display().to_string())
        ));
    }
    if config.auth.endpoint == crate::config::AadEndpoint::V2 {
        words.push("--auth.endpoint v2".to_owned());
    }
    if config.auth.authority != "https://login.microsoftonline.com" {
        words.push(format!(
            "--auth.authority {}",
            shell_word(&config.auth.authority)
        ));
    }
    if config.partner_center_url != "https://api.partnercenter.microsoft.com" {
        words.push(format!(
            "--partner-center.url {}",
            shell_word(&config.partner_center_url)
        ));
    }
    words.join(" ")
}

/// `word` quoted for a POSIX shell when it needs it.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
