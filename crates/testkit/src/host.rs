//! What a test needs from the machine it runs on: free loopback ports, programs on
//! `PATH` started as quiet servers and waited for, and files only their owner may
//! read (the exporter refuses secret files that others can read).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that was free a moment ago, for servers that cannot
/// listen on port 0 and report the port they got (Prometheus, nginx).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
}

/// The first file called `name` in a directory of `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Writes `contents` and a newline to `dir/name` with mode 0600 (as an operator
/// would with `echo`), replacing the file if it exists.
pub fn secret_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    secret_file_bytes(dir, name, format!("{contents}\n").as_bytes())
}

/// Writes exactly `bytes` to `dir/name` with mode 0600, replacing the file if it
/// exists.
pub fn secret_file_bytes(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write the secret file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    path
}

/// Starts `binary` with `args`, without input and with its output discarded: a
/// server that a test runs (Prometheus, Alertmanager). `what` names it in the panic
/// if it cannot start.
pub fn spawn_server(binary: &Path, args: &[String], what: &str) -> Child {
    Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} does not start: {e}"))
}

/// Waits until a `GET` of `url` answers 2xx, at most 30 s; panics naming `what`
/// otherwise.
pub async fn wait_until_ready(url: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(url).await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{what} did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
