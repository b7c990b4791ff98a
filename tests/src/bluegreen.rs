//! Blue-green scenarios: the Rollout with an active and a preview Service, the analysis templates
//! its promotion gates use, and waits on the Services and the blue-green status. What the monitor
//! recorded is read back with [`crate::history`].
//!
//! A blue-green scenario runs like a canary one ([`crate::scenario`]: own namespace, in-process
//! controller, invariant monitor, state printed on failure) but creates two plain Services instead
//! of the mesh objects: the active Service's selector is the traffic switch, so BG1 and BG2 are
//! what the monitor checks (see `monitor/bluegreen.rs`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use sluice_controller::replicaset::SCALE_DOWN_ANNOTATION;
use sluice_crds::{AnalysisRun, PauseReason, Rollout, RolloutAnalysisRunStatus, RolloutPhase};

use crate::fixtures::{
    self, HASH_LABEL, ROLLOUT, RolloutBuilder, StrategyFixture, create_analysis_template,
};
use crate::scenario::{self, Scenario, current_hash, phase, stable};

/// The Service that takes production traffic.
pub const ACTIVE_SERVICE: &str = "web-active";
/// The Service that selects the new version before the switch.
pub const PREVIEW_SERVICE: &str = "web-preview";
/// An AnalysisTemplate whose metric passes at once (Prometheus' `vector(1)` >= 1).
pub const PASSING: &str = "always-ok";
/// An AnalysisTemplate whose one measurement fails (`vector(0)` >= 1).
pub const FAILING: &str = "never-ok";
/// An AnalysisTemplate measuring every second that fails at its third failed measurement, about
/// 2 s after it starts: long enough to show what the Rollout keeps while it runs.
pub const FAILING_SLOWLY: &str = "never-ok-slowly";
/// An AnalysisTemplate whose one measurement meets neither its success nor its failure
/// condition (`vector(0.5)`): the run ends Inconclusive.
pub const INCONCLUSIVE: &str = "unsure";
/// An AnalysisTemplate measuring every 2 s that fails at its 26th failed measurement, about
/// 50 s after it starts: still running for as long as a scenario acts on it, and failing (not
/// passing) if it is ever allowed to finish.
pub const FAILING_LATE: &str = "never-ok-late";

// ---------------------------------------------------------------------------------------------
// The Rollout.

/// The blue-green part of a Rollout over the active and preview Services. Defaults:
/// auto-promotion without delay, the preview at full size, no analysis.
#[derive(Clone, Debug)]
pub struct BlueGreen {
    preview_replica_count: Option<i32>,
    auto_promotion_enabled: bool,
    auto_promotion_seconds: Option<u32>,
    pre_promotion: Option<&'static str>,
    post_promotion: Option<&'static str>,
}

/// A blue-green Rollout fixture.
pub type BlueGreenBuilder = RolloutBuilder<BlueGreen>;

/// A blue-green Rollout of 4 replicas with the defaults of [`RolloutBuilder`] and [`BlueGreen`].
pub fn blue_green() -> BlueGreenBuilder {
    RolloutBuilder::new(
        4,
        BlueGreen {
            preview_replica_count: None,
            auto_promotion_enabled: true,
            auto_promotion_seconds: None,
            pre_promotion: None,
            post_promotion: None,
        },
    )
}

impl RolloutBuilder<BlueGreen> {
    pub fn preview_replica_count(self, replicas: i32) -> Self {
        self.with_strategy(|b| b.preview_replica_count = Some(replicas))
    }

    /// `autoPromotionEnabled: false`: the switch waits for a promote.
    pub fn manual_promotion(self) -> Self {
        self.with_strategy(|b| b.auto_promotion_enabled = false)
    }

    pub fn auto_promotion_seconds(self, seconds: u32) -> Self {
        self.with_strategy(|b| b.auto_promotion_seconds = Some(seconds))
    }

    /// `prePromotionAnalysis` with the AnalysisTemplate `template`.
    pub fn pre_promotion(self, template: &'static str) -> Self {
        self.with_strategy(|b| b.pre_promotion = Some(template))
    }

    /// `postPromotionAnalysis` with the AnalysisTemplate `template`.
    pub fn post_promotion(self, template: &'static str) -> Self {
        self.with_strategy(|b| b.post_promotion = Some(template))
    }
}

impl StrategyFixture for BlueGreen {
    const KEY: &'static str = "blueGreen";

