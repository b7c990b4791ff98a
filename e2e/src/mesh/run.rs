//! Starting and stopping the simulator: [`run`] brings it up (listener, cluster, caches,
//! registration, generator) and returns a [`Handle`] that stops it. The binary and the
//! in-process tests use the same path.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::{Config, ConfigError};
use super::metrics::MeshMetrics;
use super::register::Registration;
use super::server;
use super::traffic::Generator;
use super::watch::{Caches, NotSynced};

/// How long the API server gets to answer the first request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight scrapes get to finish on shutdown.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Distinct annotation problems remembered for log de-duplication; beyond it the memory is reset
/// (and problems are logged once more) instead of growing without bound.
const MAX_REMEMBERED_PROBLEMS: usize = 1_000;

/// Why the simulator could not start. Every variant is a setup problem the user can fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source} (is another mesh-sim running? pick --listen)")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no usable kubeconfig (set KUBECONFIG, e.g. `source .cache/run/cluster.env`): {0}")]
    Kubeconfig(String),
    #[error("the cluster at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{kind} were not listed within {timeout:?}{}", last_error_suffix(.last_error))]
    NotSynced {
        kind: &'static str,
        timeout: Duration,
        last_error: Option<String>,
    },
    #[error("cannot register with Prometheus in {dir}: {source}")]
    Register {
        dir: PathBuf,
        source: std::io::Error,
    },
}

fn last_error_suffix(last_error: &Option<String>) -> String {
    last_error
        .as_ref()
        .map(|e| format!("; last error: {e}"))
        .unwrap_or_default()
}

/// A running simulator. Dropping it stops every task and unregisters; [`Handle::shutdown`]
/// does the same in order and reports what went wrong.
pub struct Handle {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    generator: Option<JoinHandle<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    registration: Option<Registration>,
}

/// Starts the simulator.
///
/// Guarantees: on `Ok`, `/metrics` is listening on [`Handle::local_addr`], the caches hold a
/// first full list of every watched kind (so the first tick already sees the pods that exist),
/// and the registration file, if asked for, is in place. On `Err`, nothing is left running or
/// registered.
pub async fn run(config: Config) -> Result<Handle, StartError> {
    config.validate()?;
    // Bind first: a port in use is the quickest mistake to report.
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    let client = connect().await?;
    let caches = Caches::start(&client, config.namespace.as_deref());
    caches
        .wait_synced(config.sync_timeout)
        .await
        .map_err(|NotSynced { kind, last_error }| StartError::NotSynced {
            kind,
            timeout: config.sync_timeout,
            last_error,
        })?;
    let registration = register(config.register_dir.as_deref(), local_addr)?;
    let mut registry = Registry::default();
    let metrics = MeshMetrics::new(config.reporters.clone(), &mut registry);
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(server::serve(
        listener,
        Arc::new(registry),
        until_stopped(stopped.clone()),
    ));
    let generator = tokio::spawn(generate(caches, metrics, config, stopped));
    Ok(Handle {
        local_addr,
        stop,
        generator: Some(generator),
        server: Some(server),
        registration,
    })
}

async fn connect() -> Result<kube::Client, StartError> {
    let config = kube::Config::infer()
        .await
        .map_err(|error| StartError::Kubeconfig(error.to_string()))?;
    let url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .map_err(|error| StartError::Kubeconfig(error.to_string()))?;
    let unreachable = |reason: String| StartError::Unreachable {
        url: url.clone(),
        reason,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(error)) => Err(unreachable(error.to_string())),
        Err(_) => Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    }
}

fn register(dir: Option<&Path>, addr: SocketAddr) -> Result<Option<Registration>, StartError> {
    dir.map(|dir| {
        Registration::create(dir, addr).map_err(|source| StartError::Register {
            dir: dir.to_owned(),
            source,
        })
    })
    .transpose()
}

async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    // An error means the handle is gone, which also means stop.
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// The generator loop: one tick per `config.tick`, for `config.duration` or until stopped.
///
/// Ticks that fall behind on a busy machine are caught up (tokio's default burst behaviour), so
/// the long-run rate and, for a bounded run, the exact request count hold.
async fn generate(
    caches: Caches,
    mut metrics: MeshMetrics,
    config: Config,
    stopped: watch::Receiver<bool>,
) {
    let mut generator = Generator::new(config.seed, config.tick);
    let mut interval = tokio::time::interval(config.tick);
    let mut remaining = config.tick_count();
    let mut logged = HashSet::new();
    let mut stop = std::pin::pin!(until_stopped(stopped));
    while remaining != Some(0) {
        tokio::select! {
            _ = interval.tick() => {}
            () = &mut stop => return,
        }
        let world = caches.world(config.rps);
        log_new_problems(&world.problems, &mut logged);
        let requests = generator.tick(&world, &mut metrics);
        metrics.tick_done(requests);
        remaining = remaining.map(|ticks| ticks - 1);
    }
    tracing::info!(ticks = config.tick_count(), "traffic run complete");
}

/// Logs each annotation problem once, not once per tick.
fn log_new_problems(problems: &[String], logged: &mut HashSet<String>) {
    for problem in problems {
        if logged.len() >= MAX_REMEMBERED_PROBLEMS {
            logged.clear();
        }
        if logged.insert(problem.clone()) {
            tracing::warn!(%problem, "ignoring an invalid simulator annotation");
        }
    }
}

impl Handle {
    /// The bound `/metrics` address (the real port when `--listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.local_addr)
    }

    /// The file_sd registration file, when registered.
    pub fn registration_path(&self) -> Option<&Path> {
        self.registration.as_ref().map(Registration::path)
    }

    /// Resolves once a bounded run (`duration`) has sent all its requests; `/metrics` keeps
    /// serving until shutdown. Never resolves for an unbounded run.
    pub async fn traffic_done(&mut self) {
        if let Some(generator) = &mut self.generator {
            // A panicked generator has ended the traffic too, and the panic is in the log.
            let _ = generator.await;
            self.generator = None;
        }
    }

    /// Stops generating and serving, and unregisters.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.stop.send_replace(true);
        if let Some(generator) = self.generator.take() {
            let _ = generator.await;
        }
        let served = match self.server.take() {
            Some(server) => stop_server(server).await,
            None => Ok(()),
        };
        let unregistered = self
            .registration
            .take()
            .map_or(Ok(()), Registration::remove);
        served.and(unregistered)
    }
}

async fn stop_server(mut server: JoinHandle<std::io::Result<()>>) -> std::io::Result<()> {
    match tokio::time::timeout(SERVER_STOP_TIMEOUT, &mut server).await {
        Ok(Ok(result)) => result,
        Ok(Err(join_error)) => Err(std::io::Error::other(join_error)),
        // A client holding a connection open must not hold the process up.
        Err(_) => {
            server.abort();
            Ok(())
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Aborting the generator drops the caches, which stop their watch tasks.
        if let Some(generator) = self.generator.take() {
            generator.abort();
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
