//! What the end-to-end harnesses (`analysis_e2e`, shared with `judges_e2e`, and
//! `bluegreen_e2e`) have in common: the life of one scenario in its own namespace with its own
//! mesh simulator and invariant monitor ([`run`]), the monitor's verdict joined to the
//! scenario's ([`check`]), the Rollout's removal at the end ([`delete_rollout`]) and the parts of
//! a failure dump that do not depend on the strategy.
//!
//! A directory module, included by each harness with `#[path = "../common/mod.rs"]`: a file
//! directly in `tests/` would be a test binary of its own. It needs `sluice-tests` (a
//! dev-dependency), so it cannot live in the library.

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use sluice_crds::{AnalysisRun, Rollout};
use sluice_e2e::demo::prometheus;
use sluice_e2e::mesh;
use sluice_e2e::watch::WatchedRollout;
use sluice_tests::controller::InProcessController;
use sluice_tests::monitor::{Monitor, Report};

/// Longest wait for one condition.
pub const WAIT: Duration = Duration::from_secs(90);

/// What the wait in [`Lifecycle::remove_rollout`] waits for.
pub const GONE: &str = "the Rollout is finalized and gone";

const HOW_TO_START: &str =
    "start the local cluster first: `e2e/cluster up && source .cache/run/cluster.env`";

fn env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set; {HOW_TO_START}"))
}

/// A harness's running scenario, as [`run`] drives it.
pub trait Lifecycle: Sized {
    /// The objects the scenario starts from.
    type Fixture;

    /// Applies the fixture, starts the controller and waits for the first version and for
    /// Prometheus to see its traffic.
    async fn start(
        client: &kube::Client,
        ns: &str,
        fixture: Self::Fixture,
        prometheus_url: &str,
    ) -> Result<Self>;

    /// What to print when the scenario failed.
    async fn dump(&self) -> String;

    /// The scenario's controller.
    fn controller(&mut self) -> &mut InProcessController;

    /// Deletes the scenario's Rollout and waits until it is gone ([`delete_rollout`]); the
    /// controller runs meanwhile.
    async fn remove_rollout(&mut self) -> Result<()>;
}

/// Runs `body` as a scenario in a fresh namespace `<prefix>*`, starting from what `base` makes
/// for the Prometheus URL, changed by `fixture`.
///
/// Guarantees:
/// - it fails, never skips, when `KUBECONFIG`, `SLUICE_PROMETHEUS_URL` or
///   `SLUICE_PROMETHEUS_TARGETS_DIR` is missing, saying how to start the cluster;
/// - the simulator runs and Prometheus scrapes it before the scenario starts;
/// - if the start fails, the namespace's state is printed;
/// - the scenario fails if the invariant monitor found a violation ([`check`]); when it
///   failed, for that or in its body, its dump is printed;
/// - the Rollout is deleted while the controller runs, then the controller and the simulator
///   stop, then the namespace is deleted.
pub async fn run<S: Lifecycle>(
    prefix: &str,
    base: impl FnOnce(&str) -> Result<S::Fixture>,
    fixture: impl FnOnce(&mut S::Fixture) -> Result<()>,
    body: impl AsyncFnOnce(&mut S) -> Result<()>,
) -> Result<()> {
    let prometheus = env("SLUICE_PROMETHEUS_URL")?;
    let targets = PathBuf::from(env("SLUICE_PROMETHEUS_TARGETS_DIR")?);
    env("KUBECONFIG")?;
    let mut objects = base(&prometheus)?;
    fixture(&mut objects)?;
    let client = sluice_tests::client().await?;
    let namespaces = client.clone();
    sluice_tests::with_namespace(&namespaces, prefix, move |ns| async move {
        let mesh = start_mesh(&ns, targets, &prometheus).await?;
        let monitor = Monitor::start(&client, &ns).await?;
        let mut s = match S::start(&client, &ns, objects, &prometheus).await {
            Ok(s) => s,
            Err(e) => {
                sluice_tests::dump::print(&client, &ns).await;
                return Err(e);
            }
        };
        let outcome = body(&mut s).await;
        let checked = check(outcome, monitor.finish().await);
        if checked.is_err() {
            eprintln!("{}", s.dump().await);
        }
        let torn_down = tear_down(&mut s).await;
        let stopped = mesh.shutdown().await.context("stopping the mesh simulator");
        checked.and(torn_down).and(stopped)
    })
    .await
}

/// Removes the Rollout while the controller runs (its finalizer puts traffic back), then stops
/// the controller.
async fn tear_down(s: &mut impl Lifecycle) -> Result<()> {
    s.controller().resume();
    let gone = s.remove_rollout().await;
    let stopped = s.controller().stop().await;
    gone.and(stopped)
}

