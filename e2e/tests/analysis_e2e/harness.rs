//! The harness of the metric-analysis scenarios: one namespace per scenario with its own mesh
//! simulator (registered with the local Prometheus), its own Sluice controller (in-process,
//! watching only that namespace), the invariant monitor of `sluice-tests`, and the demo's
//! manifests as the starting point of every fixture.
//!
//! Guarantees of [`run`] (with those of the shared [`common::run`]: it fails, never skips,
//! without the cluster's environment; the scenario fails if the invariant monitor found a
//! violation):
//! - the scenario starts with the first version Healthy and Prometheus scraping the simulator;
//! - every wait follows watch events, bounded by [`WAIT`];
//! - on failure it prints the progress lines, the Rollout, every AnalysisRun with its
//!   measurements, the VirtualService, the namespace's state and the monitor's timeline;
//! - the Rollout is deleted while the controller runs (its finalizer puts traffic back), then
//!   the controller and the simulator stop, then the namespace is deleted.

#[path = "../common/mod.rs"]
mod common;

use std::fmt::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use sluice_crds::{AnalysisRun, Rollout};
use sluice_e2e::demo::manifests::{self, DEMO_YAML, Manifests, Target, Version};
use sluice_e2e::demo::progress::Printer;
use sluice_e2e::demo::prometheus;
use sluice_e2e::demo::release::rolled_back;
use sluice_e2e::demo::watch::{Watch, virtual_service_resource};
use sluice_e2e::demo::world::{HASH_LABEL, WatchedRollout, World};
use sluice_e2e::watch::ANALYSIS_LABEL;
use sluice_tests::controller::InProcessController;
use tokio::time::Instant;

pub use common::WAIT;

/// Requests per second the simulator sends to the service (a modest load: tests run in
/// parallel on two cores).
const RPS: &str = "100";

/// A running scenario.
pub struct Scenario {
    pub client: kube::Client,
    pub ns: String,
    pub controller: InProcessController,
    pub watch: Watch,
    pub manifests: Manifests,
    pub target: Target,
    printer: Printer,
    lines: Vec<String>,
}

/// The demo's manifests for a scenario: 100 requests per second, 2 replicas, short steps
/// (`setWeight 20, pause 4s, setWeight 50, pause 4s`) with the demo's background analysis from
/// step 1, and 1 s scale-down delays.
pub fn base(prometheus: &str) -> Result<Manifests> {
    let mut m = Manifests::parse(DEMO_YAML, prometheus)?;
    for object in &mut m.objects {
        if object["kind"] == "VirtualService" {
            object["metadata"]["annotations"]["sim.sluice.dev/rps"] = json!(RPS);
        }
    }
    let mut rollout = m.rollout().clone();
    rollout["spec"]["replicas"] = json!(2);
    let canary = &mut rollout["spec"]["strategy"]["canary"];
    canary["scaleDownDelaySeconds"] = json!(1);
    canary["abortScaleDownDelaySeconds"] = json!(1);
    canary["steps"] = json!([
        {"setWeight": 20}, {"pause": {"duration": "4s"}},
        {"setWeight": 50}, {"pause": {"duration": "4s"}},
    ]);
    m.set_rollout(rollout);
    Ok(m)
}

/// Changes the Rollout's canary strategy field `field` (e.g. `steps`, `analysis`).
pub fn set_canary(m: &mut Manifests, field: &str, value: Value) {
    let mut rollout = m.rollout().clone();
    rollout["spec"]["strategy"]["canary"][field] = value;
    m.set_rollout(rollout);
}

/// The demo template's metric `name`, to copy and change.
pub fn demo_metric(m: &Manifests, name: &str) -> Result<Value> {
    m.objects
        .iter()
        .filter(|o| o["kind"] == "AnalysisTemplate")
        .flat_map(|t| t["spec"]["metrics"].as_array().cloned().unwrap_or_default())
        .find(|metric| metric["name"] == name)
        .with_context(|| format!("the demo template has no metric {name}"))
}

/// Adds an AnalysisTemplate `name` with the demo template's arguments and `metrics`.
pub fn add_template(m: &mut Manifests, name: &str, metrics: Vec<Value>) {
    m.objects.push(json!({
        "apiVersion": sluice_crds::API_VERSION,
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "args": [{"name": "service"}, {"name": "namespace"}, {"name": "prometheus"}],
            "metrics": metrics,
        },
    }));
}

