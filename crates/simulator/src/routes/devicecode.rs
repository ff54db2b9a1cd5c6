//! The AAD device code flow (docs/partner-center.md §9): the device code
//! endpoints `POST /{tenant}/oauth2/devicecode` (v1: `resource`, numbers as
//! strings, `verification_url`) and `POST /{tenant}/oauth2/v2.0/devicecode` (v2:
//! `scope`, numbers, `verification_uri`), and the device code grant of the token
//! endpoints that the client polls with. The "user" signs in by itself after
//! [`DeviceCodeKnobs::pending_polls`] polls, so tests need no browser; the other
//! knobs make the flow slow down, decline, expire, refuse the code, or behave as an
//! app registration without public client flows. Device code tokens belong to a
//! public client: a secret sent with a poll, or with the redemption of a refresh
//! token the flow issued, is refused with AADSTS700025.
//!
//! Every poll's arrival is recorded ([`DeviceFlows::polls`]) so that tests can
//! measure the client's gaps. It never sleeps: the client does the waiting.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::{Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};
use uuid::Uuid;

use super::aad::{self, Aad, AadVersion, Target};
use crate::codec::{aad_timestamp, read_form, Form};
use crate::server::{empty, no_store, Body};
use crate::state::Shared;
use crate::util::{lock, unix_now};

/// The v2 grant type of a device code poll (RFC 8628); v1 and MSAL.NET send
/// `device_code`, which v2 accepts too.
const DEVICE_CODE_URN: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Where the answer sends the user.
const VERIFICATION_URL: &str = "https://microsoft.com/devicelogin";

/// How the device code flow behaves, set with
/// [`Knobs::set_device_code`](crate::Knobs::set_device_code).
#[derive(Debug, Clone)]
pub struct DeviceCodeKnobs {
    /// Polls answered before the user has finished (`authorization_pending`, or
    /// `slow_down` for the first [`Self::slow_down_polls`]); the next poll gets
    /// [`Self::outcome`].
    pub pending_polls: u32,
    /// The first this many polls are answered `slow_down` (counted in
    /// [`Self::pending_polls`]).
    pub slow_down_polls: u32,
    /// The `interval` announced, in seconds (a string on v1).
    pub interval: u64,
    /// The `expires_in` announced, in seconds (a string on v1); polls after it get
    /// `expired_token`.
    pub expires_in: u64,
    /// The device code answer's body instead of the generated one (hostile answers).
    pub answer: Option<Value>,
    /// What the user does once the pending polls are over.
    pub outcome: DeviceOutcome,
    /// "Allow public client flows" in the app registration; off, every poll gets
    /// `invalid_client` AADSTS7000218.
    pub public_flows: bool,
}

impl Default for DeviceCodeKnobs {
    fn default() -> Self {
        DeviceCodeKnobs {
            pending_polls: 1,
            slow_down_polls: 0,
            interval: 1,
            expires_in: 900,
            answer: None,
            outcome: DeviceOutcome::SignedIn,
            public_flows: true,
        }
    }
}

/// What the simulated user does with the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceOutcome {
    /// Signs in: the poll gets tokens.
    #[default]
    SignedIn,
    /// Refuses: `authorization_declined`.
    Declined,
    /// Never comes back: `expired_token`.
    Expired,
    /// The code is not recognised: `bad_verification_code`.
    BadCode,
}

/// The device codes handed out, and every poll's arrival.
#[derive(Default)]
pub(crate) struct DeviceFlows {
    flows: HashMap<String, Flow>,
    /// When each poll arrived, in order.
    pub(crate) polls: Vec<Instant>,
}

struct Flow {
    target: Target,
    expires_at: Instant,
    polls: u32,
}

/// Whether a token request's grant is the device code grant (either spelling).
pub(super) fn is_device_grant(grant_type: &str) -> bool {
    grant_type == "device_code" || grant_type == DEVICE_CODE_URN
}

/// The public-client rules of a device code poll or of the redemption of a
/// device-code-born refresh token: no secret (AADSTS700025), and public client
/// flows allowed (AADSTS7000218).
pub(super) fn public_client_check(aad: &Aad<'_>, form: &Form) -> Option<Response<Body>> {
    if form.get("client_secret").is_some() || form.get("client_assertion").is_some() {
        return Some(aad.error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700_025,
            "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
        ));
    }
    if !aad.shared.knobs.device_code().public_flows {
        return Some(aad.error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    }
    None
}

