//! The revision tree: the Rollout, then each revision (newest first) with its ReplicaSet and
//! the AnalysisRuns of that pod-template hash, as in Argo's `get rollout`.

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::ResourceExt;
use sluice_crds::{AnalysisPhase, AnalysisRun};

use super::{role_words, roles};
use crate::cli::snapshot::{Snapshot, hash_of, revision};
use crate::cli::style::{self, Style, Tone};
use crate::replicaset::SCALE_DOWN_ANNOTATION;
use crate::rollout::analysis::KIND_LABEL;

const HEADERS: [&str; 7] = [
    "NAME",
    "KIND",
    "STATUS",
    "DESIRED",
    "READY",
    "AVAILABLE",
    "INFO",
];

/// One table row; the status cell is coloured after padding.
#[derive(Default)]
struct Row {
    cells: [String; 7],
    tone: Option<Tone>,
}

impl Row {
    fn title(name: String) -> Self {
        let mut row = Row::default();
        row.cells[0] = name;
        row
    }
}

/// A revision and what belongs to it.
struct Revision<'a> {
    number: Option<i64>,
    hash: String,
    replica_set: Option<&'a ReplicaSet>,
    runs: Vec<&'a AnalysisRun>,
}

/// The table, header first.
pub(crate) fn render(s: &Snapshot, style: Style) -> Vec<String> {
    let mut rows = vec![rollout_row(s)];
    let revisions = revisions(s);
    for (i, rev) in revisions.iter().enumerate() {
        let last = i + 1 == revisions.len();
        let (branch, indent) = if last {
            ("└──", "   ")
        } else {
            ("├──", "│  ")
        };
        let title = match rev.number {
            Some(n) => format!("{branch}# revision:{n}"),
            None => format!("{branch}# hash:{}", rev.hash),
        };
        rows.push(Row::title(title));
        let children = rev.replica_set.map(|rs| rs_row(s, rs)).into_iter();
        let children: Vec<Row> = children
            .chain(rev.runs.iter().map(|r| run_row(r)))
            .collect();
        let count = children.len();
        for (j, mut child) in children.into_iter().enumerate() {
            let twig = if j + 1 == count {
                "└──"
            } else {
                "├──"
            };
            child.cells[0] = format!("{indent}{twig}{}", child.cells[0]);
            rows.push(child);
        }
    }
    table(&rows, style)
}

fn revisions(s: &Snapshot) -> Vec<Revision<'_>> {
    let mut revisions: Vec<Revision<'_>> = s
        .replica_sets
        .iter()
        .filter_map(|rs| {
            Some(Revision {
                number: Some(revision(rs)),
                hash: hash_of(&rs.metadata)?.to_owned(),
                replica_set: Some(rs),
                runs: Vec::new(),
            })
        })
        .collect();
    for run in &s.runs {
        let hash = hash_of(&run.metadata).unwrap_or("?");
        match revisions.iter_mut().find(|r| r.hash == hash) {
            Some(rev) => rev.runs.push(run),
            None => revisions.push(Revision {
                number: None,
                hash: hash.to_owned(),
                replica_set: None,
                runs: vec![run],
            }),
        }
    }
    revisions
}

fn rollout_row(s: &Snapshot) -> Row {
    let status = s.rollout.status.clone().unwrap_or_default();
    let (icon, tone) = style::rollout_phase(status.phase);
    let phase = status.phase.map_or("Unknown".into(), |p| format!("{p:?}"));
    Row {
        cells: [
            format!("⟳ {}", s.rollout.name_any()),
            "Rollout".into(),
            format!("{icon} {phase}"),
            s.rollout.spec.desired_replicas().to_string(),
            status.ready_replicas.unwrap_or(0).to_string(),
            status.available_replicas.unwrap_or(0).to_string(),
            String::new(),
        ],
        tone: Some(tone),
    }
}

fn rs_row(s: &Snapshot, rs: &ReplicaSet) -> Row {
    let desired = rs.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1);
    let status = rs.status.as_ref();
    let ready = status.and_then(|st| st.ready_replicas).unwrap_or(0);
    let available = status.and_then(|st| st.available_replicas).unwrap_or(0);
    let (text, tone) = match (desired, available) {
        (0, 0) => ("• ScaledDown", Tone::Dim),
        (d, a) if a >= d => ("✔ Healthy", Tone::Good),
        _ => ("◌ Progressing", Tone::Busy),
    };
    let mut info = role_words(&roles(s, hash_of(&rs.metadata).unwrap_or_default()));
    if let Some(at) = rs
        .annotations()
        .get(SCALE_DOWN_ANNOTATION)
        .filter(|_| desired > 0)
    {
        info.push_str(&format!(", scale-down after {at}"));
    }
    Row {
        cells: [
            format!("⧉ {}", rs.name_any()),
            "ReplicaSet".into(),
            text.into(),
            desired.to_string(),
            ready.to_string(),
            available.to_string(),
            info,
        ],
        tone: Some(tone),
    }
}

fn run_row(run: &AnalysisRun) -> Row {
    let phase = run
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .unwrap_or(AnalysisPhase::Pending);
    let (icon, tone) = style::analysis_phase(phase);
    Row {
        cells: [
            format!("α {}", run.name_any()),
            "AnalysisRun".into(),
            format!("{icon} {phase:?}"),
            String::new(),
            String::new(),
            String::new(),
            run_info(run),
        ],
        tone: Some(tone),
    }
}

/// What the run gates: `step 2`, `background`.
pub(crate) fn gate(run: &AnalysisRun) -> String {
    match run.labels().get(KIND_LABEL).map(String::as_str) {
        Some(step) if step.starts_with("step-") => step.replacen('-', " ", 1),
        Some(other) => other.to_owned(),
        None => "analysis".to_owned(),
    }
}

/// `step 2 · ✔ 3 ✖ 0 ⚠ 0`: what the run gates, and its measurements by verdict.
fn run_info(run: &AnalysisRun) -> String {
    let gate = gate(run);
    let results = run.status.iter().flat_map(|s| &s.metric_results);
    let (mut ok, mut bad, mut unsure) = (0, 0, 0);
    for m in results {
        ok += m.successful;
        bad += m.failed + m.error;
        unsure += m.inconclusive;
    }
    format!("{gate} · ✔ {ok} ✖ {bad} ⚠ {unsure}")
}

fn table(rows: &[Row], style: Style) -> Vec<String> {
    let header = Row {
        cells: HEADERS.map(String::from),
        tone: None,
    };
    let all: Vec<&Row> = std::iter::once(&header).chain(rows).collect();
    let mut widths = [0usize; 7];
    for row in &all {
        for (w, cell) in widths.iter_mut().zip(&row.cells) {
            *w = (*w).max(cell.chars().count());
        }
    }
    all.iter()
        .map(|row| {
            let cells = row
                .cells
                .iter()
                .zip(widths)
                .enumerate()
                .map(|(i, (cell, w))| {
                    let padded = format!("{cell:<w$}");
                    match (i, row.tone) {
                        (2, Some(tone)) => style.paint(tone, &padded),
                        _ => padded,
                    }
                });
            cells.collect::<Vec<_>>().join("  ").trim_end().to_owned()
        })
        .collect()
}