/// The analysis block (for a step or the background) using `template` with the demo's
/// arguments.
pub fn analysis(m: &Manifests, template: &str) -> Value {
    let args = m.rollout()["spec"]["strategy"]["canary"]["analysis"]["args"].clone();
    json!({"templates": [{"templateName": template}], "args": args})
}

/// Replaces the background analysis by one step analysis using `template` (with the demo's
/// arguments), so that the step alone decides: the canary steps become `steps` of that step.
pub fn step_analysis_only(m: &mut Manifests, template: &str, steps: impl FnOnce(Value) -> Value) {
    let step = json!({"analysis": analysis(m, template)});
    set_canary(m, "analysis", json!(null));
    set_canary(m, "steps", steps(step));
}

/// Runs `body` as a scenario in a fresh namespace `<prefix>*` with the manifests `fixture`
/// makes from [`base`]. See the module docs.
pub async fn run(
    prefix: &str,
    fixture: impl FnOnce(&mut Manifests) -> Result<()>,
    body: impl AsyncFnOnce(&mut Scenario) -> Result<()>,
) -> Result<()> {
    common::run(prefix, base, fixture, body).await
}

impl common::Lifecycle for Scenario {
    type Fixture = Manifests;

    /// Applies the manifests, starts the controller and waits for the first version and for
    /// Prometheus to see its traffic.
    async fn start(
        client: &kube::Client,
        ns: &str,
        manifests: Manifests,
        prometheus_url: &str,
    ) -> Result<Self> {
        let target = manifests.target()?;
        manifests::apply_all(client, ns, &manifests.objects).await?;
        let controller = InProcessController::start(client, ns);
        let watch = Watch::start(client, ns, &target);
        let mut s = Self {
            client: client.clone(),
            ns: ns.to_owned(),
            controller,
            watch,
            manifests,
            target,
            printer: Printer::new(Instant::now()),
            lines: Vec::new(),
        };
        s.wait("the first version is released", |w| {
            w.stable_hash().is_some_and(|h| w.released(h))
        })
        .await?;
        prometheus::wait_for_traffic(prometheus_url, ns, Duration::from_secs(60)).await?;
        Ok(s)
    }

    fn controller(&mut self) -> &mut InProcessController {
        &mut self.controller
    }

    async fn remove_rollout(&mut self) -> Result<()> {
        let (client, ns) = (self.client.clone(), self.ns.clone());
        let name = self.target.rollout.clone();
        let gone = async || self.wait(common::GONE, |w| w.rollout.is_none()).await;
        common::delete_rollout(&client, &ns, &name, gone).await
    }

    /// The progress lines, the Rollout, the runs with their measurements, the VirtualService
    /// and the namespace's state.
    async fn dump(&self) -> String {
        let mut out = common::dump_progress(&self.ns, &self.lines);
        common::dump_runs(&mut out, &self.client, &self.ns).await;
        let vs: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.ns, &virtual_service_resource());
        let spec = vs
            .get(&self.target.virtual_service)
            .await
            .map(|o| o.data["spec"].clone());
        let _ = writeln!(out, "--- VirtualService spec: {spec:?}");
        out.push_str(&sluice_tests::dump::namespace(&self.client, &self.ns).await);
        out
    }
}

