//! One release: apply a new pod template, follow it event by event (printing a progress line
//! per change), and stop at its verdict: promoted, or rolled back (aborted, canary weight read
//! back at 0, verified, and the canary scaled down), or out of time.
//!
//! The verdict checks are pure functions of the [`World`]; [`release`] is the I/O around them.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use sluice_crds::AnalysisPhase;
use tokio::time::Instant;

use super::latency::BreachClock;
use super::manifests::{self, ManifestError, Version};
use super::progress::Printer;
use super::watch::{WaitError, Watch};
use super::world::{RunRole, WatchedRollout, World, conditions, latest, metric_results, run_phase};

/// How a release ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Promoted,
    RolledBack,
    TimedOut,
}

/// Why a release was rolled back: the deciding metric of the deciding run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub role: RunRole,
    pub run: String,
    pub run_phase: Option<AnalysisPhase>,
    pub metric: Option<String>,
    /// The deciding measurement's value, as measured (`[0.7]`).
    pub value: Option<String>,
    pub conditions: Vec<String>,
    /// The metric's message (why it failed).
    pub message: String,
    /// The Rollout's message.
    pub rollout_message: String,
}

/// What happened to one release, times since the release was applied.
#[derive(Clone, Debug)]
pub struct ReleaseReport {
    pub version: Version,
    pub hash: Option<String>,
    pub verdict: Verdict,
    pub elapsed: Duration,
    pub clock: BreachClock,
    /// When the canary was scaled to 0 after an abort.
    pub scaled_down_at: Option<Duration>,
    pub failure: Option<Failure>,
    /// Measurements taken by the runs the status named while following, and how many of them
    /// did not pass.
    pub measurements: usize,
    pub not_passing: usize,
    /// Whether an abort was seen at any moment (a promoted release must never show one).
    pub saw_abort: bool,
}

/// Applies `version` as the Rollout's template and follows it until a verdict or `timeout`.
pub async fn release(
    client: &kube::Client,
    namespace: &str,
    rollout: &Value,
    version: &Version,
    watch: &mut Watch,
    printer: &mut Printer,
    timeout: Duration,
) -> Result<ReleaseReport, ManifestError> {
    let applied = manifests::apply(client, namespace, &version.apply_to(rollout)).await?;
    let released = Instant::now();
    printer.restart(released);
    let generation = applied.metadata.generation;
    let mut follow = Follow::new(version.clone(), generation, released);
    let deadline = released + timeout;
    let verdict = loop {
        if let Some(verdict) = follow.verdict(&watch.world) {
            break verdict;
        }
        match watch.next(deadline).await {
            Ok(at) => {
                printer.print(&watch.world, at);
                follow.observe(&watch.world, at);
            }
            Err(WaitError::Timeout | WaitError::Ended) => break Verdict::TimedOut,
        }
    };
    Ok(follow.report(&watch.world, verdict, Instant::now()))
}

/// The state of following one release.
#[derive(Debug)]
struct Follow {
    version: Version,
    generation: Option<i64>,
    released: Instant,
    hash: Option<String>,
    clock: BreachClock,
    scaled_down: Option<Instant>,
    saw_abort: bool,
    runs: BTreeSet<String>,
}

impl Follow {
    fn new(version: Version, generation: Option<i64>, released: Instant) -> Self {
        Self {
            version,
            generation,
            released,
            hash: None,
            clock: BreachClock::new(released),
            scaled_down: None,
            saw_abort: false,
            runs: BTreeSet::new(),
        }
    }

    fn observe(&mut self, world: &World, at: Instant) {
        if self.hash.is_none() && sees_generation(world, self.generation) {
            self.hash = world.current_hash().map(str::to_owned);
        }
        let Some(hash) = self.hash.as_deref() else {
            return;
        };
        self.clock.observe(world.mesh.map(|m| m.canary), at);
        self.saw_abort |= world.aborted();
        for (_, name) in world.current_runs() {
            self.runs.insert(name.to_owned());
        }
        let canary = world.stable_hash() != Some(hash);
        let zero = world.replicas(hash).is_some_and(|r| r.spec == 0);
        if world.aborted() && canary && zero && self.scaled_down.is_none() {
            self.scaled_down = Some(at);
        }
    }

    fn verdict(&self, world: &World) -> Option<Verdict> {
        let hash = self.hash.as_deref()?;
        if world.released(hash) {
            return Some(Verdict::Promoted);
        }
        rolled_back(world, hash).then_some(Verdict::RolledBack)
    }

    fn report(self, world: &World, verdict: Verdict, now: Instant) -> ReleaseReport {
        let (measurements, not_passing) = measurements(world, &self.runs);
        ReleaseReport {
            failure: (verdict == Verdict::RolledBack)
                .then(|| failure(world))
                .flatten(),
            measurements,
            not_passing,
            version: self.version,
            hash: self.hash,
            verdict,
            elapsed: now - self.released,
            clock: self.clock,
            scaled_down_at: self.scaled_down.map(|t| t - self.released),
            saw_abort: self.saw_abort,
        }
    }
}

/// Whether the controller has seen the spec of `generation` (or a later one).
fn sees_generation(world: &World, generation: Option<i64>) -> bool {
    let observed = world.status().and_then(|s| s.observed_generation);
    world.current_hash().is_some() && observed.is_some() && observed >= generation
}

