//! The simulator's settings: command-line flags (`Args`) and the validated [`Config`] that
//! [`run`](super::run) takes, so the binary and in-process tests share one path.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::load::MAX_RPS;
use super::metrics::Reporter;

/// Bounds on the tick: below 10 ms the loop mostly measures the scheduler on a busy machine;
/// above 10 s a 1 s Prometheus scrape would see bursts instead of a rate.
const MIN_TICK: Duration = Duration::from_millis(10);
const MAX_TICK: Duration = Duration::from_secs(10);

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Watch only this namespace; `None` watches all.
    pub namespace: Option<String>,
    /// Requests per second per VirtualService host without an `sim.sluice.dev/rps` annotation
    /// (and for a Service whose annotation is malformed).
    pub rps: f64,
    /// Stop generating after this long (`None`: until shut down). The request count is exact:
    /// the generator runs `duration / tick` ticks, however late the machine runs them.
    pub duration: Option<Duration>,
    pub tick: Duration,
    /// Loopback address for `/metrics`; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Directory of Prometheus file_sd targets to register in, if any.
    pub register_dir: Option<PathBuf>,
    pub seed: u64,
    pub reporters: Vec<Reporter>,
    /// How long to wait for the first list of each watched kind.
    pub sync_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            namespace: None,
            rps: 200.0,
            duration: None,
            tick: Duration::from_millis(100),
            listen: SocketAddr::from(([127, 0, 0, 1], 15090)),
            register_dir: None,
            seed: 1,
            reporters: vec![Reporter::Destination],
            sync_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Checks the bounds that keep the simulator local and its load small.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |message: String| Err(ConfigError(message));
        if !self.listen.ip().is_loopback() {
            return fail(format!(
                "--listen {} is not a loopback address",
                self.listen
            ));
        }
        if !(0.0..=MAX_RPS).contains(&self.rps) {
            return fail(format!("--rps {} is outside 0..={MAX_RPS}", self.rps));
        }
        if !(MIN_TICK..=MAX_TICK).contains(&self.tick) {
            return fail(format!(
                "--tick {:?} is outside {MIN_TICK:?}..={MAX_TICK:?}",
                self.tick
            ));
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return fail("--duration must be positive".to_owned());
        }
        if self.reporters.is_empty() {
            return fail("--reporters needs at least one of destination, source".to_owned());
        }
        Ok(())
    }

    /// Ticks to run for `duration`, rounded up so a short run still sends something.
    pub fn tick_count(&self) -> Option<u64> {
        let ticks = self
            .duration?
            .as_nanos()
            .div_ceil(self.tick.as_nanos().max(1));
        Some(u64::try_from(ticks).unwrap_or(u64::MAX))
    }
}

/// Command-line flags of `mesh-sim`.
#[derive(Debug, Parser)]
#[command(
    name = "mesh-sim",
    about = "Stands in for the Istio data plane: routes simulated requests by the cluster's \
             VirtualServices (and to Services annotated sim.sluice.dev/rps, by their selectors) \
             and exports Istio's request metrics"
)]
pub struct Args {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Requests per second per VirtualService host (annotation sim.sluice.dev/rps overrides).
    #[arg(long, default_value_t = 200.0)]
    pub rps: f64,
    /// Stop after this long (e.g. 30s, 2m, 500ms); default: run until SIGINT/SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Generator tick.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub tick: Duration,
    /// Address for /metrics (loopback only).
    #[arg(long, default_value = "127.0.0.1:15090")]
    pub listen: SocketAddr,
    /// Register with the local Prometheus: write <targets-dir>/mesh-sim-<port>.json on start,
    /// remove it on exit.
    #[arg(long)]
    pub register: bool,
    /// Prometheus file_sd directory used by --register.
    #[arg(long, env = "SLUICE_PROMETHEUS_TARGETS_DIR")]
    pub targets_dir: Option<PathBuf>,
    /// Seed of the random stream (same seed and cluster state: same requests).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Reporters to export: destination, source, or both (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "destination", value_parser = parse_reporter)]
    pub reporters: Vec<Reporter>,
    /// How long to wait for the first list of each watched kind.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub sync_timeout: Duration,
}

impl Args {
    /// The validated configuration these flags describe.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let register_dir = match (self.register, self.targets_dir) {
            (false, _) => None,
            (true, Some(dir)) => Some(dir),
            (true, None) => {
                return Err(ConfigError(
                    "--register needs --targets-dir or SLUICE_PROMETHEUS_TARGETS_DIR".to_owned(),
                ));
            }
        };
        let mut reporters = self.reporters;
        reporters.dedup();
        let config = Config {
            namespace: self.namespace,
            rps: self.rps,
            duration: self.duration,
            tick: self.tick,
            listen: self.listen,
            register_dir,
            seed: self.seed,
            reporters,
            sync_timeout: self.sync_timeout,
        };
        config.validate()?;
        Ok(config)
    }
}

/// Parses `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{raw:?}: unit must be ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{raw:?} is out of range"))
}

fn parse_reporter(raw: &str) -> Result<Reporter, String> {
    match raw.trim() {
        "destination" => Ok(Reporter::Destination),
        "source" => Ok(Reporter::Source),
        other => Err(format!("{other:?} is not a reporter (destination, source)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let args = Args::try_parse_from(std::iter::once("mesh-sim").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        args.into_config().map_err(|e| e.to_string())
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn defaults() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.rps, 200.0);
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 15090)));
        assert_eq!(config.reporters, [Reporter::Destination]);
        assert_eq!(config.tick_count(), None);
    }

    #[test]
    fn flags() {
        let config = parse(&[
            "--namespace",
            "shop",
            "--rps",
            "50",
            "--duration",
            "1s",
            "--tick",
            "300ms",
            "--reporters",
            "destination,source",
            "--seed",
            "9",
            "--register",
            "--targets-dir",
            "/tmp",
        ])
        .unwrap();
        assert_eq!(config.namespace.as_deref(), Some("shop"));
        assert_eq!(config.reporters, [Reporter::Destination, Reporter::Source]);
        assert_eq!(config.tick_count(), Some(4), "rounded up");
        assert_eq!(config.register_dir, Some(PathBuf::from("/tmp")));
    }

    #[test]
    fn refuses_what_would_leave_loopback_or_overload() {
        assert!(
            parse(&["--listen", "0.0.0.0:15090"])
                .unwrap_err()
                .contains("loopback")
        );
        assert!(parse(&["--rps", "1000000"]).unwrap_err().contains("--rps"));
        assert!(parse(&["--rps", "NaN"]).is_err());
        assert!(parse(&["--tick", "1ms"]).unwrap_err().contains("--tick"));
        assert!(parse(&["--duration", "0s"]).is_err());
        assert!(parse(&["--reporters", "sidecar"]).is_err());
    }
}
