//! Analysis arguments: declared by templates (`spec.args`), supplied by Rollouts
//! (`analysis.args`), and recorded on AnalysisRuns.
//!
//! A value is either literal (`value`) or resolved by the controller when the run starts
//! (`valueFrom`): from a Secret key, from a field of the Rollout, or from a ReplicaSet's
//! pod-template hash so a query can select one version's pods. Secret values are resolved at
//! measurement time and never written into an AnalysisRun.

use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use crate::schema::{MAX_NAME, add_rules, exactly_one, rule};

/// An argument declared by an AnalysisTemplate, or recorded on an AnalysisRun.
///
/// A template argument without `value` or `valueFrom` must be supplied by the Rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = argument_rules)]
pub struct Argument {
    /// Name, referenced in queries as `{{args.<name>}}`.
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub name: String,
    /// Literal value (or default, in a template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub value: Option<String>,
    /// Where the controller reads the value from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
}

fn argument_rules(schema: &mut Schema) {
    add_rules(
        schema,
        [rule(
            "!(has(self.value) && has(self.valueFrom))",
            "args[] must not set both value and valueFrom",
        )],
    );
}

/// An argument a Rollout passes to its analysis templates. Exactly one of `value` or
/// `valueFrom`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = analysis_run_argument_rules)]
pub struct AnalysisRunArgument {
    /// Name of the template argument this supplies.
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub name: String,
    /// Literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub value: Option<String>,
    /// Where the controller reads the value from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
}

fn analysis_run_argument_rules(schema: &mut Schema) {
    add_rules(
        schema,
        [rule(
            "has(self.value) != has(self.valueFrom)",
            "analysis args[] must set exactly one of value or valueFrom",
        )],
    );
}

impl From<AnalysisRunArgument> for Argument {
    fn from(arg: AnalysisRunArgument) -> Self {
        Argument {
            name: arg.name,
            value: arg.value,
            value_from: arg.value_from,
        }
    }
}

/// Where an argument's value comes from. Exactly one source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = value_from_rules)]
pub enum ValueFrom {
    /// A key of a Secret in the Rollout's (or run's) namespace, read at measurement time.
    SecretKeyRef(SecretKeyRef),
    /// A field of the Rollout, e.g. `metadata.labels['app']` or `spec.template.metadata.name`.
    FieldRef(FieldRef),
    /// The pod-template hash of the stable or the latest ReplicaSet.
    PodTemplateHashValue(PodTemplateHashValue),
}

fn value_from_rules(schema: &mut Schema) {
    exactly_one(
        schema,
        "args[].valueFrom must set exactly one of secretKeyRef, fieldRef or podTemplateHashValue",
    );
}

/// A key in a Secret in the same namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub key: String,
}

/// A field of the Rollout, by path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    /// Path such as `metadata.name` or `metadata.labels['app']`.
    #[schemars(length(min = 1, max = 512))]
    pub field_path: String,
}

/// Which ReplicaSet's pod-template hash an argument takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PodTemplateHashValue {
    /// The stable (currently promoted) ReplicaSet.
    Stable,
    /// The newest ReplicaSet (the canary, or the preview in blue-green).
    Latest,
}

/// Marks a metric as dry-run: it is measured and reported but its result never fails the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    /// Metric name, or a regular expression matching metric names (`.*` for all).
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub metric_name: String,
}

/// How many measurements to keep in the AnalysisRun status for a metric.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementRetention {
    /// Metric name, or a regular expression matching metric names.
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub metric_name: String,
    /// Number of most recent measurements kept (the counters always cover all of them).
    #[schemars(range(min = 1, max = 1000))]
    pub limit: i32,
}
