//! `mesh-sim`: the mesh simulator as a process. See `sluice_e2e::mesh` for what it does.
//!
//! Exit codes: 0 after a clean stop (SIGINT, SIGTERM, or the end of `--duration`), 2 for bad
//! flags or a failed start (unreachable cluster, port in use, ...), 1 for a failed shutdown.

use std::process::ExitCode;

use clap::Parser;
use sluice_e2e::mesh::{Args, Handle, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    // clap itself exits with 2 on a malformed command line.
    let config = match Args::parse().into_config() {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    let mut handle = match run(config).await {
        Ok(handle) => handle,
        Err(error) => return fail(&error),
    };
    tracing::info!(metrics = %handle.metrics_url(), registration = ?handle.registration_path(), "mesh simulator running");
    let reason = wait_for_end(&mut handle).await;
    tracing::info!(reason, "stopping");
    match handle.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mesh-sim: shutdown failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn fail(error: &dyn std::error::Error) -> ExitCode {
    eprintln!("mesh-sim: {error}");
    ExitCode::from(2)
}

/// Waits for SIGINT, SIGTERM, or the end of a bounded run, and says which.
async fn wait_for_end(handle: &mut Handle) -> &'static str {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                // Without a SIGTERM handler, SIGINT and the duration still end the run.
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        () = terminate => "SIGTERM",
        () = handle.traffic_done() => "duration elapsed",
    }
}
