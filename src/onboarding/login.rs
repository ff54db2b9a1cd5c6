//! `partnercenter-exporter login`: the Azure AD device code flow for the Partner
//! Center API (docs/partner-center.md §9), from a terminal, with whatever MFA the
//! tenant demands. It asks for a device code on the endpoint `--auth.endpoint`
//! names, prints Microsoft's `message` (the URL and the user code) on stderr, polls
//! every `interval` (5 s more after each `slow_down`) until `expires_in`, writes
//! the refresh token to `--auth.refresh-token-file` atomically with mode 0600,
//! proves it with one `GET /v1/customers?size=1` and prints the command that runs
//! the exporter.
//!
//! The flow is a public client's: no client secret is ever sent (Azure AD would
//! answer AADSTS700025). Everything it prints goes to stderr; no token, device code
//! or secret is printed or logged.

use std::path::Path;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{exporter_command, http_client, StepFailed};
use crate::auth::RESOURCE;
use crate::config::{AadEndpoint, Config};
use crate::http::read_body_limited;
use crate::partner_center::model::{parse_json, AadErrorBody};

/// The v2 scope of the flow: delegated Partner Center access, and a refresh token.
pub const DEVICE_SCOPE_V2: &str =
    "https://api.partnercenter.microsoft.com/user_impersonation offline_access";
/// The v2 grant type of a poll (RFC 8628).
const DEVICE_GRANT_V2: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// `interval` when the answer has none (RFC 8628 §3.2).
const DEFAULT_INTERVAL: u64 = 5;
/// The longest wait between polls believed, `slow_down` included.
const MAX_INTERVAL: u64 = 60;
/// `expires_in` when the answer has none (Azure AD's 15 minutes).
const DEFAULT_EXPIRES_IN: u64 = 900;
/// The longest sign-in waited for, whatever the answer claims.
const MAX_EXPIRES_IN: u64 = 3600;
/// Largest answer read from Azure AD or Partner Center.
const MAX_BODY: usize = 256 * 1024;

/// A device code answer, checked (docs/partner-center.md §9).
#[derive(Debug)]
pub struct DeviceCode {
    pub device_code: SecretString,
    pub user_code: String,
    /// `verification_uri` (v2) or `verification_url` (v1).
    pub verification_uri: String,
    pub message: String,
    pub interval: Duration,
    pub expires_in: Duration,
}

/// Reads a device code answer: either field spelling, numbers as numbers or
/// strings, bounded interval and lifetime; an `error` even on 200.
pub fn parse_device_code(body: &[u8]) -> Result<DeviceCode, String> {
    let value: Value = parse_json(body).map_err(|e| format!("unreadable answer: {e}"))?;
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        let aad: AadErrorBody = serde_json::from_value(value.clone()).unwrap_or_default();
        let code = aad
            .aadsts_code()
            .map_or_else(String::new, |c| format!(" (AADSTS{c})"));
        return Err(format!(
            "Azure AD refused the device code request: {error}{code}"
        ));
    }
    let text = |name: &str| -> Option<String> {
        value
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 8192)
            .map(str::to_owned)
    };
    let device_code = text("device_code").ok_or("the answer has no device_code")?;
    let user_code = text("user_code").ok_or("the answer has no user_code")?;
    let verification_uri = text("verification_uri")
        .or_else(|| text("verification_url"))
        .ok_or("the answer has no verification_uri")?;
    let message = text("message").unwrap_or_else(|| {
        format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate.")
    });
    let interval =
        seconds(value.get("interval"), "interval", DEFAULT_INTERVAL)?.clamp(1, MAX_INTERVAL);
    let expires_in = seconds(value.get("expires_in"), "expires_in", DEFAULT_EXPIRES_IN)?;
    if expires_in == 0 {
        return Err("the answer's expires_in is 0".to_owned());
    }
    Ok(DeviceCode {
        device_code: SecretString::from(device_code),
        user_code,
        verification_uri,
        message,
        interval: Duration::from_secs(interval),
        expires_in: Duration::from_secs(expires_in.min(MAX_EXPIRES_IN)),
    })
}

