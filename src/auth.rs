//! Signing in to Azure AD: the access token every Partner Center request carries.
//!
//! [`Authenticator`] owns the token cache, the refresh token and its file. It renews
//! the access token ahead of expiry, one renewal at a time however many requests wait
//! for it; writes every rotated refresh token back to `--auth.refresh-token-file`
//! atomically (mode 0600) so the exporter still signs in after a restart months later
//! (a failed write is logged with the file's path and counted in
//! `partnercenter_refresh_token_persist_failures_total`; an empty or blank "rotated"
//! token never replaces the one it has); and optionally
//! trades the AAD token at Partner Center's legacy `generatetoken`.
//!
//! Errors that need a human (`invalid_grant`, `interaction_required`,
//! `invalid_client`, …) are latched for the rest of the poll: at most one token
//! request per poll reaches Azure AD, however many customers are waiting. Transient
//! errors (5xx, 429, `temporarily_unavailable`, timeouts) are retried with backoff,
//! waiting at least the answer's `Retry-After`, within the same per-call budget as
//! Partner Center's requests (`http::retry`).
//!
//! A 401 from Partner Center renews the token at most once per token generation.
//! Every token carries its generation G (1 for the first token, then 2, …). The first
//! 401 on G renews to G+1; a 401 on G that comes back once G+1 exists reuses G+1
//! (its request is retried once with it, nothing is asked of Azure AD); a 401 on a
//! token that was itself obtained in answer to a 401 in the same poll is final for
//! that request: no renewal before the next poll. A Partner Center that refuses
//! every token thus costs one renewal per poll, however many customers it refuses.
//!
//! Tokens are [`SecretString`]s; nothing here logs a token, a secret or a token
//! request's body.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use backon::Retryable;
use secrecy::{ExposeSecret, SecretString};

use crate::config::{AadEndpoint, AuthConfig, Grant};
use crate::http::retry::{Backoff, RetryAfter, RetryBudget};
use crate::http::{read_body_limited, ReadError, TransportError};
use crate::partner_center::model::{parse_json, AadErrorBody, TokenResponse};
use crate::telemetry::{AuthFailureReason, Endpoint, Telemetry};

/// The Partner Center audience (docs/partner-center.md §1).
pub const RESOURCE: &str = "https://api.partnercenter.microsoft.com";
/// The v2 scope for the same audience.
pub const SCOPE_V2: &str = "https://api.partnercenter.microsoft.com/.default";

/// How long before its expiry a token is renewed (at most half its lifetime, so a
/// short-lived token is not renewed at every request).
const EXPIRY_MARGIN: Duration = Duration::from_secs(120);
/// Lifetime assumed when a token response carries no usable `expires_in` (none,
/// zero, negative, fractional below a second, or not a number).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// The longest lifetime believed. Azure AD's access tokens live about an hour; an
/// answer claiming more (up to `18446744073709551615` seconds, or `1e19`) is taken as
/// a day, so that no lifetime can overflow the clock.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Largest token response read.
const MAX_TOKEN_BODY: usize = 256 * 1024;

/// A bearer token with its expiry.
pub struct AccessToken {
    secret: SecretString,
    expires_at: Instant,
    /// When to renew: ahead of `expires_at` by [`EXPIRY_MARGIN`] or half the lifetime.
    renew_at: Instant,
    /// Its place among the tokens this authenticator obtained (1, 2, …): a 401 on a
    /// token older than the current one is answered with the current one.
    generation: u64,
    /// The poll in which it was obtained because Partner Center refused its
    /// predecessor: a 401 on it in that same poll is final.
    answers_rejection_in: Option<u64>,
}

