//! Events from transitions: the planner says what happened, this module says how to tell it.
//!
//! Reasons are PascalCase constants (Argo Rollouts' names where they exist), so alerting and
//! `kubectl get events --field-selector reason=RolloutAborted` work as users expect.

use kube::runtime::events::{Event, EventType};

use super::plan::Transition;

/// The event for a transition.
pub fn event(t: &Transition) -> Event {
    let (type_, reason, note) = describe(t);
    Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: reason.into(),
        secondary: None,
    }
}

fn describe(t: &Transition) -> (EventType, &'static str, String) {
    use EventType::{Normal, Warning};
    match t {
        Transition::RolloutUpdated { hash } => (
            Normal,
            "RolloutUpdated",
            format!("new pod template {hash}: starting the release"),
        ),
        Transition::StepCompleted { index, total } => (
            Normal,
            "StepCompleted",
            format!("completed step {}/{total}", index + 1),
        ),
        Transition::TrafficWeightUpdated { canary } => (
            Normal,
            "TrafficWeightUpdated",
            format!(
                "traffic weight verified: canary {canary}, stable {}",
                100 - u16::from(*canary)
            ),
        ),
        Transition::RolloutPaused { reason } => {
            (Normal, "RolloutPaused", format!("paused: {reason}"))
        }
        Transition::RolloutResumed => (Normal, "RolloutResumed", "resumed".to_owned()),
        Transition::RolloutPromoted { hash } => (
            Normal,
            "RolloutCompleted",
            format!("promoted {hash}: it is now the stable version"),
        ),
        Transition::RolloutAborted { message } => (Warning, "RolloutAborted", message.clone()),
        Transition::RolloutRetried => (
            Normal,
            "RolloutRetried",
            "abort cleared: retrying from step 1".to_owned(),
        ),
        Transition::ProgressDeadlineExceeded { message } => {
            (Warning, "ProgressDeadlineExceeded", message.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aborts_and_deadlines_are_warnings_with_the_reason_given() {
        let e = event(&Transition::RolloutAborted {
            message: "analysis failed".into(),
        });
        assert_eq!(
            (e.type_, e.reason.as_str()),
            (EventType::Warning, "RolloutAborted")
        );
        assert_eq!(e.note.as_deref(), Some("analysis failed"));
        let e = event(&Transition::TrafficWeightUpdated { canary: 20 });
        assert_eq!(e.type_, EventType::Normal);
        assert!(e.note.unwrap_or_default().contains("canary 20, stable 80"));
    }
}
