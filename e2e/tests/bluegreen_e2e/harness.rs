//! The harness of the blue-green scenarios: one namespace per scenario with its own mesh
//! simulator (calling the active and preview Services directly by their selectors, registered
//! with the local Prometheus), its own Sluice controller (in-process, watching only that
//! namespace) and the invariant monitor of `sluice-tests`.
//!
//! The fixture is a Rollout `web` of [`REPLICAS`] pods behind `web-active` (called at
//! [`ACTIVE_RPS`], the production load) and `web-preview` (called at [`PREVIEW_RPS`], a test
//! load), with success-rate AnalysisTemplates that select one Service and one version
//! (`destination_service_name` and `destination_version`, the pod-template hash).
//!
//! Guarantees of [`run`] (with those of the shared [`common::run`]: it fails, never skips,
//! without the cluster's environment; the scenario fails if the invariant monitor found a
//! violation):
//! - the scenario starts with the first version Healthy (stable, both Services on it) and
//!   Prometheus seeing its traffic;
//! - every wait follows watch events, bounded by [`WAIT`];
//! - on failure it prints the progress lines, every version of the active Service, the
//!   AnalysisRuns with their measurements, the namespace's state and the monitor's timeline;
//! - the Rollout is deleted while the controller runs, then the controller and the simulator
//!   stop, then the namespace is deleted.

#[path = "../common/mod.rs"]
mod common;

use std::fmt::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sluice_crds::AnalysisRun;
use sluice_e2e::demo::manifests::{self, Version};
use sluice_e2e::demo::prometheus;
use sluice_e2e::mesh;
use sluice_tests::controller::InProcessController;
use tokio::time::Instant;

use super::watch::{Seen, Watch, WatchedRollout, World};

pub use common::WAIT;
pub const ROLLOUT: &str = "web";
pub const ACTIVE: &str = "web-active";
pub const PREVIEW: &str = "web-preview";
pub const REPLICAS: i32 = 2;
/// Production load on the active Service, and the smaller test load on the preview Service
/// (modest both: scenarios run in parallel on two cores).
pub const ACTIVE_RPS: &str = "100";
pub const PREVIEW_RPS: &str = "20";
/// The interval of every analysis metric. A failed post-promotion measurement must have the
/// active Service back on the old version within one.
pub const INTERVAL: Duration = Duration::from_secs(3);
/// A healthy version: what the first version says.
pub const GOOD_ERROR_RATE: f64 = 0.001;
pub const LATENCY_MS: f64 = 40.0;

/// The success rate of one version through one Service, over the last 6 s (Prometheus scrapes
/// every second; `rate` needs two samples, hence the initial delay of the metric).
const SUCCESS_RATE: &str = r#"sum(rate(istio_requests_total{reporter="destination",destination_service_namespace="{{args.namespace}}",destination_service_name="{{args.service}}",destination_version="{{args.hash}}",response_code!~"5.."}[6s]))
/
sum(rate(istio_requests_total{reporter="destination",destination_service_namespace="{{args.namespace}}",destination_service_name="{{args.service}}",destination_version="{{args.hash}}"}[6s]))"#;

/// The objects of a scenario, applied in order (the Rollout last).
pub struct Fixture {
    pub objects: Vec<Value>,
    prometheus: String,
}

impl Fixture {
    /// The two Services, a strict template `success-rate` (at least 95 % of requests succeed,
    /// three measurements) and the Rollout, with both gates using it: before the switch on the
    /// preview Service, after it on the active Service, each for the new version only. Delays
    /// are short (2 s to scale the old version down, 1 s after an abort).
    pub fn new(prometheus: &str) -> Self {
        let mut fixture = Self {
            objects: vec![service(ACTIVE, ACTIVE_RPS), service(PREVIEW, PREVIEW_RPS)],
            prometheus: prometheus.to_owned(),
        };
        fixture.add_template("success-rate", 0.95, 3);
        let rollout = rollout(
            fixture.analysis("success-rate", PREVIEW),
            fixture.analysis("success-rate", ACTIVE),
        );
        fixture.objects.push(rollout);
        fixture
    }

