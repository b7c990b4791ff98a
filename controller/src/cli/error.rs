//! Exit codes and errors of `kubectl sluice`.
//!
//! The exit code is the plugin's contract with scripts and CI pipelines:
//!
//! | Code | [`Exit`] | Meaning |
//! |---|---|---|
//! | 0 | `Ok` | done; `status`: the Rollout is Healthy |
//! | 1 | `Failed` | the request was refused or failed; `status`: Degraded or aborted; `lint`: problems |
//! | 2 | `Usage` | bad arguments, unreadable file, or the Rollout (or revision) does not exist |
//! | 3 | `Timeout` | `status --timeout` passed before the Rollout settled |

use std::process::ExitCode;

/// How the plugin ended. See the module docs for the numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok,
    Failed,
    Usage,
    Timeout,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Timeout => 3,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// Why a command did not do what was asked. Each variant maps to one [`Exit`].
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Bad arguments or an unreadable input file.
    #[error("{0}")]
    Usage(String),
    /// No kubeconfig or no way to build a client from it.
    #[error("cannot reach Kubernetes (set KUBECONFIG or --kubeconfig): {0}")]
    Connect(String),
    /// An API call failed.
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// The request makes no sense in the Rollout's current state (e.g. promote when not
    /// paused).
    #[error("{0}")]
    Refused(String),
    /// The Rollout ended Degraded or aborted while waited on.
    #[error("{0}")]
    Degraded(String),
    /// `status --timeout` passed.
    #[error("timed out after {after}; last status: {last}")]
    Timeout { after: String, last: String },
    /// A watch stream ended, which kube's watcher never does on its own.
    #[error("the watch on the API server ended unexpectedly")]
    WatchEnded,
    /// Writing to stdout failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// The exit code this error ends the process with.
    pub fn exit(&self) -> Exit {
        match self {
            CliError::NotFound(_) | CliError::Usage(_) => Exit::Usage,
            CliError::Timeout { .. } => Exit::Timeout,
            CliError::Connect(_)
            | CliError::Kube { .. }
            | CliError::Refused(_)
            | CliError::Degraded(_)
            | CliError::WatchEnded
            | CliError::Io(_) => Exit::Failed,
        }
    }

    /// Wraps an API error with what was being done.
    pub fn kube(what: impl Into<String>, source: kube::Error) -> Self {
        CliError::Kube {
            what: what.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_documented_exit_codes() {
        let cases = [
            (CliError::NotFound("x".into()), 2),
            (CliError::Usage("x".into()), 2),
            (CliError::Refused("x".into()), 1),
            (CliError::Degraded("x".into()), 1),
            (
                CliError::Timeout {
                    after: "5s".into(),
                    last: "Paused".into(),
                },
                3,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit().code(), code, "{error}");
        }
    }
}
