//! `judge-bench`: false rollbacks and time to detect of three analysis templates on the same
//! simulated canaries — an Argo-style threshold template, Mann-Whitney re-checked every
//! interval, and the sequential judge.
//!
//! ```text
//! cargo run --release -p sluice-analysis --bin judge-bench [-- --runs 1000 --seed 42 --threads 2]
//! ```
//!
//! Deterministic for a seed (any thread count). The last line sums the figures up as
//! `key=value` pairs. A benchmark, not a test: it prints figures and never fails on them.

#[path = "../bench/mod.rs"]
mod bench;

use std::{process::ExitCode, time::Instant};

use bench::{
    Entry, Scenario, Settings, report,
    templates::{MannWhitneyTemplate, SequentialTemplate, Template, Threshold},
    traffic::Version,
};
use sluice_analysis::judge::{MannWhitneyConfig, SequentialConfig};
use sluice_crds::judge::Direction;

const USAGE: &str = "usage: judge-bench [--runs N] [--seed N] [--threads N] [--horizon-s N]";

/// The stable version: 0.5% errors, log-normal latency with median 40 ms and p95 ~107 ms.
const STABLE: Version = Version {
    error_rate: 0.005,
    median_ms: 40.0,
    sigma: 0.6,
};

fn main() -> ExitCode {
    let settings = match parse(std::env::args().skip(1)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let templates = match templates(&settings) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("invalid judge settings: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let results = bench::run_all(&settings, &templates, &scenarios());
    describe(&settings);
    println!();
    println!("{}", report::table(&results, &templates));
    println!();
    println!(
        "elapsed {:.1}s on {} thread(s)",
        started.elapsed().as_secs_f64(),
        settings.threads
    );
    println!("{}", report::summary(&results, &templates));
    ExitCode::SUCCESS
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Settings, String> {
    let mut settings = Settings {
        seed: 42,
        runs: 1000,
        rps: 200.0,
        canary_share: 0.1,
        tick_s: 5,
        horizon_s: 1800,
        threads: std::thread::available_parallelism().map_or(1, usize::from),
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--runs" => settings.runs = usize::try_from(number()?).map_err(|e| e.to_string())?,
            "--seed" => settings.seed = number()?,
            "--threads" => {
                settings.threads = usize::try_from(number()?).map_err(|e| e.to_string())?
            }
            "--horizon-s" => {
                settings.horizon_s = u32::try_from(number()?).map_err(|e| e.to_string())?
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(settings)
}

fn scenarios() -> [Scenario; 4] {
    let canary = |error_rate: f64, latency: f64| Version {
        error_rate,
        median_ms: STABLE.median_ms * latency,
        ..STABLE
    };
    [
        Scenario {
            name: "A/A (identical versions)",
            key: "aa",
            stable: STABLE,
            canary: STABLE,
        },
        Scenario {
            name: "errors 0.5% -> 5% (10x)",
            key: "detect10x",
            stable: STABLE,
            canary: canary(0.05, 1.0),
        },
        Scenario {
            name: "errors 0.5% -> 1% (2x)",
            key: "detect2x",
            stable: STABLE,
            canary: canary(0.01, 1.0),
        },
        Scenario {
            name: "latency +25% (p95 107 -> 134 ms)",
            key: "latency25",
            stable: STABLE,
            canary: canary(0.005, 1.25),
        },
    ]
}

/// The compared templates. The summary keys `threshold`, `mwu` and `sequential` are the
/// three the issue asks for; `sequential_1m` isolates the effect of the cadence.
fn templates(settings: &Settings) -> Result<Vec<Entry>, sluice_analysis::judge::ConfigError> {
    let ticks = |seconds: u32| (seconds / settings.tick_s.max(1)).max(1) as usize;
    let sequential = |interval| -> Result<Template, sluice_analysis::judge::ConfigError> {
        Ok(Template::Sequential(SequentialTemplate {
            interval,
            // alpha 0.005 per metric: at most 0.01 for the template (union bound).
            errors: SequentialConfig::new(0.005, 0.001, 100)?,
            latency: SequentialConfig::new(0.005, 0.01, 100)?,
            slow_ms: 100.0,
        }))
    };
    Ok(vec![
        Entry {
            label: "threshold (Argo-style), every 1m",
            key: "threshold",
            template: Template::Threshold(Threshold {
                interval: ticks(60),
                max_error_ratio: 0.01,
                max_p95_ms: 175.0,
                failure_limit: 1,
            }),
        },
        Entry {
            label: "mannWhitney, every 1m",
            key: "mwu",
            template: Template::MannWhitney(MannWhitneyTemplate {
                interval: ticks(60),
                step: ticks(15),
                window: ticks(300),
                config: MannWhitneyConfig::new(Direction::Increase, 0.05, 0.05, 4)?,
                failure_limit: 1,
            }),
        },
        Entry {
            label: "sequential, every 10s",
            key: "sequential",
            template: sequential(ticks(10))?,
        },
        Entry {
            label: "sequential, every 1m",
            key: "sequential_1m",
            template: sequential(ticks(60))?,
        },
    ])
}

fn describe(s: &Settings) {
    println!(
        "judge-bench: seed {}, {} runs per scenario, {} req/s in total, canary share {}%, \
         {}s ticks, horizon {}s (no rollback by then = missed)",
        s.seed,
        s.runs,
        s.rps,
        100.0 * s.canary_share,
        s.tick_s,
        s.horizon_s
    );
    println!(
        "stable: {}% errors, latency log-normal median {} ms sigma {} (p95 {:.0} ms; \
         histogram_quantile p95 on Istio buckets {:.0} ms)",
        100.0 * STABLE.error_rate,
        STABLE.median_ms,
        STABLE.sigma,
        STABLE.latency_quantile(0.95),
        STABLE.histogram_quantile(0.95).unwrap_or(f64::NAN),
    );
    println!("templates (each judges error rate and latency; a failure of either rolls back):");
    println!(
        "  threshold   every 1m on the last 1m of the canary: error rate < 1%, \
         histogram_quantile(0.95) < 175 ms (a third above the stable's 132 ms); failureLimit 1"
    );
    println!(
        "  mannWhitney every 1m: canary vs stable 15s points over the last 5m (error ratio, p95), \
         direction increase, alpha 0.05, margin 5%, minSamples 4; failureLimit 1"
    );
    println!(
        "  sequential  every 10s (and every 1m) on counts since the start: errors (margin 0.1 pp) and requests \
         slower than 100 ms (margin 1 pp), alpha 0.005 each (0.01 per template); failure rolls \
         back at once, both passing promotes early"
    );
}