    pub fn rollout(&self) -> &Value {
        self.objects.last().expect("the Rollout is always there")
    }

    /// Sets `spec.strategy.blueGreen.<field>`.
    pub fn set_blue_green(&mut self, field: &str, value: Value) {
        let rollout = self
            .objects
            .last_mut()
            .expect("the Rollout is always there");
        rollout["spec"]["strategy"]["blueGreen"][field] = value;
    }

    /// Adds (before the Rollout) an AnalysisTemplate `name` judging one version's success rate
    /// through one Service: `count` measurements every [`INTERVAL`], each failing the run when
    /// below `min_success`.
    pub fn add_template(&mut self, name: &str, min_success: f64, count: u32) {
        let template = json!({
            "apiVersion": sluice_crds::API_VERSION,
            "kind": "AnalysisTemplate",
            "metadata": {"name": name},
            "spec": {
                "args": [{"name": "service"}, {"name": "namespace"}, {"name": "prometheus"},
                         {"name": "hash"}],
                "metrics": [{
                    "name": "success-rate",
                    "initialDelay": "4s",
                    "interval": format!("{}s", INTERVAL.as_secs()),
                    "count": count,
                    "failureLimit": 0,
                    "successCondition": format!("result[0] >= {min_success}"),
                    "provider": {"prometheus": {"address": "{{args.prometheus}}",
                                                "query": SUCCESS_RATE}},
                }],
            },
        });
        // Templates go before the Rollout, so its first runs find them.
        let has_rollout = self.objects.last().is_some_and(|o| o["kind"] == "Rollout");
        let at = self.objects.len() - usize::from(has_rollout);
        self.objects.insert(at, template);
    }

    /// A gate's analysis: `template` judging the latest version through `service`.
    pub fn analysis(&self, template: &str, service: &str) -> Value {
        json!({
            "templates": [{"templateName": template}],
            "args": [
                {"name": "service", "value": service},
                {"name": "namespace", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "prometheus", "value": self.prometheus},
                {"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
            ],
        })
    }
}

/// A Service selecting every pod of the Rollout (Sluice adds the version), called directly by
/// the simulator at `rps`.
fn service(name: &str, rps: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "annotations": {mesh::load::RPS: rps}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]},
    })
}

fn rollout(pre: Value, post: Value) -> Value {
    json!({
        "apiVersion": sluice_crds::API_VERSION,
        "kind": "Rollout",
        "metadata": {"name": ROLLOUT},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {
                    "labels": {"app": "web"},
                    "annotations": {
                        "sim.sluice.dev/error-rate": GOOD_ERROR_RATE.to_string(),
                        "sim.sluice.dev/latency-ms": LATENCY_MS.to_string(),
                    },
                },
                "spec": {"containers": [{"name": "web", "image": "example/web:1.0"}]},
            },
            "strategy": {"blueGreen": {
                "activeService": ACTIVE,
                "previewService": PREVIEW,
                "prePromotionAnalysis": pre,
                "postPromotionAnalysis": post,
                "scaleDownDelaySeconds": 2,
                "abortScaleDownDelaySeconds": 1,
            }},
        },
    })
}

/// A version of the service.
pub fn version(image: &str, error_rate: f64) -> Version {
    Version::new(image, error_rate, LATENCY_MS)
}

/// A running scenario.
pub struct Scenario {
    pub client: kube::Client,
    pub ns: String,
    pub controller: InProcessController,
    pub watch: Watch,
    rollout: Value,
    started: Instant,
    lines: Vec<String>,
}

/// Runs `body` as a scenario in a fresh namespace `<prefix>*` with the objects `fixture` makes
/// from [`Fixture::new`]. See the module docs.
pub async fn run(
    prefix: &str,
    fixture: impl FnOnce(&mut Fixture) -> Result<()>,
    body: impl AsyncFnOnce(&mut Scenario) -> Result<()>,
) -> Result<()> {
    common::run(prefix, |p| Ok(Fixture::new(p)), fixture, body).await
}

