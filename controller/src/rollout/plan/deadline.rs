//! The progress deadline: no change of the `Progressing` message for `progressDeadlineSeconds`
//! (outside pauses and analysis waits) means the release is stuck.

use super::pause::chrono_duration;
use super::{Draft, Outcome};
use crate::rollout::model::{ConditionKind, Observed, ValidatedRollout};

/// The condition kind whose message tracks progress, for the progress deadline.
pub(crate) const PROGRESS_CONDITION: ConditionKind = ConditionKind::Progressing;

/// Progress is a change of the `Progressing` message; none for `progressDeadlineSeconds`
/// (outside pauses) means the release is stuck.
pub(crate) fn check_deadline(r: &ValidatedRollout, o: &Observed, d: &mut Draft, out: &mut Outcome) {
    // Waiting for an analysis verdict is not being stuck: the run has its own limits.
    if out.completed || !out.pause_conditions.is_empty() || out.progress.0 == ANALYSIS_REASON {
        return;
    }
    let previous = o
        .persisted
        .conditions
        .iter()
        .find(|c| c.kind == PROGRESS_CONDITION);
    let unchanged = previous.is_some_and(|c| {
        c.message
            .strip_prefix(DEADLINE_PREFIX)
            .unwrap_or(&c.message)
            == out.progress.1
    });
    let since = match previous {
        Some(c) if unchanged => c.last_update_time,
        _ => d.now,
    };
    // Once exceeded, it stays exceeded until progress is made: the condition's update time
    // moved when it flipped, so counting from it again would flap back to Progressing.
    let already = unchanged && previous.is_some_and(|c| c.reason == DEADLINE_REASON);
    let deadline = since + chrono_duration(r.progress_deadline);
    if already || d.now >= deadline {
        out.deadline_exceeded = true;
    } else {
        d.wake(deadline);
    }
}

/// `Progressing` reason while a step waits for its AnalysisRun.
pub(crate) const ANALYSIS_REASON: &str = "AnalysisRunning";

/// `Progressing=False` reason once the deadline passed (Argo's wording).
pub(crate) const DEADLINE_REASON: &str = "ProgressDeadlineExceeded";
/// Put before the stuck progress message, so the deadline check still recognises it.
pub(crate) const DEADLINE_PREFIX: &str = "progress deadline exceeded: ";

/// An abort caused by the deadline keeps saying so, and what was stuck (rather than flipping the
/// condition to a plain `RolloutAborted` one reconcile later).
pub(crate) fn keep_deadline(o: &Observed, aborted: &mut Outcome) {
    let deadline = o
        .persisted
        .conditions
        .iter()
        .find(|c| c.kind == PROGRESS_CONDITION && !c.status && c.reason == DEADLINE_REASON);
    aborted.deadline_exceeded = deadline.is_some();
    if let Some(condition) = deadline {
        aborted.progress.1.clone_from(&condition.message);
    }
}

/// Aborts a release stuck past its deadline (`progressDeadlineAbort`): `abort` plans on a clean
/// draft, so nothing planned for the stuck stage runs, and the message says what was stuck
/// before what the abort did.
pub(crate) fn abort_stuck(
    d: &mut Draft,
    stuck: &Outcome,
    abort: impl FnOnce(&mut Draft) -> Outcome,
) -> Outcome {
    d.restart();
    let mut aborted = abort(d);
    aborted.deadline_exceeded = true;
    aborted.progress.1 = format!("{}; {}", stuck.progress.1, aborted.progress.1);
    aborted
}
