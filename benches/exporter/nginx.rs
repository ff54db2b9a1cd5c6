//! nginx serving the exporter's captured `/metrics` body as a static file: the
//! yardstick the scrape latency is compared with.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::free_port;

pub fn find_nginx() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// nginx serving the captured body as a static file, `/metrics` plus `/metrics.gz`
/// for `gzip_static`, on a free loopback port. Stopped (SIGTERM, then SIGKILL) on drop.
pub struct Nginx {
    child: Child,
    port: u16,
    pub version: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start(binary: &Path, plain: &[u8], gzip: &[u8]) -> Nginx {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("html");
        std::fs::create_dir(&root).expect("html dir");
        std::fs::write(root.join("metrics"), plain).expect("body");
        std::fs::write(root.join("metrics.gz"), gzip).expect("gz body");
        // Workers may run as an unprivileged user: let them read the files.
        for p in [dir.path(), &root] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let port = free_port();
        let prefix = dir.path().display().to_string();
        let conf = format!(
            r#"daemon off;
worker_processes auto;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{ }}
    default_type "text/plain; version=0.0.4; charset=utf-8";
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/html;
        location = /metrics {{
            gzip_static on;
        }}
    }}
}}
"#
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let version = Command::new(binary)
            .arg("-v")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
            .unwrap_or_default();
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let server = Nginx {
            child,
            port,
            version,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen; error.log:\n{}",
                std::fs::read_to_string(server._dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master (our child, by its id) stops its workers too.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
