//! The three analysis templates compared, each run over one simulated canary the way the
//! controller would run it: measure every interval, count failures against `failureLimit`,
//! roll back when a metric fails.
//!
//! Every template judges two metrics, the error rate and the latency, so a template's false
//! rollback rate is the chance that either metric fails a canary identical to stable.

use sluice_analysis::judge::{
    Counts, MannWhitneyConfig, Phase, SequentialConfig, mann_whitney, sequential,
    sequential_latency,
};
use sluice_crds::NoDataPolicy;

use super::traffic::{Stream, Window};

/// One of the compared templates.
pub enum Template {
    /// Argo-style thresholds.
    Threshold(Threshold),
    /// Mann-Whitney re-checked every interval.
    MannWhitney(MannWhitneyTemplate),
    /// The sequential judge.
    Sequential(SequentialTemplate),
}

impl Template {
    /// Runs the template over one simulated canary.
    pub fn run(&self, sim: &Canary) -> Outcome {
        match self {
            Template::Threshold(t) => t.run(sim),
            Template::MannWhitney(t) => t.run(sim),
            Template::Sequential(t) => t.run(sim),
        }
    }
}

/// How one analysis ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Rolled back after this many seconds.
    Rollback(u32),
    /// Promoted early after this many seconds (sequential only).
    Promote(u32),
    /// Reached the horizon without a rollback (the run's count is done: promotion).
    Horizon,
}

/// The simulated canary: both streams, the tick length and the horizon.
pub struct Canary<'a> {
    /// The canary version's counts.
    pub canary: &'a Stream,
    /// The stable version's counts.
    pub stable: &'a Stream,
    /// Seconds per tick.
    pub tick_s: u32,
    /// Ticks simulated.
    pub ticks: usize,
}

impl Canary<'_> {
    fn seconds(&self, tick: usize) -> u32 {
        u32::try_from(tick)
            .unwrap_or(u32::MAX)
            .saturating_mul(self.tick_s)
    }

    /// Evaluation ticks every `interval` ticks, up to the horizon.
    fn checks(&self, interval: usize) -> impl Iterator<Item = usize> {
        (interval..=self.ticks).step_by(interval.max(1))
    }
}

/// Argo-style thresholds on the canary alone over the last interval.
pub struct Threshold {
    /// Ticks between measurements (and the query's window).
    pub interval: usize,
    /// `successCondition: result[0] < max_error_ratio`.
    pub max_error_ratio: f64,
    /// `successCondition: result[0] < max_p95_ms` on `histogram_quantile(0.95, ...)`.
    pub max_p95_ms: f64,
    /// Failed measurements tolerated per metric.
    pub failure_limit: u32,
}

impl Threshold {
    /// Runs the template.
    pub fn run(&self, sim: &Canary) -> Outcome {
        let mut failures = [0u32; 2];
        for t in sim.checks(self.interval) {
            let window = sim.canary.window(t - self.interval, t);
            // NaN (no requests) fails the condition, as onNaN: fail would.
            let errors_ok = window.error_ratio() < self.max_error_ratio;
            let p95 = window.histogram().and_then(|h| h.quantile(0.95));
            let latency_ok = p95.is_some_and(|v| v < self.max_p95_ms);
            for (failed, ok) in failures.iter_mut().zip([errors_ok, latency_ok]) {
                *failed += u32::from(!ok);
            }
            if failures.iter().any(|f| *f > self.failure_limit) {
                return Outcome::Rollback(sim.seconds(t));
            }
        }
        Outcome::Horizon
    }
}

/// Mann-Whitney on per-step points (error ratio, histogram p95) over a trailing window,
/// re-checked every interval.
pub struct MannWhitneyTemplate {
    /// Ticks between measurements.
    pub interval: usize,
    /// Ticks per point (the range query's step).
    pub step: usize,
    /// Ticks in the range query's window.
    pub window: usize,
    /// The judge.
    pub config: MannWhitneyConfig,
    /// Failed measurements tolerated per metric.
    pub failure_limit: u32,
}

