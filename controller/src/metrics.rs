//! Controller metrics (`prometheus-client`), with bounded label sets.
//!
//! Counters and the reconcile-duration histogram are labelled only by bounded categories
//! (`ApiError`, `Conflict`, `InvalidReference`, ...), never by object names or error text. The
//! per-Rollout gauges are read from the reflector cache at scrape time, so a deleted Rollout's
//! series disappear with it instead of going stale.

use std::time::Instant;

use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabel {
    category: &'static str,
}

/// The controller's own metrics.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Counter,
    errors: Family<CategoryLabel, Counter>,
    invalid: Counter,
    writes: Counter,
    duration: Histogram,
}

impl Metrics {
    /// Creates the metrics and registers them (prefix `sluice_`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            reconciles: Counter::default(),
            errors: Family::default(),
            invalid: Counter::default(),
            writes: Counter::default(),
            duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
        };
        registry.register(
            "sluice_reconciles",
            "Rollout reconciles started",
            m.reconciles.clone(),
        );
        registry.register(
            "sluice_reconcile_errors",
            "Failed reconciles by category",
            m.errors.clone(),
        );
        registry.register(
            "sluice_invalid_spec",
            "Reconciles that found an invalid spec",
            m.invalid.clone(),
        );
        registry.register(
            "sluice_intents_applied",
            "Writes (intents) applied by reconciles",
            m.writes.clone(),
        );
        registry.register(
            "sluice_reconcile_duration_seconds",
            "Duration of a reconcile",
            m.duration.clone(),
        );
        m
    }

    /// Counts a reconcile and times it until the returned guard drops.
    pub fn reconcile_started(&self) -> ReconcileTimer {
        self.reconciles.inc();
        ReconcileTimer {
            start: Instant::now(),
            histogram: self.duration.clone(),
        }
    }

    pub fn count_error(&self, category: &'static str) {
        self.errors.get_or_create(&CategoryLabel { category }).inc();
    }

    pub fn count_invalid(&self) {
        self.invalid.inc();
    }

    pub fn count_writes(&self, n: usize) {
        self.writes.inc_by(n as u64);
    }
}

/// Observes the reconcile duration when dropped, whatever path the reconcile returned by.
pub struct ReconcileTimer {
    start: Instant,
    histogram: Histogram,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

/// Per-Rollout gauges collected from the cache at scrape time.
#[derive(Debug)]
pub struct RolloutCollector {
    pub rollouts: Store<DynamicObject>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RolloutLabels {
    namespace: String,
    name: String,
    phase: String,
}

impl Collector for RolloutCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let objects = self.rollouts.state();
        let info = ConstGauge::new(1i64);
        let mut family = encoder.encode_descriptor(
            "sluice_rollout_phase",
            "1 for each Rollout, labelled with its phase",
            None,
            info.metric_type(),
        )?;
        for o in &objects {
            let labels = RolloutLabels {
                namespace: o.namespace().unwrap_or_default(),
                name: o.name_any(),
                phase: status_str(o, "phase").unwrap_or("Unknown").to_owned(),
            };
            info.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

fn status_str<'a>(o: &'a DynamicObject, field: &str) -> Option<&'a str> {
    o.data.get("status")?.get(field)?.as_str()
}
