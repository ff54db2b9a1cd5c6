//! The access and refresh tokens the simulator issues ([`TokenStore`]), the
//! checks of tokens presented to it, and the bearer check of Partner Center API
//! requests (docs/partner-center.md §1: audiences, token lifetimes, refresh-token
//! rotation and revocation).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use http::{HeaderMap, Response};
use serde_json::Value;
use uuid::Uuid;

use crate::server::Body;
use crate::state::Shared;
use crate::util::{header_str, lock};

/// The Partner Center resource (audience), docs/partner-center.md §1.
pub(crate) const PC_RESOURCE: &str = "https://api.partnercenter.microsoft.com";
/// The Partner Center resource app id, accepted as an audience too.
pub(crate) const PC_APP_ID: &str = "fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd";
/// The old AAD Graph audience, accepted only by the legacy `/generatetoken`.
pub(crate) const AAD_GRAPH: &str = "https://graph.windows.net";

/// Every token issued, numbered in the order of issue (`seq`) so that the ones
/// issued before a point can be revoked or expired at once.
pub(crate) struct TokenStore {
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, u64>,
    next_seq: u64,
    /// Access tokens numbered below this are expired.
    access_cutoff: u64,
    /// Refresh tokens numbered below this are revoked.
    refresh_cutoff: u64,
    latest_refresh_seq: u64,
    redeemed_codes: HashSet<String>,
    /// Refresh tokens issued to a public client (the device code flow): their
    /// redemptions must come without a client secret.
    pub(crate) public_refresh: HashSet<String>,
    /// The device codes handed out and the polls made with them.
    pub(crate) device: crate::routes::devicecode::DeviceFlows,
    /// Every access and refresh token issued, for leak tests.
    pub(crate) secrets: Vec<String>,
}

#[derive(Clone)]
pub(crate) struct AccessToken {
    seq: u64,
    expires_at: Instant,
    pub(crate) audience: String,
    pub(crate) app_only: bool,
    pub(crate) kind: TokenKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Aad,
    PartnerCenter,
}

enum AccessCheck {
    Valid(AccessToken),
    Expired,
    Unknown,
}

pub(crate) enum RefreshCheck {
    Valid,
    Revoked,
    Unknown,
}

/// Who is calling a Partner Center API route.
pub(crate) struct Principal {
    pub(crate) app_only: bool,
}

impl TokenStore {
    /// A store that knows only the initial refresh token (numbered 0).
    pub(crate) fn new(initial_refresh: String) -> Self {
        Self {
            access: HashMap::new(),
            refresh: HashMap::from([(initial_refresh.clone(), 0)]),
            next_seq: 1,
            access_cutoff: 0,
            refresh_cutoff: 0,
            latest_refresh_seq: 0,
            redeemed_codes: HashSet::new(),
            public_refresh: HashSet::new(),
            device: Default::default(),
            secrets: vec![initial_refresh],
        }
    }

    /// From now on only the newest issued refresh token is accepted.
    pub(crate) fn revoke_refresh_except_latest(&mut self) {
        self.refresh_cutoff = self.latest_refresh_seq;
    }

    /// Every access token issued so far is expired from now on.
    pub(crate) fn expire_access(&mut self) {
        self.access_cutoff = self.next_seq;
    }
}

impl Shared {
    pub(crate) fn issue_access(
        &self,
        audience: &str,
        app_only: bool,
        kind: TokenKind,
    ) -> (String, Duration) {
        let lifetime = self.knobs.access_token_lifetime();
        let token = new_access_token();
        let mut store = lock(&self.tokens);
        let seq = store.next_seq;
        store.next_seq += 1;
        store.access.insert(
            token.clone(),
            AccessToken {
                seq,
                expires_at: Instant::now() + lifetime,
                audience: normalize_audience(audience),
                app_only,
                kind,
            },
        );
        store.secrets.push(token.clone());
        (token, lifetime)
    }

    pub(crate) fn issue_refresh(&self) -> String {
        let token = new_refresh_token();
        let mut store = lock(&self.tokens);
        let seq = store.next_seq;
        store.next_seq += 1;
        store.latest_refresh_seq = seq;
        store.refresh.insert(token.clone(), seq);
        store.secrets.push(token.clone());
        token
    }

    /// Whether this refresh token was issued to a public client.
    pub(crate) fn is_public_refresh(&self, token: &str) -> bool {
        lock(&self.tokens).public_refresh.contains(token)
    }

