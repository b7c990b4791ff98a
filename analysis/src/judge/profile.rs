//! Binomial likelihoods for the sequential judge: the Beta(1/2, 1/2) mixture, the profile
//! likelihood of the rate difference, and the confidence-sequence ends.
//!
//! # Math
//! For `x` events in `n` trials, `log L(p) = x ln p + (n - x) ln(1 - p)` (with `0 ln 0 = 0`),
//! score `x/p - (n - x)/(1 - p)`, curvature `-x/p^2 - (n - x)/(1 - p)^2`. The Jeffreys
//! (Krichevsky-Trofimov) mixture is
//!
//! ```text
//! m = integral of L(p) Beta(p; 1/2, 1/2) dp = B(x + 1/2, n - x + 1/2) / B(1/2, 1/2)
//! ```
//!
//! The profile log-likelihood of the difference `d = p_c - p_b` is
//! `l*(d) = max_{p} [log L_c(p + d) + log L_b(p)]` over `max(0, -d) <= p <= min(1, 1 - d)`.
//! The objective is concave in `(p, d)` jointly, so `l*` is concave in `d` (partial
//! maximisation keeps concavity) and its maximiser in `p` is the root of the (decreasing)
//! derivative, found by Newton's method kept inside a bisection bracket. By the envelope
//! theorem `dl*/dd = score_c(p* + d)`, which the outer root finder for the confidence
//! bounds uses.

use statrs::function::beta::ln_beta;

/// Events `x` out of `n` trials of one version (whole numbers, `0 <= x <= n`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Binomial {
    pub x: f64,
    pub n: f64,
}

impl Binomial {
    pub(crate) fn rate(&self) -> f64 {
        if self.n > 0.0 { self.x / self.n } else { 0.0 }
    }

    fn misses(&self) -> f64 {
        self.n - self.x
    }

    pub(crate) fn log_lik(&self, p: f64) -> f64 {
        xlny(self.x, p) + xlny(self.misses(), 1.0 - p)
    }

    fn score(&self, p: f64) -> f64 {
        ratio(self.x, p) - ratio(self.misses(), 1.0 - p)
    }

    fn curvature(&self, p: f64) -> f64 {
        -ratio(self.x, p * p) - ratio(self.misses(), (1.0 - p) * (1.0 - p))
    }

    /// `ln m`, the log of the Beta(1/2, 1/2) mixture likelihood.
    pub(crate) fn log_mixture(&self) -> f64 {
        ln_beta(self.x + 0.5, self.misses() + 0.5) - ln_beta(0.5, 0.5)
    }
}

/// `x ln y` with `0 ln 0 = 0`.
fn xlny(x: f64, y: f64) -> f64 {
    if x == 0.0 { 0.0 } else { x * y.ln() }
}

/// `x / y` with `0 / 0 = 0` (a term whose count is zero vanishes, even at the boundary).
fn ratio(x: f64, y: f64) -> f64 {
    if x == 0.0 { 0.0 } else { x / y }
}

/// Canary and baseline counts together.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct TwoSample {
    pub canary: Binomial,
    pub baseline: Binomial,
}

/// The profile at one difference.
struct ProfilePoint {
    log_lik: f64,
    /// `dl*/dd` (envelope theorem).
    slope: f64,
}

impl TwoSample {
    /// The unconstrained estimate `x_c/n_c - x_b/n_b`.
    pub(crate) fn difference(&self) -> f64 {
        self.canary.rate() - self.baseline.rate()
    }

    /// The log-likelihood at the unconstrained maximum.
    pub(crate) fn max_log_lik(&self) -> f64 {
        self.canary.log_lik(self.canary.rate()) + self.baseline.log_lik(self.baseline.rate())
    }

    /// `ln m_c + ln m_b`.
    pub(crate) fn log_mixture(&self) -> f64 {
        self.canary.log_mixture() + self.baseline.log_mixture()
    }

    /// `l*(d)`.
    pub(crate) fn profile(&self, d: f64) -> f64 {
        self.profile_point(d).log_lik
    }

    fn profile_point(&self, d: f64) -> ProfilePoint {
        let p = self.baseline_rate_given(d);
        let pc = (p + d).clamp(0.0, 1.0);
        ProfilePoint {
            log_lik: self.canary.log_lik(pc) + self.baseline.log_lik(p),
            slope: self.canary.score(pc),
        }
    }

    /// The baseline rate maximising the likelihood when `p_c = p_b + d`.
    fn baseline_rate_given(&self, d: f64) -> f64 {
        let lo = (-d).max(0.0);
        let hi = (1.0 - d).min(1.0);
        if lo >= hi {
            return lo;
        }
        let derivative = |p: f64| {
            let pc = (p + d).clamp(0.0, 1.0);
            (
                self.canary.score(pc) + self.baseline.score(p),
                self.canary.curvature(pc) + self.baseline.curvature(p),
            )
        };
        if derivative(lo).0 <= 0.0 {
            return lo;
        }
        if derivative(hi).0 >= 0.0 {
            return hi;
        }
        let pooled = (self.canary.x + self.baseline.x - self.canary.n * d)
            / (self.canary.n + self.baseline.n);
        newton_bisect(derivative, lo, hi, pooled, Slope::Falling, 1e-13)
    }

