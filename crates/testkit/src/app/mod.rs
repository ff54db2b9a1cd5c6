//! The exporter under test and its setup: [`TestApp`] builds it (the simulator,
//! a temporary directory with the secret files, the flags and environment) and
//! starts it as the real binary or in process; [`Running`] is the started exporter
//! with that setup, which it gives back when stopped so that the next exporter can
//! start on the same simulator and files (restarts, a second instance).
//!
//! ```no_run
//! # async fn example() {
//! use testkit::TestApp;
//! let app = TestApp::new()
//!     .customers(20)
//!     .flag("--poll.interval", "1s")
//!     .spawn_binary()
//!     .await;
//! let m = app.wait_for_polls(1.0).await;
//! assert_eq!(app.sim().stats().customers, 1);
//! # let _ = m;
//! # }
//! ```

mod binary;
mod in_process;

use std::fmt::Display;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use partnercenter_exporter::simulator::{Simulator, SimulatorConfig};
use tempfile::TempDir;

pub use binary::{exporter_binary, run_to_exit, Binary};
pub use in_process::{fast_backoff, finished, InProcess};

use crate::host::secret_file;

/// The name of the cache file that [`TestApp::cache_file`] turns on, in the app's
/// directory.
const CACHE_FILE: &str = "cache.json";

