//! `kubectl sluice`: the kubectl plugin for Sluice Rollouts, shaped like
//! `kubectl argo rollouts` so its users feel at home.
//!
//! | Command | What it does |
//! |---|---|
//! | `get rollout NAME [--watch]` | tree of the Rollout: status, steps, weights, images, revisions with ReplicaSets and AnalysisRuns, metrics, conditions |
//! | `promote NAME [--full]` | continue past the current pause (or skip every remaining step) |
//! | `abort NAME` / `retry NAME` | send all traffic back to stable / start the release again |
//! | `pause NAME` / `resume NAME` | `spec.paused` on and off |
//! | `undo NAME [--to-revision N]` | put an earlier revision's pod template back into `spec.template` |
//! | `status NAME [--timeout 5m]` | wait until Healthy (0), Degraded (1) or the timeout (3): for CI |
//! | `lint FILE...` | check manifests offline: the CRD schema and its CEL rules, decoding, the controller's validation |
//!
//! Layout: [`render`] (and `snapshot`, `lint`, the deciding halves of `actions`, `undo` and
//! `status`) are pure functions of API objects, unit-tested without a cluster; `client`,
//! `watch` and the `run` functions are the I/O shell. Exit codes are in [`Exit`].

mod actions;
mod client;
mod error;
pub mod lint;
pub mod render;
pub mod snapshot;
mod status;
mod style;
mod undo;
mod watch;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use actions::Request;
use clap::{ArgAction, Args, Parser, Subcommand};

pub use error::{CliError, Exit};
pub use style::Style;

/// Command line of `kubectl sluice`.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-sluice",
    bin_name = "kubectl sluice",
    version,
    about = "Manage Sluice Rollouts: watch, promote, abort, retry, undo, wait for them in CI, lint manifests"
)]
pub struct Cli {
    /// Namespace of the Rollout (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Kubeconfig file(s), `:`-separated as in KUBECONFIG (default: ~/.kube/config or in-cluster).
    #[arg(long, global = true, env = "KUBECONFIG", hide_env_values = true)]
    pub kubeconfig: Option<OsString>,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses `args` (the first is the program name), for callers without clap in scope.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::try_parse_from(args)
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a Rollout as a tree (optionally following every change).
    #[command(subcommand)]
    Get(GetCommand),
    /// Continue a paused Rollout by one step, or with --full skip every remaining step.
    Promote {
        /// Rollout name.
        name: String,
        /// Skip the remaining steps, pauses and analysis.
        #[arg(long)]
        full: bool,
    },
    /// Abort the release: all traffic back to stable, then the canary scales down.
    Abort {
        /// Rollout name.
        name: String,
    },
    /// Retry an aborted release from the first step.
    Retry {
        /// Rollout name.
        name: String,
    },
    /// Pause the Rollout where it is (`spec.paused: true`).
    Pause {
        /// Rollout name.
        name: String,
    },
    /// Resume a Rollout paused with `pause` (`spec.paused: false`).
    Resume {
        /// Rollout name.
        name: String,
    },
    /// Roll back to an earlier revision's pod template (default: the previous revision).
    Undo {
        /// Rollout name.
        name: String,
        /// Revision to go back to (see `get rollout`).
        #[arg(long)]
        to_revision: Option<i64>,
    },
    /// Wait until the Rollout is Healthy (exit 0), Degraded (1) or the timeout passes (3).
    Status(StatusArgs),
    /// Check Sluice manifests offline; non-Sluice documents are skipped.
    Lint {
        /// YAML files (multi-document allowed); `-` reads stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `get` targets.
#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// A Rollout with its revisions, ReplicaSets, AnalysisRuns and conditions.
    #[command(visible_aliases = ["rollouts", "ro"])]
    Rollout(GetRolloutArgs),
}

/// `get rollout` arguments.
#[derive(Debug, Args)]
pub struct GetRolloutArgs {
    /// Rollout name.
    pub name: String,
    /// Re-render on every change until interrupted (one line per change when not a terminal).
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// No colours, even on a terminal.
    #[arg(long)]
    pub no_color: bool,
}

/// `status` arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Rollout name.
    pub name: String,
    /// Give up after this long (`300`, `90s`, `5m`); 0 waits forever.
    #[arg(short = 't', long, default_value = "0", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Keep waiting for a final state; `--watch=false` prints the current status and exits.
    #[arg(short = 'w', long, default_value_t = true, action = ArgAction::Set,
        num_args = 0..=1, default_missing_value = "true")]
    pub watch: bool,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    text.parse::<sluice_crds::Duration>()
        .map(std::time::Duration::from)
        .map_err(|e| e.to_string())
}

