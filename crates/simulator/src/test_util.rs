//! What the tests of every module share: a client, a started simulator, tokens
//! and the URLs of the routes, the walk along `links.next`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

use crate::tokens::PC_RESOURCE;
use crate::{SimCosts, SimCustomer, Simulator, SimulatorConfig};

pub(crate) fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub(crate) async fn start() -> Simulator {
    Simulator::start(SimulatorConfig::default()).await.unwrap()
}

pub(crate) fn v1_url(sim: &Simulator) -> String {
    format!("{}/{}/oauth2/token", sim.url(), sim.credentials().tenant)
}

pub(crate) fn v2_url(sim: &Simulator) -> String {
    format!(
        "{}/{}/oauth2/v2.0/token",
        sim.url(),
        sim.credentials().tenant
    )
}

pub(crate) async fn post_form(
    client: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let resp = client.post(url).form(form).send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A v1 refresh-token grant; returns the whole response.
pub(crate) async fn refresh_v1(
    sim: &Simulator,
    client: &reqwest::Client,
    refresh_token: &str,
) -> (u16, Value) {
    let creds = sim.credentials();
    post_form(
        client,
        &v1_url(sim),
        &[
            ("resource", PC_RESOURCE),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("scope", "openid"),
        ],
    )
    .await
}

pub(crate) async fn user_token(sim: &Simulator, client: &reqwest::Client) -> String {
    let (status, body) = refresh_v1(sim, client, &sim.credentials().refresh_token).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// A started simulator, a client and an App+User access token.
pub(crate) async fn signed_in() -> (Simulator, reqwest::Client, String) {
    let sim = start().await;
    let client = client();
    let token = user_token(&sim, &client).await;
    (sim, client, token)
}

pub(crate) async fn get(client: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    client.get(url).bearer_auth(token).send().await.unwrap()
}

pub(crate) fn costs_url(sim: &Simulator, id: &str) -> String {
    format!("{}/v1/customers/{id}/servicecosts/MostRecent", sim.url())
}

pub(crate) fn generated(sim: &Simulator) -> SimCustomer {
    sim.customers()
        .into_iter()
        .find(|c| matches!(c.costs, SimCosts::Generated(_)))
        .unwrap()
}

pub(crate) fn no_data(sim: &Simulator) -> SimCustomer {
    let mut found: Vec<SimCustomer> = sim
        .customers()
        .into_iter()
        .filter(|c| c.costs == SimCosts::NoData)
        .collect();
    assert_eq!(found.len(), 1);
    found.remove(0)
}

/// Follows `links.next` from `first` (a path); returns every page and the
/// next-link URIs seen. Each page is checked to be a Collection.
pub(crate) async fn walk_pages(
    sim: &Simulator,
    client: &reqwest::Client,
    token: &str,
    first: &str,
) -> (Vec<Value>, Vec<String>) {
    let mut pages = Vec::new();
    let mut next_uris = Vec::new();
    let mut request = client.get(format!("{}{first}", sim.url()));
    loop {
        let resp = request.bearer_auth(token).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let page: Value = resp.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert_eq!(page["totalCount"].as_u64(), Some(items.len() as u64));
        assert_eq!(page["attributes"]["objectType"], "Collection");
        let next = page["links"].get("next").cloned();
        pages.push(page);
        let Some(next) = next else {
            break;
        };
        assert_eq!(next["method"], "GET");
        let uri = next["uri"].as_str().unwrap().to_owned();
        let url = match uri.strip_prefix("/v1/") {
            Some(rest) => format!("{}/v1/{rest}", sim.url()),
            None => format!("{}/v1/{uri}", sim.url()),
        };
        next_uris.push(uri);
        request = client.get(url);
        for h in next["headers"].as_array().unwrap() {
            request = request.header(h["key"].as_str().unwrap(), h["value"].as_str().unwrap());
        }
    }
    (pages, next_uris)
}

/// A v1 client-credentials grant for `resource`: the answer, checked to be 200.
pub(crate) async fn app_grant(sim: &Simulator, client: &reqwest::Client, resource: &str) -> Value {
    let creds = sim.credentials();
    let (status, body) = post_form(
        client,
        &v1_url(sim),
        &[
            ("resource", resource),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
            ("grant_type", "client_credentials"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// An app-only Partner Center access token.
pub(crate) async fn app_token(sim: &Simulator, client: &reqwest::Client) -> String {
    let body = app_grant(sim, client, PC_RESOURCE).await;
    body["access_token"].as_str().unwrap().to_owned()
}
