//! The Hodges-Lehmann shift estimate and its confidence bounds, from the `mn` pairwise
//! differences `D_ij = x_i - y_j` (canary minus baseline).
//!
//! # Math
//! The estimate is `median(D_ij)` (Hodges & Lehmann, *Estimates of location based on rank
//! tests*, Ann. Math. Statist. 1963). Inverting the U test gives distribution-free bounds
//! (Lehmann 1975, section 2.6; Hollander & Wolfe, section 4.3): with `D_(1) <= ... <= D_(mn)`
//! sorted and `w` such that `P(U <= w - 1) <= level` under H0,
//!
//! ```text
//! P(shift >= D_(w)) >= 1 - level        P(shift <= D_(mn + 1 - w)) >= 1 - level
//! ```
//!
//! because `D_(w) > s` exactly when at least `mn - w + 1` differences exceed `s`, i.e. when
//! the U test of "shift = s" sits in its upper `level` tail. `w = 0` means the data cannot
//! bound the shift on that side (the bound is infinite).
//!
//! # Selection without the `mn` differences
//! Order statistics of `D` are found without materialising it: with both samples sorted,
//! `#{D_ij <= d}` takes one two-pointer pass (`O(m + n)`), and a bisection over the `f64`
//! bit patterns (at most 64 steps) finds the smallest representable `d` with
//! `#{D_ij <= d} >= k`, which is the `k`-th difference itself. Memory stays `O(m + n)` for
//! windows of any length.

/// Estimate and bounds of the shift.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Shift {
    /// Hodges-Lehmann estimate.
    pub estimate: f64,
    /// Lower bound at `1 - level`, or `-inf`.
    pub lower: f64,
    /// Upper bound at `1 - level`, or `+inf`.
    pub upper: f64,
}

/// The pairwise differences of two samples, ready for order statistics.
pub(crate) struct Differences {
    canary: Vec<f64>,
    baseline: Vec<f64>,
}

impl Differences {
    /// # Assumptions
    /// Both samples are non-empty and finite.
    pub(crate) fn new(canary: &[f64], baseline: &[f64]) -> Self {
        let sorted = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v
        };
        Differences {
            canary: sorted(canary),
            baseline: sorted(baseline),
        }
    }

    fn pairs(&self) -> usize {
        self.canary.len() * self.baseline.len()
    }

    /// The estimate and one-sided bounds, each at confidence `1 - level`, given
    /// `w = count_at_most(level)` of the null distribution of U.
    pub(crate) fn shift(&self, w: usize) -> Shift {
        let mn = self.pairs();
        let estimate = if mn % 2 == 1 {
            self.kth(mn / 2 + 1)
        } else {
            (self.kth(mn / 2) + self.kth(mn / 2 + 1)) / 2.0
        };
        let (lower, upper) = if w == 0 {
            (f64::NEG_INFINITY, f64::INFINITY)
        } else {
            let w = w.min(mn);
            (self.kth(w), self.kth(mn + 1 - w))
        };
        Shift {
            estimate,
            lower,
            upper,
        }
    }

    /// `#{(i, j) : x_i - y_j <= d}` in one pass. For a fixed `i`, `x_i - y_j` falls as `j`
    /// grows (rounding is monotone), so the qualifying `j` are a suffix whose start only
    /// moves right as `x_i` grows.
    fn count_at_most(&self, d: f64) -> usize {
        let n = self.baseline.len();
        let mut start = 0;
        let mut count = 0;
        for &x in &self.canary {
            while start < n && x - self.baseline[start] > d {
                start += 1;
            }
            count += n - start;
        }
        count
    }

    /// The `k`-th smallest difference, `1 <= k <= mn`.
    fn kth(&self, k: usize) -> f64 {
        let first = |v: &[f64]| v.first().copied().unwrap_or(0.0);
        let last = |v: &[f64]| v.last().copied().unwrap_or(0.0);
        let smallest = first(&self.canary) - last(&self.baseline);
        let largest = last(&self.canary) - first(&self.baseline);
        // Invariant: count(lo) < k <= count(hi), over the ordered bit patterns.
        let mut lo = ordered(smallest) - 1;
        let mut hi = ordered(largest);
        if self.count_at_most(smallest) >= k {
            return smallest;
        }
        while i128::from(hi) - i128::from(lo) > 1 {
            // The midpoint of two i64 fits in an i64.
            let mid = ((i128::from(lo) + i128::from(hi)) / 2) as i64;
            if self.count_at_most(unordered(mid)) >= k {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        unordered(hi)
    }
}

/// Maps an `f64` to an integer with the same order (negative numbers reversed), so that
/// bisection over integers visits every representable value in between.
fn ordered(v: f64) -> i64 {
    let bits = v.to_bits() as i64;
    if bits < 0 { i64::MIN - bits } else { bits }
}

fn unordered(key: i64) -> f64 {
    let bits = if key < 0 { i64::MIN - key } else { key };
    f64::from_bits(bits as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_keys_follow_the_numbers() {
        let values = [-1e300, -2.5, -0.0, 0.0, 1e-300, 3.0, 1e300];
        for pair in values.windows(2) {
            assert!(ordered(pair[0]) <= ordered(pair[1]), "{pair:?}");
        }
        for v in values {
            assert_eq!(unordered(ordered(v)), v);
        }
    }

    #[test]
    fn order_statistics_match_sorting_every_difference() {
        let x = [3.1, -2.0, 7.5, 0.25, 0.25, 9.0];
        let y = [1.0, 4.0, -3.5, 0.25, 2.0];
        let mut all: Vec<f64> = x
            .iter()
            .flat_map(|a| y.iter().map(move |b| a - b))
            .collect();
        all.sort_by(f64::total_cmp);
        let d = Differences::new(&x, &y);
        for k in 1..=all.len() {
            assert_eq!(d.kth(k), all[k - 1], "k = {k}");
        }
    }
}