impl MannWhitneyTemplate {
    /// Runs the template.
    pub fn run(&self, sim: &Canary) -> Outcome {
        let mut failures = [0u32; 2];
        for t in sim.checks(self.interval) {
            let points = |stream: &Stream| self.points(stream, t);
            let (canary, stable) = (points(sim.canary), points(sim.stable));
            let ratios = |w: &[Window]| w.iter().map(Window::error_ratio).collect::<Vec<_>>();
            let p95s = |w: &[Window]| {
                w.iter()
                    .map(|w| {
                        w.histogram()
                            .and_then(|h| h.quantile(0.95))
                            .unwrap_or(f64::NAN)
                    })
                    .collect::<Vec<_>>()
            };
            let verdicts = [
                mann_whitney(&self.config, &ratios(&canary), &ratios(&stable)).verdict,
                mann_whitney(&self.config, &p95s(&canary), &p95s(&stable)).verdict,
            ];
            for (failed, verdict) in failures.iter_mut().zip(verdicts) {
                let (phase, _) = verdict.measurement_phase(NoDataPolicy::Fail, NoDataPolicy::Fail);
                *failed += u32::from(phase == sluice_crds::AnalysisPhase::Failed);
            }
            if failures.iter().any(|f| *f > self.failure_limit) {
                return Outcome::Rollback(sim.seconds(t));
            }
        }
        Outcome::Horizon
    }

    /// The range query's points ending at tick `t`.
    fn points(&self, stream: &Stream, t: usize) -> Vec<Window> {
        let start = t.saturating_sub(self.window);
        (start..t)
            .step_by(self.step)
            .filter(|from| from + self.step <= t)
            .map(|from| stream.window(from, from + self.step))
            .collect()
    }
}

/// The sequential judge on cumulative counts since the start, every interval; a metric that
/// passes is done, both passing promotes early, any failure rolls back.
pub struct SequentialTemplate {
    /// Ticks between evaluations.
    pub interval: usize,
    /// Judge for the error counts.
    pub errors: SequentialConfig,
    /// Judge for the share of slow requests.
    pub latency: SequentialConfig,
    /// Latency threshold (a bucket bound, ms).
    pub slow_ms: f64,
}

impl SequentialTemplate {
    /// Runs the template.
    pub fn run(&self, sim: &Canary) -> Outcome {
        let mut passed = [false; 2];
        for t in sim.checks(self.interval) {
            let (canary, stable) = (sim.canary.window(0, t), sim.stable.window(0, t));
            let phases = [
                (!passed[0]).then(|| self.error_phase(&canary, &stable)),
                (!passed[1]).then(|| self.latency_phase(&canary, &stable)),
            ];
            for (done, phase) in passed.iter_mut().zip(phases) {
                match phase {
                    // NoData and Invalid are failures with onEmpty/onNaN: fail.
                    Some(Phase::Fail | Phase::NoData(_) | Phase::Invalid) => {
                        return Outcome::Rollback(sim.seconds(t));
                    }
                    Some(Phase::Pass) => *done = true,
                    Some(Phase::Continue) | None => {}
                }
            }
            if passed.iter().all(|p| *p) {
                return Outcome::Promote(sim.seconds(t));
            }
        }
        Outcome::Horizon
    }

    fn error_phase(&self, canary: &Window, stable: &Window) -> Phase {
        let counts = |w: &Window| Counts::new(w.errors as f64, w.requests as f64);
        sequential(&self.errors, counts(canary), counts(stable))
            .verdict
            .phase
    }

    fn latency_phase(&self, canary: &Window, stable: &Window) -> Phase {
        match (canary.histogram(), stable.histogram()) {
            (Some(c), Some(s)) => sequential_latency(&self.latency, self.slow_ms, &c, &s)
                .map_or(Phase::Invalid, |r| r.verdict.phase),
            _ => Phase::Invalid,
        }
    }
}
