//! The `sluice` binary: `sluice controller` runs the controllers; `sluice crdgen` prints the CRDs.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use sluice_controller::leader::Timing;
use sluice_controller::run::{Config, LeaderConfig, run};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Progressive delivery for Kubernetes: canary and blue-green releases with Istio and Prometheus"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Rollout controller against the cluster in KUBECONFIG (or in-cluster config).
    Controller(ControllerArgs),
    /// Print the CustomResourceDefinitions as YAML.
    Crdgen,
}

#[derive(clap::Args)]
struct ControllerArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "SLUICE_NAMESPACE")]
    namespace: Option<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:8090", env = "SLUICE_HTTP_ADDR")]
    http_addr: SocketAddr,
    /// Elect a leader through a Lease so that only one replica writes.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the leader Lease (default: the watched namespace, else POD_NAMESPACE, else default).
    #[arg(long, env = "POD_NAMESPACE")]
    leader_namespace: Option<String>,
    /// Lease duration in seconds.
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
    /// Rollouts reconciled concurrently.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// Log format.
    #[arg(long, value_enum, default_value = "text", env = "SLUICE_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crdgen => crdgen(),
        Command::Controller(args) => controller(args).await,
    }
}

fn crdgen() -> ExitCode {
    for file in sluice_crds::generate() {
        println!("---\n{}", file.yaml.trim_end());
    }
    ExitCode::SUCCESS
}

async fn controller(args: ControllerArgs) -> ExitCode {
    init_logging(args.log_format);
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sluice: cannot reach Kubernetes (set KUBECONFIG or run in a cluster): {e}");
            return ExitCode::from(2);
        }
    };
    let leader = args.leader_elect.then(|| leader_config(&args));
    let config = Config {
        namespace: args.namespace.clone(),
        http_addr: Some(args.http_addr),
        leader,
        concurrency: args.concurrency,
    };
    match run(client, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "controller stopped");
            ExitCode::FAILURE
        }
    }
}

fn leader_config(args: &ControllerArgs) -> LeaderConfig {
    let namespace = args
        .leader_namespace
        .clone()
        .or_else(|| args.namespace.clone())
        .unwrap_or_else(|| "default".to_owned());
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "sluice".into());
    let lease = std::time::Duration::from_secs(args.lease_seconds.max(3));
    LeaderConfig {
        namespace,
        lease_name: "sluice-controller".into(),
        identity: format!("{host}-{}", std::process::id()),
        timing: Timing {
            lease_duration: lease,
            renew_deadline: lease * 2 / 3,
            retry_period: lease / 7,
        },
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
