//! The SLO judge: error-budget burn rate of the canary over pairs of windows, the
//! multi-window, multi-burn-rate alert of the Google SRE Workbook (Beyer et al., *The Site
//! Reliability Workbook*, O'Reilly 2018, ch. 5 "Alerting on SLOs", approach 6).
//!
//! # Math
//! For an objective `o` (percent of good requests), the error budget is the tolerated error
//! ratio `b = 1 - o/100`. Over a window `w` with `e_w` errors in `n_w` requests,
//!
//! ```text
//! burn(w) = (e_w / n_w) / b
//! ```
//!
//! A burn rate of 1 spends exactly the budget over the SLO period; `k` spends it `k` times as
//! fast (14.4 over 1h spends 2% of a 30-day budget). A pair `(long, short, k)` fires when
//! **both** `burn(long) > k` and `burn(short) > k`: the long window gives significance, the
//! short one makes the alert stop soon after the burn does. The judge fails when any pair
//! fires (the workbook pages on 1h/5m at 14.4 and 6h/30m at 6). The value reported is the
//! strongest pair's `min(burn(long), burn(short)) / k`: above 1 means that pair fires. The
//! burn rates themselves are in the message.
//!
//! # Caveats
//! This is an alerting rule, not a test: with few requests one error is a large burn rate.
//! `minSamples` (requests in every window) is the guard, as the workbook's low-traffic
//! advice suggests. A canary younger than a long window has only its lifetime in it.

use std::time::Duration;

use sluice_crds::judge::SloJudge;

use super::{ConfigError, NoData, Phase, Verdict, check_min_samples, num, sequential::Counts};

/// A burn-rate condition over two windows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SloWindow {
    /// Long window.
    pub long: Duration,
    /// Short window, shorter than `long`.
    pub short: Duration,
    /// Burn rate above which the pair fires (> 0).
    pub burn_rate: f64,
}

/// Validated settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SloConfig {
    objective: f64,
    windows: Vec<SloWindow>,
    min_samples: u64,
}

impl SloConfig {
    /// Checks the objective (`0 < objective < 100`, percent), the windows (at least one;
    /// `short < long`; `burnRate > 0`) and `minSamples` (requests per window).
    pub fn new(
        objective: f64,
        windows: Vec<SloWindow>,
        min_samples: usize,
    ) -> Result<Self, ConfigError> {
        if !(objective > 0.0 && objective < 100.0) {
            return Err(ConfigError::Objective(objective));
        }
        if windows.is_empty() {
            return Err(ConfigError::Window("list is empty".into()));
        }
        for (i, w) in windows.iter().enumerate() {
            if w.short >= w.long || w.short.is_zero() {
                return Err(ConfigError::Window(format!(
                    "{i}: short ({:?}) must be non-zero and shorter than long ({:?})",
                    w.short, w.long
                )));
            }
            if !(w.burn_rate > 0.0 && w.burn_rate.is_finite()) {
                return Err(ConfigError::Window(format!(
                    "{i}: burnRate must be greater than 0, got {}",
                    w.burn_rate
                )));
            }
        }
        Ok(SloConfig {
            objective,
            windows,
            min_samples: check_min_samples(min_samples)?,
        })
    }

    /// From the API type and the metric's `minSamples`.
    pub fn from_judge(judge: &SloJudge, min_samples: usize) -> Result<Self, ConfigError> {
        let windows = judge
            .windows
            .iter()
            .map(|w| SloWindow {
                long: w.long.get(),
                short: w.short.get(),
                burn_rate: w.burn_rate,
            })
            .collect();
        Self::new(judge.objective, windows, min_samples)
    }

    /// The window pairs, in order.
    pub fn windows(&self) -> &[SloWindow] {
        &self.windows
    }

    /// The error budget as a ratio, `1 - objective/100`.
    pub fn budget(&self) -> f64 {
        1.0 - self.objective / 100.0
    }
}

/// The canary's counts over one pair's windows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowCounts {
    /// Over the long window.
    pub long: Counts,
    /// Over the short window.
    pub short: Counts,
}

