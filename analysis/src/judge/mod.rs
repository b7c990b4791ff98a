//! Statistical judges: pure functions from samples or counts to a typed [`Verdict`].
//!
//! A judge replaces a metric's conditions (`metrics[].judge`, see [`sluice_crds::judge`]). It
//! compares the canary with a baseline (or with an SLO) and says Pass, Fail, Continue or
//! NoData, with the numbers that decided it. Nothing here fetches: [`mod@measure`] names the
//! queries a judge needs and turns their answers into a [`Measurement`](sluice_crds::Measurement).
//!
//! | Judge | Input | Question | Guarantee |
//! |---|---|---|---|
//! | [`mann_whitney()`] | two sample windows | is the canary's distribution shifted by more than the effect-size floor? | level `alpha` for **one** look (fixed-sample test) |
//! | [`sequential()`] | cumulative error (or slow-request) counts | is the canary's rate worse than the baseline's by more than `margin`? | level `alpha` over **every** look, however often and for however long |
//! | [`slo()`] | canary counts per window | is the canary burning the error budget fast (multi-window)? | none statistical: an alerting rule |
//!
//! # Which judge
//! Re-running a fixed-sample test every interval inflates its false-alarm rate far above its
//! nominal level: Netflix measured 66 false rejections in 100 A/A simulations of a
//! Mann-Whitney test checked repeatedly (Lindon, Sanden & Shirikian, *Rapid Regression
//! Detection in Software Deployments through Sequential Testing*, KDD 2022,
//! arXiv:2205.14762). [`mann_whitney()`] is therefore meant for one look at a window (Kayenta's
//! use); [`sequential()`] is the one to check every interval, and it may stop early in both
//! directions. `judge-bench` (`cargo run --release -p sluice-analysis --bin judge-bench`)
//! measures all of this on simulated traffic.
//!
//! # No data is never a pass
//! Every judge returns [`Phase::NoData`] when a version has fewer than `minSamples` samples
//! (points for Mann-Whitney, requests for the count judges), when a query returned nothing, or
//! when a value is NaN. [`Verdict::measurement_phase`] applies the metric's `onEmpty` /
//! `onNaN` policy to it, exactly as [`measure()`](crate::measure()) does for conditions, so a
//! missing baseline fails the measurement unless the metric says `pass` explicitly.
//!
//! # Wiring (what the controller calls)
//! For a metric whose [`Check`](crate::Check) is a judge, instead of
//! [`resolve_query`](crate::resolve_query):
//!
//! ```text
//! let queries = judge_queries(judge, &args, run_age)?;        // 2 (mannWhitney), 4 (sequential), 2 per window (slo)
//! let answers = join_all(queries.iter().map(|q| provider.fetch(&q.query, now))).await;
//! let measurement = judge_measurement(metric, judge, &queries, &answers, started, clock.now());
//! ```
//!
//! `run_age` is the time since the AnalysisRun started: the sequential judge's counts must
//! cover the whole run (its `{{args.window}}`), never a sliding window. A fetch error is an
//! `Error` measurement and bad judge settings too. The AnalysisRun controller branches here
//! for judge metrics; [`resolve_query`](crate::resolve_query) refuses them.
//!
//! A `Pass` of the sequential judge (the canary is proven within the margin) is reported as
//! `metadata.judgeDecision: pass`; with `promoteEarly` the assessment ([`mod@crate::assess`])
//! completes the metric on it. `Continue` is a `Successful` measurement saying "no decision yet", so a run whose
//! `count` ends without a decision promotes, as in Netflix's canary model; a regression
//! fails the measurement as soon as it is proven.

pub mod histogram;
pub mod mann_whitney;
pub mod measure;
pub mod rank;
pub mod score;
pub mod sequential;
pub mod slo;

mod profile;
mod shift;

#[cfg(test)]
mod tests;

use std::fmt;

use sluice_crds::{AnalysisPhase, NoDataPolicy};

use crate::measure::no_data;

pub use histogram::{Histogram, HistogramError};
pub use mann_whitney::{Classification, MannWhitneyConfig, MannWhitneyReport, mann_whitney};
pub use measure::{JudgeQuery, QueryRole, judge_measurement, judge_queries};
pub use rank::{Alternative, UTest, u_test};
pub use score::{MetricOutcome, ScoreReport, ScoreThresholds, score};
pub use sequential::{Counts, SequentialConfig, SequentialReport, sequential, sequential_latency};
pub use slo::{SloConfig, SloReport, SloWindow, WindowCounts, slo};

/// What a judge decided.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Phase {
    /// The canary is not worse (for a sequential judge: proven within the margin, so the
    /// analysis may stop early).
    Pass,
    /// The canary is worse.
    Fail,
    /// A sequential judge has not decided yet: keep measuring.
    Continue,
    /// Not enough usable data; the metric's `onEmpty` / `onNaN` decides.
    NoData(NoData),
    /// The data contradicts itself (e.g. more errors than requests): an `Error` measurement.
    Invalid,
}