impl AccessToken {
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.secret.expose_secret())
    }

    fn new(secret: SecretString, lifetime: Duration) -> AccessToken {
        let lifetime = lifetime.min(MAX_LIFETIME);
        let now = Instant::now();
        // Cannot fail for a day; if the clock could not hold it, the token is stale.
        let expires_at = now.checked_add(lifetime).unwrap_or(now);
        let renew_at = expires_at
            .checked_sub(EXPIRY_MARGIN.min(lifetime / 2))
            .unwrap_or(now);
        AccessToken {
            secret,
            expires_at,
            renew_at,
            generation: 0,
            answers_rejection_in: None,
        }
    }

    fn is_fresh(&self) -> bool {
        Instant::now() < self.renew_at
    }
}

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// Azure AD refused the grant or the client: needs a human (see [`Self::hint`]).
    #[error("Azure AD refused the sign-in: {error} (AADSTS{code}); {hint}", code = code.map_or_else(|| "?".to_owned(), |c| c.to_string()), hint = hint(error, *code))]
    Refused { error: String, code: Option<u64> },
    /// Azure AD answered with an error that may pass (5xx, `temporarily_unavailable`).
    #[error("Azure AD is unavailable: {0}")]
    Unavailable(String),
    /// No answer: connection, timeout, a body cut short.
    #[error("token request failed: {0}")]
    Transport(#[from] TransportError),
    /// An answer that cannot be used: unreadable or oversized body, or a 5xx or 429
    /// without an Azure AD error. Worth another try, like a transport failure.
    #[error("unusable token answer: {0}")]
    Unusable(String),
    /// `generatetoken` refused the AAD token.
    #[error("Partner Center generatetoken answered HTTP {0}")]
    Exchange(u16),
}

impl AuthError {
    /// The `reason` label of `partnercenter_auth_failures_total`.
    pub fn reason(&self) -> AuthFailureReason {
        match self {
            AuthError::Refused { error, .. } | AuthError::Unavailable(error) => {
                AuthFailureReason::of_aad_error(error)
            }
            AuthError::Transport(_) | AuthError::Unusable(_) => AuthFailureReason::Transport,
            AuthError::Exchange(_) => AuthFailureReason::GenerateToken,
        }
    }

    /// Whether another try may succeed without a human.
    fn is_transient(&self) -> bool {
        matches!(
            self,
            AuthError::Unavailable(_) | AuthError::Transport(_) | AuthError::Unusable(_)
        )
    }

    /// Whether this error needs an operator (and so is latched for the poll).
    pub fn needs_operator(&self) -> bool {
        !self.is_transient()
    }
}

/// What the operator must do about a refused sign-in.
fn hint(error: &str, code: Option<u64>) -> &'static str {
    match (error, code) {
        (_, Some(70008 | 700082 | 70000 | 50173)) => {
            "the refresh token expired or was revoked: repeat the one-time consent (App+User, with MFA) and write the new refresh token to --auth.refresh-token-file"
        }
        (_, Some(50076 | 50078 | 50079 | 70043)) | ("interaction_required", _) => {
            "Azure AD demands (new) multi-factor authentication: repeat the one-time consent with MFA and store the new refresh token; check Conditional Access policies for the account"
        }
        (_, Some(700025)) => {
            "the refresh token belongs to a public client (it came from `login`, the device code flow): remove --auth.client-secret-file and PARTNERCENTER_CLIENT_SECRET"
        }
        (_, Some(7000218)) => {
            "Azure AD wants a client secret, or public client flows: for a token from `login`, turn on \"Allow public client flows\" in the app registration (Authentication); otherwise set --auth.client-secret-file"
        }
        (_, Some(7000222)) => "the client secret expired: create a new one and update the client secret file",
        (_, Some(70002 | 7000215)) => "the client secret is wrong: check the client secret file",
        (_, Some(700016)) => "the application is not found in the tenant: check --auth.client-id and --auth.tenant",
        (_, Some(700007)) => "the refresh token was issued to another client id: use the same --auth.client-id as the consent",
        (_, Some(90002)) => "the tenant is not found: check --auth.tenant",
        (_, Some(65001)) => "consent is missing: grant the application admin consent",
        ("invalid_client", _) => "check --auth.client-id and the client secret",
        ("invalid_grant", _) => {
            "the grant is no longer valid: repeat the one-time consent and store the new refresh token"
        }
        ("unauthorized_client" | "unsupported_grant_type", _) => {
            "the application may not use this grant: check --auth.grant and the app registration"
        }
        _ => "check the application registration and the credentials",
    }
}

/// The latched failure of the current poll.
struct Latched {
    poll: u64,
    error: AuthError,
}

