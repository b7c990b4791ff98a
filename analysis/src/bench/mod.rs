//! `judge-bench`: the judges on simulated canaries, run as the controller would run them.
//!
//! Every run simulates one canary analysis (stable and canary request streams, a fixed
//! seed per run) and lets each template judge the same traffic. Scenarios: identical
//! versions (A/A, for the false-rollback rate), and three regressions for the time to
//! detect. A run has a bounded horizon; no rollback by then counts as a miss.

pub mod report;
pub mod templates;
pub mod traffic;

use rand::{SeedableRng, rngs::Xoshiro256PlusPlus};

use templates::{Canary, Outcome, Template};
use traffic::{Stream, Version};

/// What is simulated.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Base seed.
    pub seed: u64,
    /// Runs per scenario.
    pub runs: usize,
    /// Requests per second, both versions together.
    pub rps: f64,
    /// Share of requests the canary gets.
    pub canary_share: f64,
    /// Seconds per simulated tick (the finest resolution any template sees).
    pub tick_s: u32,
    /// Seconds simulated per run.
    pub horizon_s: u32,
    /// Worker threads.
    pub threads: usize,
}

/// One simulated situation.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// Short name for the table.
    pub name: &'static str,
    /// Key prefix for the summary line.
    pub key: &'static str,
    /// The stable version.
    pub stable: Version,
    /// The canary version.
    pub canary: Version,
}

/// A template under comparison, with its names.
pub struct Entry {
    /// Row label in the table.
    pub label: &'static str,
    /// Suffix of its keys in the summary line.
    pub key: &'static str,
    /// The template.
    pub template: Template,
}

/// Outcomes of one scenario, per template (in entry order), per run (in run order).
pub struct ScenarioResult {
    /// The scenario.
    pub scenario: Scenario,
    /// `outcomes[template][run]`.
    pub outcomes: Vec<Vec<Outcome>>,
}

/// Runs every scenario.
pub fn run_all(
    settings: &Settings,
    templates: &[Entry],
    scenarios: &[Scenario],
) -> Vec<ScenarioResult> {
    scenarios
        .iter()
        .enumerate()
        .map(|(index, scenario)| run_scenario(settings, templates, *scenario, index as u64))
        .collect()
}

fn run_scenario(
    settings: &Settings,
    templates: &[Entry],
    scenario: Scenario,
    index: u64,
) -> ScenarioResult {
    let threads = settings.threads.max(1);
    let per_thread: Vec<Vec<(usize, Vec<Outcome>)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                scope.spawn(move || {
                    (worker..settings.runs)
                        .step_by(threads)
                        .map(|run| (run, one_run(settings, templates, &scenario, index, run)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut ordered: Vec<(usize, Vec<Outcome>)> = per_thread.into_iter().flatten().collect();
    ordered.sort_by_key(|(run, _)| *run);
    let outcomes = (0..templates.len())
        .map(|i| ordered.iter().map(|(_, o)| o[i]).collect())
        .collect();
    ScenarioResult { scenario, outcomes }
}

/// One simulated canary, judged by every template. Deterministic in (seed, scenario, run).
fn one_run(
    settings: &Settings,
    templates: &[Entry],
    scenario: &Scenario,
    index: u64,
    run: usize,
) -> Vec<Outcome> {
    let seed = settings.seed ^ (index << 40) ^ run as u64;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let ticks = (settings.horizon_s / settings.tick_s.max(1)) as usize;
    let per_tick = |share: f64| (settings.rps * share * f64::from(settings.tick_s)).round() as u64;
    let canary = Stream::simulate(
        &mut rng,
        &scenario.canary,
        per_tick(settings.canary_share),
        ticks,
    );
    let stable = Stream::simulate(
        &mut rng,
        &scenario.stable,
        per_tick(1.0 - settings.canary_share),
        ticks,
    );
    let sim = Canary {
        canary: &canary,
        stable: &stable,
        tick_s: settings.tick_s,
        ticks,
    };
    templates.iter().map(|e| e.template.run(&sim)).collect()
}