/// Why a judge had no data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoData {
    /// A query returned no series (or no points); decided by `onEmpty`.
    Empty,
    /// Fewer samples than `minSamples` (points for Mann-Whitney, requests for the count
    /// judges); decided by `onEmpty`.
    TooFew {
        /// Samples available (the smaller side).
        have: u64,
        /// `minSamples`.
        need: u64,
    },
    /// A value is NaN or infinite (typically a ratio over zero requests); decided by `onNaN`.
    NaN,
}

/// A confidence interval for the judged quantity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// Lower end (may be `-inf` when nothing can be excluded).
    pub lower: f64,
    /// Upper end (may be `+inf`).
    pub upper: f64,
    /// Coverage, e.g. 0.95. For a sequential judge it holds at every evaluation at once.
    pub confidence: f64,
}

/// A judge's decision with its numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// The decision.
    pub phase: Phase,
    /// The headline statistic (p-value, e-value, burn rate), when there was data.
    pub value: Option<f64>,
    /// Confidence bounds on the judged quantity, when the judge has them.
    pub bounds: Option<Bounds>,
    /// Why, with the numbers.
    pub message: String,
}

impl Verdict {
    pub(crate) fn new(phase: Phase, value: f64, bounds: Option<Bounds>, message: String) -> Self {
        Verdict {
            phase,
            value: Some(value),
            bounds,
            message,
        }
    }

    pub(crate) fn no_data(reason: NoData, message: String) -> Self {
        Verdict {
            phase: Phase::NoData(reason),
            value: None,
            bounds: None,
            message,
        }
    }

    pub(crate) fn invalid(message: String) -> Self {
        Verdict {
            phase: Phase::Invalid,
            value: None,
            bounds: None,
            message,
        }
    }

    /// The measurement phase and message, applying the metric's no-data policies.
    ///
    /// # Guarantees
    /// - `Pass` and `Continue` are `Successful`: a sequential judge that has not decided has
    ///   found no evidence against the canary, and the run's `count` bounds how long it
    ///   keeps looking (the Netflix model: stop early on a regression, promote at the end).
    ///   The message says which of the two it was.
    /// - `NoData` is `Successful` only when the matching policy is `pass`.
    /// - `Invalid` is `Error` (counts toward `consecutiveErrorLimit`, never a verdict).
    pub fn measurement_phase(
        &self,
        on_empty: NoDataPolicy,
        on_nan: NoDataPolicy,
    ) -> (AnalysisPhase, String) {
        match self.phase {
            Phase::Pass | Phase::Continue => (AnalysisPhase::Successful, self.message.clone()),
            Phase::Fail => (AnalysisPhase::Failed, self.message.clone()),
            Phase::Invalid => (AnalysisPhase::Error, self.message.clone()),
            Phase::NoData(NoData::NaN) => no_data(&self.message, "onNaN", on_nan),
            Phase::NoData(_) => no_data(&self.message, "onEmpty", on_empty),
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Pass => "pass",
            Phase::Fail => "fail",
            Phase::Continue => "continue",
            Phase::NoData(_) => "no data",
            Phase::Invalid => "invalid",
        })
    }
}

/// Why a judge's settings are unusable (the CRD's CEL rules reject these before the API
/// server stores them; this is the same check for callers of the pure API).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// `alpha` outside `(0, 0.5)`.
    #[error("alpha must be greater than 0 and less than 0.5, got {0}")]
    Alpha(f64),
    /// `margin` outside `[0, 1)`.
    #[error("margin must be at least 0 and less than 1, got {0}")]
    Margin(f64),
    /// `minSamples` of 0.
    #[error("minSamples must be at least 1")]
    MinSamples,
    /// An SLO objective outside `(0, 100)`.
    #[error("objective must be a percentage between 0 and 100 (exclusive), got {0}")]
    Objective(f64),
    /// A burn-rate window that is not usable.
    #[error("burn-rate window {0}")]
    Window(String),
    /// Score thresholds out of order or out of range.
    #[error("score thresholds must satisfy 0 <= marginal <= pass <= 100, got {0}")]
    Thresholds(String),
}

pub(crate) fn check_alpha(alpha: f64) -> Result<f64, ConfigError> {
    if alpha > 0.0 && alpha < 0.5 {
        Ok(alpha)
    } else {
        Err(ConfigError::Alpha(alpha))
    }
}

pub(crate) fn check_margin(margin: f64) -> Result<f64, ConfigError> {
    if (0.0..1.0).contains(&margin) {
        Ok(margin)
    } else {
        Err(ConfigError::Margin(margin))
    }
}

pub(crate) fn check_min_samples(min_samples: usize) -> Result<u64, ConfigError> {
    match u64::try_from(min_samples) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::MinSamples),
    }
}

/// A number for messages: 4 significant digits, no exponent for everyday magnitudes.
pub(crate) fn num(v: f64) -> String {
    if !v.is_finite() {
        return crate::value::format_number(v);
    }
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor();
    if !(-4.0..6.0).contains(&magnitude) {
        return format!("{v:.3e}");
    }
    let decimals = (3.0 - magnitude).max(0.0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}