/// Obtains and caches access tokens. Shared by every request (`Arc`).
pub struct Authenticator {
    http: reqwest::Client,
    config: AuthConfig,
    partner_center_url: String,
    telemetry: Arc<Telemetry>,
    /// The current access token; readers never wait on a renewal in progress unless
    /// the token has expired.
    current: ArcSwapOption<AccessToken>,
    /// Serialises renewals: the first waiter renews, the others find the new token.
    renewal: tokio::sync::Mutex<()>,
    /// Tokens obtained so far: the generation of the newest.
    issued: AtomicU64,
    /// The newest refresh token (rotated on every use).
    refresh_token: Mutex<Option<SecretString>>,
    /// The poll's number, bumped by [`Authenticator::begin_poll`].
    poll: AtomicU64,
    /// A refusal in this poll: answered without asking Azure AD again.
    latched: Mutex<Option<Latched>>,
    backoff: Backoff,
}

impl Authenticator {
    pub fn new(
        http: reqwest::Client,
        config: AuthConfig,
        partner_center_url: String,
        telemetry: Arc<Telemetry>,
        backoff: Backoff,
    ) -> Authenticator {
        let refresh_token = config.refresh_token.clone();
        Authenticator {
            http,
            config,
            partner_center_url,
            telemetry,
            current: ArcSwapOption::empty(),
            renewal: tokio::sync::Mutex::new(()),
            issued: AtomicU64::new(0),
            refresh_token: Mutex::new(refresh_token),
            poll: AtomicU64::new(0),
            latched: Mutex::new(None),
            backoff,
        }
    }

    /// Starts a new poll: a refusal latched in the previous poll may be tried once more.
    /// After a refusal, the refresh-token file is read again, so an operator who
    /// stored a new token after a fresh consent needs no restart.
    pub fn begin_poll(&self) {
        let refused = self.latched_error().is_some_and(|e| e.needs_operator());
        if refused && self.config.grant == Grant::RefreshToken {
            self.reload_refresh_token();
        }
        self.poll.fetch_add(1, Ordering::SeqCst);
    }

