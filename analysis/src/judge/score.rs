//! A canary score over several metrics, Kayenta-style: weights, critical metrics and
//! pass / marginal thresholds (`spec.score`, `metrics[].weight`, `metrics[].critical`).
//!
//! The method is Kayenta's canary scoring (Spinnaker's automated canary analysis: the
//! `WeightedSumScorer` and `ThresholdScoreClassifier` of <https://github.com/spinnaker/kayenta>;
//! <https://spinnaker.io/docs/guides/user/canary/>): each metric is judged on its own, the
//! judged metrics are summed by weight into a score out of 100, and two thresholds classify the
//! score.
//!
//! # Math
//! With `w_i` the weight of metric `i` (an integer, 1 to 100):
//!
//! `score = 100 * sum(w_i [metric i Successful]) / sum(w_i)`
//!
//! - any **critical** metric that is not `Successful` fails the canary, whatever the score;
//! - `score >= pass` passes, `marginal <= score < pass` is marginal (`Inconclusive`: a human
//!   decides), below `marginal` fails.
//!
//! The comparisons are made in integers (`100 * passed >= pass * total`), so a score is never
//! rounded across a threshold; the reported score is truncated to two decimals for the same
//! reason.
//!
//! # Differences from Kayenta
//! - Kayenta weights metric *groups* and requires the weights to sum to 100; here each metric
//!   has its own weight and the score is normalised by the total, so adding a metric never
//!   needs the others re-weighted.
//! - A metric that is `Inconclusive` or `Error` counts as **not passed** (Kayenta scores a
//!   group with no data as 100, a silent pass). The metric's `onEmpty` / `onNaN` policy has
//!   already decided what missing data means before it gets here.

use sluice_crds::{AnalysisPhase, Score};

use super::ConfigError;

/// One metric's outcome, as the score sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricOutcome {
    /// Metric name, for the message.
    pub name: String,
    /// Relative weight (`metrics[].weight`, at least 1 in the API; 0 counts for nothing).
    pub weight: u32,
    /// Fails the canary on its own when it does not pass.
    pub critical: bool,
    /// The metric's phase; only `Successful` counts as passed.
    pub phase: AnalysisPhase,
}

/// Score thresholds in percent, `0 <= marginal <= pass <= 100`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScoreThresholds {
    pass: u32,
    marginal: u32,
}

impl ScoreThresholds {
    /// Checks the order and range.
    pub fn new(pass: u32, marginal: u32) -> Result<Self, ConfigError> {
        if marginal <= pass && pass <= 100 {
            Ok(ScoreThresholds { pass, marginal })
        } else {
            Err(ConfigError::Thresholds(format!(
                "pass {pass}, marginal {marginal}"
            )))
        }
    }

    /// The thresholds of an AnalysisTemplate's or AnalysisRun's `spec.score`.
    pub fn from_spec(spec: &Score) -> Result<Self, ConfigError> {
        let percent = |p: sluice_crds::Percent| u32::try_from(p.get()).unwrap_or(0);
        Self::new(percent(spec.pass), percent(spec.marginal))
    }

    /// Lowest passing score.
    pub fn pass(self) -> u32 {
        self.pass
    }

    /// Lowest marginal (inconclusive) score.
    pub fn marginal(self) -> u32 {
        self.marginal
    }
}

/// The canary's score and what it means.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreReport {
    /// 0 to 100, truncated to two decimals.
    pub score: f64,
    /// `Successful`, `Inconclusive` (marginal) or `Failed`.
    pub phase: AnalysisPhase,
    /// Why: the score, the thresholds, and every metric with its phase and weight.
    pub message: String,
}

/// Scores the metrics.
///
/// # Guarantees
/// `Successful` only with a positive total weight, every critical metric `Successful` and the
/// score at or above `pass`. No metrics (or only weight 0) is `Failed`: nothing was shown.
pub fn score(metrics: &[MetricOutcome], thresholds: ScoreThresholds) -> ScoreReport {
    let total: u64 = metrics.iter().map(|m| u64::from(m.weight)).sum();
    let passed: u64 = metrics
        .iter()
        .filter(|m| m.phase == AnalysisPhase::Successful)
        .map(|m| u64::from(m.weight))
        .sum();
    let critical: Vec<&str> = metrics
        .iter()
        .filter(|m| m.critical && m.phase != AnalysisPhase::Successful)
        .map(|m| m.name.as_str())
        .collect();
    let at_least = |percent: u32| 100 * passed >= u64::from(percent) * total;
    let (phase, why) = if total == 0 {
        (AnalysisPhase::Failed, "no weighted metric to score".into())
    } else if !critical.is_empty() {
        let names = critical.join(", ");
        let why = format!("critical metric(s) did not succeed: {names}");
        (AnalysisPhase::Failed, why)
    } else if at_least(thresholds.pass) {
        (AnalysisPhase::Successful, "at or above pass".into())
    } else if at_least(thresholds.marginal) {
        let why = "below pass, at or above marginal".into();
        (AnalysisPhase::Inconclusive, why)
    } else {
        (AnalysisPhase::Failed, "below marginal".into())
    };
    let score = truncated_percent(passed, total);
    let message = format!(
        "score {} (pass {}, marginal {}): {why}; {}",
        format_score(score),
        thresholds.pass,
        thresholds.marginal,
        listing(metrics)
    );
    ScoreReport {
        score,
        phase,
        message,
    }
}

