//! A throw-away PKI (a CA and leaves issued by it) and a directory holding the
//! server's files and a web config, for the tests that make real handshakes.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use tempfile::TempDir;
use web_config::{TlsAcceptorSource, WebConfig, WebConfigError};

pub struct Ca {
    pub der: CertificateDer<'static>,
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub key_pem: String,
    pub key_der: Vec<u8>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    pub fn leaf(&self, sans: Vec<SanType>) -> Leaf {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params.distinguished_name.push(DnType::CommonName, "leaf");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            der: cert.der().clone(),
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }
}

pub fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().unwrap())
}

/// A directory with `server.crt`, `server.key` (for localhost, issued by `ca`),
/// `ca.crt`, and a web config file written by `load`.
pub struct Fixture {
    dir: TempDir,
    pub ca: Ca,
    pub server: Leaf,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("test CA");
        let server = ca.leaf(vec![dns("localhost")]);
        let fixture = Fixture { dir, ca, server };
        fixture.write_server_files(&fixture.server);
        fixture.write("ca.crt", &fixture.ca.pem);
        fixture
    }

    pub fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.dir.path().join(name), contents).unwrap();
    }

    pub fn write_server_files(&self, leaf: &Leaf) {
        self.write("server.crt", &leaf.pem);
        self.write("server.key", &leaf.key_pem);
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("web.yml")
    }

    pub fn load(&self, yaml: &str) -> Result<WebConfig, WebConfigError> {
        self.write("web.yml", yaml);
        WebConfig::load(&self.config_path())
    }

    pub fn tls(&self, extra: &str) -> TlsAcceptorSource {
        let yaml =
            format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}");
        self.load(&yaml).unwrap().tls().unwrap()
    }
}