/// Rolled back: aborted, the canary weight 0 in the status and verified, read back at 0 from
/// the VirtualService, and the canary's ReplicaSet scaled to 0.
pub fn rolled_back(world: &World, hash: &str) -> bool {
    world.aborted()
        && world.current_hash() == Some(hash)
        && world.stable_hash() != Some(hash)
        && world.status_weight() == Some((0, true))
        && world.mesh.is_some_and(|m| m.canary == 0)
        && world.replicas(hash).is_some_and(|r| r.spec == 0)
}

/// The deciding metric of the first run in the status that did not succeed.
pub fn failure(world: &World) -> Option<Failure> {
    let bad = |p: Option<AnalysisPhase>| {
        matches!(
            p,
            Some(AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive)
        )
    };
    let (role, name) = world
        .current_runs()
        .into_iter()
        .find(|(_, name)| bad(world.run(name).and_then(run_phase)))?;
    let run = world.run(name)?;
    let deciding = metric_results(run).iter().find(|r| bad(Some(r.phase)));
    Some(Failure {
        role,
        run: name.to_owned(),
        run_phase: run_phase(run),
        metric: deciding.map(|r| r.name.clone()),
        value: deciding.and_then(latest).and_then(|m| m.value.clone()),
        conditions: deciding.map_or_else(Vec::new, |r| conditions(run, &r.name)),
        message: deciding
            .and_then(|r| r.message.clone())
            .or_else(|| run.status.as_ref()?.message.clone())
            .unwrap_or_default(),
        rollout_message: world.message().to_owned(),
    })
}

/// Measurements taken by the runs `names` (from the runs' counters, which retention does not
/// shorten), and how many of them did not pass.
pub fn measurements(world: &World, names: &BTreeSet<String>) -> (usize, usize) {
    let results = names
        .iter()
        .filter_map(|name| world.run(name))
        .flat_map(metric_results);
    let (mut taken, mut passed) = (0, 0);
    for r in results {
        taken += r.successful + r.failed + r.inconclusive + r.error;
        passed += r.successful;
    }
    let count = |n: i32| usize::try_from(n).unwrap_or(0);
    (count(taken), count(taken - passed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::fixtures::{aborted, rollout, rs, run, vs, world};
    use crate::demo::world::Update;

    const BG: &str = "shop-new-bg-1";

    fn abort_world(weight: i32, verified: bool, mesh: i64, canary_pods: i32) -> World {
        world([
            rollout(aborted("old", "new", weight, verified, BG)),
            vs(100 - mesh, mesh),
            rs("old", 4),
            rs("new", canary_pods),
        ])
    }

    #[test]
    fn rolled_back_needs_the_weight_verified_and_read_back_at_zero_and_the_canary_scaled_down() {
        assert!(rolled_back(&abort_world(0, true, 0, 0), "new"));
        assert!(
            !rolled_back(&abort_world(0, false, 0, 0), "new"),
            "not verified"
        );
        assert!(
            !rolled_back(&abort_world(0, true, 20, 0), "new"),
            "the mesh still sends"
        );
        assert!(
            !rolled_back(&abort_world(0, true, 0, 1), "new"),
            "pods left"
        );
        assert!(
            !rolled_back(&abort_world(0, true, 0, 0), "other"),
            "another release"
        );
    }

    #[test]
    fn the_failure_names_the_deciding_metric_its_value_and_condition() {
        let mut w = abort_world(0, true, 0, 0);
        w.apply(run(BG, "Failed", "success-rate", "[0.7]", "Failed"));
        let f = failure(&w).expect("a failure");
        assert_eq!(f.role, RunRole::Background);
        assert_eq!(f.metric.as_deref(), Some("success-rate"));
        assert_eq!(f.value.as_deref(), Some("[0.7]"));
        assert_eq!(f.conditions, ["successCondition: result[0] >= 0.95"]);
        assert_eq!(f.message, "metric message");
        assert_eq!(f.rollout_message, "AnalysisRun failed; Rollout aborted");
        assert_eq!(measurements(&w, &BTreeSet::from([BG.to_owned()])), (1, 1));
    }

    #[test]
    fn following_a_release_times_the_traffic_and_the_scale_down() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let version = Version::new("img", 0.3, 40.0);
        let mut follow = Follow::new(version, Some(2), t0);
        let mut w = world([]);
        let progressing = serde_json::json!({"phase": "Progressing", "currentPodHash": "new",
            "stableRS": "old"});
        let steps: [(u64, Update); 5] = [
            (100, rollout(progressing)),
            (200, vs(80, 20)),
            (300, rollout(aborted("old", "new", 0, true, BG))),
            (400, vs(100, 0)),
            (900, rs("new", 0)),
        ];
        for (ms, update) in steps {
            w.apply(update);
            follow.observe(&w, at(ms));
        }
        assert_eq!(follow.hash.as_deref(), Some("new"));
        assert_eq!(follow.verdict(&w), Some(Verdict::RolledBack));
        let report = follow.report(&w, Verdict::RolledBack, at(1000));
        assert_eq!(report.clock.latency(), Some(Duration::from_millis(200)));
        assert_eq!(report.scaled_down_at, Some(Duration::from_millis(900)));
        assert!(report.saw_abort);
    }
}
