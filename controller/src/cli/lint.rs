//! `kubectl sluice lint FILE...`: checks Sluice manifests offline, before GitOps applies them.
//!
//! Each YAML document whose `apiVersion` is in the `sluice.dev` group goes through the same
//! layers as on its way into the cluster, and the first layer that finds problems reports all
//! of them, each naming its field:
//!
//! 1. the API server: the generated CRD schema with its CEL rules (`schema`);
//! 2. decoding into the API type (e.g. `spec.strategy.canary.steps[0].setWeight: weight 120
//!    must be between 0 and 100`);
//! 3. the controller's own validation: [`validate`] for Rollouts, [`ValidatedAnalysis`] for
//!    AnalysisTemplates, ClusterAnalysisTemplates and AnalysisRuns.
//!
//! So a manifest that passes lint is one the API server accepts and the controller runs.
//! Other documents are skipped.
//!
//! Guarantees: every problem of every object is reported (not just the first); [`lint`] is a
//! pure function of the text, so it is tested without files or a cluster.

use std::io::{Read, Write};
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::Value;
use sluice_analysis::ValidatedAnalysis;
use sluice_crds::{
    API_VERSION, AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate, GROUP, Rollout,
};

use super::{CliError, Exit, Output};
use crate::rollout::validate::validate;

/// How bad a finding is: only errors fail the lint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// `Rollout web (document 3)`, or the file when it is not YAML at all.
    pub object: String,
    pub message: String,
}

/// What a file held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Sluice objects checked.
    pub objects: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Findings that fail the lint.
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }
}

/// Lints one multi-document YAML text.
pub fn lint(text: &str) -> Report {
    let documents = match sluice_crds::yaml::documents(text) {
        Ok(d) => d,
        Err(e) => {
            let finding = error("the file".into(), e.to_string());
            return Report {
                objects: 0,
                findings: vec![finding],
            };
        }
    };
    let mut report = Report::default();
    for (i, doc) in documents.iter().enumerate() {
        let Some(kind) = sluice_kind(doc) else {
            continue;
        };
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("(unnamed)");
        let object = format!("{kind} {name} (document {})", i + 1);
        report.objects += 1;
        report.findings.extend(
            check(kind, doc)
                .into_iter()
                .map(|(severity, message)| Finding {
                    severity,
                    object: object.clone(),
                    message,
                }),
        );
    }
    report
}

fn error(object: String, message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        object,
        message,
    }
}

/// The kind of a `sluice.dev` document; `None` for anything else.
fn sluice_kind(doc: &Value) -> Option<&str> {
    let api_version = doc.get("apiVersion")?.as_str()?;
    let group = api_version.split('/').next()?;
    (group == GROUP).then(|| {
        doc.get("kind")
            .and_then(Value::as_str)
            .unwrap_or("(no kind)")
    })
}

type Problems = Vec<(Severity, String)>;

fn check(kind: &str, doc: &Value) -> Problems {
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if api_version != API_VERSION {
        return vec![(
            Severity::Error,
            format!("apiVersion {api_version} is not served; use {API_VERSION}"),
        )];
    }
    let mut problems = metadata(doc);
    let refused = schema::check(kind, doc);
    if !refused.is_empty() {
        problems.extend(refused.into_iter().map(|p| (Severity::Error, p)));
        return problems;
    }
    problems.extend(match kind {
        "Rollout" => decode::<Rollout>(doc).map_or_else(|e| e, |r| rollout(&r)),
        "AnalysisTemplate" => decode::<AnalysisTemplate>(doc)
            .map_or_else(|e| e, |t| analysis(ValidatedAnalysis::from_template(&t.spec))),
        "ClusterAnalysisTemplate" => decode::<ClusterAnalysisTemplate>(doc)
            .map_or_else(|e| e, |t| analysis(ValidatedAnalysis::from_template(&t.spec))),
        "AnalysisRun" => decode::<AnalysisRun>(doc)
            .map_or_else(|e| e, |r| analysis(ValidatedAnalysis::from_run(&r.spec))),
        other => vec![(
            Severity::Error,
            format!(
                "unknown kind {other:?} in {GROUP}; expected Rollout, AnalysisTemplate, ClusterAnalysisTemplate or AnalysisRun"
            ),
        )],
    });
    problems
}

fn metadata(doc: &Value) -> Problems {
    let named = ["/metadata/name", "/metadata/generateName"]
        .iter()
        .any(|p| {
            doc.pointer(p)
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
        });
    if named {
        Vec::new()
    } else {
        vec![(Severity::Error, "metadata.name is required".into())]
    }
}

/// Decodes into `T`; the error names the path of the offending field.
fn decode<T: DeserializeOwned>(doc: &Value) -> Result<T, Problems> {
    serde_path_to_error::deserialize(doc.clone()).map_err(|e| {
        let path = e.path().to_string();
        let message = if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        };
        vec![(Severity::Error, message)]
    })
}

/// The controller's validation: every problem it would report is an error.
fn rollout(r: &Rollout) -> Problems {
    match validate(r) {
        Ok(_) => Vec::new(),
        Err(invalid) => invalid
            .0
            .into_iter()
            .map(|p| (Severity::Error, p))
            .collect(),
    }
}

fn analysis(result: Result<ValidatedAnalysis, sluice_analysis::SpecError>) -> Problems {
    match result {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems
            .iter()
            .map(|p| {
                // Most problems start with the field (`metrics["x"].interval`); say where it is.
                let text = p.to_string();
                let path = text.starts_with(|c: char| c.is_ascii_lowercase())
                    && text
                        .split_whitespace()
                        .next()
                        .is_some_and(|w| w.contains('['));
                let text = if path { format!("spec.{text}") } else { text };
                (Severity::Error, text)
            })
            .collect(),
    }
}

/// Lints `files` (`-` is stdin) and prints every finding and a summary.
pub fn run<W: Write>(files: &[PathBuf], out: &mut Output<W>) -> Result<Exit, CliError> {
    let (mut objects, mut errors) = (0, 0);
    for file in files {
        let text = read(file)?;
        let report = lint(&text);
        for f in &report.findings {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            out.line(&format!(
                "{}: {}: {level}: {}",
                file.display(),
                f.object,
                f.message
            ))?;
        }
        objects += report.objects;
        errors += report.errors();
    }
    out.line(&format!(
        "{objects} Sluice object(s) in {} file(s), {errors} problem(s)",
        files.len()
    ))?;
    Ok(if errors == 0 { Exit::Ok } else { Exit::Failed })
}

fn read(file: &PathBuf) -> Result<String, CliError> {
    let unreadable =
        |e: std::io::Error| CliError::Usage(format!("cannot read {}: {e}", file.display()));
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(unreadable)?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(unreadable)
}

mod schema;
#[cfg(test)]
mod tests;
