//! The sequential judge: an anytime-valid comparison of canary and baseline event rates
//! (errors, or requests slower than a latency threshold) that may be evaluated at every
//! interval without raising the false-alarm rate above `alpha`.
//!
//! # Model
//! Each canary request is an event (an error, a slow response) with probability `p_c`, each
//! baseline request with probability `p_b`, independently; which version serves a request
//! does not depend on its outcome. The judge sees the cumulative counts since the analysis
//! started, `x_c` events in `n_c` canary requests and `x_b` in `n_b`, and judges
//! `Delta = p_c - p_b` against the tolerated increase `delta = margin`:
//!
//! - **Fail** when it is confident that `Delta > delta` (the canary is worse by more than
//!   the margin);
//! - **Pass** (promote early) when it is confident that `Delta < delta`;
//! - **Continue** otherwise.
//!
//! # The e-process
//! Numerator: the likelihood mixed over independent Jeffreys priors,
//! `m_t = B(x_c + 1/2, n_c - x_c + 1/2) B(x_b + 1/2, n_b - x_b + 1/2) / B(1/2, 1/2)^2`.
//! Denominator: the likelihood maximised over the null. For a null set `H`,
//!
//! ```text
//! E_t(H) = m_t / sup_{(p_c, p_b) in H} L_t(p_c, p_b)
//! ```
//!
//! For any `P` in `H`, `E_t(H) <= m_t / L_t(P)`, and `m_t / L_t(P)` is a nonnegative
//! `P`-martingale starting at 1 (a mixture of likelihood ratios; the counts are the
//! sufficient statistics, so only the current totals are needed — the judge is stateless).
//! Ville's inequality then gives `P(exists t : E_t(H) >= 1/alpha) <= alpha`: the test may be
//! evaluated at every interval, for ever, and stopped at any time. This is the mixture form
//! of the sequential likelihood-ratio construction of *universal inference* (Wasserman,
//! Ramdas & Balakrishnan, PNAS 2020, section 7); see Ramdas, Grünwald, Vovk & Shafer,
//! *Game-theoretic statistics and safe anytime-valid inference*, Statistical Science 2023,
//! for e-processes and Ville's inequality, and Lindon & Malek, *Anytime-valid inference for
//! multinomial count data*, NeurIPS 2022, and Lindon, Sanden & Shirikian, KDD 2022, for
//! sequential tests of canaries at Netflix.
//!
//! With the profile `l*(d) = max L_t` subject to `p_c - p_b = d` (concave in `d`), the two
//! decisions use `H_worse = {Delta <= delta}` and `H_within = {Delta >= delta}`:
//!
//! ```text
//! Fail  when  ln m_t - max_{d <= delta} l*(d) >= ln(1/alpha)
//! Pass  when  ln m_t - max_{d >= delta} l*(d) >= ln(1/alpha)
//! ```
//!
//! Inverting the point nulls `{Delta = d}` gives a `1 - alpha` **confidence sequence**
//! `C_t = {d : ln m_t - l*(d) < ln(1/alpha)}`, an interval `[lower, upper]` that covers
//! `Delta` at all evaluations simultaneously with probability `1 - alpha`. Fail is exactly
//! `lower > delta` and Pass is `upper < delta`. So: `P(Fail | Delta <= delta) <= alpha` and
//! `P(Pass | Delta >= delta) <= alpha`, whenever and however often the judge runs.
//!
//! The price of validity without asymptotics is a penalty of about `1/2 ln n` per version
//! (the mixture's regret against the maximum likelihood), so the boundary is wider than a
//! fixed-sample test's at the same `n`; `judge-bench` shows what that costs in detection
//! time and what it buys in false alarms.
//!
//! # Assumptions and caveats
//! - The counts must cover the whole analysis from one start, never a sliding window
//!   (`increase(...[{{args.window}}])` with the run's age; [`mod@super::measure`] substitutes it).
//! - Requests are independent given the version. Correlated failures (a bad pod, a burst)
//!   make any count test anti-conservative; so do counts that were not collected from the
//!   same start for both versions.
//! - Prometheus `increase()` extrapolates, so counts are rounded to whole numbers.
//!
//! # Latency
//! A latency regression is judged the same way on the share of requests slower than a
//! threshold: the events are `bucket{le="+Inf"} - bucket{le="<threshold>"}` of a histogram
//! (see [`sequential_latency`] and [`Histogram`]). With the CRD's count
//! queries that is `errorsQuery` = slow requests, `totalQuery` = all requests. Pick the
//! threshold from before the rollout (e.g. the baseline's p95 over the last day); choosing it
//! from the same data weakens the guarantee.

use sluice_crds::judge::SequentialJudge;

