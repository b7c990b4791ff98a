//! Test objects: a canary Rollout paused at step 1 of 4 with 50% on the canary (`abc`) and
//! stable `def`, its ReplicaSets and AnalysisRuns.

use k8s_openapi::api::apps::v1::ReplicaSet;
use serde_json::json;
use sluice_crds::{AnalysisRun, Rollout};

/// Paused at step 1/4, weights 50/50 verified, canary `abc`, stable `def`.
pub(crate) fn rollout() -> Rollout {
    serde_json::from_value(json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": { "name": "web", "namespace": "shop", "generation": 2 },
        "spec": {
            "replicas": 3,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "web:2" }] },
            },
            "strategy": { "canary": {
                "canaryService": "web-canary",
                "stableService": "web-stable",
                "trafficRouting": { "istio": { "virtualService": { "name": "web", "routes": ["primary"] } } },
                "steps": [{ "setWeight": 50 }, { "pause": {} }, { "setWeight": 80 }, { "pause": { "duration": "30s" } }],
            } },
        },
        "status": {
            "phase": "Paused",
            "message": "CanaryPauseStep",
            "observedGeneration": 2,
            "currentPodHash": "abc",
            "stableRS": "def",
            "currentStepIndex": 1,
            "replicas": 5, "updatedReplicas": 2, "readyReplicas": 5, "availableReplicas": 5,
            "canary": { "weights": {
                "canary": { "weight": 50, "serviceName": "web-canary", "podTemplateHash": "abc" },
                "stable": { "weight": 50, "serviceName": "web-stable", "podTemplateHash": "def" },
                "verified": true,
            } },
            "controllerPause": true,
            "pauseConditions": [{ "reason": "CanaryPauseStep", "startTime": "2026-01-01T10:00:00Z" }],
            "conditions": [{
                "type": "Progressing", "status": "True", "reason": "RolloutPaused",
                "message": "Rollout is paused", "lastUpdateTime": "2026-01-01T10:00:00Z",
                "lastTransitionTime": "2026-01-01T09:59:00Z",
            }],
        },
    }))
    .expect("a valid Rollout")
}

/// ReplicaSet `name` of the Rollout `web` with `hash`, `revision` and `replicas` (all ready).
pub(crate) fn replica_set(name: &str, hash: &str, revision: i64, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": { "app": "web", "rollouts-pod-template-hash": hash },
            "annotations": { "sluice.dev/revision": revision.to_string() },
            "ownerReferences": [{ "apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
                "name": "web", "uid": "u1", "controller": true }],
        },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": "web", "rollouts-pod-template-hash": hash } },
            "template": {
                "metadata": { "labels": { "app": "web", "rollouts-pod-template-hash": hash } },
                "spec": { "containers": [{ "name": "web", "image": format!("web:{revision}") }] },
            },
        },
        "status": { "replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas },
    }))
    .expect("a valid ReplicaSet")
}

/// A running AnalysisRun of the Rollout `web` for `hash`, gating `kind` (`step-0`,
/// `background`), with one measured metric.
pub(crate) fn run(name: &str, hash: &str, kind: &str) -> AnalysisRun {
    serde_json::from_value(json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {
            "name": name,
            "creationTimestamp": "2026-01-01T10:00:00Z",
            "labels": { "sluice.dev/rollout": "web", "sluice.dev/analysis": kind,
                "rollouts-pod-template-hash": hash },
            "ownerReferences": [{ "apiVersion": "sluice.dev/v1alpha1", "kind": "Rollout",
                "name": "web", "uid": "u1", "controller": true }],
        },
        "spec": { "metrics": [{
            "name": "success-rate",
            "successCondition": "result[0] >= 0.95",
            "provider": { "prometheus": { "address": "http://prometheus:9090", "query": "up" } },
        }] },
        "status": {
            "phase": "Running",
            "metricResults": [{
                "name": "success-rate", "phase": "Running", "count": 2, "successful": 2,
                "measurements": [
                    { "phase": "Successful", "value": "[0.97]" },
                    { "phase": "Successful", "value": "[0.99]", "message": "result[0] >= 0.95 held" },
                ],
            }],
        },
    }))
    .expect("a valid AnalysisRun")
}