    fn write(&self, strategy: &mut Value) {
        strategy["activeService"] = json!(ACTIVE_SERVICE);
        strategy["previewService"] = json!(PREVIEW_SERVICE);
        strategy["autoPromotionEnabled"] = json!(self.auto_promotion_enabled);
        if let Some(count) = self.preview_replica_count {
            strategy["previewReplicaCount"] = json!(count);
        }
        if let Some(seconds) = self.auto_promotion_seconds {
            strategy["autoPromotionSeconds"] = json!(seconds);
        }
        let analysis = |template: &str| json!({ "templates": [{ "templateName": template }] });
        if let Some(template) = self.pre_promotion {
            strategy["prePromotionAnalysis"] = analysis(template);
        }
        if let Some(template) = self.post_promotion {
            strategy["postPromotionAnalysis"] = analysis(template);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The namespace.

/// Runs `body` as a scenario in a fresh namespace `<prefix>*` holding the active and preview
/// Services and the analysis templates. See [`scenario::run`] for the guarantees.
pub async fn run(prefix: &str, body: impl AsyncFnOnce(&mut Scenario) -> Result<()>) -> Result<()> {
    // On the heap: a scenario's future (watches, waits, the body) overflows a test thread's
    // stack in debug builds.
    Box::pin(scenario::run_with(prefix, create_objects, body)).await?;
    Ok(())
}

async fn create_objects(client: kube::Client, ns: String) -> Result<()> {
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    for name in [ACTIVE_SERVICE, PREVIEW_SERVICE] {
        services
            .create(&PostParams::default(), &fixtures::service(name))
            .await
            .with_context(|| format!("creating Service {name}"))?;
    }
    let once = |query: &str| json!({ "query": query });
    create_analysis_template(&client, &ns, PASSING, once("vector(1)")).await?;
    create_analysis_template(&client, &ns, FAILING, once("vector(0)")).await?;
    // Fails at its third failed measurement (failureLimit 2), one a second.
    let slow = json!({ "query": "vector(0)", "interval": "1s", "count": 5, "failureLimit": 2 });
    create_analysis_template(&client, &ns, FAILING_SLOWLY, slow).await?;
    // 0.5 is neither >= 1 (success) nor < 0 (failure).
    let unsure = json!({ "query": "vector(0.5)", "failureCondition": "result[0] < 0" });
    create_analysis_template(&client, &ns, INCONCLUSIVE, unsure).await?;
    let late = json!({ "query": "vector(0)", "interval": "2s", "count": 30, "failureLimit": 25 });
    create_analysis_template(&client, &ns, FAILING_LATE, late).await
}

// ---------------------------------------------------------------------------------------------
// Actions and waits.

/// Creates the Rollout and waits until its first version is released: Healthy, stable, and the
/// active Service on it. Returns the stable pod-template hash.
pub async fn deploy(s: &Scenario, spec: &BlueGreenBuilder) -> Result<String> {
    let hash = s
        .deploy_until(spec, |r| active_selector(r) == stable(r))
        .await?;
    wait_service(s, ACTIVE_SERVICE, &hash).await?;
    Ok(hash)
}

/// A release of `v2` over the deployed `v1`.
#[derive(Clone, Debug)]
pub struct Release {
    /// The stable hash, `v1`.
    pub old: String,
    /// The hash of `v2`.
    pub new: String,
    /// The revision of the template change, to look at what happened after it.
    pub patch_rv: u64,
}

/// Deploys `spec` (version `v1`) and changes its template to `v2`, once the controller saw it.
pub async fn release_v2(s: &Scenario, spec: &BlueGreenBuilder) -> Result<Release> {
    let old = deploy(s, spec).await?;
    let (new, patch_rv) = s.patch_spec(fixtures::version_patch("v2")).await?;
    Ok(Release { old, new, patch_rv })
}

/// [`release_v2`], then waits until `v2` is paused before the switch for a promote
/// ([`PauseReason::BlueGreenPause`]); returns the release and the paused Rollout.
pub async fn paused_preview(s: &Scenario, spec: &BlueGreenBuilder) -> Result<(Release, Rollout)> {
    let release = release_v2(s, spec).await?;
    let paused = wait_paused(s, &release.new, PauseReason::BlueGreenPause).await?;
    Ok((release, paused))
}

/// Waits until the Service `name` selects `hash`.
pub async fn wait_service(s: &Scenario, name: &str, hash: &str) -> Result<Service> {
    let wanted = hash.to_owned();
    let what = format!("Service {name} selects {hash}");
    s.wait_for(name, &what, move |svc: &Service| {
        service_hash(svc) == Some(wanted.as_str())
    })
    .await
}

/// Waits until the ReplicaSet of `hash` has `spec.replicas == replicas` and as many available.
pub async fn wait_available(s: &Scenario, hash: &str, replicas: i32) -> Result<ReplicaSet> {
    let what = format!("ReplicaSet of {hash} has {replicas} of {replicas} available");
    s.wait_replica_set_where(hash, &what, move |rs| {
        rs.spec.as_ref().and_then(|s| s.replicas) == Some(replicas)
            && rs.status.as_ref().and_then(|s| s.available_replicas) == Some(replicas)
    })
    .await
}

/// Waits until the ReplicaSet of `hash` carries a scale-down deadline; returns it.
pub async fn wait_deadline(s: &Scenario, hash: &str) -> Result<String> {
    let what = format!("ReplicaSet of {hash} has a scale-down deadline");
    let rs = s
        .wait_replica_set_where(hash, &what, |rs| {
            rs.annotations().contains_key(SCALE_DOWN_ANNOTATION)
        })
        .await?;
    rs.annotations()
        .get(SCALE_DOWN_ANNOTATION)
        .cloned()
        .context("the deadline annotation")
}

/// Waits until the AnalysisRun `name` satisfies `cond`.
pub async fn wait_run(
    s: &Scenario,
    name: &str,
    what: &str,
    cond: impl Fn(&AnalysisRun) -> bool + Send + 'static,
) -> Result<AnalysisRun> {
    s.wait_for(name, what, cond).await
}

/// The AnalysisRun `name` as stored.
pub async fn analysis_run(s: &Scenario, name: &str) -> Result<AnalysisRun> {
    let api: Api<AnalysisRun> = Api::namespaced(s.client.clone(), &s.ns);
    api.get(name).await.context("the AnalysisRun exists")
}

/// How long a scenario watches a held release to show that nothing moves: a named sleep, not a
/// stand-in for a condition, because showing an absence takes time passing.
pub const HOLD: Duration = Duration::from_secs(3);

/// Watches the held release for [`HOLD`]; then the active Service must still select `hash`.
pub async fn check_held(s: &Scenario, hash: &str, what: &str) -> Result<()> {
    tokio::time::sleep(HOLD).await;
    ensure!(
        s.service_hash(ACTIVE_SERVICE).await?.as_deref() == Some(hash),
        "{what}"
    );
    Ok(())
}

/// Waits until the release of `hash` is paused before the switch for `reason`.
pub async fn wait_paused(s: &Scenario, hash: &str, reason: PauseReason) -> Result<Rollout> {
    let hash = hash.to_owned();
    let what = format!("{hash} paused before the switch ({reason:?})");
    s.wait(&what, move |r| {
        current_hash(r).as_deref() == Some(hash.as_str())
            && phase(r) == Some(RolloutPhase::Paused)
            && r.status.as_ref().is_some_and(|st| st.controller_pause)
            && pause_reasons(r) == [reason]
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Reading the Rollout and Services.

fn service_hash(svc: &Service) -> Option<&str> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()?
        .get(HASH_LABEL)
        .map(String::as_str)
}

pub fn active_selector(r: &Rollout) -> Option<String> {
    r.status
        .as_ref()?
        .blue_green
        .as_ref()?
        .active_selector
        .clone()
}

pub fn preview_selector(r: &Rollout) -> Option<String> {
    r.status
        .as_ref()?
        .blue_green
        .as_ref()?
        .preview_selector
        .clone()
}

pub fn pause_reasons(r: &Rollout) -> Vec<PauseReason> {
    r.status
        .as_ref()
        .map(|s| s.pause_conditions.iter().map(|p| p.reason).collect())
        .unwrap_or_default()
}

pub fn pre_promotion_run(r: &Rollout) -> Option<&RolloutAnalysisRunStatus> {
    r.status
        .as_ref()?
        .blue_green
        .as_ref()?
        .pre_promotion_analysis_run_status
        .as_ref()
}

pub fn post_promotion_run(r: &Rollout) -> Option<&RolloutAnalysisRunStatus> {
    r.status
        .as_ref()?
        .blue_green
        .as_ref()?
        .post_promotion_analysis_run_status
        .as_ref()
}

// ---------------------------------------------------------------------------------------------
// Analysis runs and wall-clock time.

/// The promotion gate an AnalysisRun judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// `prePromotionAnalysis`: before the switch.
    Pre,
    /// `postPromotionAnalysis`: after the switch, before the promotion.
    Post,
}

impl Gate {
    /// How the names of this gate's runs for `hash` start: `web-<hash>-pre-` or `-post-`.
    pub fn run_prefix(self, hash: &str) -> String {
        let gate = match self {
            Gate::Pre => "pre",
            Gate::Post => "post",
        };
        format!("{ROLLOUT}-{hash}-{gate}-")
    }
}

/// The AnalysisRun `name` is a run of `gate` for `hash`.
pub fn check_run_name(name: &str, hash: &str, gate: Gate) -> Result<()> {
    ensure!(name.starts_with(&gate.run_prefix(hash)), "run name {name}");
    Ok(())
}

/// Converts instants of this process to wall-clock time, to compare the monitor's delivery
/// times with timestamps the controller wrote.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    instant: Instant,
    wall: Timestamp,
}

impl WallClock {
    pub fn now() -> Self {
        Self {
            instant: Instant::now(),
            wall: Timestamp::now(),
        }
    }

    /// `at` in milliseconds since the epoch.
    pub fn millis(&self, at: Instant) -> i64 {
        let (later, sign) = match at.checked_duration_since(self.instant) {
            Some(d) => (d, 1),
            None => (self.instant.duration_since(at), -1),
        };
        let offset = i64::try_from(later.as_millis()).unwrap_or(i64::MAX);
        self.wall.as_millisecond() + sign * offset
    }
}

/// An RFC 3339 time, in milliseconds since the epoch.
pub fn rfc3339_millis(text: &str) -> Result<i64> {
    let at: Timestamp = text
        .parse()
        .with_context(|| format!("{text:?} is not an RFC 3339 time"))?;
    Ok(at.as_millisecond())
}
