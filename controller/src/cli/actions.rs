//! `promote`, `abort`, `retry`, `pause`, `resume`: the user's requests, written where the
//! controller reads them.
//!
//! | Command | Write |
//! |---|---|
//! | `promote` | `status.pauseConditions: null` (the controller paused at a step), `spec.paused: false` if set |
//! | `promote --full` | `status.promoteFull: true` (and `spec.paused: false` if set) |
//! | `abort` / `retry` | `status.abort: true` / `false` |
//! | `pause` / `resume` | `spec.paused: true` / `false` |
//!
//! Each command decides from the Rollout as read ([`decide`] is pure) and writes with that
//! resourceVersion as a precondition; on a conflict it reads again and decides again (a few
//! times), so a promote never skips a pause the controller reached after the read.

use std::io::Write;

use kube::ResourceExt;
use serde_json::{Value, json};
use sluice_crds::{Rollout, RolloutStatus};

use super::client::{Part, Target, is_stale};
use super::{CliError, Exit, Output};

/// Attempts before giving up on a Rollout that keeps changing under us.
const ATTEMPTS: usize = 4;

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    Promote,
    PromoteFull,
    Abort,
    Retry,
    Pause,
    Resume,
}

/// The writes for a request, and the confirmation to print. No writes: nothing to do.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Decision {
    pub spec: Option<Value>,
    pub status: Option<Value>,
    pub message: String,
}

impl Decision {
    fn new(message: String) -> Self {
        Decision {
            spec: None,
            status: None,
            message,
        }
    }

    fn spec(mut self, value: Value) -> Self {
        self.spec = Some(value);
        self
    }

    fn status(mut self, value: Value) -> Self {
        self.status = Some(value);
        self
    }
}

/// Decides the writes for `request` on `r`, or refuses with the reason (exit 1).
pub(crate) fn decide(request: Request, r: &Rollout) -> Result<Decision, CliError> {
    let name = r.name_any();
    let status = r.status.clone().unwrap_or_default();
    let unpause = |d: Decision| {
        if r.spec.paused {
            d.spec(json!({ "paused": false }))
        } else {
            d
        }
    };
    match request {
        Request::Promote => promote(r, &status).map(unpause),
        Request::PromoteFull => Ok(unpause(
            Decision::new(format!("rollout '{name}' fully promoted"))
                .status(json!({ "promoteFull": true })),
        )),
        Request::Abort => abort(&name, r, &status),
        Request::Retry if status.abort => Ok(
            Decision::new(format!("rollout '{name}' retried")).status(json!({ "abort": false }))
        ),
        Request::Retry => Err(CliError::Refused(format!(
            "rollout '{name}' is not aborted; there is nothing to retry"
        ))),
        Request::Pause if r.spec.paused => {
            Ok(Decision::new(format!("rollout '{name}' is already paused")))
        }
        Request::Pause => {
            Ok(Decision::new(format!("rollout '{name}' paused")).spec(json!({ "paused": true })))
        }
        Request::Resume => resume(&name, r, &status),
    }
}

fn paused_at_step(status: &RolloutStatus) -> bool {
    status.controller_pause && !status.pause_conditions.is_empty()
}

fn promote(r: &Rollout, status: &RolloutStatus) -> Result<Decision, CliError> {
    let name = r.name_any();
    if status.abort {
        return Err(CliError::Refused(format!(
            "rollout '{name}' is aborted; `kubectl sluice retry {name}` starts the release again"
        )));
    }
    if paused_at_step(status) {
        let reasons: Vec<String> = status
            .pause_conditions
            .iter()
            .map(|c| format!("{:?}", c.reason))
            .collect();
        // A blue-green Rollout has no steps; its pause reason says where it waited.
        let at = status
            .current_step_index
            .map(|step| format!(" at step {step}"))
            .unwrap_or_default();
        return Ok(Decision::new(format!(
            "rollout '{name}' promoted (was paused{at}: {})",
            reasons.join(", ")
        ))
        .status(json!({ "pauseConditions": null })));
    }
    if r.spec.paused {
        return Ok(Decision::new(format!(
            "rollout '{name}' promoted (unpaused)"
        )));
    }
    let phase = status
        .phase
        .map_or("without a status".to_owned(), |p| format!("{p:?}"));
    Err(CliError::Refused(format!(
        "rollout '{name}' is not paused ({phase}); `promote --full` skips the remaining steps"
    )))
}

fn abort(name: &str, r: &Rollout, status: &RolloutStatus) -> Result<Decision, CliError> {
    if status.abort {
        return Ok(Decision::new(format!(
            "rollout '{name}' is already aborted"
        )));
    }
    let observed = status.observed_generation >= r.metadata.generation;
    if observed && status.current_pod_hash.is_some() && status.current_pod_hash == status.stable_rs
    {
        return Err(CliError::Refused(format!(
            "rollout '{name}' has no release in progress; there is nothing to abort"
        )));
    }
    Ok(Decision::new(format!("rollout '{name}' aborted")).status(json!({ "abort": true })))
}

