//! The AnalysisRun controller's metrics, with bounded labels only: a measurement's phase and
//! an error's category, never a run, metric, query or Secret name.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use sluice_crds::AnalysisPhase;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabel {
    category: &'static str,
}

/// Counters of the AnalysisRun controller.
#[derive(Clone, Default)]
pub struct AnalysisMetrics {
    measurements: Family<PhaseLabel, Counter>,
    errors: Family<CategoryLabel, Counter>,
}

impl AnalysisMetrics {
    /// Creates the metrics and registers them (prefix `sluice_analysis_`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "sluice_analysis_measurements",
            "Measurements recorded in AnalysisRun status, by phase",
            m.measurements.clone(),
        );
        registry.register(
            "sluice_analysis_run_reconcile_errors",
            "Failed AnalysisRun reconciles, by category",
            m.errors.clone(),
        );
        m
    }

    /// Counts one measurement that was written to a run's status.
    pub fn count_measurement(&self, phase: AnalysisPhase) {
        let label = PhaseLabel {
            phase: phase_label(phase),
        };
        self.measurements.get_or_create(&label).inc();
    }

    pub fn count_error(&self, category: &'static str) {
        self.errors.get_or_create(&CategoryLabel { category }).inc();
    }

    #[cfg(test)]
    fn measurements(&self, phase: AnalysisPhase) -> u64 {
        let label = PhaseLabel {
            phase: phase_label(phase),
        };
        self.measurements.get_or_create(&label).get()
    }
}

fn phase_label(phase: AnalysisPhase) -> &'static str {
    match phase {
        AnalysisPhase::Pending => "Pending",
        AnalysisPhase::Running => "Running",
        AnalysisPhase::Successful => "Successful",
        AnalysisPhase::Failed => "Failed",
        AnalysisPhase::Error => "Error",
        AnalysisPhase::Inconclusive => "Inconclusive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurements_are_counted_by_phase_and_exported() {
        let mut registry = Registry::default();
        let m = AnalysisMetrics::register(&mut registry);
        m.count_measurement(AnalysisPhase::Successful);
        m.count_measurement(AnalysisPhase::Successful);
        m.count_measurement(AnalysisPhase::Error);
        assert_eq!(m.measurements(AnalysisPhase::Successful), 2);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains("sluice_analysis_measurements_total{phase=\"Successful\"} 2"),
            "{text}"
        );
        assert!(text.contains("sluice_analysis_measurements_total{phase=\"Error\"} 1"));
    }
}
