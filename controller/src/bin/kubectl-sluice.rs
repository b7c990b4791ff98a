//! `kubectl-sluice`: the kubectl plugin (`kubectl sluice ...`). Everything lives in
//! [`sluice_controller::cli`]; this only parses the command line, runs it and turns the
//! outcome into an exit code.

use std::process::ExitCode;

use clap::Parser;
use sluice_controller::cli::{Cli, Output, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = Output::stdout();
    match run(cli, &mut out).await {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("kubectl-sluice: {error}");
            error.exit().into()
        }
    }
}
