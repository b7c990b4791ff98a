//! `demo`: drives the release demo against a running cluster, controller and mesh simulator
//! (see `sluice_e2e::demo`). `e2e/demo` starts all of those and runs this.
//!
//! Exit codes: 0 when the good release was promoted and every bad one rolled back on its own,
//! 1 when a release got the wrong verdict (or none), 2 when the demo could not run (flags,
//! kubeconfig, manifests, an unreachable cluster or Prometheus).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sluice_e2e::demo::{self, Config, report};
use sluice_e2e::mesh::config::parse_duration;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "demo",
    about = "Releases a good and a bad version of the demo Rollout and shows Sluice promote one and roll back the other"
)]
struct Args {
    /// Namespace of the demo (the controller and mesh-sim must watch it).
    #[arg(long, short = 'n', default_value = "sluice-demo")]
    namespace: String,
    /// Kubeconfig of the cluster.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Prometheus, as the controller reaches it.
    #[arg(long, env = "SLUICE_PROMETHEUS_URL")]
    prometheus_url: String,
    /// Bad releases to make; with several, prints the median and max breach-to-rollback latency.
    #[arg(long, default_value_t = 1)]
    bad_runs: u32,
    /// Longest wait for one release's verdict.
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    release_timeout: Duration,
    /// Manifests to use instead of the built-in e2e/manifests/demo.yaml.
    #[arg(long)]
    manifests: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("demo: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the demo and prints the summary; `Ok(false)` when a verdict was wrong.
async fn run(args: Args) -> anyhow::Result<bool> {
    let client = client(&args.kubeconfig).await?;
    let mut config = Config::new(&args.namespace, &args.prometheus_url);
    config.bad_runs = args.bad_runs;
    config.release_timeout = args.release_timeout;
    if let Some(path) = &args.manifests {
        config.manifests = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    }
    let report = demo::run(&client, &config).await?;
    demo::say("summary");
    print!("{}", report::render(&report));
    Ok(report.success())
}

async fn client(path: &PathBuf) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .map_err(|e| anyhow::anyhow!("reading kubeconfig {}: {e}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}
