//! The legacy exchange of an AAD token for a Partner Center one,
//! `POST /generatetoken` and `POST /v3/generatetoken` (docs/partner-center.md §1).
//! It is an authentication route: only the latency knob applies to it.

use http::{HeaderMap, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::Value;

use crate::codec::read_form;
use crate::server::{empty, Body};
use crate::state::Shared;
use crate::tokens::{is_pc_audience, TokenKind, AAD_GRAPH, PC_RESOURCE};

#[derive(Serialize)]
struct GeneratedToken {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// `POST /generatetoken` (`v3 == false`) and `POST /v3/generatetoken`.
pub(crate) async fn generate_token(
    shared: &Shared,
    v3: bool,
    headers: &HeaderMap,
    body: Incoming,
) -> Response<Body> {
    let aad_token = match shared.bearer_token(headers) {
        Ok(token) => token,
        Err(resp) => return *resp,
    };
    if aad_token.kind != TokenKind::Aad {
        return shared.unauthorized(
            Value::from(400),
            "Access denied: only Azure AD tokens can be exchanged.",
        );
    }
    let audience_ok = is_pc_audience(&aad_token.audience)
        || (!v3 && aad_token.audience.eq_ignore_ascii_case(AAD_GRAPH));
    if !audience_ok {
        return shared.invalid_audience(&aad_token.audience);
    }
    let form = match read_form(body).await {
        Ok(form) => form,
        Err(status) => return empty(status),
    };
    if form.get("grant_type") != Some("jwt_token") {
        return shared.pc_error(
            StatusCode::BAD_REQUEST,
            Value::from(400),
            "grant_type must be jwt_token.",
        );
    }
    let (access_token, lifetime) =
        shared.issue_access(PC_RESOURCE, aad_token.app_only, TokenKind::PartnerCenter);
    shared.json(
        StatusCode::OK,
        &GeneratedToken {
            access_token,
            token_type: "Bearer",
            expires_in: lifetime.as_secs(),
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::synthetic::DOCUMENTED_ID;
    use crate::test_util::*;

    #[tokio::test]
    async fn generatetoken_exchanges_an_aad_token() {
        let sim = start().await;
        let client = client();
        let aad = user_token(&sim, &client).await;
        let url = format!("{}/v3/generatetoken", sim.url());
        let resp = client
            .post(&url)
            .bearer_auth(&aad)
            .form(&[("grant_type", "jwt_token")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], Value::from(3600));
        let pc = body["access_token"].as_str().unwrap().to_owned();
        assert_ne!(pc, aad);
        assert_eq!(
            get(&client, &costs_url(&sim, DOCUMENTED_ID), &pc)
                .await
                .status(),
            200
        );

        let no_auth = client
            .post(&url)
            .form(&[("grant_type", "jwt_token")])
            .send()
            .await
            .unwrap();
        assert_eq!(no_auth.status(), 401);
        let again = client
            .post(format!("{}/generatetoken", sim.url()))
            .bearer_auth(&pc)
            .form(&[("grant_type", "jwt_token")])
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 401);
        let wrong_grant = client
            .post(&url)
            .bearer_auth(&aad)
            .form(&[("grant_type", "password")])
            .send()
            .await
            .unwrap();
        assert_eq!(wrong_grant.status(), 400);
        assert_eq!(sim.stats().generatetoken, 4);
    }
}
