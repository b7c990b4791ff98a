//! Writing a run's status: the whole status in one server-side apply under the field manager
//! `sluice`, skipped when nothing changed.
//!
//! The apply carries the resourceVersion the measurements were taken on. If the run changed
//! meanwhile (the Rollout set `terminate`, or the cache lagged behind an earlier write of ours)
//! the write fails with a conflict and the reconcile runs again on fresh data: measurements
//! taken on a stale view are dropped, never recorded twice.

use chrono::{DateTime, Utc};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;
use sluice_analysis::time::to_api;
use sluice_crds::{API_VERSION, AnalysisPhase, AnalysisRun, AnalysisRunStatus};

use crate::FIELD_MANAGER;

/// Writes `status` unless the stored one is equal. Returns whether a write happened.
pub async fn write(
    api: &Api<AnalysisRun>,
    run: &AnalysisRun,
    status: &AnalysisRunStatus,
) -> Result<bool, kube::Error> {
    if run.status.as_ref() == Some(status) {
        return Ok(false);
    }
    let patch = json!({
        "apiVersion": API_VERSION,
        "kind": "AnalysisRun",
        "metadata": {"name": run.name_any(), "resourceVersion": run.resource_version()},
        "status": status,
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&run.name_any(), &pp, &Patch::Apply(&patch))
        .await?;
    Ok(true)
}

/// The final status of a run whose spec cannot be measured: `Error` with every problem, the
/// measurements taken so far kept.
pub fn invalid(
    previous: &AnalysisRunStatus,
    message: &str,
    now: DateTime<Utc>,
) -> AnalysisRunStatus {
    AnalysisRunStatus {
        phase: Some(AnalysisPhase::Error),
        message: Some(message.to_owned()),
        started_at: previous.started_at.clone().or_else(|| Some(to_api(now))),
        completed_at: Some(to_api(now)),
        ..previous.clone()
    }
}

/// Marks an object that does not decode as an AnalysisRun `Error`, touching only `phase` and
/// `message` (the rest of its status may be what does not decode). Returns whether it wrote.
///
/// A run that already reached a final phase keeps it: a verdict never flips, even when a later
/// change makes the object unreadable.
pub async fn write_undecodable(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    message: &str,
) -> Result<bool, kube::Error> {
    let status = object.data.get("status");
    let text = |field: &str| status.and_then(|s| s.get(field)).and_then(|v| v.as_str());
    let final_phase = text("phase").is_some_and(|p| !matches!(p, "Pending" | "Running"));
    if final_phase {
        return Ok(false);
    }
    let patch = json!({
        "apiVersion": API_VERSION,
        "kind": "AnalysisRun",
        "metadata": {"name": object.name_any()},
        "status": {"phase": "Error", "message": message},
    });
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&object.name_any(), &pp, &Patch::Apply(&patch))
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_crds::MetricResult;

    #[test]
    fn an_invalid_spec_ends_the_run_in_error_and_keeps_what_was_measured() {
        let now = DateTime::from_timestamp(1_790_000_000, 0).expect("time");
        let previous = AnalysisRunStatus {
            phase: Some(AnalysisPhase::Running),
            metric_results: vec![MetricResult {
                name: "up".into(),
                count: 2,
                ..MetricResult::default()
            }],
            ..AnalysisRunStatus::default()
        };
        let s = invalid(&previous, "invalid analysis spec: a; b", now);
        assert_eq!(s.phase, Some(AnalysisPhase::Error));
        assert_eq!(s.message.as_deref(), Some("invalid analysis spec: a; b"));
        assert_eq!(s.metric_results, previous.metric_results);
        assert_eq!(s.completed_at, Some(to_api(now)));
        assert!(s.started_at.is_some());
    }
}
