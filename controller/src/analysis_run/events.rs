//! Events of an AnalysisRun, from the difference between the status read and the status
//! written: the run started, a metric completed, the run completed.
//!
//! Reasons follow Argo Rollouts (`AnalysisRunFailed`, `MetricFailed`, ...). A failed, errored
//! or inconclusive metric or run is a Warning whose note quotes the metric's message: the
//! value measured and the condition it did not meet. Notes are built only from status text,
//! which never holds a secret value.

use kube::runtime::events::{Event, EventType};
use sluice_analysis::assess::phase_word;
use sluice_crds::{AnalysisPhase, AnalysisRunStatus};

/// Longest note sent (the events API limits notes to 1 KiB).
const MAX_NOTE: usize = 1000;
/// Longest action sent (the events API limits actions to 128 characters).
const MAX_ACTION: usize = 128;

/// Something that happened to a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The first status was written.
    Started { metrics: usize },
    /// A metric reached a final phase.
    MetricCompleted {
        name: String,
        phase: AnalysisPhase,
        message: String,
    },
    /// The run reached a final phase.
    Completed {
        phase: AnalysisPhase,
        message: String,
    },
    /// The spec (or the object) cannot be used; the run ended with `Error`.
    InvalidSpec { message: String },
}

/// What changed from `before` to `after`, in the order it should be told: the run starting,
/// metrics completing (in spec order), the run completing.
pub fn transitions(before: &AnalysisRunStatus, after: &AnalysisRunStatus) -> Vec<Transition> {
    let mut out = Vec::new();
    if before.phase.is_none() && after.phase == Some(AnalysisPhase::Running) {
        out.push(Transition::Started {
            metrics: after.metric_results.len(),
        });
    }
    for result in &after.metric_results {
        let was_completed = before
            .metric_results
            .iter()
            .any(|r| r.name == result.name && r.phase.is_completed());
        if result.phase.is_completed() && !was_completed {
            out.push(Transition::MetricCompleted {
                name: result.name.clone(),
                phase: result.phase,
                message: result.message.clone().unwrap_or_default(),
            });
        }
    }
    let completed = |s: &AnalysisRunStatus| s.phase.is_some_and(AnalysisPhase::is_completed);
    if let (false, Some(phase)) = (completed(before), after.phase.filter(|_| completed(after))) {
        out.push(Transition::Completed {
            phase,
            message: after.message.clone().unwrap_or_default(),
        });
    }
    out
}

/// The event for a transition.
pub fn event(t: &Transition) -> Event {
    let (type_, reason, note, action) = describe(t);
    Event {
        type_,
        reason,
        note: Some(note.chars().take(MAX_NOTE).collect()),
        // The events API folds events with the same reason and action into one series that
        // keeps the first note, so each metric gets its own action.
        action: action.chars().take(MAX_ACTION).collect(),
        secondary: None,
    }
}

fn describe(t: &Transition) -> (EventType, String, String, String) {
    match t {
        Transition::Started { metrics } => (
            EventType::Normal,
            "AnalysisRunRunning".into(),
            format!("measuring {metrics} metric(s)"),
            "Start".into(),
        ),
        Transition::MetricCompleted {
            name,
            phase,
            message,
        } => (
            event_type(*phase),
            format!("Metric{phase:?}"),
            format!("metric {name:?} {}: {message}", phase_word(*phase)),
            format!("Assess/{name}"),
        ),
        Transition::Completed { phase, message } => (
            event_type(*phase),
            format!("AnalysisRun{phase:?}"),
            format!("analysis {}: {message}", phase_word(*phase)),
            "Complete".into(),
        ),
        Transition::InvalidSpec { message } => (
            EventType::Warning,
            "InvalidSpec".into(),
            message.clone(),
            "Validate".into(),
        ),
    }
}

fn event_type(phase: AnalysisPhase) -> EventType {
    match phase {
        AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive => {
            EventType::Warning
        }
        AnalysisPhase::Pending | AnalysisPhase::Running | AnalysisPhase::Successful => {
            EventType::Normal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_crds::MetricResult;

    fn status(
        phase: Option<AnalysisPhase>,
        metrics: &[(&str, AnalysisPhase)],
    ) -> AnalysisRunStatus {
        AnalysisRunStatus {
            phase,
            message: Some("metric \"up\" failed: [0] did not satisfy 'result[0] == 1'".into()),
            metric_results: metrics
                .iter()
                .map(|(name, phase)| MetricResult {
                    name: (*name).into(),
                    phase: *phase,
                    message: Some(format!("{name} message")),
                    ..MetricResult::default()
                })
                .collect(),
            ..AnalysisRunStatus::default()
        }
    }

    #[test]
    fn start_metric_completion_and_run_completion_are_told_once_in_order() {
        use AnalysisPhase::{Failed, Running, Successful};
        let fresh = AnalysisRunStatus::default();
        let running = status(Some(Running), &[("a", Running), ("b", Running)]);
        let done = status(Some(Failed), &[("a", Successful), ("b", Failed)]);
        assert_eq!(
            transitions(&fresh, &running),
            [Transition::Started { metrics: 2 }]
        );
        let told = transitions(&running, &done);
        assert_eq!(told.len(), 3, "{told:?}");
        assert!(matches!(&told[0], Transition::MetricCompleted { name, .. } if name == "a"));
        assert!(matches!(
            &told[2],
            Transition::Completed { phase: Failed, .. }
        ));
        assert!(transitions(&done, &done).is_empty(), "nothing new");
    }

    #[test]
    fn failures_are_warnings_quoting_the_message_and_each_metric_has_its_own_action() {
        let e = event(&Transition::MetricCompleted {
            name: "error-rate".into(),
            phase: AnalysisPhase::Failed,
            message: "[0.2] did not satisfy successCondition 'result[0] < 0.1'".into(),
        });
        assert_eq!(e.type_, EventType::Warning);
        assert_eq!(e.reason, "MetricFailed");
        assert_eq!(e.action, "Assess/error-rate");
        let note = e.note.unwrap_or_default();
        assert!(
            note.contains("[0.2]") && note.contains("result[0] < 0.1"),
            "{note}"
        );
        let ok = event(&Transition::Completed {
            phase: AnalysisPhase::Successful,
            message: "all 1 metrics completed successfully".into(),
        });
        assert_eq!(
            (ok.type_, ok.reason.as_str()),
            (EventType::Normal, "AnalysisRunSuccessful")
        );
    }

    #[test]
    fn notes_are_bounded() {
        let e = event(&Transition::InvalidSpec {
            message: "x".repeat(5000),
        });
        assert_eq!(e.note.map(|n| n.len()), Some(MAX_NOTE));
    }
}