/// The simulator with `customers` customers (deterministic synthetic ones, the
/// documented customer among them) on a loopback port.
pub async fn simulator(customers: usize) -> Simulator {
    crate::install_crypto_provider();
    Simulator::start(SimulatorConfig {
        customers,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// Redeems `refresh_token` at the simulator as another client of the same app
/// would (a fresh consent elsewhere), and returns the rotated refresh token it
/// answers with.
pub async fn redeem_refresh_token(sim: &Simulator, refresh_token: &str) -> String {
    crate::install_crypto_provider();
    let creds = sim.credentials();
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", creds.client_id.as_str()),
        ("client_secret", creds.client_secret.as_str()),
        ("refresh_token", refresh_token),
        ("resource", "https://api.partnercenter.microsoft.com"),
    ];
    let token_url = format!("{}/{}/oauth2/token", sim.url(), creds.tenant);
    let answer = crate::send_for_json(reqwest::Client::new().post(token_url).form(&form)).await;
    answer["refresh_token"].as_str().unwrap().to_owned()
}

/// The setup of an exporter under test, built by method, started by
/// [`spawn_binary`](TestApp::spawn_binary) or
/// [`start_in_process`](TestApp::start_in_process).
///
/// Unless made with [`demo`](TestApp::demo), the exporter signs in to the
/// simulator with the refresh-token grant: its refresh token and client secret are
/// files in [`dir`](TestApp::dir), written when it first starts unless a test wrote
/// them before (a file that exists is kept).
pub struct TestApp {
    /// Customers of the simulator started on the first start, when none was given.
    customers: usize,
    /// Shared so that a benchmark can run one exporter after another against a
    /// simulator of 10,000 customers without starting it again.
    sim: Option<Arc<Simulator>>,
    /// The flags that point the exporter at the simulator, fixed on the first
    /// start: they stay when the simulator is shut down, so that a restart finds
    /// both services unreachable.
    sim_flags: Option<Vec<String>>,
    /// `--demo`: the exporter runs its own simulator, no secret files.
    demo: bool,
    /// No client secret: the exporter signs in as a public client (a refresh token
    /// from `login`).
    public_client: bool,
    /// Flags after the ones above, in the order given.
    args: Vec<String>,
    /// The binary's whole environment (it starts with an empty one).
    env: Vec<(String, String)>,
    /// Secret files, the cache file, anything a test writes for the exporter.
    dir: TempDir,
}

impl Default for TestApp {
    fn default() -> Self {
        TestApp::new()
    }
}

impl TestApp {
    /// An exporter against a simulator of its own (3 customers unless
    /// [`customers`](TestApp::customers) says otherwise).
    pub fn new() -> TestApp {
        TestApp {
            customers: 3,
            sim: None,
            sim_flags: None,
            demo: false,
            public_client: false,
            args: Vec::new(),
            env: Vec::new(),
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// An exporter against `sim`, which the test has started (see [`simulator`])
    /// and may have set up already: knobs, customers added, ids to name in flags.
    pub fn with_simulator(sim: impl Into<Arc<Simulator>>) -> TestApp {
        TestApp {
            sim: Some(sim.into()),
            ..TestApp::new()
        }
    }

    /// An exporter in `--demo` mode: it runs its own simulator and needs no
    /// secrets; [`Running::sim`] panics.
    pub fn demo() -> TestApp {
        TestApp {
            demo: true,
            ..TestApp::new()
        }
    }

    /// Signs in as a public client: no `--auth.client-secret-file` (the refresh
    /// token `login` obtains must be redeemed without a secret).
    pub fn public_client(mut self) -> Self {
        self.public_client = true;
        self
    }

    /// The number of customers of the simulator this app starts.
    pub fn customers(mut self, customers: usize) -> Self {
        self.customers = customers;
        self
    }

    /// A flag with a value: `.flag("--poll.interval", "1s")`.
    pub fn flag(mut self, name: &str, value: impl Display) -> Self {
        self.args.push(name.to_owned());
        self.args.push(value.to_string());
        self
    }

    /// A flag without a value (`--no-collector.usage`), or any one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Arguments, in order.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// An environment variable of the binary (which starts with an empty
    /// environment). The in-process exporter reads no environment: it refuses one.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// `--poll.cache-file` in the app's directory ([`cache_path`](TestApp::cache_path)).
    pub fn cache_file(self) -> Self {
        let path = self.cache_path();
        self.flag("--poll.cache-file", path.display())
    }

    /// The directory of the secret files, the cache file and whatever the test
    /// writes there.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `name` in [`dir`](TestApp::dir).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Where [`cache_file`](TestApp::cache_file) puts the cache.
    pub fn cache_path(&self) -> PathBuf {
        self.path(CACHE_FILE)
    }

    /// The simulator; panics for a demo app or one whose simulator was shut down,
    /// and before the first start unless it was given one.
    pub fn sim(&self) -> &Simulator {
        self.sim
            .as_deref()
            .expect("this app has no simulator (--demo, shut down, or not started yet)")
    }

    /// Shuts the simulator down (starting it first if need be, so that the flags
    /// point at it): Azure AD and Partner Center refuse connections from then on.
    pub async fn shutdown_simulator(&mut self) {
        self.prepare().await;
        let sim = self.sim.take().expect("a simulator to shut down");
        let sim = Arc::try_unwrap(sim).unwrap_or_else(|_| {
            panic!("the simulator is shared; only its last owner shuts it down")
        });
        sim.shutdown().await;
    }

    /// Starts the real binary on 127.0.0.1:0 and waits until it listens.
    pub async fn spawn_binary(mut self) -> Running<Binary> {
        self.prepare().await;
        let exporter = Binary::spawn(&self.command_line(), &self.env);
        Running {
            exporter,
            app: self,
        }
    }

    /// Builds the `Application` in this process on 127.0.0.1:0 with short retry
    /// waits and serves it without the background poll loop: the test runs the
    /// collectors with [`InProcess::poll`] or their `poll_once`.
    pub async fn start_in_process(mut self) -> Running<InProcess> {
        assert!(
            self.env.is_empty(),
            "the in-process exporter reads no environment: {:?}",
            self.env
        );
        self.prepare().await;
        let exporter = InProcess::start(&self.command_line()).await;
        Running {
            exporter,
            app: self,
        }
    }

    /// Starts the simulator if there is none yet and fixes the flags that point at
    /// it, writing the secret files that are not there. Starting the exporter does
    /// this; a test calls it first to read or change those files before the
    /// exporter does.
    pub async fn prepare(&mut self) {
        crate::install_crypto_provider();
        if self.demo || self.sim_flags.is_some() {
            return;
        }
        if self.sim.is_none() {
            self.sim = Some(Arc::new(simulator(self.customers).await));
        }
        let sim = self.sim();
        let creds = sim.credentials();
        let secret = |name: &str, value: &str| {
            let path = self.dir.path().join(name);
            if !path.exists() {
                secret_file(self.dir.path(), name, value);
            }
            path.display().to_string()
        };
        let token = secret("refresh_token", &creds.refresh_token);
        let mut flags = vec![
            "--partner-center.url".into(),
            sim.url(),
            "--auth.authority".into(),
            sim.url(),
            "--auth.tenant".into(),
            creds.tenant,
            "--auth.client-id".into(),
            creds.client_id,
            "--auth.refresh-token-file".into(),
            token,
        ];
        if !self.public_client {
            flags.push("--auth.client-secret-file".into());
            flags.push(secret("client_secret", &creds.client_secret));
        }
        self.sim_flags = Some(flags);
    }

    /// The exporter's arguments: the listen address, `--demo` or the simulator's
    /// flags, then the test's.
    fn command_line(&self) -> Vec<String> {
        let mut all = vec!["--web.listen-address".to_owned(), "127.0.0.1:0".into()];
        if self.demo {
            all.push("--demo".into());
        }
        all.extend(self.sim_flags.iter().flatten().cloned());
        all.extend(self.args.iter().cloned());
        all
    }
}

/// A started exporter (`E`: [`Binary`] or [`InProcess`]) with the setup it was
/// started from. It dereferences to the exporter: `app.metrics()`,
/// `app.wait_for_polls(1.0)`, `app.poller`.
pub struct Running<E> {
    // Declared first so that it is dropped first: the exporter stops before its
    // simulator and directory go.
    exporter: E,
    app: TestApp,
}

impl<E> Running<E> {
    /// The simulator (see [`TestApp::sim`]).
    pub fn sim(&self) -> &Simulator {
        self.app.sim()
    }

    /// The directory of the secret and state files.
    pub fn dir(&self) -> &Path {
        self.app.dir()
    }

    /// `name` in [`dir`](Running::dir).
    pub fn path(&self, name: &str) -> PathBuf {
        self.app.path(name)
    }

    /// The cache file of [`TestApp::cache_file`].
    pub fn cache_path(&self) -> PathBuf {
        self.app.cache_path()
    }

    /// The arguments the exporter was started with, to start another one like it.
    pub fn command_line(&self) -> Vec<String> {
        self.app.command_line()
    }

    /// Shuts the simulator down while the exporter runs on.
    pub async fn shutdown_simulator(&mut self) {
        self.app.shutdown_simulator().await;
    }
}

impl Running<Binary> {
    /// Kills the process (after [`Binary::terminate`], if the test wants a clean
    /// exit) and gives back the setup, for the next start.
    pub fn stop(self) -> TestApp {
        drop(self.exporter);
        self.app
    }
}

impl Running<InProcess> {
    /// Stops serving, waits for the server to drain and gives back the setup.
    pub async fn stop(self) -> TestApp {
        self.exporter.stop().await;
        self.app
    }
}

impl<E> Deref for Running<E> {
    type Target = E;

    fn deref(&self) -> &E {
        &self.exporter
    }
}

impl<E> DerefMut for Running<E> {
    fn deref_mut(&mut self) -> &mut E {
        &mut self.exporter
    }
}

/// `GET url`: the status and the body (empty if it cannot be read).
async fn get(url: String) -> (u16, String) {
    let r = reqwest::get(url).await.expect("GET");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}
