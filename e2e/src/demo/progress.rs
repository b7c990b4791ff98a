//! The progress line: what a release looks like right now, in one line, printed only when it
//! changes. Pure: a [`World`] in, text out.
//!
//! ```text
//!  +6.2s  Paused  step 1/4  canary 20% verified  mesh 80/20  pods 4+1  background analysis Running: success-rate 0.9989 ok (#2), p95-latency-ms 87.5 ok (#2)
//! ```

use std::fmt::{self, Write};
use std::time::Duration;

use sluice_crds::AnalysisPhase;
use tokio::time::Instant;

use super::world::{RunRole, WatchedRollout, World, latest, metric_results, run_phase};

/// The newest measurement of one metric, and how many were taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricProgress {
    pub name: String,
    pub value: Option<String>,
    pub phase: Option<AnalysisPhase>,
    pub taken: i32,
}

/// One run named in the Rollout status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunProgress {
    pub role: RunRole,
    pub phase: Option<AnalysisPhase>,
    pub metrics: Vec<MetricProgress>,
}

/// Everything on a progress line except the time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub phase: String,
    pub step: Option<(i32, usize)>,
    /// Canary weight in the status, verified or not.
    pub weight: Option<(i32, bool)>,
    /// `(stable, canary)` read back from the VirtualService.
    pub mesh: Option<(i64, i64)>,
    /// Wanted pods of the stable and the canary version.
    pub pods: (Option<i32>, Option<i32>),
    pub runs: Vec<RunProgress>,
    /// The Rollout's message, when it explains a stop (Degraded or Paused).
    pub message: Option<String>,
}

impl Progress {
    pub fn of(world: &World) -> Self {
        let phase = match (world.phase(), world.aborted()) {
            (Some(p), true) => format!("{p:?} (aborted)"),
            (Some(p), false) => format!("{p:?}"),
            (None, _) => "-".to_owned(),
        };
        let stable = world.stable_hash();
        let canary = world.current_hash().filter(|h| Some(*h) != stable);
        let pods = |hash: Option<&str>| hash.and_then(|h| world.replicas(h)).map(|r| r.spec);
        let stopped = world.aborted() || phase.starts_with("Paused");
        Self {
            phase,
            step: world.step(),
            weight: world.status_weight(),
            mesh: world.mesh.map(|m| (m.stable, m.canary)),
            pods: (pods(stable), pods(canary)),
            runs: runs(world),
            message: Some(world.message().to_owned()).filter(|m| stopped && !m.is_empty()),
        }
    }
}

