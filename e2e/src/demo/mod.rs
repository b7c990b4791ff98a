//! The release demo: a Rollout behind an Istio VirtualService, the mesh simulator sending it
//! traffic, Prometheus measuring it, and the Sluice controller deciding. [`run`] applies
//! `e2e/manifests/demo.yaml`, waits for the first version, releases a good version (promoted)
//! and a bad one (rolled back on its own), printing one progress line per change, and returns
//! what it saw; [`report::render`] turns that into the summary.
//!
//! With several bad releases it measures the **breach-to-rollback latency** each time (see
//! [`latency`]): between two bad releases the good template is restored, which Sluice
//! fast-tracks back to stable.
//!
//! Everything is driven by watches ([`watch::Watch`]); only Prometheus, which cannot be
//! watched, is asked at intervals. The controller and the simulator run elsewhere (the
//! `e2e/demo` script starts them as processes; the end-to-end tests in-process).
//!
//! Layout: pure parts (`manifests` parsing, `world`, `progress`, `latency`, `report`, the
//! verdicts in `release`) and I/O edges (`watch`, `setup`, `prometheus`, `release`).

#[cfg(test)]
mod fixtures;
pub mod latency;
pub mod manifests;
pub mod progress;
pub mod prometheus;
pub mod release;
pub mod report;
pub mod setup;
pub mod watch;
pub mod world;

use std::time::Duration;

use tokio::time::Instant;

pub use manifests::{DEMO_YAML, Manifests, Target, Version};
pub use release::{ReleaseReport, Verdict};
pub use report::DemoReport;

use progress::Printer;
use watch::Watch;
use world::WatchedRollout;

/// What the demo does.
#[derive(Clone, Debug)]
pub struct Config {
    pub namespace: String,
    /// Prometheus as the controller reaches it, e.g. `http://127.0.0.1:19090`.
    pub prometheus_url: String,
    /// The manifests (normally [`DEMO_YAML`]).
    pub manifests: String,
    pub good: Version,
    pub bad: Version,
    /// How many bad releases (the latency figures need several).
    pub bad_runs: u32,
    /// Longest wait for one release's verdict, and for the first version.
    pub release_timeout: Duration,
}

impl Config {
    /// The demo's defaults for `namespace` and `prometheus_url`: good = `example/shop:1.1` at
    /// error rate 0.001, bad = `example/shop:1.2` at 0.3, one bad release, 3 minutes a release.
    pub fn new(namespace: &str, prometheus_url: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            prometheus_url: prometheus_url.to_owned(),
            manifests: DEMO_YAML.to_owned(),
            good: Version::new("example/shop:1.1", 0.001, 40.0),
            bad: Version::new("example/shop:1.2", 0.3, 40.0),
            bad_runs: 1,
            release_timeout: Duration::from_secs(180),
        }
    }
}

/// Why the demo could not run to its end. A release with the wrong verdict is not an error: it
/// is in the report.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Manifest(#[from] manifests::ManifestError),
    #[error(transparent)]
    Setup(#[from] setup::SetupError),
    #[error(transparent)]
    Prometheus(#[from] prometheus::PrometheusError),
    #[error("the first version was not Healthy within {0:?} (is the controller running?)")]
    FirstVersion(Duration),
}

/// A headline: `==> [HH:MM:SS] text`, in the tone of the `e2e/demo` script.
pub fn say(text: &str) {
    println!("\n==> [{}] {text}", chrono::Local::now().format("%H:%M:%S"));
}

/// Runs the whole demo. See the module docs.
pub async fn run(client: &kube::Client, config: &Config) -> Result<DemoReport, DemoError> {
    let manifests = Manifests::parse(&config.manifests, &config.prometheus_url)?;
    let target = manifests.target()?;
    let watch = prepare(client, config, &manifests, &target).await?;
    let mut session = Session {
        client,
        config,
        manifests: &manifests,
        watch,
        printer: Printer::new(Instant::now()),
    };
    say(&format!("releasing a GOOD version: {}", config.good));
    let good = session.release(&config.good, "good release").await?;
    let mut bad = Vec::new();
    for attempt in 1..=config.bad_runs {
        if attempt > 1 {
            say(&format!(
                "restoring the good template {} (fast-track back to stable)",
                config.good.image
            ));
            session.release(&config.good, "restore").await?;
        }
        say(&bad_headline(config, attempt));
        bad.push(session.release(&config.bad, "bad release").await?);
    }
    Ok(DemoReport {
        good,
        bad,
        analysis_intervals: manifests.analysis_intervals(),
        scrape_interval: scrape_interval(config).await,
    })
}

fn bad_headline(config: &Config, attempt: u32) -> String {
    let counter = if config.bad_runs > 1 {
        format!(" ({attempt} of {})", config.bad_runs)
    } else {
        String::new()
    };
    format!("releasing a BAD version{counter}: {}", config.bad)
}

/// Only printed with the figures: not worth failing a finished demo over.
async fn scrape_interval(config: &Config) -> Option<Duration> {
    prometheus::scrape_interval(&config.prometheus_url)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot read the scrape interval");
            None
        })
}