/// Where output goes, and whether it is a terminal (colours, full-screen watch).
pub struct Output<W> {
    pub out: W,
    pub style: Style,
    pub tty: bool,
}

impl Output<std::io::Stdout> {
    /// Standard output; colours only on a terminal and without `NO_COLOR`.
    pub fn stdout() -> Self {
        let tty = std::io::stdout().is_terminal();
        let color = tty && std::env::var_os("NO_COLOR").is_none();
        Output {
            out: std::io::stdout(),
            style: Style { color },
            tty,
        }
    }
}

impl<W: Write> Output<W> {
    /// Plain output into `out` (tests, pipes).
    pub fn plain(out: W) -> Self {
        Output {
            out,
            style: Style { color: false },
            tty: false,
        }
    }

    /// Writes `lines`, each followed by a newline, and flushes.
    pub fn lines<S: AsRef<str>>(&mut self, lines: &[S]) -> Result<(), CliError> {
        for line in lines {
            writeln!(self.out, "{}", line.as_ref())?;
        }
        self.out.flush()?;
        Ok(())
    }

    /// Writes one line.
    pub fn line(&mut self, line: &str) -> Result<(), CliError> {
        self.lines(&[line])
    }
}

/// Runs one command. Errors carry their exit code ([`CliError::exit`]); the caller prints
/// them.
pub async fn run<W: Write>(cli: Cli, out: &mut Output<W>) -> Result<Exit, CliError> {
    let Cli {
        namespace,
        kubeconfig,
        command,
    } = cli;
    // Only the commands that talk to the API server need (and may fail on) the kubeconfig.
    let connect = || client::connect(kubeconfig, namespace);
    match command {
        Command::Lint { files } => lint::run(&files, out),
        Command::Get(GetCommand::Rollout(args)) => {
            if args.no_color {
                out.style.color = false;
            }
            watch::get(&connect().await?, &args.name, args.watch, out).await
        }
        Command::Promote { name, full } => {
            let request = if full {
                Request::PromoteFull
            } else {
                Request::Promote
            };
            actions::send(&connect().await?, &name, request, out).await
        }
        Command::Abort { name } => {
            actions::send(&connect().await?, &name, Request::Abort, out).await
        }
        Command::Retry { name } => {
            actions::send(&connect().await?, &name, Request::Retry, out).await
        }
        Command::Pause { name } => {
            actions::send(&connect().await?, &name, Request::Pause, out).await
        }
        Command::Resume { name } => {
            actions::send(&connect().await?, &name, Request::Resume, out).await
        }
        Command::Undo { name, to_revision } => {
            undo::run(&connect().await?, &name, to_revision, out).await
        }
        Command::Status(args) => status::run(&connect().await?, &args, out).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-sluice").chain(args.iter().copied()))
    }

    #[test]
    fn parses_the_documented_command_lines() {
        let cli = parse(&["get", "rollout", "web", "-n", "shop", "--watch"]).unwrap();
        assert_eq!(cli.namespace.as_deref(), Some("shop"));
        assert!(matches!(cli.command, Command::Get(GetCommand::Rollout(ref a)) if a.watch));
        let cli = parse(&["status", "web", "--timeout", "5m", "--watch=false"]).unwrap();
        let Command::Status(args) = cli.command else {
            panic!("status")
        };
        assert_eq!(args.timeout, std::time::Duration::from_secs(300));
        assert!(!args.watch);
        assert!(matches!(
            parse(&["promote", "web", "--full"]).unwrap().command,
            Command::Promote { full: true, .. }
        ));
        assert!(matches!(
            parse(&["undo", "web", "--to-revision", "3"])
                .unwrap()
                .command,
            Command::Undo {
                to_revision: Some(3),
                ..
            }
        ));
    }

    #[test]
    fn usage_errors_exit_with_2() {
        for args in [
            &["promote"][..],
            &["status", "web", "--timeout", "soon"],
            &["lint"],
        ] {
            let error = parse(args).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn status_watches_by_default() {
        let Command::Status(args) = parse(&["status", "web", "--watch"]).unwrap().command else {
            panic!("status")
        };
        assert!(args.watch);
        assert_eq!(args.timeout, std::time::Duration::ZERO);
    }
}
