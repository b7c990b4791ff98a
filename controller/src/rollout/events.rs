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
        action: action(t, reason),
        secondary: None,
    }
}

/// The events API counts events with the same object, reason and action as repeats of one
/// series and keeps the first note (the recorder does too): "completed step 2" would show as a
/// second "completed step 1". So the action names what was done, down to the step, weight,
/// version or pause reason; only a true repeat extends a series.
fn action(t: &Transition, reason: &str) -> String {
    match t {
        Transition::StepCompleted { index, .. } => format!("CompleteStep{}", index + 1),
        Transition::TrafficWeightUpdated { canary } => format!("SetWeight{canary}"),
        Transition::RolloutPaused { reason } => format!("Pause{reason}"),
        Transition::RolloutUpdated { hash } => format!("Update{hash}"),
        Transition::RolloutPromoted { hash } => format!("Promote{hash}"),
        Transition::ActiveServiceSwitched { hash, .. } => format!("Switch{hash}"),
        _ => reason.to_owned(),
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
        Transition::ActiveServiceSwitched { service, hash } => (
            Normal,
            "SwitchService",
            format!("active Service {service} now selects {hash}"),
        ),
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

    #[test]
    fn different_steps_and_weights_are_different_events_not_one_series() {
        let step = |index| event(&Transition::StepCompleted { index, total: 4 }).action;
        assert_ne!(step(0), step(1));
        assert_eq!(step(1), step(1), "a true repeat is the same series");
        let weight = |canary| event(&Transition::TrafficWeightUpdated { canary }).action;
        assert_ne!(weight(20), weight(50));
    }
}
