//! The AAD token endpoints, `POST /{tenant}/oauth2/token` (v1) and
//! `POST /{tenant}/oauth2/v2.0/token` (v2), with the refresh-token, password,
//! authorization-code and client-credentials grants, the answers of both
//! versions and AAD's errors (docs/partner-center.md §1), and the token faults
//! of [`Knobs::set_token_fault`](crate::Knobs::set_token_fault).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{header, HeaderMap, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::codec::{aad_timestamp, read_form, Form};
use crate::knobs::TokenFault;
use crate::server::{empty, full, no_store, response, set_header, Body};
use crate::state::Shared;

use super::devicecode;
use crate::tokens::{normalize_audience, RefreshCheck, TokenKind, PC_APP_ID};
use crate::util::{header_str, unix_now};
use crate::Credentials;

/// What a v2 scope without a resource prefix (e.g. `User.Read`) is issued for.
const MS_GRAPH: &str = "https://graph.microsoft.com";

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum AadVersion {
    V1,
    V2,
}

/// What a token request asks for, from `resource` (v1) or `scope` (v2).
#[derive(Clone)]
pub(super) struct Target {
    /// The audience as requested (v1 echoes it in `resource`).
    pub(super) audience: String,
    /// The `scope` to answer for App+User tokens.
    pub(super) scope: String,
    pub(super) openid: bool,
    pub(super) offline_access: bool,
    /// v2 only: the scope was `<resource>/.default`.
    pub(super) default_scope: bool,
}

/// An AAD error with the fields of docs/partner-center.md §1.
#[derive(Serialize)]
struct AadError {
    error: &'static str,
    error_description: String,
    error_codes: [u32; 1],
    timestamp: String,
    trace_id: String,
    correlation_id: String,
    error_uri: String,
}

#[derive(Serialize)]
struct TokenV1 {
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// A string, unless overridden by [`Knobs::set_token_expires_in`](crate::Knobs::set_token_expires_in).
    expires_in: Value,
    ext_expires_in: String,
    expires_on: String,
    not_before: String,
    resource: String,
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

#[derive(Serialize)]
struct TokenV2 {
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// A number, unless overridden by [`Knobs::set_token_expires_in`](crate::Knobs::set_token_expires_in).
    expires_in: Value,
    ext_expires_in: u64,
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

/// Builds AAD errors for one token request.
pub(super) struct Aad<'a> {
    pub(super) shared: &'a Shared,
    pub(super) correlation_id: String,
}

impl Aad<'_> {
    pub(super) fn error(
        &self,
        status: StatusCode,
        error: &'static str,
        code: u32,
        message: &str,
    ) -> Response<Body> {
        let trace_id = Uuid::new_v4().to_string();
        let timestamp = aad_timestamp(unix_now());
        let body = AadError {
            error,
            error_description: format!(
                "AADSTS{code}: {message}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {}\r\nTimestamp: {timestamp}",
                self.correlation_id
            ),
            error_codes: [code],
            timestamp,
            trace_id,
            correlation_id: self.correlation_id.clone(),
            error_uri: format!("https://login.microsoftonline.com/error?code={code}"),
        };
        let mut resp = self.shared.json(status, &body);
        no_store(&mut resp);
        resp
    }

    /// The form's `client_id`, which must be the app's: AADSTS900144 when absent,
    /// AADSTS700016 for another app. The error is the response to send.
    pub(super) fn known_client(&self, form: &Form) -> Result<(), Box<Response<Body>>> {
        let Some(client_id) = form.get("client_id") else {
            return Err(Box::new(self.missing("client_id")));
        };
        if client_id.eq_ignore_ascii_case(&self.shared.creds.client_id) {
            return Ok(());
        }
        Err(Box::new(self.error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700_016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'.",
                self.shared.creds.tenant
            ),
        )))
    }

    pub(super) fn missing(&self, parameter: &str) -> Response<Body> {
        self.error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            &format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }

    fn fault(&self, fault: TokenFault) -> Option<Response<Body>> {
        let resp = match fault {
            TokenFault::None => return None,
            TokenFault::Down => response(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("text/html"),
                full("<html><body>Service Unavailable</body></html>"),
            ),
            TokenFault::InvalidGrant => self.error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                700_082,
                "The refresh token has expired due to inactivity.",
            ),
            TokenFault::InteractionRequired => self.error(
                StatusCode::BAD_REQUEST,
                "interaction_required",
                50_076,
                &format!(
                    "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '{PC_APP_ID}'."
                ),
            ),
            TokenFault::InvalidClient => self.error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7_000_215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            ),
            TokenFault::TemporarilyUnavailable => {
                let mut resp = self.error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    90_033,
                    "A transient error has occurred. Please try again.",
                );
                set_header(&mut resp, header::RETRY_AFTER, "1");
                resp
            }
        };
        Some(resp)
    }
}

