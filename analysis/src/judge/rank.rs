//! The Mann-Whitney U test (Wilcoxon rank-sum test), exact for small samples and normal with a
//! tie correction otherwise.
//!
//! # Math
//! For canary samples `x_1..x_m` and baseline samples `y_1..y_n` (`N = m + n`),
//!
//! ```text
//! U = #{(i, j) : x_i > y_j} + 1/2 #{(i, j) : x_i = y_j} = R_x - m(m + 1)/2
//! ```
//!
//! where `R_x` is the sum of the canary's ranks in the pooled sample (tied values share the
//! mean of their ranks). Under H0 (both samples from one continuous distribution) `E[U] =
//! mn/2` and, with tie groups of sizes `t_k`,
//!
//! ```text
//! Var[U] = mn/12 * ( (N + 1) - sum_k (t_k^3 - t_k) / (N (N - 1)) )
//! ```
//!
//! (Lehmann, *Nonparametrics: Statistical Methods Based on Ranks*, 1975, ch. 1; Hollander &
//! Wolfe, *Nonparametric Statistical Methods*, 3rd ed., section 4.1).
//!
//! - **Exact** when there are no ties and both samples have fewer than 50 values (R's
//!   `wilcox.test` rule): the number of arrangements with `U = u` follows
//!   `c(m, n, u) = c(m - 1, n, u - n) + c(m, n - 1, u)` (Mann & Whitney, 1947), and
//!   `P(U = u) = c(m, n, u) / C(N, m)`. Half the support is computed; the symmetry
//!   `P(U <= k) = P(U >= mn - k)` gives the rest.
//! - **Normal** otherwise, with a continuity correction of 1/2 towards the mean:
//!   `z = (U - mn/2 - c) / sd(U)`.
//!
//! The alternative follows the regression `direction`: `Greater` (canary stochastically
//! larger), `Less`, or `TwoSided` (`p = 2 min(P(U <= u), P(U >= u))`, capped at 1).

use statrs::distribution::{ContinuousCDF, Normal};

/// Samples below this size (both sides, no ties) get the exact null distribution.
pub const EXACT_BELOW: usize = 50;

/// Which departure from H0 the p-value measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alternative {
    /// The canary's values tend to be larger.
    Greater,
    /// The canary's values tend to be smaller.
    Less,
    /// Either.
    TwoSided,
}

/// The result of [`u_test`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UTest {
    /// The canary's U statistic (ties count 1/2).
    pub u: f64,
    /// Canary sample size.
    pub m: usize,
    /// Baseline sample size.
    pub n: usize,
    /// Standard deviation of U under H0, tie-corrected.
    pub sd: f64,
    /// Whether some values are tied (the exact distribution then does not apply).
    pub ties: bool,
    /// Whether the p-value is exact (otherwise normal, continuity-corrected).
    pub exact: bool,
    /// The p-value for the alternative.
    pub p_value: f64,
}

impl UTest {
    /// `mn`, the number of canary-baseline pairs.
    pub fn pairs(&self) -> usize {
        self.m * self.n
    }
}

/// Runs the test.
///
/// # Assumptions
/// Both samples are non-empty and hold no NaN (the judge checks both first).
pub fn u_test(canary: &[f64], baseline: &[f64], alternative: Alternative) -> UTest {
    u_test_with_null(canary, baseline, alternative).0
}

/// [`u_test`] and the null distribution it used (the Hodges-Lehmann interval reuses it).
pub(crate) fn u_test_with_null(
    canary: &[f64],
    baseline: &[f64],
    alternative: Alternative,
) -> (UTest, NullU) {
    let (m, n) = (canary.len(), baseline.len());
    let ranked = rank_sum(canary, baseline);
    let u = ranked.canary_rank_sum - (m * (m + 1)) as f64 / 2.0;
    let ties = ranked.tie_term > 0.0;
    let null = NullU::new(m, n, ranked.tie_term);
    let test = UTest {
        u,
        m,
        n,
        sd: sd_u(m, n, ranked.tie_term),
        ties,
        exact: matches!(null, NullU::Exact(_)),
        p_value: null.p_value(u, alternative),
    };
    (test, null)
}

struct RankSum {
    canary_rank_sum: f64,
    /// `sum_k (t_k^3 - t_k)` over tie groups.
    tie_term: f64,
}

