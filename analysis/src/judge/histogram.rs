//! Cumulative latency histograms as Prometheus stores them (`_bucket{le="..."}`), for the
//! latency form of the sequential judge and for quantile estimates.

use std::fmt;

/// Bucket counts of one version: `count(le)` = requests at most `le`, ending with `+Inf`.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// `(le, cumulative count)`, sorted by `le`, the last `le` is `+Inf`.
    buckets: Vec<(f64, f64)>,
}

/// Why bucket counts are not a histogram.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum HistogramError {
    /// No `le="+Inf"` bucket (it holds the total).
    #[error("the histogram has no +Inf bucket")]
    NoInfBucket,
    /// A bound or count is NaN, or a count is negative or infinite.
    #[error("bucket le={le} has an unusable bound or count {count}")]
    BadBucket {
        /// Bound.
        le: f64,
        /// Count.
        count: f64,
    },
    /// Counts fall as `le` grows (beyond rounding), so the buckets are not cumulative.
    #[error("bucket counts are not cumulative: le={le} has {count}, fewer than a smaller bound")]
    NotCumulative {
        /// Bound.
        le: f64,
        /// Count.
        count: f64,
    },
    /// No finite bucket bound at or above the threshold.
    #[error("no bucket bound at or above {0}")]
    NoBound(Threshold),
}

/// A threshold in an error message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Threshold(pub f64);

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", crate::value::format_number(self.0))
    }
}

impl Histogram {
    /// From `(le, cumulative count)` pairs in any order. Small decreases from `increase()`
    /// extrapolation (up to 1e-6 relative) are smoothed to the running maximum.
    pub fn new(mut buckets: Vec<(f64, f64)>) -> Result<Self, HistogramError> {
        if let Some(&(le, count)) = buckets
            .iter()
            .find(|(le, count)| le.is_nan() || !count.is_finite() || *count < 0.0)
        {
            return Err(HistogramError::BadBucket { le, count });
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.last().is_none_or(|(le, _)| *le != f64::INFINITY) {
            return Err(HistogramError::NoInfBucket);
        }
        let mut running: f64 = 0.0;
        for bucket in &mut buckets {
            if bucket.1 < running * (1.0 - 1e-6) {
                return Err(HistogramError::NotCumulative {
                    le: bucket.0,
                    count: bucket.1,
                });
            }
            running = running.max(bucket.1);
            bucket.1 = running;
        }
        Ok(Histogram { buckets })
    }

    /// All requests (the `+Inf` bucket).
    pub fn total(&self) -> f64 {
        self.buckets.last().map_or(0.0, |b| b.1)
    }

    /// The smallest finite bound at or above `threshold`, and the requests above it.
    pub fn above(&self, threshold: f64) -> Result<(f64, f64), HistogramError> {
        self.buckets
            .iter()
            .find(|(le, _)| le.is_finite() && *le >= threshold)
            .map(|&(le, count)| (le, self.total() - count))
            .ok_or(HistogramError::NoBound(Threshold(threshold)))
    }

    /// The `q`-quantile by linear interpolation inside its bucket, as PromQL's
    /// `histogram_quantile` does (the first bucket starts at 0; a quantile in the `+Inf`
    /// bucket is the largest finite bound). `None` without requests.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total <= 0.0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * total;
        let index = self.buckets.iter().position(|(_, count)| *count >= rank)?;
        let (le, count) = self.buckets[index];
        if le == f64::INFINITY {
            return self.buckets.iter().rev().nth(1).map(|b| b.0);
        }
        let (start, below) = match index.checked_sub(1) {
            Some(i) => self.buckets[i],
            None => (0.0, 0.0),
        };
        if count == below {
            return Some(le);
        }
        Some(start + (le - start) * (rank - below) / (count - below))
    }
}