/// Clears an earlier run, applies the manifests, waits for the first version and for
/// Prometheus to see its traffic. Returns the watch, already following the Rollout.
async fn prepare(
    client: &kube::Client,
    config: &Config,
    manifests: &Manifests,
    target: &Target,
) -> Result<Watch, DemoError> {
    let ns = config.namespace.as_str();
    apply_afresh(client, config, manifests, target).await?;
    let mut watch = Watch::start(client, ns, target);
    say(&format!(
        "waiting for the first version to be Healthy: {}",
        manifests.initial_version()
    ));
    let mut printer = Printer::new(Instant::now());
    watch
        .until(
            config.release_timeout,
            |world, at| printer.print(world, at),
            |world| world.stable_hash().filter(|h| world.released(h)).map(drop),
        )
        .await
        .map_err(|_| DemoError::FirstVersion(config.release_timeout))?;
    say("waiting for Prometheus to see the simulated traffic");
    prometheus::wait_for_traffic(&config.prometheus_url, ns, config.release_timeout).await?;
    println!(
        "  Prometheus sees requests to {} in {ns}",
        target.stable_service
    );
    Ok(watch)
}

/// Deletes what an earlier run left and applies every manifest.
async fn apply_afresh(
    client: &kube::Client,
    config: &Config,
    manifests: &Manifests,
    target: &Target,
) -> Result<(), DemoError> {
    let ns = config.namespace.as_str();
    setup::ensure_namespace(client, ns).await?;
    if setup::clear_previous_run(client, ns, target, config.release_timeout).await? {
        say(&format!(
            "cleared what an earlier run left in namespace {ns}"
        ));
    }
    say(&format!(
        "applying e2e/manifests/demo.yaml in namespace {ns} (server-side apply, field manager {})",
        manifests::FIELD_MANAGER
    ));
    for object in &manifests.objects {
        println!("  {}", manifests::describe(object));
    }
    manifests::apply_all(client, ns, &manifests.objects).await?;
    Ok(())
}

/// What every release of one demo run shares.
struct Session<'a> {
    client: &'a kube::Client,
    config: &'a Config,
    manifests: &'a Manifests,
    watch: Watch,
    printer: Printer,
}

impl Session<'_> {
    /// Releases `version` and says how it ended (a restored good template is fast-tracked).
    async fn release(
        &mut self,
        version: &Version,
        label: &str,
    ) -> Result<ReleaseReport, DemoError> {
        let report = release::release(
            self.client,
            &self.config.namespace,
            self.manifests.rollout(),
            version,
            &mut self.watch,
            &mut self.printer,
            self.config.release_timeout,
        )
        .await?;
        outcome(label, &report);
        Ok(report)
    }
}

fn outcome(label: &str, report: &ReleaseReport) {
    let how = match report.verdict {
        Verdict::Promoted => "promoted",
        Verdict::RolledBack => "rolled back",
        Verdict::TimedOut => "no verdict (timed out)",
    };
    println!(
        "  -> {label} {how} after {:.1} s",
        report.elapsed.as_secs_f64()
    );
}
