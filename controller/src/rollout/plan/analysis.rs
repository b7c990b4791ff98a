//! Analysis gates: the run of a canary `analysis` step, the background run, and blue-green's
//! pre- and post-promotion runs.
//!
//! Run names are chosen here and persisted in the Rollout status *before* the run is created
//! (`<rollout>-<hash>-<step>-<unix time>` or `<rollout>-<hash>-bg-<unix time>`): a reconcile
//! that crashes between the create and the status write finds its run again by name, and a
//! retried release gets fresh names, so an old verdict never decides a new attempt.
//!
//! Guarantees: a Failed or Error run aborts (invariant 4: failed metrics never promote); an
//! Inconclusive one pauses until a promote; a run that no longer gates anything is terminated.

use super::deadline::ANALYSIS_REASON;
use super::pause::{Pause, pause_done};
use super::{Draft, Intent, Outcome};
use crate::rollout::model::{Observed, PauseReason, RunPhase, RunStatus, ValidatedRollout};

/// What a gate says about moving on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    Passed,
    Wait,
    Inconclusive,
    Failed(String),
}

/// Which run: the analysis step at an index, the background analysis, or blue-green's
/// pre- and post-promotion analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    Step(usize),
    Background,
    PrePromotion,
    PostPromotion,
}

fn prefix(r: &ValidatedRollout, kind: RunKind) -> String {
    match kind {
        RunKind::Step(i) => format!("{}-{}-{i}-", r.name, r.template_hash),
        RunKind::Background => format!("{}-{}-bg-", r.name, r.template_hash),
        RunKind::PrePromotion => format!("{}-{}-pre-", r.name, r.template_hash),
        RunKind::PostPromotion => format!("{}-{}-post-", r.name, r.template_hash),
    }
}

/// The gate of run `kind`; `recorded` is the status record carried in the outcome (updated).
pub(crate) fn gate(
    r: &ValidatedRollout,
    o: &Observed,
    d: &mut Draft,
    recorded: &mut Option<RunStatus>,
    kind: RunKind,
) -> Gate {
    let prefix = prefix(r, kind);
    let Some(name) = recorded
        .as_ref()
        .map(|s| s.name.clone())
        .filter(|n| n.starts_with(&prefix))
    else {
        // Name it first; the create follows once the status carries the name.
        let name = format!("{prefix}{}", d.now.timestamp());
        *recorded = Some(RunStatus {
            name,
            ..RunStatus::default()
        });
        d.wake(d.now);
        return Gate::Wait;
    };
    let Some(run) = o.analysis_run(&name) else {
        d.push(Intent::CreateAnalysisRun {
            name: name.clone(),
            kind,
        });
        *recorded = Some(RunStatus {
            name,
            ..RunStatus::default()
        });
        return Gate::Wait;
    };
    *recorded = Some(run.clone());
    match run.phase {
        RunPhase::Successful => Gate::Passed,
        RunPhase::Failed | RunPhase::Error => Gate::Failed(verdict(run)),
        RunPhase::Inconclusive => Gate::Inconclusive,
        RunPhase::Pending | RunPhase::Running => Gate::Wait,
    }
}

/// The sentence an abort gives for a failed run.
pub(crate) fn verdict(run: &RunStatus) -> String {
    let phase = run.phase.as_str();
    if run.message.is_empty() {
        format!("AnalysisRun {} {phase}", run.name)
    } else {
        format!("AnalysisRun {} {phase}: {}", run.name, run.message)
    }
}

/// Terminates every run of the Rollout that is still measuring but gates nothing any more.
pub(crate) fn terminate_others(o: &Observed, d: &mut Draft, out: &Outcome) {
    let current = |name: &str| {
        [&out.step_run, &out.background_run]
            .into_iter()
            .flatten()
            .any(|s| s.name == name)
    };
    terminate(o, d, |name| !current(name));
}

/// The message of a failed run recorded in status, for an abort that happened earlier.
pub(crate) fn recorded_failure(out: &Outcome) -> Option<String> {
    [&out.step_run, &out.background_run]
        .into_iter()
        .flatten()
        .find(|s| matches!(s.phase, RunPhase::Failed | RunPhase::Error))
        .map(verdict)
}

/// Aborts because a run failed: nothing planned for the current stage runs (`abort` plans the
/// abort on a fresh draft), the runs' records are kept, and the verdict comes first.
pub(crate) fn abort_for(
    d: &mut Draft,
    out: Outcome,
    reason: &str,
    abort: impl FnOnce(&mut Draft) -> Outcome,
) -> Outcome {
    d.restart();
    let mut aborted = abort(d);
    aborted.step_run = out.step_run;
    aborted.background_run = out.background_run;
    aborted.progress.1 = format!("{reason}; {}", aborted.progress.1);
    aborted
}

/// Terminates every run of the Rollout that is still measuring (an abort).
pub(crate) fn terminate_all(o: &Observed, d: &mut Draft) {
    terminate(o, d, |_| true);
}

/// Terminates the still measuring runs whose name `stop` picks.
fn terminate(o: &Observed, d: &mut Draft, stop: impl Fn(&str) -> bool) {
    let running = o.analysis_runs.iter().filter(|r| !r.phase.is_completed());
    for run in running.filter(|r| stop(&r.name)) {
        d.push(Intent::TerminateAnalysisRun {
            name: run.name.clone(),
        });
    }
}

/// The `RolloutAborted` message: the failed run's verdict (if one caused it), then `done`.
pub(crate) fn abort_message(out: &Outcome, done: &str) -> String {
    recorded_failure(out).map_or_else(|| done.to_owned(), |f| format!("{f}; {done}"))
}

/// A run that gates a step or a stage: `Ok(true)` once it passed (or, inconclusive, was
/// promoted), `Err` with the verdict when it failed. While it runs the progress says
/// `"{waiting} {name}"`; `resumed` says the persisted pause (if any) is this gate's.
pub(crate) fn gate_or_pause(
    (r, o, d): (&ValidatedRollout, &Observed, &mut Draft),
    out: &mut Outcome,
    kind: RunKind,
    resumed: bool,
    waiting: &str,
) -> Result<bool, String> {
    let record = match kind {
        RunKind::Background | RunKind::PostPromotion => &mut out.background_run,
        RunKind::Step(_) | RunKind::PrePromotion => &mut out.step_run,
    };
    match gate(r, o, d, record, kind) {
        Gate::Passed => Ok(true),
        Gate::Failed(reason) => Err(reason),
        Gate::Inconclusive => {
            let pause = Pause {
                reason: PauseReason::InconclusiveAnalysis,
                duration: None,
                resumed,
            };
            Ok(pause_done(o, d, out, pause))
        }
        Gate::Wait => {
            let name = record.as_ref().map_or("", |s| s.name.as_str());
            out.progress = (ANALYSIS_REASON.into(), format!("{waiting} {name}"));
            Ok(false)
        }
    }
}