/// `POST /{tenant}/oauth2/token` and `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token(
    shared: &Shared,
    tenant: &str,
    version: AadVersion,
    headers: &HeaderMap,
    body: Incoming,
) -> Response<Body> {
    let aad = Aad {
        shared,
        correlation_id: header_str(headers, "client-request-id")
            .filter(|id| Uuid::parse_str(id).is_ok())
            .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned),
    };
    if !tenant.eq_ignore_ascii_case(&shared.creds.tenant) {
        return aad.error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90_002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    }
    if let Some(resp) = aad.fault(shared.knobs.token_fault()) {
        return resp;
    }
    let form = match read_form(body).await {
        Ok(form) => form,
        Err(status) => return empty(status),
    };

    let Some(grant_type) = form.get("grant_type") else {
        return aad.missing("grant_type");
    };
    if let Err(resp) = aad.known_client(&form) {
        return *resp;
    }
    // Device code tokens belong to a public client: neither the polls nor the
    // redemptions of their refresh tokens may carry a secret (docs/partner-center.md §9).
    let device_grant = devicecode::is_device_grant(grant_type);
    let public = device_grant
        || (grant_type == "refresh_token"
            && form
                .get("refresh_token")
                .is_some_and(|t| shared.is_public_refresh(t)));
    if public {
        if let Some(resp) = devicecode::public_client_check(&aad, &form) {
            return resp;
        }
    } else {
        match form.get("client_secret") {
            None => {
                return aad.error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7_000_218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                )
            }
            Some(secret) if secret != shared.creds.client_secret => {
                return aad.error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7_000_215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                )
            }
            Some(_) => {}
        }
    }
    if device_grant {
        return devicecode::poll(&aad, version, &form);
    }
    let target = match version {
        AadVersion::V1 => match form.get("resource") {
            Some(resource) => Target {
                audience: resource.to_owned(),
                scope: "user_impersonation".to_owned(),
                openid: form.get("scope").is_some_and(|s| has_scope(s, "openid")),
                offline_access: true,
                default_scope: false,
            },
            None => return aad.missing("resource"),
        },
        AadVersion::V2 => match form.get("scope").map(parse_v2_scope) {
            Some(Ok(target)) => target,
            Some(Err(message)) => {
                return aad.error(StatusCode::BAD_REQUEST, "invalid_scope", 28_000, &message)
            }
            None => return aad.missing("scope"),
        },
    };

    // (app_only, issue a refresh token)
    let (app_only, with_refresh) = match grant_type {
        "refresh_token" => {
            let Some(refresh_token) = form.get("refresh_token") else {
                return aad.missing("refresh_token");
            };
            match shared.check_refresh(refresh_token) {
                RefreshCheck::Valid => (false, true),
                RefreshCheck::Revoked => {
                    return aad.error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        700_082,
                        "The refresh token has expired due to inactivity. The token was issued on a date before the grant was revoked.",
                    )
                }
                RefreshCheck::Unknown => {
                    return aad.error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        70_000,
                        "Provided grant is invalid or malformed.",
                    )
                }
            }
        }
        "password" => {
            let (Some(username), Some(password)) = (form.get("username"), form.get("password"))
            else {
                return aad.missing(if form.get("username").is_none() {
                    "username"
                } else {
                    "password"
                });
            };
            if !username.eq_ignore_ascii_case(&shared.creds.username)
                || password != shared.creds.password
            {
                return aad.error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    50_126,
                    "Error validating credentials due to invalid username or password.",
                );
            }
            (false, version == AadVersion::V1 || target.offline_access)
        }
        "authorization_code" => {
            let Some(code) = form.get("code") else {
                return aad.missing("code");
            };
            if !shared.redeem_code(code) {
                return aad.error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    54_005,
                    "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
                );
            }
            (false, version == AadVersion::V1 || target.offline_access)
        }
        "client_credentials" => {
            if version == AadVersion::V2 && !target.default_scope {
                return aad.error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    1_002_012,
                    "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
                );
            }
            (true, false)
        }
        other => {
            return aad.error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70_003,
                &format!("The app requested an unsupported grant type '{other}'."),
            )
        }
    };

    answer(shared, version, target, app_only, with_refresh, public)
}