use super::{
    Bounds, ConfigError, NoData, Phase, Verdict, check_alpha, check_margin, check_min_samples,
    histogram::{Histogram, HistogramError},
    num,
    profile::{Binomial, TwoSample},
};

/// False-alarm probability when the judge does not set one.
pub const DEFAULT_ALPHA: f64 = 0.05;
/// Tolerated absolute increase of the rate when the judge does not set one.
pub const DEFAULT_MARGIN: f64 = 0.005;

/// Validated settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SequentialConfig {
    alpha: f64,
    margin: f64,
    min_samples: u64,
}

impl SequentialConfig {
    /// Checks the settings (`0 < alpha < 0.5`, `0 <= margin < 1`, `minSamples >= 1`
    /// requests per version).
    pub fn new(alpha: f64, margin: f64, min_samples: usize) -> Result<Self, ConfigError> {
        Ok(SequentialConfig {
            alpha: check_alpha(alpha)?,
            margin: check_margin(margin)?,
            min_samples: check_min_samples(min_samples)?,
        })
    }

    /// From the API type, with the defaults applied, and the metric's `minSamples`.
    pub fn from_judge(judge: &SequentialJudge, min_samples: usize) -> Result<Self, ConfigError> {
        Self::new(
            judge.alpha.unwrap_or(DEFAULT_ALPHA),
            judge.margin.unwrap_or(DEFAULT_MARGIN),
            min_samples,
        )
    }

    /// `ln(1/alpha)`, the e-value threshold on the log scale.
    fn threshold(&self) -> f64 {
        -self.alpha.ln()
    }
}

/// Events and requests of one version, cumulative since the analysis started.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Counts {
    /// Errors (or slow requests).
    pub events: f64,
    /// All requests.
    pub total: f64,
}

impl Counts {
    /// `events` of `total`.
    pub fn new(events: f64, total: f64) -> Self {
        Counts { events, total }
    }

    fn rate(&self) -> f64 {
        if self.total > 0.0 {
            self.events / self.total
        } else {
            0.0
        }
    }
}

/// What the sequential judge found.
#[derive(Clone, Debug, PartialEq)]
pub struct SequentialReport {
    /// Decision; `value` is the e-value against "not worse than the margin" and `bounds` the
    /// confidence sequence for `p_c - p_b` at this evaluation.
    pub verdict: Verdict,
    /// Canary counts as judged (rounded).
    pub canary: Counts,
    /// Baseline counts as judged (rounded).
    pub baseline: Counts,
    /// Estimated `p_c - p_b`.
    pub difference: f64,
    /// `ln E` against `{Delta <= margin}`: evidence that the canary is worse.
    pub log_e_worse: f64,
    /// `ln E` against `{Delta >= margin}`: evidence that it is within the margin.
    pub log_e_within: f64,
}

/// Judges error counts.
///
/// # Guarantees
/// - Over any number of evaluations of one analysis, `P(any Fail) <= alpha` when the
///   canary's error rate exceeds the baseline's by at most `margin`, and `P(any Pass) <=
///   alpha` when it exceeds it by at least `margin` (under the model in the module docs).
/// - `NoData` when a version has fewer than `minSamples` requests; `Invalid` for negative
///   counts or more events than requests.
pub fn sequential(config: &SequentialConfig, canary: Counts, baseline: Counts) -> SequentialReport {
    judge(config, "errors", canary, baseline)
}

/// Judges the share of requests slower than `threshold` (in the histogram's unit), from two
/// cumulative histograms. The threshold is the smallest bucket bound at or above it.
pub fn sequential_latency(
    config: &SequentialConfig,
    threshold: f64,
    canary: &Histogram,
    baseline: &Histogram,
) -> Result<SequentialReport, HistogramError> {
    let (bound, canary_slow) = canary.above(threshold)?;
    let (_, baseline_slow) = baseline.above(bound)?;
    let what = format!("requests slower than {}", num(bound));
    let counts = |slow: f64, h: &Histogram| Counts::new(slow, h.total());
    Ok(judge(
        config,
        &what,
        counts(canary_slow, canary),
        counts(baseline_slow, baseline),
    ))
}

