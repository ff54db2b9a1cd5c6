//! Secure serving: the exporter-toolkit web config with TLS and basic auth, tested
//! with real clients (reqwest with rustls, and a real Prometheus server); untrusted
//! customer names from Partner Center.

use partnercenter_exporter::simulator::{SimCosts, SimCustomer, SimDetail};
use testkit::certs::{client_config, dns, ip, Ca, Leaf};
use testkit::{promtool_check_metrics, run_to_exit, simulator, Prometheus, TestApp};

/// A CA, the exporter's certificate (for 127.0.0.1) and Prometheus's client
/// certificate, both issued by it.
struct Pki {
    ca: Ca,
    server: Leaf,
    client: Leaf,
}

fn pki() -> Pki {
    let ca = Ca::new("test CA");
    let server = ca.leaf(vec![ip([127, 0, 0, 1])]);
    let client = ca.leaf(vec![dns("prometheus")]);
    Pki { ca, server, client }
}

const USER: &str = "prometheus";
const PASSWORD: &str = "correct horse battery staple";

/// Writes the PKI files and a web config; returns the web config path.
fn web_config(dir: &std::path::Path, pki: &Pki, client_auth: &str) -> String {
    for (name, contents) in [
        ("ca.crt", &pki.ca.pem),
        ("server.crt", &pki.server.pem),
        ("server.key", &pki.server.key_pem),
        ("client.crt", &pki.client.pem),
        ("client.key", &pki.client.key_pem),
    ] {
        std::fs::write(dir.join(name), contents).unwrap();
    }
    let hash = bcrypt::hash(PASSWORD, 6).unwrap();
    let path = dir.join("web.yml");
    std::fs::write(
        &path,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: {client_auth}\n  client_ca_file: ca.crt\nbasic_auth_users:\n  {USER}: {hash}\nhttp_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn tls_client(pki: &Pki, with_client_cert: bool) -> reqwest::Client {
    let client_cert = with_client_cert.then_some(&pki.client);
    let config = client_config(&pki.ca, rustls::DEFAULT_VERSIONS, client_cert);
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .build()
        .unwrap()
}

#[tokio::test]
async fn https_with_basic_auth_is_scraped_by_a_real_prometheus() {
    let app = TestApp::demo();
    let pki = pki();
    let web = web_config(app.dir(), &pki, "VerifyClientCertIfGiven");
    let exporter = app.flag("--web.config.file", web).spawn_binary().await;
    let url = format!("https://{}/metrics", exporter.addr);
    let client = tls_client(&pki, false);

    let no_credentials = client.get(&url).send().await.unwrap();
    assert_eq!(no_credentials.status().as_u16(), 401);
    assert!(no_credentials.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    for (user, password) in [(USER, "wrong"), ("nobody", PASSWORD), ("nobody", "wrong")] {
        let r = client
            .get(&url)
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{user}");
    }
    let ok = client
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.headers()["x-content-type-options"], "nosniff");
    assert!(ok
        .text()
        .await
        .unwrap()
        .contains("partnercenter_exporter_build_info"));

    // Plain HTTP to the TLS port gets no metrics.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/metrics", exporter.addr))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await;
    if let Ok(r) = plain {
        let body = r.text().await.unwrap_or_default();
        assert!(
            !body.contains("partnercenter_"),
            "metrics served over plain HTTP"
        );
    }

    let prometheus = Prometheus::start(&format!(
        "  - job_name: partnercenter\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n    basic_auth:\n      username: {USER}\n      password: {PASSWORD}\n    static_configs:\n      - targets: ['{addr}']\n  - job_name: partnercenter-wrong-password\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n    basic_auth:\n      username: {USER}\n      password: wrong\n    static_configs:\n      - targets: ['{addr}']\n",
        ca = exporter.path("ca.crt").display(),
        addr = exporter.addr,
    ))
    .await;
    prometheus.wait_for("up{job=\"partnercenter\"}", "1").await;
    prometheus
        .wait_for("up{job=\"partnercenter-wrong-password\"}", "0")
        .await;
    let series = prometheus
        .wait_for(
            "count(partnercenter_customer_info{job=\"partnercenter\"}) > 0",
            "25",
        )
        .await;
    assert_eq!(series.len(), 1);
}

#[tokio::test]
async fn a_required_client_certificate_is_enforced() {
    let app = TestApp::demo();
    let pki = pki();
    let web = web_config(app.dir(), &pki, "RequireAndVerifyClientCert");
    let exporter = app.flag("--web.config.file", web).spawn_binary().await;
    let url = format!("https://{}/-/healthy", exporter.addr);
    let without = tls_client(&pki, false)
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await;
    assert!(
        without.is_err(),
        "handshake must fail without a client certificate"
    );
    let with = tls_client(&pki, true)
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(with.status().as_u16(), 200);
}

#[test]
fn an_invalid_web_config_stops_the_exporter_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    std::fs::write(
        &path,
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
    )
    .unwrap();
    let (code, stderr) = run_to_exit(["--demo", "--web.config.file", path.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cert_file"), "{stderr}");
    std::fs::write(&path, "basic_auth_users:\n  alice: not-a-bcrypt-hash\n").unwrap();
    let (code, stderr) = run_to_exit(["--demo", "--web.config.file", path.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("basic_auth_users"), "{stderr}");
}

#[tokio::test]
async fn untrusted_customer_names_are_escaped_everywhere() {
    let sim = simulator(2).await;
    let evil = "Evil \"Corp\" \\ <script>alert(1)</script>\nÜnïcödé 株式会社";
    sim.add_customer(SimCustomer {
        id: "00000000-0000-0000-0000-0000000000e1".into(),
        name: evil.into(),
        domain: "evil<b>.onmicrosoft.com".into(),
        costs: SimCosts::Generated(vec![SimDetail {
            invoice_type: "Recurring\"\n".into(),
            currency: "USD".into(),
            pretax: 10.0,
            tax: 1.0,
            billing_start: "2026-11-01T00:00:00Z".into(),
            billing_end: "2026-11-30T23:59:59.9999999Z".into(),
        }]),
    });
    let exporter = TestApp::with_simulator(sim).spawn_binary().await;
    let m = exporter.wait_for_polls(1.0).await;
    assert_eq!(
        m.get(
            "partnercenter_customer_info",
            &[
                ("customer_name", evil),
                ("domain", "evil<b>.onmicrosoft.com")
            ]
        ),
        Some(1.0),
        "the name round-trips through the exposition format"
    );
    assert_eq!(
        m.get(
            "partnercenter_service_costs_after_tax",
            &[("invoice_type", "Recurring\"\n")]
        ),
        Some(11.0)
    );
    let (_, landing) = exporter.get("/").await;
    assert!(!landing.contains("<script>alert(1)"), "{landing}");
    assert!(landing.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(landing.contains("Ünïcödé 株式会社"));
    assert!(!landing.contains("evil<b>"));
    // promtool agrees the exposition is valid with these names.
    promtool_check_metrics(&m.text);
}