/// The token answer of `version`: an access token for `target`, and a refresh
/// token if `with_refresh` (marked as a public client's if `public`).
pub(super) fn answer(
    shared: &Shared,
    version: AadVersion,
    target: Target,
    app_only: bool,
    with_refresh: bool,
    public: bool,
) -> Response<Body> {
    let (access_token, lifetime) = shared.issue_access(&target.audience, app_only, TokenKind::Aad);
    let refresh_token = with_refresh.then(|| {
        shared
            .knobs
            .token_refresh_token()
            .unwrap_or_else(|| shared.issue_refresh())
    });
    if public {
        if let Some(token) = &refresh_token {
            shared.mark_public_refresh(token);
        }
    }
    let expires_in = shared.knobs.token_expires_in();
    let id_token = (target.openid && !app_only).then(|| fake_id_token(&shared.creds, lifetime));
    let secs = lifetime.as_secs();
    let scope = (!app_only).then_some(target.scope);
    let mut resp = match version {
        AadVersion::V1 => {
            let now = unix_now();
            shared.json(
                StatusCode::OK,
                &TokenV1 {
                    token_type: "Bearer",
                    scope,
                    expires_in: expires_in.unwrap_or_else(|| Value::from(secs.to_string())),
                    ext_expires_in: secs.to_string(),
                    expires_on: (now.saturating_add_unsigned(secs)).to_string(),
                    not_before: (now - 300).to_string(),
                    resource: target.audience,
                    access_token,
                    refresh_token,
                    id_token,
                },
            )
        }
        AadVersion::V2 => shared.json(
            StatusCode::OK,
            &TokenV2 {
                token_type: "Bearer",
                scope,
                expires_in: expires_in.unwrap_or_else(|| Value::from(secs)),
                ext_expires_in: secs,
                access_token,
                refresh_token,
                id_token,
            },
        ),
    };
    no_store(&mut resp);
    resp
}

/// Reads the v2 `scope`: at most one resource, plus OIDC scopes.
pub(super) fn parse_v2_scope(scope: &str) -> Result<Target, String> {
    let mut resource: Option<String> = None;
    let mut permissions = Vec::new();
    let (mut openid, mut offline_access, mut default_scope) = (false, false, false);
    for item in scope.split_whitespace() {
        match item.to_ascii_lowercase().as_str() {
            "openid" => openid = true,
            "offline_access" => offline_access = true,
            "profile" | "email" => {}
            _ => {
                let (res, permission) = match item.rsplit_once('/') {
                    Some((res, permission)) if !res.is_empty() => {
                        (normalize_audience(res), permission)
                    }
                    _ => (MS_GRAPH.to_owned(), item),
                };
                match &resource {
                    Some(existing) if !existing.eq_ignore_ascii_case(&res) => {
                        return Err(format!(
                            "The client has requested access to a resource which is not listed in the requested permissions in the client's application registration. Scopes for more than one resource were requested: '{existing}' and '{res}'."
                        ));
                    }
                    _ => resource = Some(res),
                }
                if permission == ".default" {
                    default_scope = true;
                    permissions.push("user_impersonation".to_owned());
                } else {
                    permissions.push(permission.to_owned());
                }
            }
        }
    }
    let audience = resource.unwrap_or_else(|| MS_GRAPH.to_owned());
    let scope = permissions
        .iter()
        .map(|p| format!("{audience}/{p}"))
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Target {
        audience,
        scope,
        openid,
        offline_access,
        default_scope,
    })
}

/// Whether the space-separated `scopes` hold `wanted` (in any case).
fn has_scope(scopes: &str, wanted: &str) -> bool {
    scopes
        .split_whitespace()
        .any(|s| s.eq_ignore_ascii_case(wanted))
}