impl Scenario {
    /// Waits (following watch events) until `cond` holds; fails after [`WAIT`] with the
    /// progress so far.
    pub async fn wait(&mut self, what: &str, mut cond: impl FnMut(&World) -> bool) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        while !cond(&self.watch.world) {
            match self.watch.next(deadline).await {
                Ok(at) => self.seen(at),
                Err(e) => bail!(
                    "{what}: not true after {WAIT:?} ({e}); last progress: {}",
                    self.lines.last().map_or("-", String::as_str)
                ),
            }
        }
        Ok(())
    }

    fn seen(&mut self, at: Instant) {
        if let Some(line) = self.printer.line(&self.watch.world, at) {
            println!("[{}] {line}", self.ns);
            self.lines.push(line);
        }
    }

    /// Applies `version` as the Rollout's template; returns its pod-template hash and the
    /// resourceVersion of the write, once the controller has seen it.
    pub async fn release(&mut self, version: &Version) -> Result<(String, u64)> {
        let rollout = version.apply_to(self.manifests.rollout());
        let applied = manifests::apply(&self.client, &self.ns, &rollout).await?;
        let generation = applied.metadata.generation;
        let rv = resource_version(applied.metadata.resource_version.as_deref())?;
        self.printer.restart(Instant::now());
        println!("[{}] released {version}", self.ns);
        self.wait("the controller sees the new template", |w| {
            w.status().and_then(|s| s.observed_generation) >= generation
                && w.current_hash().is_some()
        })
        .await?;
        let hash = self.watch.world.current_hash().context("a current hash")?;
        Ok((hash.to_owned(), rv))
    }

    /// The stable pod-template hash.
    pub fn stable(&self) -> Result<String> {
        common::stable_hash(&self.watch.world)
    }

    /// The runs of `hash` for `kind` (`background` or `step-<index>`), as last seen.
    pub fn runs_of(&self, hash: &str, kind: &str) -> Vec<&AnalysisRun> {
        self.watch
            .world
            .runs
            .values()
            .filter(|r| {
                let labels = r.metadata.labels.as_ref();
                labels.and_then(|l| l.get(HASH_LABEL)).map(String::as_str) == Some(hash)
                    && labels
                        .and_then(|l| l.get(ANALYSIS_LABEL))
                        .map(String::as_str)
                        == Some(kind)
            })
            .collect()
    }

    /// The only run of `hash` for `kind`.
    pub fn run_of(&self, hash: &str, kind: &str) -> Result<AnalysisRun> {
        match self.runs_of(hash, kind)[..] {
            [run] => Ok(run.clone()),
            ref runs => bail!("expected one {kind} run of {hash}, found {}", runs.len()),
        }
    }

    /// The run `name` as stored now (not as last seen by the watch).
    pub async fn get_run(&self, name: &str) -> Result<AnalysisRun> {
        common::get_run(&self.client, &self.ns, name).await
    }

    /// Waits until `hash` was rolled back (aborted, traffic back to stable with the weight 0
    /// verified and read back, canary scaled down), checking on the way that it was never
    /// promoted.
    pub async fn wait_rolled_back(&mut self, hash: &str) -> Result<()> {
        let mut promoted = false;
        self.wait("the release is rolled back", |w| {
            promoted |= w.stable_hash() == Some(hash);
            promoted || rolled_back(w, hash)
        })
        .await?;
        ensure!(!promoted, "{hash} was promoted to stable");
        Ok(())
    }

    /// Waits until `hash` is released, checking on the way that it was never aborted.
    pub async fn wait_promoted(&mut self, hash: &str) -> Result<()> {
        let mut aborted = false;
        self.wait("the good version is released", |w| {
            aborted |= w.aborted();
            w.released(hash)
        })
        .await?;
        ensure!(!aborted, "the good release was aborted on the way");
        Ok(())
    }

    /// Promotes past a pause (what `kubectl sluice promote` does): clears the pause conditions.
    pub async fn promote(&self) -> Result<()> {
        let rollouts: Api<Rollout> = Api::namespaced(self.client.clone(), &self.ns);
        let patch = json!({"status": {"pauseConditions": null}});
        rollouts
            .patch_status(
                &self.target.rollout,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .context("promoting")?;
        Ok(())
    }

    /// Sets `annotations` on the running pods of `hash` (the simulator reads behaviour from the
    /// pods, so this changes how the version answers without a new template).
    pub async fn annotate_pods(&self, hash: &str, annotations: Value) -> Result<usize> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        let list = pods
            .list(&ListParams::default().labels(&format!("{HASH_LABEL}={hash}")))
            .await?;
        let patch = json!({"metadata": {"annotations": annotations}});
        for pod in &list.items {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .with_context(|| format!("annotating pod {name}"))?;
        }
        Ok(list.items.len())
    }
}

fn resource_version(rv: Option<&str>) -> Result<u64> {
    rv.and_then(|v| v.parse().ok())
        .context("a write without a numeric resourceVersion")
}

/// A version of the demo service.
pub fn version(image: &str, error_rate: f64, latency_ms: f64) -> Version {
    Version::new(image, error_rate, latency_ms)
}
