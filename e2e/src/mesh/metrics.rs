//! The Istio standard metrics the simulator exports, plus a few counters about itself.
//!
//! Names, label names and histogram buckets are Istio's, so a query written for a real mesh (an
//! Argo or Flagger AnalysisTemplate) runs unchanged. Label values come only from object names,
//! pod-template hashes, and small fixed sets (reporter, code, flags), so the series count is
//! bounded by the workloads in the cluster, never by the request count.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::traffic::{Report, Sink};

/// `source_workload` of every series: the simulator is the only client.
pub const SOURCE_WORKLOAD: &str = "mesh-sim";

/// Istio's default `istio_request_duration_milliseconds` buckets.
pub const DURATION_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Which proxy reports a request: the server side (`destination`) or the client side (`source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reporter {
    Destination,
    Source,
}

impl Reporter {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Destination => "destination",
            Self::Source => "source",
        }
    }
}

/// The Istio label set (the subset a simulator can fill in truthfully).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IstioLabels {
    pub reporter: &'static str,
    pub source_workload: &'static str,
    pub destination_workload: Arc<str>,
    pub destination_workload_namespace: Arc<str>,
    pub destination_service: Arc<str>,
    pub destination_service_name: Arc<str>,
    pub destination_service_namespace: Arc<str>,
    pub destination_canonical_service: Arc<str>,
    pub destination_version: Arc<str>,
    pub destination_canonical_revision: Arc<str>,
    pub request_protocol: &'static str,
    pub response_code: u16,
    pub response_flags: &'static str,
}

impl IstioLabels {
    fn new(reporter: Reporter, report: &Report) -> Self {
        Self {
            reporter: reporter.as_str(),
            source_workload: SOURCE_WORKLOAD,
            destination_workload: report.workload.clone(),
            // Endpoints of a Service live in the Service's namespace.
            destination_workload_namespace: report.service.namespace.clone(),
            destination_service: report.service.fqdn.clone(),
            destination_service_name: report.service.name.clone(),
            destination_service_namespace: report.service.namespace.clone(),
            destination_canonical_service: report.workload.clone(),
            destination_version: report.version.clone(),
            destination_canonical_revision: report.version.clone(),
            request_protocol: "http",
            response_code: report.code,
            response_flags: report.flags.as_str(),
        }
    }
}

type DurationFamily = Family<IstioLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS_MS)
}

/// The exported metrics; cheap to clone (all handles share their values).
#[derive(Clone)]
pub struct MeshMetrics {
    reporters: Vec<Reporter>,
    requests: Family<IstioLabels, Counter>,
    durations: DurationFamily,
    generated: Counter,
    unrouted: Counter,
    ticks: Counter,
}

impl MeshMetrics {
    /// Metrics reported by `reporters`, registered in `registry`.
    pub fn new(reporters: Vec<Reporter>, registry: &mut Registry) -> Self {
        let metrics = Self {
            reporters,
            requests: Family::default(),
            durations: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            generated: Counter::default(),
            unrouted: Counter::default(),
            ticks: Counter::default(),
        };
        metrics.register(registry);
        metrics
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "istio_requests",
            "Requests, as Istio's proxies report them (simulated)",
            self.requests.clone(),
        );
        registry.register(
            "istio_request_duration_milliseconds",
            "Request duration in milliseconds, as Istio's proxies report it (simulated)",
            self.durations.clone(),
        );
        registry.register(
            "mesh_sim_generated_requests",
            "Requests the simulator generated (mirror copies not included)",
            self.generated.clone(),
        );
        registry.register(
            "mesh_sim_unrouted_requests",
            "Generated requests that no http route accepted, or whose route had no destination",
            self.unrouted.clone(),
        );
        registry.register("mesh_sim_ticks", "Generator ticks run", self.ticks.clone());
    }

    /// Counts one tick that generated `requests` requests.
    pub fn tick_done(&self, requests: u64) {
        self.ticks.inc();
        self.generated.inc_by(requests);
    }
}

impl Sink for MeshMetrics {
    fn record(&mut self, report: &Report) {
        for &reporter in &self.reporters {
            // A client proxy fires a shadow copy without waiting for it, and only the server
            // side sees its answer, so mirror copies are reported by the destination alone.
            if report.mirrored && reporter == Reporter::Source {
                continue;
            }
            let labels = IstioLabels::new(reporter, report);
            self.requests.get_or_create(&labels).inc();
            self.durations
                .get_or_create(&labels)
                .observe(report.latency_ms);
        }
    }

    fn unrouted(&mut self) {
        self.unrouted.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::traffic::ResponseFlags;
    use crate::mesh::world::ServiceRef;

    fn report(mirrored: bool) -> Report {
        Report {
            service: ServiceRef {
                name: "web-canary".into(),
                namespace: "shop".into(),
                fqdn: "web-canary.shop.svc.cluster.local".into(),
            },
            workload: "web".into(),
            version: "6d4cf56db6".into(),
            code: 503,
            flags: ResponseFlags::NoHealthyUpstream,
            latency_ms: 42.0,
            mirrored,
        }
    }

    fn exposition(reporters: Vec<Reporter>, reports: &[Report]) -> String {
        let mut registry = Registry::default();
        let mut metrics = MeshMetrics::new(reporters, &mut registry);
        for report in reports {
            metrics.record(report);
        }
        metrics.tick_done(reports.len() as u64);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn exports_istio_names_labels_and_buckets() {
        let text = exposition(vec![Reporter::Destination], &[report(false)]);
        let series = text
            .lines()
            .find(|l| l.starts_with("istio_requests_total{"))
            .unwrap();
        for label in [
            r#"reporter="destination""#,
            r#"source_workload="mesh-sim""#,
            r#"destination_workload="web""#,
            r#"destination_service="web-canary.shop.svc.cluster.local""#,
            r#"destination_service_name="web-canary""#,
            r#"destination_version="6d4cf56db6""#,
            r#"destination_canonical_revision="6d4cf56db6""#,
            r#"response_code="503""#,
            r#"response_flags="UH""#,
            r#"request_protocol="http""#,
        ] {
            assert!(series.contains(label), "{label} missing from {series}");
        }
        assert!(series.ends_with(" 1"), "{series}");
        assert!(text.contains("istio_request_duration_milliseconds_bucket{"));
        assert!(text.contains(r#"le="3600000.0""#), "Istio's largest bucket");
        assert!(text.contains("istio_request_duration_milliseconds_sum{"));
        assert!(text.contains("mesh_sim_generated_requests_total 1"));
    }

    #[test]
    fn source_reporter_skips_mirror_copies() {
        let both = vec![Reporter::Destination, Reporter::Source];
        let text = exposition(both, &[report(false), report(true)]);
        let count = |reporter: &str| {
            text.lines()
                .filter(|l| l.starts_with("istio_requests_total{"))
                .filter(|l| l.contains(&format!(r#"reporter="{reporter}""#)))
                .map(|l| l.rsplit(' ').next().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(count("destination"), ["2"]);
        assert_eq!(count("source"), ["1"]);
    }
}
