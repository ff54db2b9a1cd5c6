//! The `partnercenter-exporter` binary: parse the configuration, set up logging,
//! run the application until SIGTERM or SIGINT.

use std::process::ExitCode;

use partnercenter_exporter::app::Application;
use partnercenter_exporter::config::Config;
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
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "start-up failed");
            // Configuration problems found at start-up (web config, listen address)
            // are usage errors, as for flags.
            return ExitCode::from(2);
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_handler(shutdown.clone()));
    match app.run_until(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "stopped with an error");
            ExitCode::FAILURE
        }
    }
}

async fn signal_handler(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            tracing::error!("cannot install signal handlers");
            return;
        }
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutting down");
    shutdown.cancel();
}