fn runs(world: &World) -> Vec<RunProgress> {
    world
        .current_runs()
        .into_iter()
        .map(|(role, name)| {
            let run = world.run(name);
            RunProgress {
                role,
                phase: run.and_then(run_phase),
                metrics: run.map_or_else(Vec::new, |run| {
                    metric_results(run)
                        .iter()
                        .map(|r| MetricProgress {
                            name: r.name.clone(),
                            value: latest(r).and_then(|m| m.value.clone()),
                            phase: latest(r).map(|m| m.phase),
                            taken: r.successful + r.failed + r.inconclusive + r.error,
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.phase)?;
        if let Some((index, steps)) = self.step {
            write!(f, "  step {index}/{steps}")?;
        }
        if let Some((weight, verified)) = self.weight {
            let verified = if verified { "verified" } else { "not verified" };
            write!(f, "  canary {weight}% {verified}")?;
        }
        if let Some((stable, canary)) = self.mesh {
            write!(f, "  mesh {stable}/{canary}")?;
        }
        match self.pods {
            (Some(stable), Some(canary)) => write!(f, "  pods {stable}+{canary}")?,
            (Some(stable), None) => write!(f, "  pods {stable}")?,
            _ => {}
        }
        for run in &self.runs {
            write!(f, "  {run}")?;
        }
        Ok(())
    }
}

impl fmt::Display for RunProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = self
            .phase
            .map_or("Pending".to_owned(), |p| format!("{p:?}"));
        write!(f, "{} {phase}", self.role.label())?;
        let mut sep = ':';
        for m in self
            .metrics
            .iter()
            .filter(|m| m.value.is_some() || m.phase.is_some())
        {
            let value = m.value.as_deref().map_or("-".to_owned(), short_value);
            write!(
                f,
                "{sep} {} {value} {} (#{})",
                m.name,
                verdict(m.phase),
                m.taken
            )?;
            sep = ',';
        }
        Ok(())
    }
}

/// A measurement's verdict in a word.
pub fn verdict(phase: Option<AnalysisPhase>) -> &'static str {
    match phase {
        Some(AnalysisPhase::Successful) => "ok",
        Some(AnalysisPhase::Failed) => "FAILED",
        Some(AnalysisPhase::Inconclusive) => "inconclusive",
        Some(AnalysisPhase::Error) => "error",
        Some(AnalysisPhase::Running | AnalysisPhase::Pending) | None => "...",
    }
}

/// A measured value (`[0.99912]`, `[]`, `[1, 2]`) with numbers shortened to 4 significant
/// digits.
pub fn short_value(raw: &str) -> String {
    let inner = raw.trim().trim_start_matches('[').trim_end_matches(']');
    if inner.is_empty() {
        return "(no data)".to_owned();
    }
    inner
        .split(',')
        .map(|v| match v.trim().parse::<f64>() {
            Ok(x) => significant(x, 4),
            Err(_) => v.trim().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn significant(x: f64, digits: i32) -> String {
    if !x.is_finite() || x == 0.0 {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = usize::try_from((digits - 1 - magnitude).max(0)).unwrap_or(0);
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// Prints a line when the progress changes, stamped with the time since `since`, and the
/// Rollout's message below it when that changed.
#[derive(Debug)]
pub struct Printer {
    since: Instant,
    last: Option<Progress>,
}

/// Indent of the message line, under the phase.
const MESSAGE_INDENT: &str = "           ";

impl Printer {
    pub fn new(since: Instant) -> Self {
        Self { since, last: None }
    }

    /// Starts a new timeline (a new release) and forgets the last line.
    pub fn restart(&mut self, since: Instant) {
        self.since = since;
        self.last = None;
    }

    /// The line to print for `world` seen at `at`, if anything on it changed.
    pub fn line(&mut self, world: &World, at: Instant) -> Option<String> {
        let progress = Progress::of(world);
        if self.last.as_ref() == Some(&progress) {
            return None;
        }
        let mut line = String::new();
        let _ = write!(line, "  {:>7}  {progress}", elapsed(at - self.since));
        let said = self.last.as_ref().and_then(|p| p.message.as_ref());
        if let Some(message) = progress.message.as_ref().filter(|m| Some(*m) != said) {
            let _ = write!(line, "\n{MESSAGE_INDENT}{message}");
        }
        self.last = Some(progress);
        Some(line)
    }

    /// Prints [`Printer::line`] to stdout.
    pub fn print(&mut self, world: &World, at: Instant) {
        if let Some(line) = self.line(world, at) {
            println!("{line}");
        }
    }
}

/// `+12.3s`.
pub fn elapsed(d: Duration) -> String {
    format!("+{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shortened() {
        assert_eq!(short_value("[0.99912345]"), "0.9991");
        assert_eq!(short_value("[47.5312]"), "47.53");
        assert_eq!(short_value("[112.7]"), "112.7");
        assert_eq!(short_value("[0.7]"), "0.7");
        assert_eq!(short_value("[1]"), "1");
        assert_eq!(short_value("[]"), "(no data)");
        assert_eq!(short_value("[NaN]"), "NaN");
        assert_eq!(short_value("[1, 2.25]"), "1,2.25");
    }

    #[test]
    fn a_line_is_printed_only_when_something_changed() {
        let start = Instant::now();
        let mut printer = Printer::new(start);
        let world = World::default();
        let first = printer.line(&world, start + Duration::from_millis(1500));
        assert_eq!(first.as_deref(), Some("    +1.5s  -"));
        assert_eq!(printer.line(&world, start + Duration::from_secs(3)), None);
        printer.restart(start);
        assert!(printer.line(&world, start).is_some());
    }

    #[test]
    fn runs_show_each_metrics_latest_value_and_verdict() {
        let run = RunProgress {
            role: RunRole::Background,
            phase: Some(AnalysisPhase::Failed),
            metrics: vec![
                MetricProgress {
                    name: "success-rate".into(),
                    value: Some("[0.70123]".into()),
                    phase: Some(AnalysisPhase::Failed),
                    taken: 3,
                },
                MetricProgress {
                    name: "p95".into(),
                    value: None,
                    phase: None,
                    taken: 0,
                },
            ],
        };
        assert_eq!(
            run.to_string(),
            "background analysis Failed: success-rate 0.7012 FAILED (#3)"
        );
    }
}