    /// Marks a refresh token as issued to a public client.
    pub(crate) fn mark_public_refresh(&self, token: &str) {
        lock(&self.tokens).public_refresh.insert(token.to_owned());
    }

    pub(crate) fn check_refresh(&self, token: &str) -> RefreshCheck {
        let store = lock(&self.tokens);
        match store.refresh.get(token) {
            Some(&seq) if seq >= store.refresh_cutoff => RefreshCheck::Valid,
            Some(_) => RefreshCheck::Revoked,
            None => RefreshCheck::Unknown,
        }
    }

    fn check_access(&self, token: &str) -> AccessCheck {
        let store = lock(&self.tokens);
        match store.access.get(token) {
            None => AccessCheck::Unknown,
            Some(t) if t.seq < store.access_cutoff || Instant::now() >= t.expires_at => {
                AccessCheck::Expired
            }
            Some(t) => AccessCheck::Valid(t.clone()),
        }
    }

    /// Redeems an authorization code once; false if it was redeemed before.
    pub(crate) fn redeem_code(&self, code: &str) -> bool {
        lock(&self.tokens).redeemed_codes.insert(code.to_owned())
    }

    /// The valid token of the `Authorization: Bearer` header; the error is the 401
    /// to send when it is missing, unknown or expired.
    pub(crate) fn bearer_token(
        &self,
        headers: &HeaderMap,
    ) -> Result<AccessToken, Box<Response<Body>>> {
        let Some(token) = bearer(headers) else {
            return Err(Box::new(self.unauthorized(
                Value::from(800_001),
                "Partner Token missing in request context.",
            )));
        };
        match self.check_access(token) {
            AccessCheck::Unknown => Err(Box::new(self.unauthorized(
                Value::from(400),
                "Access denied: the bearer token is not valid.",
            ))),
            AccessCheck::Expired => Err(Box::new(self.unauthorized(
                Value::from(400),
                "Access denied: the bearer token has expired.",
            ))),
            AccessCheck::Valid(t) => Ok(t),
        }
    }

    /// The 401 for a token issued for another audience than Partner Center
    /// (docs/partner-center.md §1: code 900420).
    pub(crate) fn invalid_audience(&self, audience: &str) -> Response<Body> {
        self.unauthorized(
            Value::from("900420"),
            &format!(
                "The audience '{audience}' in the token is invalid and is no longer supported in Partner Center API."
            ),
        )
    }

    /// Checks the bearer token of a Partner Center API request.
    pub(crate) fn authorize(&self, headers: &HeaderMap) -> Result<Principal, Box<Response<Body>>> {
        let token = self.bearer_token(headers)?;
        if !is_pc_audience(&token.audience) {
            return Err(Box::new(self.invalid_audience(&token.audience)));
        }
        Ok(Principal {
            app_only: token.app_only,
        })
    }
}

/// The token of an `Authorization: Bearer …` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header_str(headers, "authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// An audience as stored and compared: without blanks or a trailing slash.
pub(crate) fn normalize_audience(audience: &str) -> String {
    audience.trim().trim_end_matches('/').to_owned()
}

/// The Partner Center resource, by URI or app id.
pub(crate) fn is_pc_audience(audience: &str) -> bool {
    let audience = audience.trim().trim_end_matches('/');
    audience.eq_ignore_ascii_case(PC_RESOURCE) || audience.eq_ignore_ascii_case(PC_APP_ID)
}

/// A new access token, JWT-shaped but opaque.
fn new_access_token() -> String {
    format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.sim{}.{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    )
}

/// A new refresh token, shaped like AAD's.
pub(crate) fn new_refresh_token() -> String {
    format!(
        "0.AXsim{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::synthetic::DOCUMENTED_ID;
    use crate::test_util::*;

    #[tokio::test]
    async fn expired_access_tokens_get_401() {
        let (sim, client, token) = signed_in().await;
        let url = costs_url(&sim, DOCUMENTED_ID);
        assert_eq!(get(&client, &url, &token).await.status(), 200);
        sim.expire_access_tokens();
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["code"].is_number() && body["description"].as_str().unwrap().contains("expired")
        );
        let fresh = user_token(&sim, &client).await;
        assert_eq!(get(&client, &url, &fresh).await.status(), 200);

        sim.knobs()
            .set_access_token_lifetime(Duration::from_millis(300));
        let short = user_token(&sim, &client).await;
        assert_eq!(get(&client, &url, &short).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(get(&client, &url, &short).await.status(), 401);
    }
}