/// Mid-ranks of the pooled sample.
fn rank_sum(canary: &[f64], baseline: &[f64]) -> RankSum {
    let mut pooled: Vec<(f64, bool)> = canary
        .iter()
        .map(|&v| (v, true))
        .chain(baseline.iter().map(|&v| (v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut canary_rank_sum, mut tie_term) = (0.0, 0.0);
    let mut start = 0;
    while start < pooled.len() {
        let end = start + pooled[start..].partition_point(|p| p.0 == pooled[start].0);
        let size = (end - start) as f64;
        // Ranks start+1..=end (1-based) share their mean.
        let mid_rank = (start + 1 + end) as f64 / 2.0;
        let in_canary = pooled[start..end].iter().filter(|p| p.1).count() as f64;
        canary_rank_sum += in_canary * mid_rank;
        tie_term += size * size * size - size;
        start = end;
    }
    RankSum {
        canary_rank_sum,
        tie_term,
    }
}

/// Standard deviation of U under H0 with the tie correction.
fn sd_u(m: usize, n: usize, tie_term: f64) -> f64 {
    let (mf, nf) = (m as f64, n as f64);
    let big_n = mf + nf;
    if big_n < 2.0 {
        return 0.0;
    }
    let var = mf * nf / 12.0 * ((big_n + 1.0) - tie_term / (big_n * (big_n - 1.0)));
    var.max(0.0).sqrt()
}

/// The null distribution of U: exact, or normal with the tie correction.
pub(crate) enum NullU {
    Exact(ExactU),
    Normal { mean: f64, sd: f64 },
}

impl NullU {
    fn new(m: usize, n: usize, tie_term: f64) -> Self {
        if tie_term == 0.0 && m < EXACT_BELOW && n < EXACT_BELOW {
            NullU::Exact(ExactU::new(m, n))
        } else {
            NullU::Normal {
                mean: (m * n) as f64 / 2.0,
                sd: sd_u(m, n, tie_term),
            }
        }
    }

    fn p_value(&self, u: f64, alternative: Alternative) -> f64 {
        match self {
            NullU::Exact(exact) => exact.p_value(u, alternative),
            NullU::Normal { mean, sd } => normal_p(u - mean, *sd, alternative),
        }
    }

    /// How many of the smallest values `u = 0, 1, ...` have `P(U <= u) <= level`: the `w`
    /// with `P(U <= w - 1) <= level < P(U <= w)`. With the normal approximation (continuity
    /// corrected) `w = floor(mn/2 + 1/2 + z_level sd)`, at least 0.
    pub(crate) fn count_at_most(&self, level: f64) -> usize {
        match self {
            NullU::Exact(exact) => exact.count_at_most(level),
            NullU::Normal { mean, sd } => {
                let z = std_normal().inverse_cdf(level);
                (mean + 0.5 + z * sd).floor().max(0.0) as usize
            }
        }
    }
}

/// Normal p-value for `centred = U - mn/2`, continuity-corrected by 1/2 towards the mean.
fn normal_p(centred: f64, sd: f64, alternative: Alternative) -> f64 {
    if sd == 0.0 {
        // Every value equal: no evidence either way.
        return 1.0;
    }
    let z = |correction: f64| (centred - correction) / sd;
    let p = match alternative {
        Alternative::Greater => std_normal().sf(z(0.5)),
        Alternative::Less => std_normal().cdf(z(-0.5)),
        Alternative::TwoSided => {
            let z = z(0.5 * centred.signum());
            2.0 * std_normal().cdf(z).min(std_normal().sf(z))
        }
    };
    p.min(1.0)
}

/// The exact null distribution of U for sizes `(m, n)` without ties.
pub(crate) struct ExactU {
    mn: usize,
    /// `P(U <= u)` for `u = 0..=mn/2`; the rest follows from the symmetry
    /// `P(U <= k) = 1 - P(U <= mn - k - 1)`.
    cdf: Vec<f64>,
}

impl ExactU {
    /// Counts arrangements with the recurrence in the module docs, one canary size at a time,
    /// keeping only `u <= mn/2`: `O(m n mn / 2)` additions of non-negative numbers, so no
    /// cancellation. Counts stay below `C(98, 49) < 1e29`, well inside `f64`.
    pub(crate) fn new(m: usize, n: usize) -> Self {
        let mn = m * n;
        let width = mn / 2 + 1;
        // counts[j][u] for the current canary size i and baseline sizes j = 0..=n.
        let mut prev = vec![0.0; (n + 1) * width];
        for j in 0..=n {
            prev[j * width] = 1.0; // i = 0: only U = 0.
        }
        for _ in 1..=m {
            let mut next = vec![0.0; (n + 1) * width];
            next[0] = 1.0; // j = 0: only U = 0.
            for j in 1..=n {
                for u in 0..width {
                    let from_canary = if u >= j { prev[j * width + u - j] } else { 0.0 };
                    next[j * width + u] = from_canary + next[(j - 1) * width + u];
                }
            }
            prev = next;
        }
        let total = binomial(m + n, m);
        let mut cumulative = 0.0;
        let cdf = prev[n * width..(n + 1) * width]
            .iter()
            .map(|c| {
                cumulative += c / total;
                cumulative
            })
            .collect();
        ExactU { mn, cdf }
    }

    /// `P(U <= k)`.
    pub(crate) fn cdf(&self, k: usize) -> f64 {
        match self.cdf.get(k) {
            Some(p) => *p,
            None if k >= self.mn => 1.0,
            None => 1.0 - self.cdf[self.mn - k - 1],
        }
    }

    fn p_value(&self, u: f64, alternative: Alternative) -> f64 {
        // Without ties U is an integer.
        let u = u.round() as usize;
        let p = match alternative {
            // P(U >= u) = P(U <= mn - u) by symmetry.
            Alternative::Greater => self.cdf(self.mn - u),
            Alternative::Less => self.cdf(u),
            Alternative::TwoSided => 2.0 * self.cdf(u.min(self.mn - u)),
        };
        p.min(1.0)
    }

    /// See [`NullU::count_at_most`]; `level < 1/2` keeps the answer within the stored half.
    fn count_at_most(&self, level: f64) -> usize {
        self.cdf.partition_point(|p| *p <= level)
    }
}

/// `C(n, k)` as a float (exact below 2^53, relative error ~1e-15 above).
fn binomial(n: usize, k: usize) -> f64 {
    let k = k.min(n - k);
    (1..=k).fold(1.0, |acc, i| acc * (n - k + i) as f64 / i as f64)
}

pub(crate) fn std_normal() -> Normal {
    Normal::standard()
}
