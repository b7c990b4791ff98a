//! Figures from the outcomes: false-rollback rates, detection-time quantiles (misses count
//! as never detected), the table and the one-line summary.

use std::fmt::Write as _;

use super::{Entry, ScenarioResult, templates::Outcome};

/// One template in one scenario.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    /// Runs.
    pub runs: usize,
    /// Runs that rolled back.
    pub rollbacks: usize,
    /// Median seconds to rollback (`inf` when at least half missed).
    pub median_s: f64,
    /// 95th percentile seconds to rollback (`inf` when more than 5% missed).
    pub p95_s: f64,
    /// Runs promoted early.
    pub promoted: usize,
    /// Median seconds to an early promotion, among those promoted early.
    pub promote_median_s: f64,
}

impl Figures {
    /// From one template's outcomes.
    pub fn of(outcomes: &[Outcome]) -> Self {
        let mut detect: Vec<f64> = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Rollback(t) => f64::from(*t),
                _ => f64::INFINITY,
            })
            .collect();
        detect.sort_by(f64::total_cmp);
        let mut promote: Vec<f64> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Promote(t) => Some(f64::from(*t)),
                _ => None,
            })
            .collect();
        promote.sort_by(f64::total_cmp);
        Figures {
            runs: outcomes.len(),
            rollbacks: outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Rollback(_)))
                .count(),
            median_s: quantile(&detect, 0.5),
            p95_s: quantile(&detect, 0.95),
            promoted: promote.len(),
            promote_median_s: quantile(&promote, 0.5),
        }
    }

    /// Share of runs rolled back.
    pub fn rollback_rate(&self) -> f64 {
        self.rollbacks as f64 / self.runs.max(1) as f64
    }
}

/// Nearest-rank quantile of sorted values (`NaN` when empty).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn seconds(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0}s")
    } else if v.is_nan() {
        "-".into()
    } else {
        "never".into()
    }
}

fn key_seconds(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0}")
    } else {
        "inf".into()
    }
}

/// The table: one row per template, one column per scenario.
pub fn table(results: &[ScenarioResult], entries: &[Entry]) -> String {
    let mut out = String::from("| template |");
    for r in results {
        let _ = write!(out, " {} |", r.scenario.name);
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(results.len()));
    for (i, entry) in entries.iter().enumerate() {
        let _ = write!(out, "\n| {} |", entry.label);
        for r in results {
            let f = Figures::of(&r.outcomes[i]);
            let cell = if r.scenario.key == "aa" {
                aa_cell(&f)
            } else {
                detect_cell(&f)
            };
            let _ = write!(out, " {cell} |");
        }
    }
    out
}

fn aa_cell(f: &Figures) -> String {
    let mut cell = format!(
        "{:.1}% rolled back ({}/{})",
        100.0 * f.rollback_rate(),
        f.rollbacks,
        f.runs
    );
    if f.promoted > 0 {
        let _ = write!(
            cell,
            "; {:.1}% promoted early, median {}",
            100.0 * f.promoted as f64 / f.runs.max(1) as f64,
            seconds(f.promote_median_s)
        );
    }
    cell
}

fn detect_cell(f: &Figures) -> String {
    format!(
        "median {} / p95 {} / missed {:.1}%",
        seconds(f.median_s),
        seconds(f.p95_s),
        100.0 * (f.runs - f.rollbacks) as f64 / f.runs.max(1) as f64
    )
}

/// The last line: every figure as `key=value`, and the 10x speed-up of the `sequential`
/// entry over the `threshold` entry.
pub fn summary(results: &[ScenarioResult], entries: &[Entry]) -> String {
    let mut pairs: Vec<String> = Vec::new();
    let mut median_10x = vec![f64::NAN; entries.len()];
    for r in results {
        for (i, name) in entries.iter().map(|e| e.key).enumerate() {
            let f = Figures::of(&r.outcomes[i]);
            if r.scenario.key == "aa" {
                pairs.push(format!("aa_fpr_{name}={:.4}", f.rollback_rate()));
                continue;
            }
            let key = r.scenario.key;
            pairs.push(format!("{key}_median_s_{name}={}", key_seconds(f.median_s)));
            pairs.push(format!("{key}_p95_s_{name}={}", key_seconds(f.p95_s)));
            let missed = (f.runs - f.rollbacks) as f64 / f.runs.max(1) as f64;
            pairs.push(format!("{key}_missed_{name}={missed:.4}"));
            if key == "detect10x" {
                median_10x[i] = f.median_s;
            }
        }
    }
    let median_of = |key: &str| {
        entries
            .iter()
            .position(|e| e.key == key)
            .map_or(f64::NAN, |i| median_10x[i])
    };
    let speedup = median_of("threshold") / median_of("sequential");
    if speedup.is_finite() {
        pairs.push(format!(
            "speedup10x_median_threshold_over_sequential={speedup:.2}"
        ));
    }
    pairs.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_push_the_quantiles_to_never() {
        let mut outcomes = vec![Outcome::Rollback(60); 90];
        outcomes.extend([Outcome::Horizon; 10]);
        let f = Figures::of(&outcomes);
        assert_eq!((f.median_s, f.p95_s), (60.0, f64::INFINITY));
        assert_eq!(f.rollbacks, 90);
    }
}
