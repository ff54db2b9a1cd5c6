//! Real handshakes over loopback against the acceptor a web config builds:
//! client authentication modes, versions, suites and certificate reloading.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::SupportedProtocolVersion;
use testkit::certs::{self, dns, Ca, Leaf, SanType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use web_config::TlsAcceptorSource;

use crate::pki::Fixture;

/// Longer than the acceptor's one-second interval between looks at the files.
const RELOAD_WAIT: Duration = Duration::from_millis(1200);

/// A client that trusts `ca`, speaks `versions`, offers h2 and http/1.1 (the
/// acceptor must pick http/1.1) and presents `client_cert` when given.
fn client_config(
    ca: &Ca,
    versions: &[&'static SupportedProtocolVersion],
    client_cert: Option<&Leaf>,
) -> rustls::ClientConfig {
    let mut config = certs::client_config(ca, versions, client_cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

struct Outcome {
    server_cert: CertificateDer<'static>,
    suite: rustls::CipherSuite,
}

/// One connection: handshake, the server sends "hello" and closes. Ok only if
/// both sides succeed.
async fn handshake(
    source: &TlsAcceptorSource,
    client: rustls::ClientConfig,
) -> Result<Outcome, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = source.acceptor();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor
            .accept(tcp)
            .await
            .map_err(|e| format!("server handshake: {e}"))?;
        tls.write_all(b"hello")
            .await
            .map_err(|e| format!("server write: {e}"))?;
        tls.shutdown()
            .await
            .map_err(|e| format!("server shutdown: {e}"))?;
        Ok::<(), String>(())
    });
    let client = async move {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut tls = TlsConnector::from(Arc::new(client))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("client handshake: {e}"))?;
        let mut received = Vec::new();
        tls.read_to_end(&mut received)
            .await
            .map_err(|e| format!("client read: {e}"))?;
        if received != b"hello" {
            return Err(format!("client read {received:?}"));
        }
        let (_, connection) = tls.get_ref();
        assert_eq!(connection.alpn_protocol(), Some(&b"http/1.1"[..]));
        Ok(Outcome {
            server_cert: connection.peer_certificates().unwrap()[0].clone(),
            suite: connection.negotiated_cipher_suite().unwrap().suite(),
        })
    };
    let limit = Duration::from_secs(10);
    let client = tokio::time::timeout(limit, client)
        .await
        .map_err(|_| "client timed out".to_owned())?;
    let server = tokio::time::timeout(limit, server)
        .await
        .map_err(|_| "server timed out".to_owned())?
        .unwrap();
    server?;
    client
}

#[tokio::test]
async fn tls_without_client_auth() {
    let fx = Fixture::new();
    let source = fx.tls("");
    let outcome = handshake(&source, client_config(&fx.ca, BOTH, None))
        .await
        .unwrap();
    assert_eq!(outcome.server_cert, fx.server.der);
    // A client certificate is not asked for, so one offered is harmless.
    let client = fx.ca.leaf(vec![dns("client.example")]);
    handshake(&source, client_config(&fx.ca, BOTH, Some(&client)))
        .await
        .unwrap();
}

#[tokio::test]
async fn require_and_verify_client_cert() {
    let fx = Fixture::new();
    let source =
        fx.tls("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n");
    let client = fx.ca.leaf(vec![dns("client.example")]);
    handshake(&source, client_config(&fx.ca, BOTH, Some(&client)))
        .await
        .unwrap();
    for versions in [BOTH, &[&rustls::version::TLS12][..]] {
        let err = handshake(&source, client_config(&fx.ca, versions, None)).await;
        let err = err.err().expect("a client without a certificate got in");
        assert!(err.contains("peer sent no certificates"), "{err}");
    }
    let stranger = Ca::new("other CA").leaf(vec![dns("client.example")]);
    let err = handshake(&source, client_config(&fx.ca, BOTH, Some(&stranger))).await;
    assert!(err.is_err(), "a certificate from another CA got in");
}

#[tokio::test]
async fn require_any_client_cert_accepts_any_issuer_but_needs_one() {
    let fx = Fixture::new();
    let source = fx.tls("  client_auth_type: RequireAnyClientCert\n");
    let stranger = Ca::new("other CA").leaf(vec![dns("client.example")]);
    handshake(&source, client_config(&fx.ca, BOTH, Some(&stranger)))
        .await
        .unwrap();
    assert!(handshake(&source, client_config(&fx.ca, BOTH, None))
        .await
        .is_err());
}