/// A whole number of seconds, as a JSON number or a string of digits; absent is
/// `default`; negative, fractional or not a number is an error; huge is capped by
/// the caller.
fn seconds(value: Option<&Value>, name: &str, default: u64) -> Result<u64, String> {
    let bad = || format!("the answer's {name} is not a whole number of seconds");
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(n), _) => Ok(n),
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 => Ok(u64::MAX),
            _ => Err(bad()),
        },
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            Ok(s.parse::<u64>().unwrap_or(u64::MAX))
        }
        Some(_) => Err(bad()),
    }
}

/// What one poll of the token endpoint came to.
enum Poll {
    /// Signed in: the tokens.
    Tokens {
        access: SecretString,
        refresh: Option<SecretString>,
    },
    /// `authorization_pending`, or a failure worth another poll (no answer, 5xx).
    Pending,
    SlowDown,
    /// Stop, with the line to print.
    Failed(String),
}

/// Runs `login`.
pub async fn run(config: &Config) -> Result<(), StepFailed> {
    let Some(token_file) = config.auth.refresh_token_file.clone() else {
        return Err(StepFailed::new(
            "configuration",
            "--auth.refresh-token-file: required (where login writes the refresh token)",
        ));
    };
    let http = http_client(config)?;
    let auth = &config.auth;
    let base = format!("{}/{}", auth.authority.trim_end_matches('/'), auth.tenant);
    let (device_url, token_url) = match auth.endpoint {
        AadEndpoint::V1 => (
            format!("{base}/oauth2/devicecode"),
            format!("{base}/oauth2/token"),
        ),
        AadEndpoint::V2 => (
            format!("{base}/oauth2/v2.0/devicecode"),
            format!("{base}/oauth2/v2.0/token"),
        ),
    };
    let mut form: Vec<(&str, &str)> = vec![("client_id", &auth.client_id)];
    match auth.endpoint {
        AadEndpoint::V1 => form.push(("resource", RESOURCE)),
        AadEndpoint::V2 => form.push(("scope", DEVICE_SCOPE_V2)),
    }
    let device = request_device_code(&http, &device_url, &form).await?;
    eprintln!("{}", device.message);

    let (access, refresh) = wait_for_sign_in(&http, config, &token_url, &device).await?;
    let Some(refresh) = refresh else {
        return Err(StepFailed::new(
            "sign-in",
            "Azure AD signed in but sent no refresh token; check that the app registration may request offline_access, then run login again",
        ));
    };
    write_token(&token_file, &refresh)?;
    eprintln!(
        "Signed in. The refresh token is in {} (mode 0600).",
        token_file.display()
    );
    prove(&http, config, &access).await?;
    if auth.client_secret.is_some() {
        eprintln!("Note: this refresh token belongs to a public client; run the exporter without --auth.client-secret-file and PARTNERCENTER_CLIENT_SECRET, or Azure AD refuses it (AADSTS700025).");
    }
    eprintln!("Partner Center accepted the token. Run the exporter with:");
    eprintln!("  {}", exporter_command(config));
    eprintln!("or first check everything with the same flags and `check`.");
    Ok(())
}

