//! The demo's result and its summary text. Pure.

use std::fmt::Write;
use std::time::Duration;

use super::latency::{Stats, stats};
use super::progress::{elapsed, short_value};
use super::release::{Failure, ReleaseReport, Verdict};

/// Everything the demo found out.
#[derive(Clone, Debug)]
pub struct DemoReport {
    pub good: ReleaseReport,
    pub bad: Vec<ReleaseReport>,
    /// Distinct metric intervals of the analysis templates, in seconds.
    pub analysis_intervals: Vec<f64>,
    pub scrape_interval: Option<Duration>,
}

impl DemoReport {
    /// The good release was promoted without an abort, and every bad one was rolled back.
    pub fn success(&self) -> bool {
        good_ok(&self.good) && self.bad.iter().all(|b| b.verdict == Verdict::RolledBack)
    }

    /// Breach-to-rollback latency of every bad release that has one.
    pub fn latencies(&self) -> Vec<Duration> {
        self.bad.iter().filter_map(|b| b.clock.latency()).collect()
    }

    pub fn latency_stats(&self) -> Option<Stats> {
        stats(&self.latencies())
    }
}

fn good_ok(good: &ReleaseReport) -> bool {
    good.verdict == Verdict::Promoted && !good.saw_abort
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// The summary printed at the end.
pub fn render(report: &DemoReport) -> String {
    let mut out = String::new();
    good_summary(&mut out, &report.good);
    for (i, bad) in report.bad.iter().enumerate() {
        let label = if report.bad.len() > 1 {
            format!("bad release #{}", i + 1)
        } else {
            "bad release".to_owned()
        };
        bad_summary(&mut out, &label, bad);
    }
    latency_summary(&mut out, report);
    let verdict = if report.success() {
        "PASS: the good release was promoted and every bad one rolled back on its own"
    } else {
        "FAIL: see above"
    };
    let _ = writeln!(out, "  {verdict}");
    out
}

fn good_summary(out: &mut String, good: &ReleaseReport) {
    let _ = write!(out, "  good release {}: ", good.version);
    let _ = match good.verdict {
        Verdict::Promoted => writeln!(
            out,
            "promoted in {} ({} measurements, {}{})",
            seconds(good.elapsed),
            good.measurements,
            match good.not_passing {
                0 => "all passing".to_owned(),
                n => format!("{n} not passing"),
            },
            if good.saw_abort {
                "; BUT an abort was seen"
            } else {
                ""
            },
        ),
        Verdict::RolledBack => writeln!(out, "ROLLED BACK (it should have been promoted)"),
        Verdict::TimedOut => writeln!(out, "NOT promoted within {}", seconds(good.elapsed)),
    };
    if good.verdict != Verdict::Promoted {
        failure_lines(out, good.failure.as_ref());
    }
}

fn bad_summary(out: &mut String, label: &str, bad: &ReleaseReport) {
    let _ = write!(out, "  {label} {}: ", bad.version);
    let _ = match bad.verdict {
        Verdict::RolledBack => writeln!(out, "rolled back automatically"),
        Verdict::Promoted => writeln!(out, "PROMOTED (it should have been rolled back)"),
        Verdict::TimedOut => writeln!(out, "NOT rolled back within {}", seconds(bad.elapsed)),
    };
    failure_lines(out, bad.failure.as_ref());
    let mut times = Vec::new();
    if let Some(t) = bad.clock.traffic_at() {
        times.push(format!("traffic reached the canary at {}", elapsed(t)));
    }
    if let Some(t) = bad.clock.restored_at() {
        times.push(format!("canary weight read back 0 at {}", elapsed(t)));
    }
    if let Some(t) = bad.scaled_down_at {
        times.push(format!("canary scaled down at {}", elapsed(t)));
    }
    if !times.is_empty() {
        let _ = writeln!(out, "      {} (since the release)", times.join("; "));
    }
}

fn failure_lines(out: &mut String, failure: Option<&Failure>) {
    let Some(f) = failure else { return };
    let phase = f.run_phase.map_or("?".to_owned(), |p| format!("{p:?}"));
    let metric = f.metric.as_deref().unwrap_or("?");
    let value = f.value.as_deref().map_or("-".to_owned(), short_value);
    let _ = writeln!(
        out,
        "      failing metric: {metric} = {value} ({}); {} {} {phase}",
        f.conditions.join(", "),
        f.role.label(),
        f.run,
    );
    if !f.message.is_empty() {
        let _ = writeln!(out, "      why: {}", f.message);
    }
    if !f.rollout_message.is_empty() {
        let _ = writeln!(out, "      rollout: {}", f.rollout_message);
    }
}

fn latency_summary(out: &mut String, report: &DemoReport) {
    let Some(s) = report.latency_stats() else {
        return;
    };
    let each: Vec<String> = report
        .latencies()
        .iter()
        .map(|d| format!("{:.1}", d.as_secs_f64()))
        .collect();
    let _ = writeln!(
        out,
        "  breach-to-rollback latency (VirtualService canary weight first > 0 -> read back 0), {} bad release{}:",
        s.runs,
        if s.runs == 1 { "" } else { "s" },
    );
    let _ = writeln!(
        out,
        "      median {}, max {} (min {}; each: {} s)",
        seconds(s.median),
        seconds(s.max),
        seconds(s.min),
        each.join(", ")
    );
    let intervals: Vec<String> = report
        .analysis_intervals
        .iter()
        .map(|s| format!("{s} s"))
        .collect();
    let scrape = report
        .scrape_interval
        .map_or("unknown".to_owned(), |d| format!("{} s", d.as_secs_f64()));
    let _ = writeln!(
        out,
        "      analysis interval {}, Prometheus scrape interval {scrape}",
        if intervals.is_empty() {
            "-".to_owned()
        } else {
            intervals.join(" / ")
        }
    );
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::demo::latency::BreachClock;
    use crate::demo::manifests::Version;
    use crate::demo::world::RunRole;

    fn release(verdict: Verdict, breach_ms: Option<(u64, u64)>) -> ReleaseReport {
        let t0 = Instant::now();
        let mut clock = BreachClock::new(t0);
        if let Some((traffic, zero)) = breach_ms {
            clock.observe(Some(20), t0 + Duration::from_millis(traffic));
            clock.observe(Some(0), t0 + Duration::from_millis(zero));
        }
        ReleaseReport {
            version: Version::new("example/shop:1.2", 0.3, 40.0),
            hash: Some("new".into()),
            verdict,
            elapsed: Duration::from_secs(8),
            clock,
            scaled_down_at: Some(Duration::from_millis(7900)),
            failure: Some(Failure {
                role: RunRole::Background,
                run: "shop-new-bg-1".into(),
                run_phase: Some(sluice_crds::AnalysisPhase::Failed),
                metric: Some("success-rate".into()),
                value: Some("[0.70123]".into()),
                conditions: vec!["successCondition: result[0] >= 0.95".into()],
                message: "did not satisfy".into(),
                rollout_message: "Rollout aborted".into(),
            }),
            measurements: 12,
            not_passing: 0,
            saw_abort: verdict == Verdict::RolledBack,
        }
    }

    fn report(good: Verdict, bad: Vec<ReleaseReport>) -> DemoReport {
        let mut good = release(good, None);
        good.saw_abort = false;
        DemoReport {
            good,
            bad,
            analysis_intervals: vec![2.0],
            scrape_interval: Some(Duration::from_secs(1)),
        }
    }

    #[test]
    fn the_summary_gives_the_verdicts_the_failing_metric_and_the_latency_figures() {
        let bad = vec![
            release(Verdict::RolledBack, Some((100, 3100))),
            release(Verdict::RolledBack, Some((200, 4200))),
            release(Verdict::RolledBack, Some((100, 2600))),
        ];
        let r = report(Verdict::Promoted, bad);
        assert!(r.success());
        let text = render(&r);
        assert!(
            text.contains("promoted in 8.0 s (12 measurements, all passing)"),
            "{text}"
        );
        assert!(text.contains("bad release #2 example/shop:1.2"), "{text}");
        assert!(
            text.contains(
                "failing metric: success-rate = 0.7012 (successCondition: result[0] >= 0.95)"
            ),
            "{text}"
        );
        assert!(
            text.contains("canary weight read back 0 at +3.1s"),
            "{text}"
        );
        assert!(
            text.contains("median 3.0 s, max 4.0 s (min 2.5 s"),
            "{text}"
        );
        assert!(
            text.contains("analysis interval 2 s, Prometheus scrape interval 1 s"),
            "{text}"
        );
        assert!(text.ends_with("rolled back on its own\n"), "{text}");
    }

    #[test]
    fn a_wrong_verdict_fails_the_demo() {
        assert!(!report(Verdict::TimedOut, vec![]).success());
        let promoted_bad = vec![release(Verdict::Promoted, None)];
        let r = report(Verdict::Promoted, promoted_bad);
        assert!(!r.success());
        assert!(render(&r).contains("PROMOTED (it should have been rolled back)"));
    }
}
