//! Test fixtures: metric specs, measurements and times, built by meaning.

use chrono::{DateTime, TimeDelta, Utc};
use sluice_crds::{
    AnalysisPhase, Duration, Measurement, Metric, NoDataPolicy,
    provider::{MetricProvider, PrometheusMetric},
    units::Limit,
};

use crate::{metric::ValidatedMetric, time::to_api};

/// The clock's origin in tests: 2026-01-01T00:00:00Z.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap()
}

/// `secs` seconds after [`t0`].
pub fn at(secs: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(secs)
}

/// A metric named `name` with `successCondition: result[0] >= 0.95`, measured once.
pub fn metric(name: &str) -> MetricBuilder {
    MetricBuilder(Metric {
        name: name.to_string(),
        interval: None,
        initial_delay: None,
        count: None,
        success_condition: Some("result[0] >= 0.95".into()),
        failure_condition: None,
        failure_limit: None,
        inconclusive_limit: None,
        consecutive_error_limit: None,
        provider: MetricProvider::Prometheus(PrometheusMetric {
            address: "http://prometheus:9090".into(),
            query: Some("sum(rate(ok[1m])) / sum(rate(all[1m]))".into()),
            timeout: None,
            headers: Vec::new(),
            authentication: None,
            insecure: false,
            tls: None,
        }),
        on_empty: NoDataPolicy::Fail,
        on_nan: NoDataPolicy::Fail,
        min_samples: None,
        judge: None,
        weight: None,
        critical: false,
    })
}

/// Builds a [`Metric`] one field at a time.
pub struct MetricBuilder(pub Metric);

impl MetricBuilder {
    pub fn interval(mut self, secs: u64) -> Self {
        self.0.interval = Some(Duration::from_secs(secs));
        self
    }
    pub fn initial_delay(mut self, secs: u64) -> Self {
        self.0.initial_delay = Some(Duration::from_secs(secs));
        self
    }
    pub fn count(mut self, n: i32) -> Self {
        self.0.count = Some(n);
        self
    }
    pub fn success(mut self, expr: Option<&str>) -> Self {
        self.0.success_condition = expr.map(str::to_string);
        self
    }
    pub fn failure(mut self, expr: Option<&str>) -> Self {
        self.0.failure_condition = expr.map(str::to_string);
        self
    }
    pub fn failure_limit(mut self, n: i32) -> Self {
        self.0.failure_limit = Limit::new(n);
        self
    }
    pub fn inconclusive_limit(mut self, n: i32) -> Self {
        self.0.inconclusive_limit = Limit::new(n);
        self
    }
    pub fn consecutive_error_limit(mut self, n: i32) -> Self {
        self.0.consecutive_error_limit = Limit::new(n);
        self
    }
    pub fn on_empty(mut self, p: NoDataPolicy) -> Self {
        self.0.on_empty = p;
        self
    }
    pub fn on_nan(mut self, p: NoDataPolicy) -> Self {
        self.0.on_nan = p;
        self
    }
    pub fn min_samples(mut self, n: i32) -> Self {
        self.0.min_samples = Some(n);
        self
    }
    pub fn weight(mut self, w: i32) -> Self {
        self.0.weight = sluice_crds::MetricWeight::new(w);
        self
    }
    pub fn critical(mut self) -> Self {
        self.0.critical = true;
        self
    }
    pub fn query(mut self, q: &str) -> Self {
        let MetricProvider::Prometheus(p) = &mut self.0.provider;
        p.query = Some(q.to_string());
        self
    }
    pub fn build(self) -> Metric {
        self.0
    }
    /// Validated, not dry-run, default retention.
    pub fn validated(self) -> ValidatedMetric {
        ValidatedMetric::new(&self.0, false, crate::metric::DEFAULT_RETENTION).unwrap()
    }
}

/// A finished measurement with `phase`, taken at `secs` (and finished one second later).
pub fn measurement(phase: AnalysisPhase, secs: i64) -> Measurement {
    Measurement {
        phase,
        message: Some(format!("{phase:?} at {secs}s")),
        started_at: Some(to_api(at(secs))),
        finished_at: Some(to_api(at(secs + 1))),
        ..Measurement::default()
    }
}

/// Phases from letters: S(uccessful) F(ailed) I(nconclusive) E(rror).
pub fn phases(history: &str) -> Vec<AnalysisPhase> {
    history
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            'S' => AnalysisPhase::Successful,
            'F' => AnalysisPhase::Failed,
            'I' => AnalysisPhase::Inconclusive,
            'E' => AnalysisPhase::Error,
            other => panic!("unknown phase letter {other:?}"),
        })
        .collect()
}