    /// The ends of `{d : log_m - l*(d) < threshold}`, an interval around the estimate
    /// because `l*` is concave. An end is `-1` or `1` when nothing beyond it is excluded.
    pub(crate) fn interval(&self, threshold: f64) -> (f64, f64) {
        let log_m = self.log_mixture();
        let centre = self.difference();
        let excess = |d: f64| {
            let point = self.profile_point(d);
            (log_m - point.log_lik - threshold, -point.slope)
        };
        // Gaussian guess: l*(d) ~ l_max - (d - centre)^2 / (2 V).
        let variance = self.variance();
        let depth = (threshold + self.max_log_lik() - log_m).max(0.0);
        let guess = (2.0 * variance * depth).sqrt();
        let lower = if excess(-1.0).0 < 0.0 {
            -1.0
        } else {
            newton_bisect(excess, -1.0, centre, centre - guess, Slope::Falling, 1e-12)
        };
        let upper = if excess(1.0).0 < 0.0 {
            1.0
        } else {
            newton_bisect(excess, centre, 1.0, centre + guess, Slope::Rising, 1e-12)
        };
        (lower, upper)
    }

    /// Variance of the estimated difference, with a half-event floor on each rate.
    fn variance(&self) -> f64 {
        let part = |b: Binomial| {
            let n = b.n.max(1.0);
            let p = ((b.x + 0.5) / (n + 1.0)).clamp(0.0, 1.0);
            p * (1.0 - p) / n
        };
        part(self.canary) + part(self.baseline)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slope {
    Rising,
    Falling,
}

/// The root of a monotone function on `[lo, hi]` (which must bracket it) by Newton's method,
/// falling back to bisection whenever a step would leave the bracket. `f` returns the value
/// and the derivative. Stops when a step is below `tol` relative to the iterate.
fn newton_bisect(
    f: impl Fn(f64) -> (f64, f64),
    mut lo: f64,
    mut hi: f64,
    start: f64,
    slope: Slope,
    tol: f64,
) -> f64 {
    let mut x = if start > lo && start < hi {
        start
    } else {
        0.5 * (lo + hi)
    };
    for _ in 0..200 {
        let (value, derivative) = f(x);
        if value == 0.0 {
            return x;
        }
        if (value > 0.0) == (slope == Slope::Rising) {
            hi = x;
        } else {
            lo = x;
        }
        let newton = x - value / derivative;
        let next = if newton.is_finite() && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        let scale = x.abs().max(f64::MIN_POSITIVE);
        if (next - x).abs() <= tol * scale || hi - lo <= tol * scale {
            return next;
        }
        x = next;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two(xc: f64, nc: f64, xb: f64, nb: f64) -> TwoSample {
        TwoSample {
            canary: Binomial { x: xc, n: nc },
            baseline: Binomial { x: xb, n: nb },
        }
    }

    #[test]
    fn jeffreys_mixture_of_one_trial_is_one_half() {
        // B(3/2, 1/2) / B(1/2, 1/2) = (pi/2) / pi.
        let one = Binomial { x: 1.0, n: 1.0 };
        assert!((one.log_mixture() - 0.5f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn profile_peaks_at_the_estimate_and_matches_a_grid_search() {
        let s = two(12.0, 400.0, 30.0, 3000.0);
        assert!((s.profile(s.difference()) - s.max_log_lik()).abs() < 1e-9);
        for d in [-0.02, 0.0, 0.004, 0.05] {
            let grid = (1..200_000)
                .map(|i| f64::from(i) / 200_000.0)
                .filter(|p| p + d > 0.0 && p + d < 1.0)
                .map(|p| s.canary.log_lik(p + d) + s.baseline.log_lik(p))
                .fold(f64::NEG_INFINITY, f64::max);
            assert!(s.profile(d) >= grid - 1e-9, "d = {d}");
            assert!(s.profile(d) - grid < 1e-3, "d = {d}");
        }
    }

    #[test]
    fn interval_ends_sit_on_the_threshold() {
        let s = two(25.0, 500.0, 40.0, 4000.0);
        let threshold = 100f64.ln();
        let (lo, hi) = s.interval(threshold);
        assert!(lo < s.difference() && s.difference() < hi);
        for end in [lo, hi] {
            let log_e = s.log_mixture() - s.profile(end);
            assert!((log_e - threshold).abs() < 1e-6, "{end}: {log_e}");
        }
    }

    #[test]
    fn zero_counts_stay_finite() {
        let s = two(0.0, 100.0, 0.0, 900.0);
        let (lo, hi) = s.interval(20f64.ln());
        assert!(lo < 0.0 && hi > 0.0 && lo > -1.0 && hi < 1.0);
        assert!(s.profile(0.3).is_finite());
    }
}
