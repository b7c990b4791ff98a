//! The sections below the tree: each AnalysisRun's metrics (last measured value and why), and
//! the Rollout's conditions.

use kube::ResourceExt;
use sluice_crds::{AnalysisPhase, AnalysisRun, ConditionStatus, MetricResult};

use crate::cli::snapshot::Snapshot;
use crate::cli::style::{self, Style, Tone};

/// `Analysis:` with one block per run; nothing when there are no runs.
pub(crate) fn analysis(s: &Snapshot, style: Style) -> Vec<String> {
    if s.runs.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![String::new(), "Analysis:".to_owned()];
    for run in &s.runs {
        lines.extend(run_block(run, style));
    }
    lines
}

fn run_block(run: &AnalysisRun, style: Style) -> Vec<String> {
    let status = run.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or(AnalysisPhase::Pending);
    let (icon, tone) = style::analysis_phase(phase);
    let mut head = format!(
        "  α {}  {}",
        run.name_any(),
        style.paint(tone, &format!("{icon} {phase:?}"))
    );
    if let Some(message) = status.message.as_deref().filter(|m| !m.is_empty()) {
        head.push_str(&format!("  {message}"));
    }
    let rows: Vec<(Vec<String>, Tone)> = status.metric_results.iter().map(metric_row).collect();
    if rows.is_empty() {
        return vec![head, style.paint(Tone::Dim, "      no measurements yet")];
    }
    let mut lines = vec![head];
    lines.extend(align(&rows, "    ", 0, style));
    lines
}

/// `✔ success-rate  [0.99]  <message>` for one metric.
fn metric_row(m: &MetricResult) -> (Vec<String>, Tone) {
    let (icon, tone) = style::analysis_phase(m.phase);
    let last = m.measurements.last();
    let value = last
        .and_then(|l| l.value.clone())
        .unwrap_or_else(|| "-".into());
    let message = m
        .message
        .clone()
        .or_else(|| last.and_then(|l| l.message.clone()))
        .unwrap_or_default();
    let dry = if m.dry_run { " (dry-run)" } else { "" };
    let cells = vec![
        format!("{icon} {}{dry}", m.name),
        value,
        format!("{} measured", m.count + m.error),
        message,
    ];
    (cells, tone)
}

/// `Conditions:` as a table; nothing when there are none.
pub(crate) fn conditions(s: &Snapshot, style: Style) -> Vec<String> {
    let conditions = s
        .rollout
        .status
        .as_ref()
        .map(|st| st.conditions.as_slice())
        .unwrap_or_default();
    if conditions.is_empty() {
        return Vec::new();
    }
    let header = ["TYPE", "STATUS", "REASON", "MESSAGE"]
        .map(String::from)
        .to_vec();
    let mut rows = vec![(header, Tone::Plain)];
    rows.extend(conditions.iter().map(|c| {
        let tone = match c.status {
            ConditionStatus::True => Tone::Plain,
            ConditionStatus::False | ConditionStatus::Unknown => Tone::Dim,
        };
        let cells = vec![
            format!("{:?}", c.type_),
            format!("{:?}", c.status),
            c.reason.clone(),
            c.message.clone(),
        ];
        (cells, tone)
    }));
    let mut lines = vec![String::new(), "Conditions:".to_owned()];
    lines.extend(align(&rows, "  ", 1, style));
    lines
}

/// Pads cells into columns; the cell at `painted` is coloured with the row's tone.
fn align(rows: &[(Vec<String>, Tone)], indent: &str, painted: usize, style: Style) -> Vec<String> {
    let columns = rows.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|(c, _)| c.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|(cells, tone)| {
            let line: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, w))| {
                    let padded = format!("{cell:<w$}", w = *w);
                    if i == painted {
                        style.paint(*tone, &padded)
                    } else {
                        padded
                    }
                })
                .collect();
            format!("{indent}{}", line.join("  ").trim_end())
        })
        .collect()
}
