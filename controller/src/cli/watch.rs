//! `get rollout NAME [--watch]`: prints the view once, or follows the Rollout, its
//! ReplicaSets and its AnalysisRuns through three kube watchers (no polling) and re-renders
//! on every change until Ctrl-C.
//!
//! On a terminal each change redraws the full view; into a pipe or a CI log each change
//! prints one [`compact`] line with the time. Either way a change that does not alter the
//! output (e.g. a resync) prints nothing, and nothing is printed until all three lists have
//! arrived, so the first frame is complete.

use std::io::Write;

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use sluice_crds::{AnalysisRun, Rollout};

use super::client::Target;
use super::render::{compact, render};
use super::snapshot::{Cache, Snapshot, replica_set_selector, run_selector};
use super::{CliError, Exit, Output};

/// Clears a terminal and moves the cursor home.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// One watch event of any of the three kinds (boxed: the objects are large and of very
/// different sizes).
enum Change {
    Rollout(Box<Event<Rollout>>),
    ReplicaSet(Box<Event<ReplicaSet>>),
    Run(Box<Event<AnalysisRun>>),
}

/// The three caches behind the view.
#[derive(Default)]
struct View {
    rollouts: Cache<Rollout>,
    sets: Cache<ReplicaSet>,
    runs: Cache<AnalysisRun>,
}

impl View {
    fn apply(&mut self, change: Change) {
        match change {
            Change::Rollout(e) => self.rollouts.apply(*e),
            Change::ReplicaSet(e) => self.sets.apply(*e),
            Change::Run(e) => self.runs.apply(*e),
        }
    }

    fn ready(&self) -> bool {
        self.rollouts.ready() && self.sets.ready() && self.runs.ready()
    }

    /// The current snapshot; `None` when the Rollout is gone.
    fn snapshot(&self, name: &str) -> Option<Snapshot> {
        let rollout = self.rollouts.get(name)?.clone();
        Some(Snapshot::new(
            rollout,
            self.sets.values().cloned(),
            self.runs.values().cloned(),
        ))
    }
}

/// Runs `get rollout`.
pub async fn get<W: Write>(
    target: &Target,
    name: &str,
    watch: bool,
    out: &mut Output<W>,
) -> Result<Exit, CliError> {
    let snapshot = target.snapshot(name).await?;
    if !watch {
        out.lines(&render(&snapshot, out.style))?;
        return Ok(Exit::Ok);
    }
    let changes = changes(target, &snapshot.rollout, name);
    follow(name, changes, out).await
}

fn changes(target: &Target, rollout: &Rollout, name: &str) -> BoxStream<'static, Change> {
    let by_name = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let sets = watcher::Config::default().labels(&replica_set_selector(rollout));
    let runs = watcher::Config::default().labels(&run_selector(name));
    // Errors are retried by the watchers' backoff; the view keeps its last state meanwhile.
    let streams = [
        watcher::watcher(target.rollouts(), by_name)
            .default_backoff()
            .filter_map(|e| async { e.ok().map(|e| Change::Rollout(Box::new(e))) })
            .boxed(),
        watcher::watcher(target.replica_sets(), sets)
            .default_backoff()
            .filter_map(|e| async { e.ok().map(|e| Change::ReplicaSet(Box::new(e))) })
            .boxed(),
        watcher::watcher(target.runs(), runs)
            .default_backoff()
            .filter_map(|e| async { e.ok().map(|e| Change::Run(Box::new(e))) })
            .boxed(),
    ];
    stream::select_all(streams).boxed()
}

/// Applies changes and prints each new frame until Ctrl-C or the Rollout's deletion.
async fn follow<W: Write>(
    name: &str,
    mut changes: BoxStream<'static, Change>,
    out: &mut Output<W>,
) -> Result<Exit, CliError> {
    let mut view = View::default();
    let mut last: Vec<String> = Vec::new();
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let change = tokio::select! {
            _ = &mut interrupted => return Ok(Exit::Ok),
            change = changes.next() => change.ok_or(CliError::WatchEnded)?,
        };
        view.apply(change);
        if !view.ready() {
            continue;
        }
        let Some(snapshot) = view.snapshot(name) else {
            return Err(CliError::NotFound(format!("rollout {name} was deleted")));
        };
        let frame = frame(&snapshot, out);
        if frame != last {
            print(&frame, out)?;
            last = frame;
        }
    }
}

/// The full view on a terminal, the compact line otherwise.
fn frame<W>(s: &Snapshot, out: &Output<W>) -> Vec<String> {
    if out.tty {
        render(s, out.style)
    } else {
        vec![compact(s)]
    }
}

fn print<W: Write>(frame: &[String], out: &mut Output<W>) -> Result<(), CliError> {
    if out.tty {
        write!(out.out, "{CLEAR}")?;
        return out.lines(frame);
    }
    let time = chrono::Utc::now().format("%H:%M:%S");
    let lines: Vec<String> = frame.iter().map(|l| format!("{time} {l}")).collect();
    out.lines(&lines)
}