fn judge(
    config: &SequentialConfig,
    what: &str,
    canary: Counts,
    baseline: Counts,
) -> SequentialReport {
    let (canary, baseline) = (rounded(canary), rounded(baseline));
    let early = |verdict| SequentialReport {
        verdict,
        canary,
        baseline,
        difference: canary.rate() - baseline.rate(),
        log_e_worse: 0.0,
        log_e_within: 0.0,
    };
    if let Err(verdict) = usable(config, what, canary, baseline) {
        return early(verdict);
    }
    let sample = TwoSample {
        canary: Binomial {
            x: canary.events,
            n: canary.total,
        },
        baseline: Binomial {
            x: baseline.events,
            n: baseline.total,
        },
    };
    let evidence = Evidence::weigh(&sample, config);
    let verdict = evidence.verdict(config, what, canary, baseline);
    SequentialReport {
        verdict,
        canary,
        baseline,
        difference: evidence.difference,
        log_e_worse: evidence.log_e_worse,
        log_e_within: evidence.log_e_within,
    }
}

fn rounded(c: Counts) -> Counts {
    Counts::new(c.events.round(), c.total.round())
}

/// NoData or Invalid unless both versions have enough consistent counts.
fn usable(
    config: &SequentialConfig,
    what: &str,
    canary: Counts,
    baseline: Counts,
) -> Result<(), Verdict> {
    let all = [canary.events, canary.total, baseline.events, baseline.total];
    let sizes = format!(
        "canary {} {what} of {} requests, baseline {} of {}",
        num(canary.events),
        num(canary.total),
        num(baseline.events),
        num(baseline.total)
    );
    if all.iter().any(|v| !v.is_finite()) {
        return Err(Verdict::no_data(
            NoData::NaN,
            format!("a count is NaN or infinite ({sizes})"),
        ));
    }
    if all.iter().any(|v| *v < 0.0)
        || canary.events > canary.total
        || baseline.events > baseline.total
    {
        return Err(Verdict::invalid(format!(
            "inconsistent counts: negative, or more {what} than requests ({sizes})"
        )));
    }
    let have = canary.total.min(baseline.total) as u64;
    if have < config.min_samples {
        let need = config.min_samples;
        return Err(Verdict::no_data(
            NoData::TooFew { have, need },
            format!("{sizes}: fewer than minSamples {need} requests"),
        ));
    }
    Ok(())
}

/// The two e-values and the confidence sequence at one evaluation.
struct Evidence {
    difference: f64,
    log_e_worse: f64,
    log_e_within: f64,
    lower: f64,
    upper: f64,
}

impl Evidence {
    fn weigh(sample: &TwoSample, config: &SequentialConfig) -> Self {
        let difference = sample.difference();
        let log_m = sample.log_mixture();
        // l* is concave with its maximum at the estimate: the supremum over a half-line
        // that excludes the estimate is at the margin, otherwise it is the maximum.
        let at_margin = log_m - sample.profile(config.margin);
        let at_max = log_m - sample.max_log_lik();
        let (log_e_worse, log_e_within) = if difference > config.margin {
            (at_margin, at_max)
        } else if difference < config.margin {
            (at_max, at_margin)
        } else {
            (at_max, at_max)
        };
        let (lower, upper) = sample.interval(config.threshold());
        Evidence {
            difference,
            log_e_worse,
            log_e_within,
            lower,
            upper,
        }
    }

    fn verdict(
        &self,
        config: &SequentialConfig,
        what: &str,
        canary: Counts,
        baseline: Counts,
    ) -> Verdict {
        let threshold = config.threshold();
        let (phase, outcome) = if self.log_e_worse >= threshold {
            (
                Phase::Fail,
                "canary worse than the baseline by more than the margin",
            )
        } else if self.log_e_within >= threshold {
            (
                Phase::Pass,
                "canary within the margin of the baseline; may promote early",
            )
        } else {
            (Phase::Continue, "no decision yet")
        };
        let bounds = Bounds {
            lower: self.lower,
            upper: self.upper,
            confidence: 1.0 - config.alpha,
        };
        let message = format!(
            "{phase}: {outcome}; {what}: canary {} of {} ({}%), baseline {} of {} ({}%), \
             difference {} pp in [{}, {}] pp ({}% confidence sequence), margin {} pp; \
             e-value worse={} within={} (decides at 1/alpha={})",
            num(canary.events),
            num(canary.total),
            num(100.0 * canary.rate()),
            num(baseline.events),
            num(baseline.total),
            num(100.0 * baseline.rate()),
            num(100.0 * self.difference),
            num(100.0 * self.lower),
            num(100.0 * self.upper),
            num(100.0 * (1.0 - config.alpha)),
            num(100.0 * config.margin),
            num(e_value(self.log_e_worse)),
            num(e_value(self.log_e_within)),
            num(1.0 / config.alpha),
        );
        Verdict::new(phase, e_value(self.log_e_worse), Some(bounds), message)
    }
}

/// `exp(ln E)`, capped below `f64::MAX` so overwhelming evidence stays a number.
fn e_value(log_e: f64) -> f64 {
    log_e.min(700.0).exp()
}