/// An unsigned JWT-looking id token; clients are not meant to read it.
fn fake_id_token(creds: &Credentials, lifetime: Duration) -> String {
    let now = unix_now();
    let claims = serde_json::json!({
        "aud": creds.client_id,
        "iss": format!("https://sts.windows.net/{}/", creds.tenant),
        "iat": now,
        "nbf": now,
        "exp": now.saturating_add_unsigned(lifetime.as_secs()),
        "upn": creds.username,
        "name": "Simulated Admin",
        "oid": Uuid::new_v4().to_string(),
    });
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::codec::Form;
    use crate::synthetic::DOCUMENTED_ID;
    use crate::test_util::*;
    use crate::tokens::{is_pc_audience, AAD_GRAPH, PC_RESOURCE};
    use crate::{Simulator, SimulatorConfig};

    #[tokio::test]
    async fn v1_token_has_string_numbers_and_rotates_refresh_tokens() {
        let sim = start().await;
        let client = client();
        let initial = sim.credentials().refresh_token;
        let (status, body) = refresh_v1(&sim, &client, &initial).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], Value::from("3600"));
        assert_eq!(body["ext_expires_in"], Value::from("3600"));
        assert_eq!(body["resource"], PC_RESOURCE);
        assert_eq!(body["scope"], "user_impersonation");
        let expires_on: i64 = body["expires_on"].as_str().unwrap().parse().unwrap();
        let not_before: i64 = body["not_before"].as_str().unwrap().parse().unwrap();
        assert!(expires_on > unix_now() + 3500 && not_before < unix_now());
        assert!(body["id_token"].is_string());
        let rotated = body["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(rotated, initial);

        // The rotated one works, and the old one stays valid (as real AAD).
        assert_eq!(refresh_v1(&sim, &client, &rotated).await.0, 200);
        assert_eq!(refresh_v1(&sim, &client, &initial).await.0, 200);

        let secrets = sim.issued_secrets();
        assert!(secrets.contains(&rotated));
        assert!(secrets.contains(&body["access_token"].as_str().unwrap().to_owned()));
        assert!(secrets.contains(&sim.credentials().client_secret));
        assert!(secrets.contains(&sim.credentials().password));
        assert_eq!(sim.stats().token, 3);
    }

    #[tokio::test]
    async fn v2_token_has_numeric_expiry_and_no_v1_fields() {
        let sim = Simulator::start(SimulatorConfig {
            access_token_lifetime: Duration::from_secs(1200),
            ..SimulatorConfig::default()
        })
        .await
        .unwrap();
        let client = client();
        let creds = sim.credentials();
        let (status, body) = post_form(
            &client,
            &v2_url(&sim),
            &[
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", &creds.refresh_token),
                ("scope", "https://api.partnercenter.microsoft.com/.default"),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["expires_in"], Value::from(1200));
        assert_eq!(body["ext_expires_in"], Value::from(1200));
        assert_eq!(
            body["scope"],
            "https://api.partnercenter.microsoft.com/user_impersonation"
        );
        for absent in ["expires_on", "not_before", "resource", "id_token"] {
            assert!(body.get(absent).is_none(), "{absent} in {body}");
        }
        let rotated = body["refresh_token"].as_str().unwrap();
        assert_ne!(rotated, creds.refresh_token);
        let token = body["access_token"].as_str().unwrap();
        let resp = get(&client, &format!("{}/v1/customers", sim.url()), token).await;
        assert_eq!(resp.status(), 200);
    }

    #[tokio::test]
    async fn revoked_refresh_tokens_get_invalid_grant() {
        let sim = start().await;
        let client = client();
        let initial = sim.credentials().refresh_token;
        let (_, first) = refresh_v1(&sim, &client, &initial).await;
        let first = first["refresh_token"].as_str().unwrap().to_owned();
        let (_, second) = refresh_v1(&sim, &client, &first).await;
        let latest = second["refresh_token"].as_str().unwrap().to_owned();

        sim.revoke_refresh_tokens_except_latest();
        for old in [&initial, &first] {
            let (status, body) = refresh_v1(&sim, &client, old).await;
            assert_eq!(status, 400);
            assert_eq!(body["error"], "invalid_grant");
            assert_eq!(body["error_codes"], serde_json::json!([700082]));
        }
        let (status, body) = refresh_v1(&sim, &client, "not-a-token").await;
        assert_eq!(
            (status, body["error_codes"][0].as_u64()),
            (400, Some(70000))
        );
        assert_eq!(refresh_v1(&sim, &client, &latest).await.0, 200);
    }

    #[tokio::test]
    async fn wrong_secret_is_invalid_client() {
        let sim = start().await;
        let client = client();
        let creds = sim.credentials();
        let (status, body) = post_form(
            &client,
            &v1_url(&sim),
            &[
                ("resource", PC_RESOURCE),
                ("client_id", &creds.client_id),
                ("client_secret", "wrong-secret-value"),
                ("grant_type", "refresh_token"),
                ("refresh_token", &creds.refresh_token),
            ],
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(body["error_codes"], serde_json::json!([7000215]));
        let description = body["error_description"].as_str().unwrap();
        assert!(description.starts_with("AADSTS7000215: "), "{description}");
        assert!(!description.contains("wrong-secret-value"));
        for field in ["timestamp", "trace_id", "correlation_id"] {
            assert!(body[field].is_string(), "{field}");
        }
        assert_eq!(
            body["error_uri"],
            "https://login.microsoftonline.com/error?code=7000215"
        );
    }

    #[tokio::test]
    async fn password_grant_and_unknown_tenant() {
        let sim = start().await;
        let client = client();
        let creds = sim.credentials();
        let form = |password: &'static str| {
            let creds = creds.clone();
            move |password_value: String| {
                vec![
                    ("resource".to_owned(), PC_RESOURCE.to_owned()),
                    ("client_id".to_owned(), creds.client_id.clone()),
                    ("client_secret".to_owned(), creds.client_secret.clone()),
                    ("grant_type".to_owned(), "password".to_owned()),
                    ("username".to_owned(), creds.username.clone()),
                    (password.to_owned(), password_value),
                ]
            }
        };
        let good = form("password")(creds.password.clone());
        let resp = client.post(v1_url(&sim)).form(&good).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert!(body["refresh_token"].is_string());

        let bad = form("password")("nope".to_owned());
        let resp = client.post(v1_url(&sim)).form(&bad).send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (body["error"].as_str(), body["error_codes"][0].as_u64()),
            (Some("invalid_grant"), Some(50126))
        );

        let url = format!("{}/someone-else.onmicrosoft.com/oauth2/token", sim.url());
        let resp = client.post(url).form(&good).send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (body["error"].as_str(), body["error_codes"][0].as_u64()),
            (Some("invalid_request"), Some(90002))
        );
    }

    #[tokio::test]
    async fn token_faults() {
        let sim = start().await;
        let client = client();
        let initial = sim.credentials().refresh_token;
        let cases = [
            (TokenFault::Down, 503, None),
            (
                TokenFault::InvalidGrant,
                400,
                Some(("invalid_grant", 700082)),
            ),
            (
                TokenFault::InteractionRequired,
                400,
                Some(("interaction_required", 50076)),
            ),
            (
                TokenFault::InvalidClient,
                401,
                Some(("invalid_client", 7000215)),
            ),
            (
                TokenFault::TemporarilyUnavailable,
                503,
                Some(("temporarily_unavailable", 90033)),
            ),
        ];
        for (fault, status, error) in cases {
            sim.knobs().set_token_fault(fault);
            let (got, body) = refresh_v1(&sim, &client, &initial).await;
            assert_eq!(got, status, "{fault:?}");
            if let Some((error, code)) = error {
                assert_eq!(body["error"], error);
                assert_eq!(body["error_codes"][0].as_u64(), Some(code));
            }
        }
        sim.knobs().set_token_fault(TokenFault::None);
        assert_eq!(refresh_v1(&sim, &client, &initial).await.0, 200);
    }

    #[tokio::test]
    async fn app_only_tokens_list_customers_but_not_service_costs() {
        let sim = start().await;
        let client = client();
        let creds = sim.credentials();
        let body = app_grant(&sim, &client, PC_RESOURCE).await;
        assert!(body.get("refresh_token").is_none());
        let token = body["access_token"].as_str().unwrap();
        let resp = get(&client, &format!("{}/v1/customers", sim.url()), token).await;
        assert_eq!(resp.status(), 200);
        let resp = get(&client, &costs_url(&sim, DOCUMENTED_ID), token).await;
        assert_eq!(resp.status(), 403);
        let body: Value = resp.json().await.unwrap();
        assert!(body["description"].is_string() && body["code"].is_number());

        // v2 app-only needs `/.default`.
        let (status, body) = post_form(
            &client,
            &v2_url(&sim),
            &[
                (
                    "scope",
                    "https://api.partnercenter.microsoft.com/user_impersonation",
                ),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_scope"))
        );
    }

    #[tokio::test]
    async fn graph_audience_is_rejected_with_900420() {
        let sim = start().await;
        let client = client();
        let body = app_grant(&sim, &client, AAD_GRAPH).await;
        let token = body["access_token"].as_str().unwrap();
        let resp = get(&client, &format!("{}/v1/customers", sim.url()), token).await;
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "900420");
        assert!(body["description"]
            .as_str()
            .unwrap()
            .contains("graph.windows.net"));
    }

    #[test]
    fn forms_decode_leniently() {
        let form = Form::parse(b"a=1+2&b=%41%zz&c=&a=3&d");
        assert_eq!(form.get("a"), Some("1 2"));
        assert_eq!(form.get("b"), Some("A%zz"));
        assert_eq!(form.get("c"), None);
        assert_eq!(form.get("d"), None);
        let target = parse_v2_scope(
            "https://api.partnercenter.microsoft.com/user_impersonation offline_access",
        )
        .unwrap();
        assert!(is_pc_audience(&target.audience) && target.offline_access && !target.default_scope);
        assert!(parse_v2_scope("https://a.example/x https://b.example/y").is_err());
    }
}