    fn reload_refresh_token(&self) {
        let Some(path) = &self.config.refresh_token_file else {
            return;
        };
        match crate::config::read_secret(path) {
            Ok(Some(token)) => {
                if let Ok(mut current) = self.refresh_token.lock() {
                    *current = Some(token);
                }
            }
            Ok(None) => tracing::warn!(path = %path.display(), "the refresh token file is empty"),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "cannot read the refresh token file")
            }
        }
    }

    /// The error latched in the current poll, if any.
    pub fn latched_error(&self) -> Option<AuthError> {
        let poll = self.poll.load(Ordering::SeqCst);
        let latched = self.latched.lock().ok()?;
        latched
            .as_ref()
            .filter(|l| l.poll == poll)
            .map(|l| l.error.clone())
    }

    /// A fresh access token, renewing it if needed.
    pub async fn token(&self) -> Result<Arc<AccessToken>, AuthError> {
        if let Some(token) = self.fresh_token() {
            return Ok(token);
        }
        let _guard = self.renewal.lock().await;
        // Someone else may have renewed while this request waited.
        if let Some(token) = self.fresh_token() {
            return Ok(token);
        }
        self.renew_locked(None).await
    }

    /// Called after Partner Center answered 401 to a request carrying `rejected`.
    /// `Some(token)`: retry once with it, renewed now or by another request since
    /// `rejected` was sent. `None`: `rejected` was itself obtained in answer to a 401
    /// in this poll, so the 401 stands (the rule is in the module docs).
    pub async fn renew_after_rejection(
        &self,
        rejected: &AccessToken,
    ) -> Result<Option<Arc<AccessToken>>, AuthError> {
        let _guard = self.renewal.lock().await;
        if let Some(token) = self
            .fresh_token()
            .filter(|t| t.generation > rejected.generation)
        {
            return Ok(Some(token));
        }
        let poll = self.poll.load(Ordering::SeqCst);
        if rejected.answers_rejection_in == Some(poll) {
            tracing::debug!(
                generation = rejected.generation,
                "Partner Center refused a token that replaced a refused one in this poll; no other renewal before the next poll"
            );
            return Ok(None);
        }
        self.renew_locked(Some(poll)).await.map(Some)
    }

    fn fresh_token(&self) -> Option<Arc<AccessToken>> {
        self.current.load_full().filter(|t| t.is_fresh())
    }

    /// Signs in and makes the new token current; the caller holds `renewal`.
    /// `after_rejection`: the poll in which Partner Center refused the token this
    /// one replaces.
    async fn renew_locked(
        &self,
        after_rejection: Option<u64>,
    ) -> Result<Arc<AccessToken>, AuthError> {
        if let Some(error) = self.latched_error() {
            return Err(error);
        }
        let poll = self.poll.load(Ordering::SeqCst);
        match self.sign_in().await {
            Ok(mut token) => {
                token.generation = self.issued.fetch_add(1, Ordering::SeqCst).saturating_add(1);
                token.answers_rejection_in = after_rejection;
                let token = Arc::new(token);
                self.current.store(Some(token.clone()));
                Ok(token)
            }
            Err(error) => {
                self.current.store(None);
                if let Ok(mut latched) = self.latched.lock() {
                    // Transient failures are latched too, after their retries: the
                    // customers still waiting in this poll must not start over.
                    *latched = Some(Latched {
                        poll,
                        error: error.clone(),
                    });
                }
                Err(error)
            }
        }
    }

    async fn sign_in(&self) -> Result<AccessToken, AuthError> {
        let mut budget = RetryBudget::of(&self.backoff);
        let aad = (|| self.request_aad_token())
            .retry(self.backoff.clone())
            .when(|failed: &Failed| failed.error.is_transient())
            .adjust(|failed, wait| budget.next_wait(wait, failed.retry_after))
            .notify(|failed, wait| {
                tracing::debug!(error = %failed.error, wait = ?wait, "token request failed; retrying");
            })
            .await
            .map_err(|failed| failed.error)
            .inspect_err(|err| self.telemetry.auth_failure(err.reason()))?;
        if !self.config.csp_token_exchange {
            return Ok(aad);
        }
        let mut budget = RetryBudget::of(&self.backoff);
        (|| self.exchange(&aad))
            .retry(self.backoff.clone())
            .when(|failed: &Failed| failed.error.is_transient())
            .adjust(|failed, wait| budget.next_wait(wait, failed.retry_after))
            .await
            .map_err(|failed| failed.error)
            .inspect_err(|err| self.telemetry.auth_failure(err.reason()))
    }

    fn token_url(&self) -> String {
        let path = match self.config.endpoint {
            AadEndpoint::V1 => "oauth2/token",
            AadEndpoint::V2 => "oauth2/v2.0/token",
        };
        format!("{}/{}/{}", self.config.authority, self.config.tenant, path)
    }

    #[tracing::instrument(name = "token", skip(self), fields(grant = ?self.config.grant, endpoint = ?self.config.endpoint))]
    async fn request_aad_token(&self) -> Result<AccessToken, Failed> {
        let refresh_token = self.refresh_token.lock().ok().and_then(|t| t.clone());
        let mut form: Vec<(&str, &str)> = vec![("client_id", &self.config.client_id)];
        match self.config.endpoint {
            AadEndpoint::V1 => form.push(("resource", RESOURCE)),
            AadEndpoint::V2 => form.push(("scope", SCOPE_V2)),
        }
        if let Some(secret) = &self.config.client_secret {
            form.push(("client_secret", secret.expose_secret()));
        }
        match self.config.grant {
            Grant::RefreshToken => {
                form.push(("grant_type", "refresh_token"));
                let token = refresh_token.as_ref().ok_or_else(|| AuthError::Refused {
                    error: "invalid_grant".into(),
                    code: None,
                })?;
                form.push(("refresh_token", token.expose_secret()));
            }
            Grant::Password => {
                form.push(("grant_type", "password"));
                form.push((
                    "username",
                    self.config.username.as_deref().unwrap_or_default(),
                ));
                if let Some(p) = &self.config.password {
                    form.push(("password", p.expose_secret()));
                }
            }
            Grant::ClientCredentials => form.push(("grant_type", "client_credentials")),
        }
        let started = Instant::now();
        let sent = self.http.post(self.token_url()).form(&form).send().await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                self.telemetry
                    .observe_request(Endpoint::Token, None, started.elapsed());
                return Err(AuthError::Transport(TransportError::of(&e)).into());
            }
        };
        let status = response.status();
        let retry_after = RetryAfter::from_headers(response.headers());
        let body = read_body_limited(response, MAX_TOKEN_BODY).await;
        self.telemetry
            .observe_request(Endpoint::Token, Some(status.as_u16()), started.elapsed());
        let body = body.map_err(unreadable)?;
        if status.is_success() {
            let parsed: TokenResponse =
                parse_json(&body).map_err(|e| AuthError::Unusable(e.to_string()))?;
            if let Some(rotated) = parsed.refresh_token {
                self.store_refresh_token(rotated).await;
            }
            tracing::debug!(status = status.as_u16(), "signed in to Azure AD");
            return Ok(AccessToken::new(
                parsed.access_token,
                lifetime(parsed.expires_in.as_ref()),
            ));
        }
        let error: AadErrorBody = parse_json(&body).unwrap_or_default();
        let code = error.aadsts_code();
        let error = match error.error {
            Some(e) if e == "temporarily_unavailable" || status.is_server_error() => {
                AuthError::Unavailable(e)
            }
            Some(e) => AuthError::Refused { error: e, code },
            None if status.is_server_error() || status.as_u16() == 429 => {
                AuthError::Unusable(format!("HTTP {}", status.as_u16()))
            }
            None => AuthError::Refused {
                error: format!("HTTP {}", status.as_u16()),
                code,
            },
        };
        Err(Failed { error, retry_after })
    }

    async fn exchange(&self, aad: &AccessToken) -> Result<AccessToken, Failed> {
        let started = Instant::now();
        let sent = self
            .http
            .post(format!("{}/generatetoken", self.partner_center_url))
            .header(http::header::AUTHORIZATION, aad.bearer())
            .header(http::header::ACCEPT, "application/json")
            .form(&[("grant_type", "jwt_token")])
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                self.telemetry
                    .observe_request(Endpoint::GenerateToken, None, started.elapsed());
                return Err(AuthError::Transport(TransportError::of(&e)).into());
            }
        };
        let status = response.status();
        let retry_after = RetryAfter::from_headers(response.headers());
        let body = read_body_limited(response, MAX_TOKEN_BODY).await;
        self.telemetry.observe_request(
            Endpoint::GenerateToken,
            Some(status.as_u16()),
            started.elapsed(),
        );
        let body = body.map_err(unreadable)?;
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(Failed {
                error: AuthError::Unusable(format!("generatetoken HTTP {}", status.as_u16())),
                retry_after,
            });
        }
        if !status.is_success() {
            return Err(AuthError::Exchange(status.as_u16()).into());
        }
        let parsed: TokenResponse =
            parse_json(&body).map_err(|e| AuthError::Unusable(e.to_string()))?;
        // The exchanged token cannot outlive the Azure AD token it came from.
        let remaining = aad.expires_at.saturating_duration_since(Instant::now());
        Ok(AccessToken::new(
            parsed.access_token,
            lifetime(parsed.expires_in.as_ref()).min(remaining),
        ))
    }

    /// Keeps the rotated refresh token and writes it to its file, so a restart signs
    /// in with it. A failed write is logged (without the token) and retried with the
    /// next rotation; the token in memory keeps working. An empty or blank token is
    /// not a token: the previous one is kept, in memory and in the file.
    async fn store_refresh_token(&self, token: SecretString) {
        if token.expose_secret().trim().is_empty() {
            tracing::warn!(
                "Azure AD answered with an empty refresh token; keeping the previous one"
            );
            return;
        }
        if let Ok(mut current) = self.refresh_token.lock() {
            *current = Some(token.clone());
        }
        let Some(path) = self.config.refresh_token_file.clone() else {
            return;
        };
        if self.config.grant != Grant::RefreshToken {
            return;
        }
        let shown = path.display().to_string();
        let written = tokio::task::spawn_blocking(move || write_refresh_token(path, token)).await;
        let error = match written {
            Ok(Ok(())) => {
                tracing::debug!("rotated refresh token saved");
                return;
            }
            Ok(Err(err)) => err.to_string(),
            Err(err) => err.to_string(),
        };
        self.telemetry.refresh_token_persist_failure();
        tracing::error!(
            path = %shown,
            error = %error,
            "cannot save the rotated refresh token; the exporter keeps it in memory, but a restart will sign in with the old one"
        );
    }
}