async fn request_device_code(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> Result<DeviceCode, StepFailed> {
    let step = "device code";
    let response = http.post(url).form(form).send().await.map_err(|e| {
        StepFailed::new(
            step,
            format!(
                "no answer from Azure AD ({}); check --auth.authority and the network",
                crate::http::TransportError::of(&e)
            ),
        )
    })?;
    let status = response.status();
    let body = read_body_limited(response, MAX_BODY)
        .await
        .map_err(|e| StepFailed::new(step, format!("unreadable answer from Azure AD: {e}")))?;
    if !status.is_success() {
        let error: AadErrorBody = parse_json(&body).unwrap_or_default();
        return Err(StepFailed::new(
            step,
            refusal_line(
                error.error.as_deref().unwrap_or("HTTP error"),
                error.aadsts_code(),
                status.as_u16(),
            ),
        ));
    }
    parse_device_code(&body).map_err(|e| StepFailed::new(step, e))
}

async fn wait_for_sign_in(
    http: &reqwest::Client,
    config: &Config,
    token_url: &str,
    device: &DeviceCode,
) -> Result<(SecretString, Option<SecretString>), StepFailed> {
    let started = Instant::now();
    let deadline = started + device.expires_in;
    let mut interval = device.interval;
    let expired = || {
        StepFailed::new(
            "sign-in",
            format!(
                "the code expired before sign-in was completed (after {}); run login again and sign in within the time shown",
                humantime::format_duration(device.expires_in)
            ),
        )
    };
    loop {
        let now = Instant::now();
        if now + interval > deadline {
            return Err(expired());
        }
        tokio::time::sleep(interval).await;
        match poll(http, config, token_url, device).await {
            Poll::Tokens { access, refresh } => return Ok((access, refresh)),
            Poll::Pending => {}
            Poll::SlowDown => {
                interval =
                    (interval + Duration::from_secs(5)).min(Duration::from_secs(MAX_INTERVAL));
            }
            Poll::Failed(line) if line.is_empty() => return Err(expired()),
            Poll::Failed(line) => return Err(StepFailed::new("sign-in", line)),
        }
    }
}

async fn poll(
    http: &reqwest::Client,
    config: &Config,
    token_url: &str,
    device: &DeviceCode,
) -> Poll {
    let code = device.device_code.expose_secret();
    let mut form: Vec<(&str, &str)> = vec![("client_id", &config.auth.client_id)];
    match config.auth.endpoint {
        AadEndpoint::V1 => {
            form.extend([
                ("grant_type", "device_code"),
                ("resource", RESOURCE),
                ("code", code),
            ]);
        }
        AadEndpoint::V2 => {
            form.extend([("grant_type", DEVICE_GRANT_V2), ("device_code", code)]);
        }
    }
    let Ok(response) = http.post(token_url).form(&form).send().await else {
        return Poll::Pending;
    };
    let status = response.status();
    let Ok(body) = read_body_limited(response, MAX_BODY).await else {
        return Poll::Pending;
    };
    let error: AadErrorBody = parse_json(&body).unwrap_or_default();
    if status.is_success() && error.error.is_none() {
        #[derive(serde::Deserialize)]
        struct Tokens {
            access_token: SecretString,
            #[serde(default)]
            refresh_token: Option<SecretString>,
        }
        return match parse_json::<Tokens>(&body) {
            Ok(t) => Poll::Tokens {
                access: t.access_token,
                refresh: t
                    .refresh_token
                    .filter(|r| !r.expose_secret().trim().is_empty()),
            },
            Err(e) => Poll::Failed(format!(
                "Azure AD's token answer is unusable ({e}); run login again"
            )),
        };
    }
    let code = error.aadsts_code();
    match error.error.as_deref() {
        Some("authorization_pending") => Poll::Pending,
        Some("slow_down") => Poll::SlowDown,
        Some("authorization_declined") => Poll::Failed(
            "sign-in was declined in the browser; run login again and approve the request"
                .to_owned(),
        ),
        Some("expired_token") => Poll::Failed(String::new()),
        Some("bad_verification_code") => Poll::Failed(
            "Azure AD did not recognise the device code (each code works once); run login again"
                .to_owned(),
        ),
        Some("temporarily_unavailable") => Poll::Pending,
        None if status.is_server_error() || status.as_u16() == 429 => Poll::Pending,
        Some(e) => Poll::Failed(refusal_line(e, code, status.as_u16())),
        None => Poll::Failed(format!(
            "Azure AD answered HTTP {} without an error; check --auth.authority",
            status.as_u16()
        )),
    }
}

/// The line for a refusal of the device code request or of a poll.
fn refusal_line(error: &str, code: Option<u64>, status: u16) -> String {
    let shown = code.map_or_else(
        || format!("{error}, HTTP {status}"),
        |c| format!("{error}, AADSTS{c}"),
    );
    match code {
        Some(7_000_218) => format!("Azure AD refused the device code flow for this application ({shown}): in the app registration, under Authentication, turn on \"Allow public client flows\", then run login again"),
        Some(700_025) => format!("Azure AD refused a client secret from a public client ({shown}): the device code flow sends none; remove the secret from the request path (proxy) and run login again"),
        Some(700_016) => format!("Azure AD does not know the application ({shown}): check --auth.client-id and --auth.tenant"),
        Some(90_002) => format!("Azure AD does not know the tenant ({shown}): check --auth.tenant"),
        Some(50_059 | 9_001_023) => format!("Azure AD needs a tenant ({shown}): set --auth.tenant to the partner's tenant id or domain, not common"),
        _ => format!("Azure AD refused the sign-in ({shown}); check the app registration (Partner Center user_impersonation permission, \"Allow public client flows\") and --auth.tenant"),
    }
}

/// Writes the refresh token atomically, mode 0600, creating the directory.
fn write_token(path: &Path, token: &SecretString) -> Result<(), StepFailed> {
    let fail = |e: std::io::Error| {
        StepFailed::new(
            "write",
            format!("cannot write the refresh token to {}: {e}; check --auth.refresh-token-file and the directory's permissions", path.display()),
        )
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut contents = token.expose_secret().as_bytes().to_vec();
    contents.push(b'\n');
    crate::snapshot::cache::write_atomically(path, &contents).map_err(fail)
}

/// One Partner Center call with the new access token: `GET /v1/customers?size=1`.
async fn prove(
    http: &reqwest::Client,
    config: &Config,
    access: &SecretString,
) -> Result<(), StepFailed> {
    let step = "Partner Center";
    let url = format!(
        "{}/v1/customers?size=1",
        config.partner_center_url.trim_end_matches('/')
    );
    let response = http
        .get(url)
        .header(http::header::AUTHORIZATION, format!("Bearer {}", access.expose_secret()))
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| StepFailed::new(step, format!("no answer ({}); the token is saved: check --partner-center.url and the network, then run check", crate::http::TransportError::of(&e))))?;
    let status = response.status().as_u16();
    match status {
        200..=299 => Ok(()),
        401 => Err(StepFailed::new(step, "Partner Center refused the token (HTTP 401); the token is saved, but check that the app registration has the Partner Center API permission user_impersonation with admin consent")),
        403 => Err(StepFailed::new(step, "Partner Center forbids the signed-in user (HTTP 403); sign in with a user that has an admin agent role in Partner Center and run login again")),
        other => Err(StepFailed::new(step, format!("Partner Center answered HTTP {other}; the token is saved: run check later"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn device_code_answers_of_both_versions_and_hostile_ones() {
        let v1 = br#"{"user_code":"ABC","device_code":"D","verification_url":"https://microsoft.com/devicelogin","expires_in":"900","interval":"5","message":"M"}"#;
        let d = parse_device_code(v1).unwrap();
        assert_eq!((d.interval.as_secs(), d.expires_in.as_secs()), (5, 900));
        assert_eq!(d.verification_uri, "https://microsoft.com/devicelogin");
        let v2 = br#"{"user_code":"ABC","device_code":"D","verification_uri":"https://microsoft.com/link","expires_in":1e30,"interval":100000}"#;
        let d = parse_device_code(v2).unwrap();
        assert_eq!(
            (d.interval.as_secs(), d.expires_in.as_secs()),
            (MAX_INTERVAL, MAX_EXPIRES_IN)
        );
        assert!(d.message.contains("ABC"));
        for bad in [
            &br#"{"user_code":"A","device_code":"D","verification_uri":"u","interval":-5}"#[..],
            br#"{"user_code":"A","device_code":"D","verification_uri":"u","interval":"5s"}"#,
            br#"{"user_code":"A","device_code":"D","verification_uri":"u","expires_in":[1]}"#,
            br#"{"user_code":"A","device_code":"D","verification_uri":"u","expires_in":0}"#,
            br#"{"user_code":"A","verification_uri":"u"}"#,
            br#"{"user_code":7,"device_code":"D","verification_uri":"u"}"#,
            br#"{"error":"invalid_request","error_codes":[900144]}"#,
            b"<html>",
        ] {
            assert!(
                parse_device_code(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn public_flows_off_names_the_switch() {
        let line = refusal_line("invalid_client", Some(7_000_218), 401);
        assert!(line.contains("Allow public client flows"), "{line}");
    }
}