/// The scenario's outcome, failed too when the monitor found a violation.
fn check(outcome: Result<()>, report: Result<Report>) -> Result<()> {
    let report = report.context("the invariant monitor")?;
    eprintln!("{}", report.summary());
    if outcome.is_err() || !report.violations.is_empty() {
        eprintln!("monitor timeline:\n{}", report.timeline());
    }
    outcome?;
    if !report.violations.is_empty() {
        let list: Vec<String> = report.violations.iter().map(|v| format!("{v:?}")).collect();
        bail!(
            "the invariant monitor found violations:\n{}",
            list.join("\n")
        );
    }
    Ok(())
}

/// Starts the simulator for `ns` on a free port and waits until Prometheus scrapes it.
async fn start_mesh(ns: &str, targets: PathBuf, prometheus_url: &str) -> Result<mesh::Handle> {
    let config = mesh::Config {
        namespace: Some(ns.to_owned()),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        register_dir: Some(targets),
        ..mesh::Config::default()
    };
    let handle = mesh::run(config)
        .await
        .context("starting the mesh simulator")?;
    let instance = handle.local_addr().to_string();
    sluice_tests::eventually(
        Duration::from_secs(30),
        "Prometheus scrapes the simulator",
        || {
            let instance = instance.clone();
            async move {
                Ok(prometheus::scrapes(prometheus_url, &instance)
                    .await?
                    .then_some(()))
            }
        },
    )
    .await?;
    Ok(handle)
}

/// Deletes Rollout `name` in `ns` and waits for it to be gone with `gone` (the controller,
/// which must be running, finalizes it). When that fails, removes its finalizers so the
/// namespace can still be deleted, and returns the failure.
pub async fn delete_rollout(
    client: &kube::Client,
    ns: &str,
    name: &str,
    gone: impl AsyncFnOnce() -> Result<()>,
) -> Result<()> {
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), ns);
    let deleted = match rollouts.delete(name, &Default::default()).await {
        Ok(_) => gone().await,
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e).context("deleting the Rollout"),
    };
    if deleted.is_err() {
        let patch = json!({"metadata": {"finalizers": null}});
        let _ = rollouts
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
    }
    deleted
}

/// The run `name` in `ns` as stored now (not as last seen by a watch).
pub async fn get_run(client: &kube::Client, ns: &str, name: &str) -> Result<AnalysisRun> {
    let runs: Api<AnalysisRun> = Api::namespaced(client.clone(), ns);
    runs.get(name)
        .await
        .with_context(|| format!("reading AnalysisRun {name}"))
}

/// The stable pod-template hash of the Rollout `world` last saw.
pub fn stable_hash(world: &impl WatchedRollout) -> Result<String> {
    world
        .stable_hash()
        .map(str::to_owned)
        .context("the Rollout names no stable version")
}

/// The head of a scenario's dump: its namespace and the progress lines it printed.
pub fn dump_progress(ns: &str, lines: &[String]) -> String {
    let mut out = format!("===== scenario {ns} =====\n--- progress\n");
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// Appends every AnalysisRun in `ns` with its metrics and their measurements (oldest first).
pub async fn dump_runs(out: &mut String, client: &kube::Client, ns: &str) {
    out.push_str("--- AnalysisRuns (measurements oldest first)\n");
    let runs: Api<AnalysisRun> = Api::namespaced(client.clone(), ns);
    match runs.list(&ListParams::default()).await {
        Ok(list) => list.items.iter().for_each(|r| describe_run(out, r)),
        Err(e) => {
            let _ = writeln!(out, "cannot list: {e}");
        }
    }
}

fn describe_run(out: &mut String, run: &AnalysisRun) {
    let status = run.status.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "{} {:?}: {}",
        run.metadata.name.as_deref().unwrap_or_default(),
        status.phase,
        status.message.unwrap_or_default()
    );
    for r in &status.metric_results {
        let _ = writeln!(
            out,
            "  metric {} {:?}: {}",
            r.name,
            r.phase,
            r.message.as_deref().unwrap_or_default()
        );
        for m in &r.measurements {
            let _ = writeln!(
                out,
                "    {:?}..{:?} {:?} value={} {}",
                m.started_at.as_ref().map(|t| t.0),
                m.finished_at.as_ref().map(|t| t.0),
                m.phase,
                m.value.as_deref().unwrap_or("-"),
                m.message.as_deref().unwrap_or("")
            );
        }
    }
}