fn write_refresh_token(path: PathBuf, token: SecretString) -> std::io::Result<()> {
    let mut contents = token.expose_secret().as_bytes().to_vec();
    contents.push(b'\n');
    crate::snapshot::cache::write_atomically(&path, &contents)
}

/// The lifetime an `expires_in` announces, at most [`MAX_LIFETIME`].
fn lifetime(expires_in: Option<&crate::partner_center::model::StringOrNumber>) -> Duration {
    expires_in
        .and_then(|e| e.as_secs())
        .filter(|s| *s > 0)
        .map_or(DEFAULT_LIFETIME, |s| {
            Duration::from_secs(s.min(MAX_LIFETIME.as_secs()))
        })
}

/// A token answer's body that was not read.
/// One token request's failure, with the `Retry-After` its answer carried: the
/// retry loop waits at least that long before the next try.
#[derive(Debug)]
struct Failed {
    error: AuthError,
    retry_after: Option<RetryAfter>,
}

impl From<AuthError> for Failed {
    fn from(error: AuthError) -> Failed {
        Failed {
            error,
            retry_after: None,
        }
    }
}

fn unreadable(e: ReadError) -> AuthError {
    match e {
        ReadError::TooLarge => {
            AuthError::Unusable(format!("body larger than {MAX_TOKEN_BODY} bytes"))
        }
        ReadError::Transport(t) => AuthError::Transport(t),
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_a_known_label_value() {
        let errors = [
            AuthError::Transport(TransportError::Timeout),
            AuthError::Unusable("x".into()),
            AuthError::Exchange(403),
            AuthError::Unavailable("temporarily_unavailable".into()),
            AuthError::Refused {
                error: "something new".into(),
                code: None,
            },
        ];
        let reasons: Vec<&str> = errors.iter().map(|e| e.reason().as_str()).collect();
        assert_eq!(
            reasons,
            [
                "transport",
                "transport",
                "generatetoken",
                "temporarily_unavailable",
                "other"
            ]
        );
        for reason in AuthFailureReason::ALL {
            let back = AuthFailureReason::of_aad_error(reason.as_str());
            assert!(
                back == *reason || back == AuthFailureReason::Other,
                "{reason:?}"
            );
        }
        assert_eq!(
            AuthFailureReason::of_aad_error("transport"),
            AuthFailureReason::Other,
            "not an Azure AD value"
        );
    }

    #[test]
    fn tokens_are_renewed_ahead_of_expiry_but_not_at_once() {
        let long = AccessToken::new(SecretString::from("a"), Duration::from_secs(3600));
        assert_eq!(long.expires_at - long.renew_at, EXPIRY_MARGIN);
        assert!(long.is_fresh());
        let short = AccessToken::new(SecretString::from("b"), Duration::from_secs(10));
        assert_eq!(short.expires_at - short.renew_at, Duration::from_secs(5));
        assert!(short.is_fresh());
        let gone = AccessToken::new(SecretString::from("c"), Duration::ZERO);
        assert!(!gone.is_fresh());
        assert_eq!(format!("{long:?}"), "AccessToken([REDACTED])");
    }

    #[test]
    fn absurd_lifetimes_are_clamped_not_trusted() {
        let parse = |json: &str| -> crate::partner_center::model::StringOrNumber {
            serde_json::from_str(json).unwrap()
        };
        for huge in [
            "18446744073709551615",
            "\"18446744073709551615\"",
            "1e19",
            "1e308",
        ] {
            assert_eq!(lifetime(Some(&parse(huge))), MAX_LIFETIME, "{huge}");
        }
        for useless in [
            "-1",
            "-1e19",
            "0",
            "0.5",
            "\"1e19\"",
            "\"3599.5\"",
            "\"soon\"",
        ] {
            assert_eq!(
                lifetime(Some(&parse(useless))),
                DEFAULT_LIFETIME,
                "{useless}"
            );
        }
        assert_eq!(lifetime(None), DEFAULT_LIFETIME);
        assert_eq!(
            lifetime(Some(&parse("\"3599\""))),
            Duration::from_secs(3599)
        );
        assert_eq!(lifetime(Some(&parse("90000.9"))), MAX_LIFETIME);
        // Whatever reaches the token cache, it never panics.
        let token = AccessToken::new(SecretString::from("d"), Duration::MAX);
        assert!(token.is_fresh());
        assert_eq!(token.expires_at - token.renew_at, EXPIRY_MARGIN);
    }

    #[test]
    fn refusals_say_what_to_do() {
        let e = AuthError::Refused {
            error: "invalid_grant".into(),
            code: Some(700082),
        };
        let text = e.to_string();
        assert!(
            text.contains("AADSTS700082") && text.contains("consent"),
            "{text}"
        );
        let e = AuthError::Refused {
            error: "interaction_required".into(),
            code: Some(50076),
        };
        assert!(e.to_string().contains("multi-factor"));
    }
}
