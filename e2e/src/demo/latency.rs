//! Breach-to-rollback latency: from the moment a bad version starts receiving traffic (the
//! VirtualService's canary weight is read above 0 after the release) to the moment the canary
//! weight is read back at 0. Both ends come from the same VirtualService watch, so the figure
//! is what a user of the mesh would see, not what the controller believes. Pure.

use std::time::Duration;

use tokio::time::Instant;

/// Follows one release's canary weight as read from the VirtualService.
#[derive(Clone, Debug)]
pub struct BreachClock {
    released: Instant,
    traffic: Option<Instant>,
    restored: Option<Instant>,
}

impl BreachClock {
    /// Starts the clock at the release; only observations after it count.
    pub fn new(released: Instant) -> Self {
        Self {
            released,
            traffic: None,
            restored: None,
        }
    }

    /// Records the canary weight read at `at`.
    pub fn observe(&mut self, canary_weight: Option<i64>, at: Instant) {
        let Some(weight) = canary_weight else { return };
        match (self.traffic, self.restored) {
            (None, _) if weight > 0 => self.traffic = Some(at),
            (Some(_), None) if weight == 0 => self.restored = Some(at),
            _ => {}
        }
    }

    /// When the canary first got traffic, since the release.
    pub fn traffic_at(&self) -> Option<Duration> {
        self.traffic.map(|t| t - self.released)
    }

    /// When the weight was read back at 0 after that, since the release.
    pub fn restored_at(&self) -> Option<Duration> {
        self.restored.map(|t| t - self.released)
    }

    /// Breach-to-rollback latency, once both ends were seen.
    pub fn latency(&self) -> Option<Duration> {
        Some(self.restored? - self.traffic?)
    }
}

/// Median and maximum of several latencies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub runs: usize,
    pub min: Duration,
    pub median: Duration,
    pub max: Duration,
}

/// The statistics of `samples`; `None` without samples. The median of an even count is the
/// mean of the two middle values.
pub fn stats(samples: &[Duration]) -> Option<Stats> {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let n = sorted.len();
    let (min, max) = (*sorted.first()?, *sorted.last()?);
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    };
    Some(Stats {
        runs: n,
        min,
        median,
        max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn latency_runs_from_first_traffic_to_weight_zero() {
        let t0 = Instant::now();
        let mut clock = BreachClock::new(t0);
        clock.observe(Some(0), t0 + ms(100));
        clock.observe(None, t0 + ms(150));
        assert_eq!(clock.latency(), None);
        clock.observe(Some(20), t0 + ms(1000));
        clock.observe(Some(20), t0 + ms(2000));
        clock.observe(Some(0), t0 + ms(4500));
        clock.observe(Some(20), t0 + ms(9000));
        clock.observe(Some(0), t0 + ms(9500));
        assert_eq!(clock.traffic_at(), Some(ms(1000)));
        assert_eq!(clock.restored_at(), Some(ms(4500)));
        assert_eq!(clock.latency(), Some(ms(3500)));
    }

    #[test]
    fn median_and_max() {
        assert_eq!(stats(&[]), None);
        let s = stats(&[ms(5), ms(1), ms(3)]).unwrap();
        assert_eq!((s.runs, s.min, s.median, s.max), (3, ms(1), ms(3), ms(5)));
        assert_eq!(stats(&[ms(4), ms(1), ms(2), ms(8)]).unwrap().median, ms(3));
    }
}