fn resume(name: &str, r: &Rollout, status: &RolloutStatus) -> Result<Decision, CliError> {
    if r.spec.paused {
        return Ok(
            Decision::new(format!("rollout '{name}' resumed")).spec(json!({ "paused": false }))
        );
    }
    if paused_at_step(status) {
        return Err(CliError::Refused(format!(
            "rollout '{name}' waits at a pause step, not for `resume`; `kubectl sluice promote {name}` continues it"
        )));
    }
    Ok(Decision::new(format!("rollout '{name}' is not paused")))
}

/// Reads, decides, writes; again on a conflict. Prints the confirmation.
pub(crate) async fn send<W: Write>(
    target: &Target,
    name: &str,
    request: Request,
    out: &mut Output<W>,
) -> Result<Exit, CliError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let rollout = target.rollout(name).await?;
        let decision = decide(request, &rollout)?;
        match write(target, name, &rollout, &decision).await {
            Ok(()) => {
                out.line(&decision.message)?;
                return Ok(Exit::Ok);
            }
            Err(e) if is_stale(&e) && attempt < ATTEMPTS => continue,
            Err(e) => return Err(CliError::kube(format!("updating rollout {name}"), e)),
        }
    }
}

async fn write(
    target: &Target,
    name: &str,
    rollout: &Rollout,
    decision: &Decision,
) -> Result<(), kube::Error> {
    let mut version = rollout.resource_version();
    if let Some(spec) = &decision.spec {
        let patched = target
            .patch(name, version.as_deref(), Part::Spec, spec)
            .await?;
        version = patched.resource_version();
    }
    if let Some(status) = &decision.status {
        target
            .patch(name, version.as_deref(), Part::Status, status)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::render::fixtures::rollout;

    fn healthy() -> Rollout {
        let mut r = rollout();
        let s = r.status.as_mut().unwrap();
        s.phase = Some(sluice_crds::RolloutPhase::Healthy);
        s.current_pod_hash = Some("def".into());
        s.controller_pause = false;
        s.pause_conditions.clear();
        r
    }

    #[test]
    fn promote_clears_the_pause_conditions_of_a_paused_rollout() {
        let d = decide(Request::Promote, &rollout()).unwrap();
        assert_eq!(d.status, Some(json!({ "pauseConditions": null })));
        assert_eq!(d.spec, None);
        assert!(d.message.contains("promoted"), "{}", d.message);
    }

    #[test]
    fn promote_refuses_a_rollout_that_is_not_paused_unless_full() {
        let e = decide(Request::Promote, &healthy()).unwrap_err();
        assert_eq!(e.exit(), Exit::Failed);
        assert!(e.to_string().contains("not paused"), "{e}");
        let d = decide(Request::PromoteFull, &healthy()).unwrap();
        assert_eq!(d.status, Some(json!({ "promoteFull": true })));
    }

    #[test]
    fn promote_also_lifts_spec_paused() {
        let mut r = healthy();
        r.spec.paused = true;
        let d = decide(Request::Promote, &r).unwrap();
        assert_eq!(d.spec, Some(json!({ "paused": false })));
        let d = decide(Request::PromoteFull, &r).unwrap();
        assert_eq!(d.spec, Some(json!({ "paused": false })));
    }

    #[test]
    fn abort_and_retry() {
        let d = decide(Request::Abort, &rollout()).unwrap();
        assert_eq!(d.status, Some(json!({ "abort": true })));
        assert!(
            decide(Request::Abort, &healthy()).is_err(),
            "nothing to abort"
        );
        assert!(decide(Request::Retry, &rollout()).is_err(), "not aborted");
        let mut aborted = rollout();
        aborted.status.as_mut().unwrap().abort = true;
        let d = decide(Request::Retry, &aborted).unwrap();
        assert_eq!(d.status, Some(json!({ "abort": false })));
        let d = decide(Request::Abort, &aborted).unwrap();
        assert_eq!(
            (d.spec, d.status),
            (None, None),
            "already aborted: no write"
        );
        assert!(
            decide(Request::Promote, &aborted).is_err(),
            "retry, not promote"
        );
    }

    #[test]
    fn pause_and_resume_set_spec_paused() {
        let d = decide(Request::Pause, &healthy()).unwrap();
        assert_eq!(d.spec, Some(json!({ "paused": true })));
        let mut paused = healthy();
        paused.spec.paused = true;
        assert_eq!(decide(Request::Pause, &paused).unwrap().spec, None);
        assert_eq!(
            decide(Request::Resume, &paused).unwrap().spec,
            Some(json!({ "paused": false }))
        );
        assert_eq!(decide(Request::Resume, &healthy()).unwrap().spec, None);
        assert!(
            decide(Request::Resume, &rollout()).is_err(),
            "a step pause is continued with promote"
        );
    }
}
