//! Pausing steps: `pause` (timed or until promoted) and a paused analysis verdict.
//!
//! A pause is entered once (a condition with its start time, `controllerPause` set) and ends at
//! expiry or when the user removes the condition while `controllerPause` is set (a promote).

use super::{Draft, Outcome};
use crate::rollout::model::{Observed, PauseCondition, PauseReason, Step};

/// Completion of the step itself once its target is shown (pauses and analysis wait here).
pub(super) fn step_complete(
    step: &Step,
    resumed: bool,
    o: &Observed,
    d: &mut Draft,
    out: &mut Outcome,
) -> bool {
    let pause = |reason, duration| Pause {
        reason,
        duration,
        resumed,
    };
    match step {
        Step::Pause(duration) => {
            pause_done(o, d, out, pause(PauseReason::CanaryPauseStep, *duration))
        }
        Step::Analysis => pause_done(o, d, out, pause(PauseReason::AnalysisStep, None)),
        Step::SetWeight(_)
        | Step::SetCanaryScale(_)
        | Step::SetHeaderRoute(_)
        | Step::SetMirrorRoute(_) => true,
    }
}

/// A pausing step as `pause_done` needs it.
pub(super) struct Pause {
    pub(super) reason: PauseReason,
    pub(super) duration: Option<std::time::Duration>,
    /// The persisted status already stood at this step, so its pause condition is this step's
    /// (and not the one of a previous pause step completed in this same pass).
    pub(super) resumed: bool,
}

/// A pause step: entered once (condition with start time), ended by expiry or by the user
/// removing the condition while `controllerPause` is set (a promote).
pub(super) fn pause_done(o: &Observed, d: &mut Draft, out: &mut Outcome, pause: Pause) -> bool {
    let Pause {
        reason,
        duration,
        resumed,
    } = pause;
    let existing = o
        .persisted
        .pause_conditions
        .iter()
        .find(|p| p.reason == reason)
        .filter(|_| resumed);
    match existing {
        None if o.persisted.controller_pause && out.controller_pause => true,
        None => {
            out.pause_conditions = vec![PauseCondition {
                reason,
                start_time: d.now,
            }];
            out.controller_pause = true;
            out.progress = (
                "RolloutPaused".into(),
                format!("Rollout is paused ({})", reason.as_str()),
            );
            if let Some(duration) = duration {
                d.wake(d.now + chrono_duration(duration));
            }
            duration.is_some_and(|x| x.is_zero())
        }
        Some(p) => {
            out.pause_conditions = vec![p.clone()];
            out.controller_pause = true;
            out.progress = (
                "RolloutPaused".into(),
                format!("Rollout is paused ({})", reason.as_str()),
            );
            match duration {
                Some(duration) if d.now >= p.start_time + chrono_duration(duration) => true,
                Some(duration) => {
                    d.wake(p.start_time + chrono_duration(duration));
                    false
                }
                None => false,
            }
        }
    }
}

/// A spec duration as a delta that can be added to any API time: the schema bounds a
/// duration's text, not its length (`pause: {duration: 9999999999h}` is valid), and adding
/// `chrono::Duration::MAX` to a date panics. Saturates at the analysis crate's 1000 years.
pub(crate) fn chrono_duration(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).map_or(sluice_analysis::time::MAX_DELTA, |d| {
        d.min(sluice_analysis::time::MAX_DELTA)
    })
}
