//! `Rollout`: a Deployment replacement whose updates go through a canary or blue-green
//! [`Strategy`].
//!
//! The spec follows Argo Rollouts field for field (so a manifest migrates by changing
//! `apiVersion`); the status is in [`crate::status`]. The `scale` subresource lets an HPA
//! target a Rollout like a Deployment.

use k8s_openapi::{
    api::core::v1::PodTemplateSpec, apimachinery::pkg::apis::meta::v1::LabelSelector,
};
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use crate::{
    bluegreen::BlueGreenStrategy,
    canary::CanaryStrategy,
    schema::{add_rules, bound_string_map, exactly_one, property_mut, rule, strip_descriptions},
    status::RolloutStatus,
    units::{Count, Seconds},
};

/// Desired workload and how to roll out changes to it.
// Each `printcolumn(...)` repeats the same keys (`name`, `type_`); that is kube's syntax, not a
// mistake, so clippy's duplicated-attribute lint does not apply.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "Rollout",
    namespaced,
    status = "RolloutStatus",
    shortname = "sro",
    category = "sluice",
    derive = "PartialEq",
    doc = "A Deployment replacement that rolls out changes through canary or blue-green steps, shifting Istio traffic and checking Prometheus metrics.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Desired pods"
    ),
    printcolumn(
        name = "Current",
        type_ = "integer",
        json_path = ".status.replicas",
        description = "Pods selected by the Rollout"
    ),
    printcolumn(
        name = "Up-to-date",
        type_ = "integer",
        json_path = ".status.updatedReplicas",
        description = "Pods of the current template"
    ),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.availableReplicas",
        description = "Available pods"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Healthy, Progressing, Paused or Degraded"
    ),
    printcolumn(
        name = "Weight",
        type_ = "integer",
        json_path = ".status.canary.weights.canary.weight",
        description = "Canary traffic weight"
    ),
    printcolumn(
        name = "Step",
        type_ = "integer",
        json_path = ".status.currentStepIndex",
        description = "Current canary step"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = rollout_spec_rules)]
pub struct RolloutSpec {
    /// Desired pods (default 1). Written by an HPA through the scale subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Count>,
    /// Selects the Rollout's pods; must match the template's labels. Must not be empty.
    #[schemars(schema_with = "selector_schema")]
    pub selector: LabelSelector,
    /// The pods to run. A change starts a rollout.
    #[schemars(schema_with = "template_schema")]
    pub template: PodTemplateSpec,
    /// Seconds a new pod must be ready before it counts as available (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<Seconds>,
    /// Old ReplicaSets kept for rollback (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<Count>,
    /// Seconds without progress before the Rollout is Degraded (default 600). Time spent
    /// paused does not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<Seconds>,
    /// Abort (traffic back to stable) when the progress deadline is exceeded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub progress_deadline_abort: bool,
    /// Pause the rollout where it is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// How updates roll out.
    pub strategy: Strategy,
}

fn rollout_spec_rules(schema: &mut Schema) {
    add_rules(
        schema,
        [
            // An empty selector matches every pod in the namespace, including other apps'.
            rule(
                "(has(self.selector.matchLabels) && size(self.selector.matchLabels) > 0) || (has(self.selector.matchExpressions) && size(self.selector.matchExpressions) > 0)",
                "spec.selector must not be empty: set matchLabels or matchExpressions",
            )
            .field_path(".selector"),
            // ReplicaSets are created from the template with the Rollout's selector; pods that
            // the selector does not match would be orphaned at once.
            rule(
                "!has(self.selector.matchLabels) || self.selector.matchLabels.all(k, has(self.template.metadata) && has(self.template.metadata.labels) && k in self.template.metadata.labels && self.template.metadata.labels[k] == self.selector.matchLabels[k])",
                "spec.template.metadata.labels must contain every spec.selector.matchLabels entry",
            )
            .field_path(".template.metadata.labels"),
            rule(
                "!has(self.progressDeadlineSeconds) || !has(self.minReadySeconds) || self.progressDeadlineSeconds > self.minReadySeconds",
                "spec.progressDeadlineSeconds must be greater than spec.minReadySeconds",
            )
            .field_path(".progressDeadlineSeconds"),
        ],
    );
}

/// Schema of `spec.selector`: the upstream `LabelSelector` with bounded `matchLabels` (for the
/// CEL rule above) and at most 16 expressions, immutable once created.
fn selector_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut value = LabelSelector::json_schema(generator).to_value();
    strip_descriptions(&mut value);
    if let Some(labels) = property_mut(&mut value, &["matchLabels"]) {
        bound_string_map(labels);
    }
    if let Some(exprs) = property_mut(&mut value, &["matchExpressions"]) {
        exprs["maxItems"] = 16.into();
    }
    let mut schema: Schema = value.try_into().expect("LabelSelector schema is an object");
    // As for a Deployment: a new selector would no longer match the existing ReplicaSets' pods,
    // orphaning them while the new ones start, with no traffic step in between.
    add_rules(
        &mut schema,
        [rule(
            "self == oldSelf",
            "spec.selector is immutable; create a new Rollout to change it",
        )],
    );
    schema
}

/// Schema of `spec.template`: the upstream `PodTemplateSpec`, fully typed so the API server
/// validates and prunes the pod spec exactly as for a Deployment, minus the upstream
/// descriptions (they are in the Kubernetes API reference and would make the CRD several
/// hundred kilobytes), with bounded `metadata.labels` for the selector rule.
fn template_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut value = PodTemplateSpec::json_schema(generator).to_value();
    strip_descriptions(&mut value);
    if let Some(labels) = property_mut(&mut value, &["metadata", "labels"]) {
        bound_string_map(labels);
    }
    value["description"] = "Pod template, as in a Deployment.".into();
    value
        .try_into()
        .expect("PodTemplateSpec schema is an object")
}

/// The rollout strategy: exactly one of `canary` or `blueGreen`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = strategy_rules)]
pub enum Strategy {
    /// Shift traffic to the new version step by step.
    Canary(CanaryStrategy),
    /// Run the new version beside the old and switch the active Service at once.
    BlueGreen(BlueGreenStrategy),
}

fn strategy_rules(schema: &mut Schema) {
    exactly_one(
        schema,
        "spec.strategy must set exactly one of canary or blueGreen",
    );
}

impl Strategy {
    /// The canary strategy, if that is the one.
    pub fn canary(&self) -> Option<&CanaryStrategy> {
        match self {
            Strategy::Canary(c) => Some(c),
            Strategy::BlueGreen(_) => None,
        }
    }

    /// The blue-green strategy, if that is the one.
    pub fn blue_green(&self) -> Option<&BlueGreenStrategy> {
        match self {
            Strategy::BlueGreen(b) => Some(b),
            Strategy::Canary(_) => None,
        }
    }
}

impl RolloutSpec {
    /// Desired replicas with the default of 1 applied.
    pub fn desired_replicas(&self) -> i32 {
        self.replicas.map_or(1, Count::get)
    }
}