/// `100 * passed / total` truncated to two decimals (0 for no weight), in integers so the
/// value shown never reaches a threshold the comparison found it below.
fn truncated_percent(passed: u64, total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    // Weights are at most 100 each over at most 256 metrics: far from overflowing u64.
    let hundredths = 10_000 * passed / total;
    // At most 10 000, which f64 represents exactly.
    hundredths as f64 / 100.0
}

/// A score for messages: `75`, `66.66`, `12.5`.
fn format_score(score: f64) -> String {
    let text = format!("{score:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `"latency" Successful (weight 3), "errors" Failed (weight 1, critical)`.
fn listing(metrics: &[MetricOutcome]) -> String {
    let one = |m: &MetricOutcome| {
        let critical = if m.critical { ", critical" } else { "" };
        format!("{:?} {:?} (weight {}{critical})", m.name, m.phase, m.weight)
    };
    metrics.iter().map(one).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use AnalysisPhase::{Error, Failed, Inconclusive, Successful};

    fn outcome(name: &str, weight: u32, critical: bool, phase: AnalysisPhase) -> MetricOutcome {
        MetricOutcome {
            name: name.into(),
            weight,
            critical,
            phase,
        }
    }

    fn thresholds(pass: u32, marginal: u32) -> ScoreThresholds {
        ScoreThresholds::new(pass, marginal).expect("valid thresholds")
    }

    #[test]
    fn weights_decide_the_score_and_the_thresholds_classify_it() {
        // 3 of 4 weight units succeeded: 75.
        let metrics = [
            outcome("latency", 3, false, Successful),
            outcome("errors", 1, false, Failed),
        ];
        let r = score(&metrics, thresholds(90, 60));
        assert_eq!(r.score, 75.0);
        assert_eq!(r.phase, Inconclusive);
        assert_eq!(
            r.message,
            "score 75 (pass 90, marginal 60): below pass, at or above marginal; \
             \"latency\" Successful (weight 3), \"errors\" Failed (weight 1)"
        );
        assert_eq!(score(&metrics, thresholds(75, 60)).phase, Successful);
        assert_eq!(score(&metrics, thresholds(90, 76)).phase, Failed);
    }

    #[test]
    fn inconclusive_and_errored_metrics_count_as_not_passed() {
        // 1 of 1 + 2 + 2 = 5 units: 20.
        let metrics = [
            outcome("a", 1, false, Successful),
            outcome("b", 2, false, Inconclusive),
            outcome("c", 2, false, Error),
        ];
        let r = score(&metrics, thresholds(50, 20));
        assert_eq!((r.score, r.phase), (20.0, Inconclusive));
    }

    #[test]
    fn a_critical_metric_that_did_not_succeed_fails_whatever_the_score() {
        // 99 of 100 units succeeded, above pass, but the one failure is critical.
        let metrics = [
            outcome("latency", 99, false, Successful),
            outcome("errors", 1, true, Failed),
        ];
        let r = score(&metrics, thresholds(90, 50));
        assert_eq!((r.score, r.phase), (99.0, Failed));
        assert!(
            r.message
                .contains("critical metric(s) did not succeed: errors")
                && r.message.contains("\"errors\" Failed (weight 1, critical)"),
            "{}",
            r.message
        );
        let all_passed = [outcome("errors", 1, true, Successful)];
        assert_eq!(score(&all_passed, thresholds(90, 50)).phase, Successful);
    }

    #[test]
    fn the_score_is_truncated_never_rounded_up_to_a_threshold() {
        // 2 of 3: 66.666..., shown as 66.66; pass 67 is not reached.
        let metrics = [
            outcome("a", 1, false, Successful),
            outcome("b", 1, false, Successful),
            outcome("c", 1, false, Failed),
        ];
        let r = score(&metrics, thresholds(67, 66));
        assert_eq!((r.score, r.phase), (66.66, Inconclusive));
        assert!(r.message.starts_with("score 66.66 "), "{}", r.message);
        // 9 999 of 10 000 would round to 100.00 but is below a pass of 100.
        let metrics = [
            outcome("big", 99, false, Successful),
            outcome("small", 1, false, Failed),
        ];
        assert_eq!(truncated_percent(9_999, 10_000), 99.99);
        assert_eq!(score(&metrics, thresholds(100, 100)).phase, Failed);
    }

    #[test]
    fn nothing_to_score_is_never_a_pass() {
        assert_eq!(score(&[], thresholds(0, 0)).phase, Failed);
        let weightless = [outcome("a", 0, false, Successful)];
        assert_eq!(score(&weightless, thresholds(0, 0)).phase, Failed);
    }

    #[test]
    fn thresholds_must_be_ordered_and_in_range() {
        assert!(ScoreThresholds::new(50, 60).is_err());
        assert!(ScoreThresholds::new(101, 60).is_err());
        assert_eq!(thresholds(100, 0).pass(), 100);
        assert_eq!(thresholds(80, 80).marginal(), 80);
    }
}