impl common::Lifecycle for Scenario {
    type Fixture = Fixture;

    /// Applies the objects, starts the controller and waits for the first version and for
    /// Prometheus to see its traffic.
    async fn start(
        client: &kube::Client,
        ns: &str,
        fixture: Fixture,
        prometheus_url: &str,
    ) -> Result<Self> {
        manifests::apply_all(client, ns, &fixture.objects).await?;
        let mut s = Self {
            client: client.clone(),
            ns: ns.to_owned(),
            controller: InProcessController::start(client, ns),
            watch: Watch::start(client, ns, ROLLOUT, ACTIVE),
            rollout: fixture.rollout().clone(),
            started: Instant::now(),
            lines: Vec::new(),
        };
        s.wait("the first version is released", |w| {
            w.stable_hash().is_some_and(|h| w.healthy_on(h, PREVIEW))
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
        let gone = async || {
            let seen = self.wait(common::GONE, |w| w.rollout.is_none()).await;
            seen.map(drop)
        };
        common::delete_rollout(&client, &ns, ROLLOUT, gone).await
    }

    /// The progress lines, every version of the active Service, the runs with their
    /// measurements and the namespace's state.
    async fn dump(&self) -> String {
        let mut out = common::dump_progress(&self.ns, &self.lines);
        out.push_str("--- versions of the active Service (rv hash)\n");
        for s in &self.watch.world.active_history {
            let _ = writeln!(out, "{} {:?}", s.resource_version, s.hash);
        }
        common::dump_runs(&mut out, &self.client, &self.ns).await;
        out.push_str(&sluice_tests::dump::namespace(&self.client, &self.ns).await);
        out
    }
}

impl Scenario {
    /// Waits (following watch events) until `cond` holds; returns when the event that made it
    /// true arrived (now, if it already held). Fails after [`WAIT`] with the progress so far.
    pub async fn wait(&mut self, what: &str, mut cond: impl FnMut(&World) -> bool) -> Result<Seen> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Seen::now();
        while !cond(&self.watch.world) {
            let Some(next) = self.watch.next(deadline).await else {
                bail!(
                    "{what}: not true after {WAIT:?}; last progress: {}",
                    self.lines.last().map_or("-", String::as_str)
                );
            };
            seen = next;
            self.progress(seen);
        }
        Ok(seen)
    }

    /// Prints the world's summary when it changed.
    fn progress(&mut self, seen: Seen) {
        let summary = self.watch.world.summary(PREVIEW);
        if self.lines.last().is_some_and(|l| l.ends_with(&summary)) {
            return;
        }
        let line = format!(
            "+{:>6} ms {summary}",
            seen.at.duration_since(self.started).as_millis()
        );
        println!("[{}] {line}", self.ns);
        self.lines.push(line);
    }

    /// Applies `version` as the Rollout's template; returns its pod-template hash once the
    /// controller has seen it.
    pub async fn release(&mut self, version: &Version) -> Result<String> {
        let rollout = version.apply_to(&self.rollout);
        let applied = manifests::apply(&self.client, &self.ns, &rollout).await?;
        let generation = applied.metadata.generation;
        println!("[{}] released {version}", self.ns);
        self.wait("the controller sees the new template", |w| {
            w.status().and_then(|s| s.observed_generation) >= generation
                && w.current_hash().is_some()
        })
        .await?;
        let hash = self.watch.world.current_hash().context("a current hash")?;
        Ok(hash.to_owned())
    }

    /// The stable pod-template hash.
    pub fn stable(&self) -> Result<String> {
        common::stable_hash(&self.watch.world)
    }

    /// The run `name` as stored now (not as last seen by the watch).
    pub async fn get_run(&self, name: &str) -> Result<AnalysisRun> {
        common::get_run(&self.client, &self.ns, name).await
    }
}
