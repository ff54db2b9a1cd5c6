//! The `partnercenter-exporter` binary: parse the configuration, set up logging,
//! run a subcommand (`login`, `check`) or the application until SIGTERM or SIGINT (SIGHUP is logged and ignored).
//! A panic anywhere is logged and ends the process with a non-zero status, so the
//! supervisor restarts it (the cache file covers the gap).

use std::process::ExitCode;

use partnercenter_exporter::app::Application;
use partnercenter_exporter::config::Config;
use partnercenter_exporter::snapshot::cache::LockError;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let config = match Config::from_args() {
        Ok(c) => c,
        Err(err) => {
            eprintln!("partnercenter-exporter: {err}");
            return ExitCode::from(2);
        }
    };
    partnercenter_exporter::logging::init(config.log_level, config.log_format);
    partnercenter_exporter::logging::install_panic_hook();
    partnercenter_exporter::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(err) => {
            eprintln!("partnercenter-exporter: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match config.subcommand {
        Some(subcommand) => {
            runtime.block_on(partnercenter_exporter::onboarding::run(subcommand, config))
        }
        None => runtime.block_on(run(config)),
    }
}

async fn run(config: Config) -> ExitCode {
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(error = %err, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "start-up failed");
            // Another instance on the same state files may be gone soon (a rolling
            // update): let the supervisor try again. Other problems found at start-up
            // (web config, listen address) are usage errors, as for flags.
            let locked = matches!(
                err.downcast_ref::<LockError>(),
                Some(LockError::Held { .. })
            );
            return if locked {
                ExitCode::FAILURE
            } else {
                ExitCode::from(2)
            };
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_handler(signals, shutdown.clone()));
    match app.run_until(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// The signals the exporter handles, installed before start-up so that none of
/// them can end the process with its default action once the exporter listens.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

async fn signal_handler(mut signals: Signals, shutdown: CancellationToken) {
    let name = loop {
        tokio::select! {
            _ = signals.term.recv() => break "SIGTERM",
            _ = signals.int.recv() => break "SIGINT",
            _ = signals.hup.recv() => {
                // SIGHUP would end the process by default; there is nothing to reload.
                tracing::info!(signal = "SIGHUP", "ignored: the exporter has no configuration reload; restart it to apply changes");
            }
        }
    };
    tracing::info!(signal = name, "shutting down");
    shutdown.cancel();
}
