//! Simulated request streams: per version, a fixed number of requests per tick, each an
//! error with the version's probability and with a log-normal latency counted into Istio's
//! histogram buckets — what Prometheus would hold for `istio_requests_total` and
//! `istio_request_duration_milliseconds_bucket`.

use rand::{Rng, distr::Distribution};
use sluice_analysis::judge::Histogram;
use statrs::distribution::{Binomial, ContinuousCDF, Normal};

/// Istio's default duration buckets (ms) up to 10 s; slower requests land in `+Inf`.
pub const BUCKETS_MS: [f64; 12] = [
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];
/// Bucket slots: one per bound, and the `+Inf` overflow.
pub const SLOTS: usize = BUCKETS_MS.len() + 1;

/// How one version behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Version {
    /// Probability that a request fails.
    pub error_rate: f64,
    /// Median latency (ms).
    pub median_ms: f64,
    /// Standard deviation of the log latency.
    pub sigma: f64,
}

impl Version {
    /// The `q`-quantile of the latency (ms).
    pub fn latency_quantile(&self, q: f64) -> f64 {
        let z = Normal::standard().inverse_cdf(q);
        self.median_ms * (self.sigma * z).exp()
    }

    /// What `histogram_quantile(q, ...)` converges to on this version's buckets.
    pub fn histogram_quantile(&self, q: f64) -> Option<f64> {
        let mut expected = Window::default();
        for (out, p) in expected.slots.iter_mut().zip(self.slot_probabilities()) {
            *out = (p * 1e9).round() as u64;
        }
        expected.histogram().and_then(|h| h.quantile(q))
    }

    /// The probability of each bucket slot (not cumulative).
    fn slot_probabilities(&self) -> [f64; SLOTS] {
        let below = |bound: f64| Normal::standard().cdf((bound / self.median_ms).ln() / self.sigma);
        let mut probabilities = [0.0; SLOTS];
        let mut previous = 0.0;
        for (slot, bound) in BUCKETS_MS.iter().enumerate() {
            let cumulative = below(*bound);
            probabilities[slot] = cumulative - previous;
            previous = cumulative;
        }
        probabilities[SLOTS - 1] = 1.0 - previous;
        probabilities
    }
}

/// Counts over an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Window {
    /// Requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Requests per bucket slot (not cumulative).
    pub slots: [u64; SLOTS],
}

impl Window {
    /// Errors over requests (NaN without requests, as PromQL's `0/0`).
    pub fn error_ratio(&self) -> f64 {
        self.errors as f64 / self.requests as f64
    }

    /// The cumulative `le` histogram Prometheus would return.
    pub fn histogram(&self) -> Option<Histogram> {
        let mut cumulative = 0u64;
        let mut buckets = Vec::with_capacity(SLOTS);
        for (slot, count) in self.slots.iter().enumerate() {
            cumulative += count;
            let le = BUCKETS_MS.get(slot).copied().unwrap_or(f64::INFINITY);
            buckets.push((le, cumulative as f64));
        }
        Histogram::new(buckets).ok()
    }
}

/// Cumulative counts of one version at every tick boundary (index 0 is the start).
pub struct Stream {
    cumulative: Vec<Window>,
}

impl Stream {
    /// Simulates `ticks` ticks of `per_tick` requests.
    pub fn simulate(rng: &mut impl Rng, version: &Version, per_tick: u64, ticks: usize) -> Self {
        let probabilities = version.slot_probabilities();
        let mut cumulative = Vec::with_capacity(ticks + 1);
        let mut total = Window::default();
        cumulative.push(total);
        for _ in 0..ticks {
            total.requests += per_tick;
            total.errors += binomial(rng, per_tick, version.error_rate);
            for (slot, count) in multinomial(rng, per_tick, &probabilities)
                .iter()
                .enumerate()
            {
                total.slots[slot] += count;
            }
            cumulative.push(total);
        }
        Stream { cumulative }
    }

    /// Counts in ticks `from..to` (boundaries `from` to `to`).
    pub fn window(&self, from: usize, to: usize) -> Window {
        let (a, b) = (self.at(from), self.at(to));
        let mut slots = [0; SLOTS];
        for (slot, out) in slots.iter_mut().enumerate() {
            *out = b.slots[slot] - a.slots[slot];
        }
        Window {
            requests: b.requests - a.requests,
            errors: b.errors - a.errors,
            slots,
        }
    }

    fn at(&self, tick: usize) -> Window {
        let last = self.cumulative.len().saturating_sub(1);
        self.cumulative
            .get(tick.min(last))
            .copied()
            .unwrap_or_default()
    }
}

/// A binomial draw (statrs' BINV/BTPE sampler); 0 for impossible parameters.
fn binomial(rng: &mut impl Rng, n: u64, p: f64) -> u64 {
    match Binomial::new(p.clamp(0.0, 1.0), n) {
        Ok(distribution) => Distribution::<u64>::sample(&distribution, rng),
        Err(_) => 0,
    }
}

/// A multinomial draw as a chain of conditional binomials.
fn multinomial(rng: &mut impl Rng, n: u64, probabilities: &[f64; SLOTS]) -> [u64; SLOTS] {
    let mut counts = [0; SLOTS];
    let (mut left, mut mass) = (n, 1.0);
    for (slot, p) in probabilities.iter().enumerate() {
        if left == 0 {
            break;
        }
        if slot == SLOTS - 1 || mass <= *p {
            counts[slot] = left;
            break;
        }
        let drawn = binomial(rng, left, p / mass);
        counts[slot] = drawn;
        left -= drawn;
        mass -= p;
    }
    counts
}