#[tokio::test]
async fn verify_client_cert_if_given() {
    let fx = Fixture::new();
    let source = fx.tls("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n");
    handshake(&source, client_config(&fx.ca, BOTH, None))
        .await
        .unwrap();
    let good = fx.ca.leaf(vec![dns("client.example")]);
    handshake(&source, client_config(&fx.ca, BOTH, Some(&good)))
        .await
        .unwrap();
    let stranger = Ca::new("other CA").leaf(vec![dns("client.example")]);
    assert!(
        handshake(&source, client_config(&fx.ca, BOTH, Some(&stranger)))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn client_allowed_sans() {
    let fx = Fixture::new();
    let source = fx.tls(
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
         client_allowed_sans: [prometheus.example, 10.0.0.7]\n",
    );
    let by_dns = fx.ca.leaf(vec![dns("prometheus.example")]);
    handshake(&source, client_config(&fx.ca, BOTH, Some(&by_dns)))
        .await
        .unwrap();
    let by_ip = fx
        .ca
        .leaf(vec![SanType::IpAddress("10.0.0.7".parse().unwrap())]);
    handshake(&source, client_config(&fx.ca, BOTH, Some(&by_ip)))
        .await
        .unwrap();
    let other = fx.ca.leaf(vec![dns("grafana.example")]);
    assert!(
        handshake(&source, client_config(&fx.ca, BOTH, Some(&other)))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn min_version_tls13_refuses_tls12_client() {
    let fx = Fixture::new();
    let source = fx.tls("  min_version: TLS13\n");
    let tls12_only = client_config(&fx.ca, &[&rustls::version::TLS12], None);
    assert!(handshake(&source, tls12_only).await.is_err());
    let tls13_only = client_config(&fx.ca, &[&rustls::version::TLS13], None);
    handshake(&source, tls13_only).await.unwrap();
}

#[tokio::test]
async fn cipher_suites_restrict_tls12() {
    let fx = Fixture::new();
    let source = fx.tls(
        "  max_version: TLS12\n  cipher_suites:\n    - TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\n  \
         curve_preferences: [CurveP384]\n",
    );
    let outcome = handshake(&source, client_config(&fx.ca, BOTH, None))
        .await
        .unwrap();
    assert_eq!(
        outcome.suite,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
    );
}

#[tokio::test]
async fn certificate_rotation_is_picked_up() {
    let fx = Fixture::new();
    let source = fx.tls("");
    let client = || client_config(&fx.ca, BOTH, None);
    let first = handshake(&source, client()).await.unwrap().server_cert;
    assert_eq!(first, fx.server.der);

    let rotated = fx.ca.leaf(vec![dns("localhost")]);
    fx.write_server_files(&rotated);
    tokio::time::sleep(RELOAD_WAIT).await;
    let second = handshake(&source, client()).await.unwrap().server_cert;
    assert_eq!(second, rotated.der);
    assert_ne!(second, first);
}

#[tokio::test]
async fn broken_rotation_keeps_the_previous_certificate() {
    let fx = Fixture::new();
    let source = fx.tls("");
    let client = || client_config(&fx.ca, BOTH, None);
    fx.write("server.crt", "not a certificate");
    tokio::time::sleep(RELOAD_WAIT).await;
    let served = handshake(&source, client()).await.unwrap().server_cert;
    assert_eq!(served, fx.server.der);

    // Once the files are good again, they are used.
    let rotated = fx.ca.leaf(vec![dns("localhost")]);
    fx.write_server_files(&rotated);
    tokio::time::sleep(RELOAD_WAIT).await;
    let served = handshake(&source, client()).await.unwrap().server_cert;
    assert_eq!(served, rotated.der);
}

#[tokio::test]
async fn inline_cert_and_key() {
    let fx = Fixture::new();
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    let yaml = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}",
        indent(&fx.server.pem),
        indent(&fx.server.key_pem)
    );
    let config = fx.load(&yaml).unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    let source = config.tls().unwrap();
    let outcome = handshake(&source, client_config(&fx.ca, BOTH, None))
        .await
        .unwrap();
    assert_eq!(outcome.server_cert, fx.server.der);
}

#[test]
fn the_acceptor_source_is_send_and_sync() {
    fn send_sync<T: Send + Sync + Clone + 'static>(_: &T) {}
    let fx = Fixture::new();
    send_sync(&fx.tls(""));
}
