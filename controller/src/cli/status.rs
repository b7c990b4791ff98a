//! `status NAME [--timeout D] [--watch=false]`: the CI-pipeline command.
//!
//! Watches the Rollout (no polling) and prints one line whenever its state changes
//! (`Paused - CanaryPauseStep`), then exits 0 once it is Healthy, 1 once it is Degraded or
//! aborted, 3 when the timeout passes first. A status the controller computed for an older
//! generation never counts, so `kubectl apply && kubectl sluice status` does not exit 0 on
//! the previous release's Healthy. Paused is not final: a pipeline waits for a human (or its
//! timeout).

use std::io::Write;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use sluice_crds::{Rollout, RolloutPhase};

use super::client::Target;
use super::{CliError, Exit, Output, StatusArgs};

/// Where a Rollout stands for a waiting pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Healthy,
    Degraded(String),
    /// Not final; the line to print.
    Waiting(String),
}

/// The verdict on `r`, from the status computed for its current generation only.
pub(crate) fn verdict(r: &Rollout) -> Verdict {
    let Some(status) = r.status.as_ref() else {
        return Verdict::Waiting("Progressing - waiting for the controller".into());
    };
    if status.observed_generation < r.metadata.generation {
        return Verdict::Waiting(
            "Progressing - waiting for the controller to see the latest change".into(),
        );
    }
    let line = |phase: &str| match status.message.as_deref().filter(|m| !m.is_empty()) {
        Some(message) => format!("{phase} - {message}"),
        None => phase.to_owned(),
    };
    match status.phase {
        _ if status.abort => Verdict::Degraded(line("Degraded")),
        Some(RolloutPhase::Healthy) => Verdict::Healthy,
        Some(RolloutPhase::Degraded) => Verdict::Degraded(line("Degraded")),
        Some(RolloutPhase::Paused) => Verdict::Waiting(line("Paused")),
        Some(RolloutPhase::Progressing) | None => Verdict::Waiting(line("Progressing")),
    }
}

/// Runs the command. See the module docs.
pub async fn run<W: Write>(
    target: &Target,
    args: &StatusArgs,
    out: &mut Output<W>,
) -> Result<Exit, CliError> {
    let rollout = target.rollout(&args.name).await?;
    if !args.watch {
        return conclude(&verdict(&rollout), out);
    }
    let mut last = String::new();
    let wait = follow(target, &args.name, &mut last, out);
    if args.timeout.is_zero() {
        return wait.await;
    }
    match tokio::time::timeout(args.timeout, wait).await {
        Ok(result) => result,
        Err(_) => Err(CliError::Timeout {
            after: sluice_crds::Duration::from(args.timeout).to_string(),
            last: last_or_unknown(&last),
        }),
    }
}

fn last_or_unknown(last: &str) -> String {
    if last.is_empty() {
        "unknown".into()
    } else {
        last.to_owned()
    }
}

/// Prints a final verdict and maps it to the exit code; a waiting one exits 0 (no `--watch`).
fn conclude<W: Write>(verdict: &Verdict, out: &mut Output<W>) -> Result<Exit, CliError> {
    match verdict {
        Verdict::Healthy => {
            out.line("Healthy")?;
            Ok(Exit::Ok)
        }
        Verdict::Degraded(line) => Err(CliError::Degraded(line.clone())),
        Verdict::Waiting(line) => {
            out.line(line)?;
            Ok(Exit::Ok)
        }
    }
}

/// Follows the Rollout until a final verdict; `last` keeps the latest line for a timeout.
async fn follow<W: Write>(
    target: &Target,
    name: &str,
    last: &mut String,
    out: &mut Output<W>,
) -> Result<Exit, CliError> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(target.rollouts(), config).default_backoff().boxed();
    let mut listed = false;
    while let Some(event) = events.next().await {
        let rollout = match event {
            Ok(watcher::Event::Apply(r) | watcher::Event::InitApply(r)) => r,
            Ok(watcher::Event::Init) => {
                listed = false;
                continue;
            }
            Ok(watcher::Event::InitDone) if listed => continue,
            Ok(watcher::Event::InitDone | watcher::Event::Delete(_)) => {
                return Err(target.not_found(name));
            }
            // The watcher backs off and retries by itself; a pipeline keeps waiting.
            Err(_) => continue,
        };
        listed = true;
        match verdict(&rollout) {
            Verdict::Waiting(line) if line == *last => {}
            Verdict::Waiting(line) => {
                out.line(&line)?;
                *last = line;
            }
            done => return conclude(&done, out),
        }
    }
    Err(CliError::WatchEnded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::render::fixtures::rollout;

    #[test]
    fn paused_and_progressing_are_not_final() {
        assert_eq!(
            verdict(&rollout()),
            Verdict::Waiting("Paused - CanaryPauseStep".into())
        );
        let mut r = rollout();
        r.status.as_mut().unwrap().phase = Some(RolloutPhase::Progressing);
        r.status.as_mut().unwrap().message = None;
        assert_eq!(verdict(&r), Verdict::Waiting("Progressing".into()));
    }

    #[test]
    fn healthy_counts_only_for_the_current_generation() {
        let mut r = rollout();
        r.status.as_mut().unwrap().phase = Some(RolloutPhase::Healthy);
        assert_eq!(verdict(&r), Verdict::Healthy);
        r.metadata.generation = Some(3);
        assert!(matches!(verdict(&r), Verdict::Waiting(l) if l.contains("latest change")));
        r.status = None;
        assert!(matches!(verdict(&r), Verdict::Waiting(_)));
    }

    #[test]
    fn degraded_or_aborted_is_a_failure() {
        let mut r = rollout();
        r.status.as_mut().unwrap().abort = true;
        assert!(matches!(verdict(&r), Verdict::Degraded(_)));
        let s = r.status.as_mut().unwrap();
        s.abort = false;
        s.phase = Some(RolloutPhase::Degraded);
        s.message = Some("ProgressDeadlineExceeded".into());
        assert_eq!(
            verdict(&r),
            Verdict::Degraded("Degraded - ProgressDeadlineExceeded".into())
        );
    }
}