/// `POST /{tenant}/oauth2/devicecode` and `POST /{tenant}/oauth2/v2.0/devicecode`.
pub(crate) async fn device_code(
    shared: &Shared,
    tenant: &str,
    version: AadVersion,
    body: Incoming,
) -> Response<Body> {
    let aad = Aad {
        shared,
        correlation_id: Uuid::new_v4().to_string(),
    };
    if !tenant.eq_ignore_ascii_case(&shared.creds.tenant) {
        return aad.error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90_002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    }
    let form = match read_form(body).await {
        Ok(form) => form,
        Err(status) => return empty(status),
    };
    if let Err(resp) = aad.known_client(&form) {
        return *resp;
    }
    let target = match version {
        AadVersion::V1 => match form.get("resource") {
            Some(resource) => Target {
                audience: resource.to_owned(),
                scope: "user_impersonation".to_owned(),
                openid: false,
                offline_access: true,
                default_scope: false,
            },
            None => return aad.missing("resource"),
        },
        AadVersion::V2 => match form.get("scope").map(aad::parse_v2_scope) {
            Some(Ok(target)) => target,
            Some(Err(message)) => {
                return aad.error(StatusCode::BAD_REQUEST, "invalid_scope", 28_000, &message)
            }
            None => return aad.missing("scope"),
        },
    };
    let knobs = shared.knobs.device_code();
    let device_code = format!(
        "DAQABAAEAAAD{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    );
    let user_code: String = Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .filter(char::is_ascii_alphabetic)
        .chain("KXQWZRTPM".chars())
        .take(9)
        .collect::<String>()
        .to_ascii_uppercase();
    {
        let mut store = lock(&shared.tokens);
        store.secrets.push(device_code.clone());
        store.device.flows.insert(
            device_code.clone(),
            Flow {
                target,
                expires_at: Instant::now() + Duration::from_secs(knobs.expires_in),
                polls: 0,
            },
        );
    }
    let message = format!(
        "To sign in, use a web browser to open the page {VERIFICATION_URL} and enter the code {user_code} to authenticate."
    );
    let body = match (knobs.answer, version) {
        (Some(answer), _) => answer,
        (None, AadVersion::V1) => json!({
            "user_code": user_code,
            "device_code": device_code,
            "verification_url": VERIFICATION_URL,
            "expires_in": knobs.expires_in.to_string(),
            "interval": knobs.interval.to_string(),
            "message": message,
        }),
        (None, AadVersion::V2) => json!({
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": VERIFICATION_URL,
            "expires_in": knobs.expires_in,
            "interval": knobs.interval,
            "message": message,
        }),
    };
    let mut resp = shared.json(StatusCode::OK, &body);
    no_store(&mut resp);
    resp
}

/// A token request with the device code grant (the public-client rules already
/// checked): pending, slow down, the user's outcome, or the tokens.
pub(super) fn poll(aad: &Aad<'_>, version: AadVersion, form: &Form) -> Response<Body> {
    let shared = aad.shared;
    // v1 sends the device code as `code`, v2 as `device_code`.
    let code = match version {
        AadVersion::V1 => form.get("code").or_else(|| form.get("device_code")),
        AadVersion::V2 => form.get("device_code"),
    };
    let Some(code) = code else {
        return aad.missing(match version {
            AadVersion::V1 => "code",
            AadVersion::V2 => "device_code",
        });
    };
    let knobs = shared.knobs.device_code();
    let mut store = lock(&shared.tokens);
    store.device.polls.push(Instant::now());
    let Some(flow) = store.device.flows.get_mut(code) else {
        drop(store);
        return device_error(
            aad,
            "bad_verification_code",
            Some(70_018),
            "The provided value for the input parameter 'device_code' is not valid.",
        );
    };
    flow.polls += 1;
    let n = flow.polls;
    if Instant::now() >= flow.expires_at {
        store.device.flows.remove(code);
        drop(store);
        return device_error(
            aad,
            "expired_token",
            Some(70_019),
            "Verification code expired.",
        );
    }
    if n <= knobs.slow_down_polls {
        drop(store);
        return device_error(
            aad,
            "slow_down",
            None,
            "The client is polling too quickly; wait 5 seconds longer between requests.",
        );
    }
    if n <= knobs.pending_polls {
        drop(store);
        return device_error(aad, "authorization_pending", Some(70_016), "The provided request has not yet been authorized by the user. The user must input their code.");
    }
    let Some(flow) = store.device.flows.remove(code) else {
        return empty(StatusCode::INTERNAL_SERVER_ERROR);
    };
    drop(store);
    match knobs.outcome {
        DeviceOutcome::SignedIn => {
            let with_refresh = version == AadVersion::V1 || flow.target.offline_access;
            aad::answer(shared, version, flow.target, false, with_refresh, true)
        }
        DeviceOutcome::Declined => device_error(
            aad,
            "authorization_declined",
            None,
            "The end user denied the authorization request.",
        ),
        DeviceOutcome::Expired => device_error(
            aad,
            "expired_token",
            Some(70_019),
            "Verification code expired.",
        ),
        DeviceOutcome::BadCode => device_error(
            aad,
            "bad_verification_code",
            Some(70_018),
            "The provided value for the input parameter 'device_code' is not valid.",
        ),
    }
}

/// A device flow error: AAD's error shape, with an AADSTS number only where
/// Microsoft documents one.
fn device_error(aad: &Aad<'_>, error: &str, code: Option<u32>, message: &str) -> Response<Body> {
    let trace_id = Uuid::new_v4().to_string();
    let timestamp = aad_timestamp(unix_now());
    let description = match code {
        Some(code) => format!("AADSTS{code}: {message}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {}\r\nTimestamp: {timestamp}", aad.correlation_id),
        None => format!("{message}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {}\r\nTimestamp: {timestamp}", aad.correlation_id),
    };
    let body = json!({
        "error": error,
        "error_description": description,
        "error_codes": code.map_or_else(Vec::new, |c| vec![c]),
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": aad.correlation_id,
    });
    let mut resp = aad.shared.json(StatusCode::BAD_REQUEST, &body);
    no_store(&mut resp);
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::test_util::{client, post_form, start, v1_url, v2_url};

    const V2_SCOPE: &str =
        "https://api.partnercenter.microsoft.com/user_impersonation offline_access";

    async fn begin_v1(sim: &crate::Simulator, c: &reqwest::Client) -> Value {
        let creds = sim.credentials();
        let url = format!("{}/{}/oauth2/devicecode", sim.url(), creds.tenant);
        let (status, body) = post_form(
            c,
            &url,
            &[("client_id", &creds.client_id), ("resource", PC)],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    const PC: &str = "https://api.partnercenter.microsoft.com";

    #[tokio::test]
    async fn devicecode_v1_strings_pending_then_tokens_then_public_refresh() {
        let sim = start().await;
        let c = client();
        let creds = sim.credentials();
        let answer = begin_v1(&sim, &c).await;
        assert_eq!(answer["interval"], "1");
        assert_eq!(answer["expires_in"], "900");
        assert!(answer["verification_url"].is_string());
        let code = answer["device_code"].as_str().unwrap();
        let form = [
            ("grant_type", "device_code"),
            ("client_id", creds.client_id.as_str()),
            ("resource", PC),
            ("code", code),
        ];
        let (status, body) = post_form(&c, &v1_url(&sim), &form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("authorization_pending"))
        );
        let (status, body) = post_form(&c, &v1_url(&sim), &form).await;
        assert_eq!(status, 200, "{body}");
        let refresh = body["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(sim.device_code_polls().len(), 2);
        assert_eq!(sim.stats().devicecode, 1);

        // The device code is used up.
        let (_, body) = post_form(&c, &v1_url(&sim), &form).await;
        assert_eq!(body["error"], "bad_verification_code");

        // A public client's refresh token: with a secret 700025, without it works.
        let mut with_secret = vec![
            ("grant_type", "refresh_token"),
            ("client_id", creds.client_id.as_str()),
            ("resource", PC),
            ("refresh_token", refresh.as_str()),
        ];
        let without = with_secret.clone();
        with_secret.push(("client_secret", creds.client_secret.as_str()));
        let (status, body) = post_form(&c, &v1_url(&sim), &with_secret).await;
        assert_eq!(status, 401);
        assert_eq!(body["error_codes"][0], 700_025);
        let (status, body) = post_form(&c, &v1_url(&sim), &without).await;
        assert_eq!(status, 200, "{body}");
        // Its rotated token is a public client's too.
        let rotated = body["refresh_token"].as_str().unwrap();
        assert!(sim.shared.is_public_refresh(rotated));
    }

    #[tokio::test]
    async fn devicecode_v2_numbers_slow_down_and_outcomes() {
        let sim = start().await;
        let c = client();
        let creds = sim.credentials();
        let url = format!("{}/{}/oauth2/v2.0/devicecode", sim.url(), creds.tenant);
        sim.knobs().set_device_code(DeviceCodeKnobs {
            pending_polls: 2,
            slow_down_polls: 1,
            ..Default::default()
        });
        let (status, answer) = post_form(
            &c,
            &url,
            &[("client_id", &creds.client_id), ("scope", V2_SCOPE)],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(answer["interval"], 1);
        assert!(answer["verification_uri"].is_string());
        let code = answer["device_code"].as_str().unwrap();
        let form = [
            ("grant_type", DEVICE_CODE_URN),
            ("client_id", creds.client_id.as_str()),
            ("device_code", code),
        ];
        let errors: Vec<Value> = [
            post_form(&c, &v2_url(&sim), &form).await.1["error"].clone(),
            post_form(&c, &v2_url(&sim), &form).await.1["error"].clone(),
        ]
        .into();
        assert_eq!(errors, [json!("slow_down"), json!("authorization_pending")]);
        let (status, body) = post_form(&c, &v2_url(&sim), &form).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["refresh_token"].is_string());

        for (knobs, error) in [
            (DeviceOutcome::Declined, "authorization_declined"),
            (DeviceOutcome::Expired, "expired_token"),
            (DeviceOutcome::BadCode, "bad_verification_code"),
        ] {
            sim.knobs().set_device_code(DeviceCodeKnobs {
                pending_polls: 0,
                outcome: knobs,
                ..Default::default()
            });
            let (_, answer) = post_form(
                &c,
                &url,
                &[("client_id", &creds.client_id), ("scope", V2_SCOPE)],
            )
            .await;
            let code = answer["device_code"].as_str().unwrap();
            let form = [
                ("grant_type", "device_code"),
                ("client_id", creds.client_id.as_str()),
                ("device_code", code),
            ];
            let (status, body) = post_form(&c, &v2_url(&sim), &form).await;
            assert_eq!((status, body["error"].as_str()), (400, Some(error)));
        }
    }

    #[tokio::test]
    async fn devicecode_public_client_rules() {
        let sim = start().await;
        let c = client();
        let creds = sim.credentials();
        let answer = begin_v1(&sim, &c).await;
        let code = answer["device_code"].as_str().unwrap();
        let mut form = vec![
            ("grant_type", "device_code"),
            ("client_id", creds.client_id.as_str()),
            ("resource", PC),
            ("code", code),
        ];
        sim.knobs().set_device_code(DeviceCodeKnobs {
            public_flows: false,
            ..Default::default()
        });
        let (status, body) = post_form(&c, &v1_url(&sim), &form).await;
        assert_eq!((status, &body["error_codes"][0]), (401, &json!(7_000_218)));
        sim.knobs().set_device_code(DeviceCodeKnobs::default());
        form.push(("client_secret", creds.client_secret.as_str()));
        let (status, body) = post_form(&c, &v1_url(&sim), &form).await;
        assert_eq!((status, &body["error_codes"][0]), (401, &json!(700_025)));
        // A confidential client's refresh token still needs its secret.
        let (status, body) = post_form(
            &c,
            &v1_url(&sim),
            &[
                ("grant_type", "refresh_token"),
                ("client_id", creds.client_id.as_str()),
                ("resource", PC),
                ("refresh_token", creds.refresh_token.as_str()),
            ],
        )
        .await;
        assert_eq!((status, &body["error_codes"][0]), (401, &json!(7_000_218)));
    }
}
