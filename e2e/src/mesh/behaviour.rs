//! How one version answers: its error probability and latency distribution, read from the
//! `sim.sluice.dev/*` annotations on its pod template (so on its pods).
//!
//! Latency is log-normal: real service latencies are right-skewed with a long tail, and a
//! log-normal is fully described by the two numbers a release author thinks in, the median and
//! the p99.

use std::collections::BTreeMap;

use rand::RngExt;

/// Probability that a request to this version answers 500, in `0.0..=1.0`.
pub const ERROR_RATE: &str = "sim.sluice.dev/error-rate";
/// Median latency in milliseconds.
pub const LATENCY_MS: &str = "sim.sluice.dev/latency-ms";
/// 99th percentile latency in milliseconds (must not be below the median).
pub const LATENCY_P99_MS: &str = "sim.sluice.dev/latency-p99-ms";

/// Median latency when a pod says nothing.
pub const DEFAULT_MEDIAN_MS: f64 = 20.0;
/// Tail width when a pod gives no p99: p99 = 2 x median, a mildly skewed healthy service.
const DEFAULT_P99_OVER_MEDIAN: f64 = 2.0;
/// The standard normal quantile at 0.99, which links sigma to the p99/median ratio.
const Z_99: f64 = 2.326_347_874_040_841;
/// Latencies are capped so a typo (`latency-ms: 5e9`) cannot produce absurd histogram sums.
const MAX_LATENCY_MS: f64 = 3_600_000.0;

/// The behaviour of one version.
#[derive(Clone, Debug, PartialEq)]
pub struct Behaviour {
    pub error_rate: f64,
    pub median_ms: f64,
    /// Sigma of the underlying normal: `ln(p99 / median) / z_0.99`.
    pub sigma: f64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            median_ms: DEFAULT_MEDIAN_MS,
            sigma: DEFAULT_P99_OVER_MEDIAN.ln() / Z_99,
        }
    }
}

/// The outcome of one simulated request at a pod.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Answer {
    pub code: u16,
    pub latency_ms: f64,
}

impl Behaviour {
    /// Reads the behaviour from pod annotations.
    ///
    /// Guarantees: always returns a usable behaviour. A value that does not parse or is out of
    /// range keeps that field's default and is described in the returned problems, so a typo is
    /// visible in the log instead of silently turning a bad release into a good one.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let defaults = Self::default();
        let mut read = |key: &str, valid: fn(f64) -> bool| {
            let raw = annotations.get(key)?;
            match raw.trim().parse::<f64>() {
                Ok(value) if valid(value) => Some(value),
                _ => {
                    problems.push(format!("annotation {key}: {raw:?} is not valid"));
                    None
                }
            }
        };
        let error_rate = read(ERROR_RATE, |v| (0.0..=1.0).contains(&v));
        let median = read(LATENCY_MS, |v| (0.0..=MAX_LATENCY_MS).contains(&v));
        let p99 = read(LATENCY_P99_MS, |v| (0.0..=MAX_LATENCY_MS).contains(&v));
        let median_ms = median.unwrap_or(defaults.median_ms);
        let sigma = match p99 {
            Some(p99) if p99 >= median_ms => sigma_for(median_ms, p99),
            Some(p99) => {
                problems.push(format!(
                    "annotation {LATENCY_P99_MS}: {p99} is below the median {median_ms}"
                ));
                defaults.sigma
            }
            None => defaults.sigma,
        };
        let behaviour = Self {
            error_rate: error_rate.unwrap_or(defaults.error_rate),
            median_ms,
            sigma,
        };
        (behaviour, problems)
    }

    /// Draws one answer: 500 with probability `error_rate`, else 200, with a log-normal latency.
    pub fn answer(&self, rng: &mut impl RngExt) -> Answer {
        // Always draw both numbers, so one version's error rate does not shift the random
        // stream seen by the requests that follow.
        let failed = rng.random::<f64>() < self.error_rate;
        let latency_ms = self.latency(standard_normal(rng));
        Answer {
            code: if failed { 500 } else { 200 },
            latency_ms,
        }
    }

    /// The latency at standard normal deviate `z`: `median * exp(sigma * z)`, capped.
    pub fn latency(&self, z: f64) -> f64 {
        (self.median_ms * (self.sigma * z).exp()).min(MAX_LATENCY_MS)
    }
}

/// Sigma of a log-normal with this median and p99. A zero median means "instant": no spread.
fn sigma_for(median_ms: f64, p99_ms: f64) -> f64 {
    if median_ms <= 0.0 {
        return 0.0;
    }
    (p99_ms / median_ms).ln() / Z_99
}

/// A standard normal deviate by the Box-Muller transform (no extra crate for one formula).
pub fn standard_normal(rng: &mut impl RngExt) -> f64 {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn percentile(mut samples: Vec<f64>, p: f64) -> f64 {
        samples.sort_by(f64::total_cmp);
        samples[((samples.len() as f64) * p) as usize]
    }

    #[test]
    fn defaults_when_unannotated() {
        let (behaviour, problems) = Behaviour::from_annotations(&BTreeMap::new());
        assert_eq!(behaviour, Behaviour::default());
        assert!(problems.is_empty());
        assert_eq!(behaviour.error_rate, 0.0);
        assert_eq!(behaviour.median_ms, 20.0);
    }

    #[test]
    fn reads_error_rate_median_and_p99() {
        let (behaviour, problems) = Behaviour::from_annotations(&annotations(&[
            (ERROR_RATE, "0.05"),
            (LATENCY_MS, "50"),
            (LATENCY_P99_MS, "200"),
        ]));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(behaviour.error_rate, 0.05);
        assert_eq!(behaviour.median_ms, 50.0);
        assert!((behaviour.latency(Z_99) - 200.0).abs() < 1e-9);
        assert!((behaviour.latency(0.0) - 50.0).abs() < 1e-9);
    }

    #[test]
    fn invalid_values_keep_defaults_and_are_reported() {
        let (behaviour, problems) = Behaviour::from_annotations(&annotations(&[
            (ERROR_RATE, "1.5"),
            (LATENCY_MS, "fast"),
            (LATENCY_P99_MS, "5"),
        ]));
        assert_eq!(behaviour, Behaviour::default());
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn sampled_latency_has_the_configured_median_and_p99() {
        let behaviour = Behaviour {
            error_rate: 0.0,
            median_ms: 50.0,
            sigma: sigma_for(50.0, 200.0),
        };
        let mut rng = StdRng::seed_from_u64(7);
        let samples: Vec<f64> = (0..20_000)
            .map(|_| behaviour.answer(&mut rng).latency_ms)
            .collect();
        let median = percentile(samples.clone(), 0.5);
        let p99 = percentile(samples, 0.99);
        assert!((median - 50.0).abs() < 2.5, "median {median}");
        assert!((p99 - 200.0).abs() < 20.0, "p99 {p99}");
    }

    #[test]
    fn sampled_error_share_follows_the_rate() {
        let behaviour = Behaviour {
            error_rate: 0.3,
            ..Behaviour::default()
        };
        let mut rng = StdRng::seed_from_u64(11);
        let errors = (0..10_000)
            .filter(|_| behaviour.answer(&mut rng).code == 500)
            .count();
        assert!((2_800..3_200).contains(&errors), "errors {errors}");
    }

    #[test]
    fn zero_median_means_instant() {
        let (behaviour, _) =
            Behaviour::from_annotations(&annotations(&[(LATENCY_MS, "0"), (LATENCY_P99_MS, "0")]));
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(behaviour.answer(&mut rng).latency_ms, 0.0);
    }
}
