//! A canary score over several judged metrics, Kayenta-style: weights, critical metrics and
//! pass / marginal thresholds (Kayenta's `WeightedSumScorer` and `ThresholdScoreClassifier`;
//! <https://spinnaker.io/docs/guides/user/canary/>).
//!
//! # Math
//! `score = 100 * sum(w_i [metric i passed]) / sum(w_i)`, then:
//!
//! - any **critical** metric that did not pass fails the canary, whatever the score;
//! - `score >= pass` passes, `marginal <= score < pass` is marginal (Inconclusive: a human
//!   decides), below `marginal` fails.
//!
//! One deliberate difference from Kayenta: a metric with **no data counts as not passed**
//! (Kayenta scores a group with no data as 100, a silent pass). Apply the metric's `onEmpty`
//! policy before scoring if missing data should count as a pass.

use sluice_crds::AnalysisPhase;

use super::{ConfigError, Phase, num};

/// One metric's outcome, as the score sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricOutcome {
    /// Metric name, for the message.
    pub name: String,
    /// Relative weight (non-negative; all zero means equal weights).
    pub weight: f64,
    /// Fails the canary on its own when it does not pass.
    pub critical: bool,
    /// The judge's phase (`Pass` and `Continue` count as passed).
    pub phase: Phase,
}

/// Score thresholds in percent, `0 <= marginal <= pass <= 100`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreThresholds {
    pass: f64,
    marginal: f64,
}

impl ScoreThresholds {
    /// Checks the order and range.
    pub fn new(pass: f64, marginal: f64) -> Result<Self, ConfigError> {
        if (0.0..=pass).contains(&marginal) && pass <= 100.0 {
            Ok(ScoreThresholds { pass, marginal })
        } else {
            Err(ConfigError::Thresholds(format!(
                "pass {pass}, marginal {marginal}"
            )))
        }
    }
}

impl Default for ScoreThresholds {
    /// Pass at 95, marginal from 75 (the values of Spinnaker's canary documentation).
    fn default() -> Self {
        ScoreThresholds {
            pass: 95.0,
            marginal: 75.0,
        }
    }
}

/// The canary's score and what it means.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreReport {
    /// 0 to 100.
    pub score: f64,
    /// `Successful`, `Inconclusive` (marginal) or `Failed`.
    pub phase: AnalysisPhase,
    /// Why, naming the metrics that did not pass.
    pub message: String,
}

/// Scores the metrics.
///
/// # Guarantees
/// `Successful` only with at least one metric, every critical metric passed and the score at
/// or above `pass`.
pub fn score(metrics: &[MetricOutcome], thresholds: ScoreThresholds) -> ScoreReport {
    let passed = |m: &MetricOutcome| matches!(m.phase, Phase::Pass | Phase::Continue);
    let total_weight: f64 = metrics.iter().map(weight).sum();
    let equal = total_weight <= 0.0;
    let w = |m: &MetricOutcome| if equal { 1.0 } else { weight(m) };
    let denominator: f64 = metrics.iter().map(w).sum();
    let score = if denominator > 0.0 {
        100.0 * metrics.iter().filter(|m| passed(m)).map(w).sum::<f64>() / denominator
    } else {
        0.0
    };
    let not_passed: Vec<String> = metrics
        .iter()
        .filter(|m| !passed(m))
        .map(|m| format!("{} ({})", m.name, m.phase))
        .collect();
    let critical: Vec<&str> = metrics
        .iter()
        .filter(|m| m.critical && !passed(m))
        .map(|m| m.name.as_str())
        .collect();
    let (phase, why) = if metrics.is_empty() {
        (AnalysisPhase::Failed, "no metrics to score".to_string())
    } else if !critical.is_empty() {
        (
            AnalysisPhase::Failed,
            format!("critical metric(s) did not pass: {}", critical.join(", ")),
        )
    } else if score >= thresholds.pass {
        (
            AnalysisPhase::Successful,
            "at or above the pass threshold".into(),
        )
    } else if score >= thresholds.marginal {
        (AnalysisPhase::Inconclusive, "marginal".into())
    } else {
        (AnalysisPhase::Failed, "below the marginal threshold".into())
    };
    let detail = if not_passed.is_empty() {
        String::new()
    } else {
        format!("; not passed: {}", not_passed.join(", "))
    };
    let message = format!(
        "score {} (pass {}, marginal {}): {why}{detail}",
        num(score),
        num(thresholds.pass),
        num(thresholds.marginal)
    );
    ScoreReport {
        score,
        phase,
        message,
    }
}

fn weight(m: &MetricOutcome) -> f64 {
    if m.weight.is_finite() && m.weight > 0.0 {
        m.weight
    } else {
        0.0
    }
}
