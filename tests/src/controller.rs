//! The Sluice controller running in the test process, scoped to one namespace.
//!
//! Guarantees:
//! - Each [`InProcessController`] watches only its own namespace, so scenarios running in
//!   parallel (one namespace each) never see each other's Rollouts.
//! - [`InProcessController::stop`] aborts the task: every cache, queue, backoff and timer the
//!   controller held in memory is dropped, as when a pod is killed. A restart therefore proves
//!   that everything needed to resume is in the cluster.
//!
//! Controller logs go to stderr when `RUST_LOG` is set (e.g. `RUST_LOG=sluice_controller=debug`).

use std::sync::Once;

use anyhow::{Result, bail};
use sluice_controller::run::{Config, run};
use tokio::task::JoinHandle;

/// A controller task for one namespace.
pub struct InProcessController {
    client: kube::Client,
    namespace: String,
    task: Option<JoinHandle<Result<()>>>,
    starts: u32,
}

impl InProcessController {
    /// Starts a controller for `namespace` on the current tokio runtime.
    pub fn start(client: &kube::Client, namespace: &str) -> Self {
        init_logging();
        let mut controller = Self {
            client: client.clone(),
            namespace: namespace.to_owned(),
            task: None,
            starts: 0,
        };
        controller.spawn();
        controller
    }

    fn spawn(&mut self) {
        let config = Config {
            namespace: Some(self.namespace.clone()),
            http_addr: None,
            leader: None,
            concurrency: 4,
        };
        self.task = Some(tokio::spawn(run(self.client.clone(), config)));
        self.starts += 1;
    }

    /// Kills the controller (its in-memory state is lost). Fails if it had already stopped on
    /// its own: a controller that exits while a scenario runs is a bug worth reporting.
    pub async fn stop(&mut self) -> Result<()> {
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        if task.is_finished() {
            return match task.await {
                Ok(Ok(())) => bail!("the controller exited on its own"),
                Ok(Err(e)) => Err(e.context("the controller exited with an error")),
                Err(e) => bail!("the controller task panicked: {e}"),
            };
        }
        task.abort();
        match task.await {
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => bail!("the controller task panicked: {e}"),
            Ok(Ok(())) => bail!("the controller exited on its own"),
            Ok(Err(e)) => Err(e.context("the controller exited with an error")),
        }
    }

    /// Stops the controller and starts a fresh one with empty caches.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        self.spawn();
        Ok(())
    }

    /// Starts a controller again after [`stop`](Self::stop).
    pub fn resume(&mut self) {
        if self.task.is_none() {
            self.spawn();
        }
    }

    /// How many controllers were started for this namespace so far.
    pub fn starts(&self) -> u32 {
        self.starts
    }
}

impl Drop for InProcessController {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_writer(std::io::stderr)
                .try_init();
        }
    });
}