/// One pair's burn rates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairBurn {
    /// The condition.
    pub window: SloWindow,
    /// Burn rate over the long window.
    pub long: f64,
    /// Burn rate over the short window.
    pub short: f64,
    /// Both above the threshold.
    pub firing: bool,
}

/// What the SLO judge found.
#[derive(Clone, Debug, PartialEq)]
pub struct SloReport {
    /// Decision; `value` is the strongest pair's `min(long, short) / burnRate`.
    pub verdict: Verdict,
    /// Each pair's burn rates (empty without data).
    pub pairs: Vec<PairBurn>,
}

/// Judges the canary's burn rates. `counts[i]` belongs to `config.windows()[i]`.
///
/// # Guarantees
/// `Fail` exactly when some pair has both burn rates above its threshold; `NoData` when a
/// window has fewer than `minSamples` requests (or a count is missing), so a canary without
/// traffic never passes silently; `Invalid` for inconsistent counts.
pub fn slo(config: &SloConfig, counts: &[WindowCounts]) -> SloReport {
    if let Err(verdict) = usable(config, counts) {
        return SloReport {
            verdict,
            pairs: Vec::new(),
        };
    }
    let budget = config.budget();
    let burn = |c: Counts| c.events / c.total / budget;
    let pairs: Vec<PairBurn> = config
        .windows
        .iter()
        .zip(counts)
        .map(|(window, c)| {
            let (long, short) = (burn(c.long), burn(c.short));
            PairBurn {
                window: *window,
                long,
                short,
                firing: long > window.burn_rate && short > window.burn_rate,
            }
        })
        .collect();
    let strength = |p: &PairBurn| p.long.min(p.short) / p.window.burn_rate;
    let value = pairs.iter().map(strength).fold(0.0, f64::max);
    let phase = if pairs.iter().any(|p| p.firing) {
        Phase::Fail
    } else {
        Phase::Pass
    };
    let message = message(config, phase, &pairs);
    SloReport {
        verdict: Verdict::new(phase, value, None, message),
        pairs,
    }
}

fn usable(config: &SloConfig, counts: &[WindowCounts]) -> Result<(), Verdict> {
    if counts.len() != config.windows.len() {
        return Err(Verdict::no_data(
            NoData::Empty,
            format!(
                "counts for {} of {} window pair(s)",
                counts.len(),
                config.windows.len()
            ),
        ));
    }
    let all = || counts.iter().flat_map(|c| [c.long, c.short]);
    if all().any(|c| !c.events.is_finite() || !c.total.is_finite()) {
        return Err(Verdict::no_data(
            NoData::NaN,
            "a window count is NaN or infinite".into(),
        ));
    }
    if all().any(|c| c.events < 0.0 || c.total < 0.0 || c.events > c.total.max(0.0) * (1.0 + 1e-9))
    {
        return Err(Verdict::invalid(
            "inconsistent window counts: negative, or more errors than requests".into(),
        ));
    }
    let have = all().map(|c| c.total).fold(f64::INFINITY, f64::min);
    if have < config.min_samples as f64 {
        let need = config.min_samples;
        return Err(Verdict::no_data(
            NoData::TooFew {
                have: have.max(0.0) as u64,
                need,
            },
            format!(
                "a window has {} request(s), fewer than minSamples {need}",
                num(have)
            ),
        ));
    }
    Ok(())
}

fn message(config: &SloConfig, phase: Phase, pairs: &[PairBurn]) -> String {
    let described: Vec<String> = pairs
        .iter()
        .map(|p| {
            format!(
                "{}/{} burn {}x/{}x vs {}x{}",
                window(p.window.long),
                window(p.window.short),
                num(p.long),
                num(p.short),
                num(p.window.burn_rate),
                if p.firing { " FIRING" } else { "" }
            )
        })
        .collect();
    let outcome = match phase {
        Phase::Fail => "fast burn: both windows of a pair above the burn-rate threshold",
        _ => "no window pair burning too fast",
    };
    format!(
        "{phase}: {outcome}; objective {}% (budget {}%): {}",
        num(config.objective),
        num(100.0 * config.budget()),
        described.join(", ")
    )
}

/// A window as written in manifests (`1h`, `5m`, `90s`).
fn window(d: Duration) -> String {
    sluice_crds::Duration::from(d).to_string()
}
