//! A directory holding the server's files (a certificate issued by a throw-away
//! CA of the testkit) and a web config, for the tests that make real handshakes.

use std::path::PathBuf;

use tempfile::TempDir;
use testkit::certs::{dns, Ca, Leaf};
use web_config::{TlsAcceptorSource, WebConfig, WebConfigError};

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
