//! `kubectl sluice` run in-process through the plugin's own code (`sluice_controller::cli::run`),
//! so a scenario makes exactly the writes the plugin makes and reads what it prints, without
//! building or spawning the binary.

use anyhow::{Context, Result, bail};
use sluice_controller::cli::{self, Cli, CliError, Exit, Output};

/// Runs `kubectl sluice -n NS ARGS...`; returns the outcome and what it printed.
pub async fn sluice(ns: &str, args: &[&str]) -> Result<(Result<Exit, CliError>, String)> {
    let argv = ["kubectl-sluice", "-n", ns]
        .into_iter()
        .chain(args.iter().copied());
    let cli = Cli::from_args(argv).context("parsing the command line")?;
    let mut out = Output::plain(Vec::new());
    let outcome = cli::run(cli, &mut out).await;
    Ok((outcome, String::from_utf8(out.out)?))
}

/// Like [`sluice`], for a command that must succeed; returns what it printed.
pub async fn sluice_ok(ns: &str, args: &[&str]) -> Result<String> {
    let (outcome, text) = sluice(ns, args).await?;
    match outcome {
        Ok(Exit::Ok) => Ok(text),
        other => bail!("kubectl sluice {args:?}: expected success, got {other:?}; output:\n{text}"),
    }
}
