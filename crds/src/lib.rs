//! Sluice API types (group `sluice.dev`, version `v1alpha1`) and CRD generation.
//!
//! Four kinds, all shaped like Argo Rollouts' so a manifest migrates by changing its
//! `apiVersion`:
//!
//! | Kind | Scope | Rust root type | Spec / status |
//! |---|---|---|---|
//! | `Rollout` | Namespaced | [`Rollout`] | [`RolloutSpec`] / [`RolloutStatus`] |
//! | `AnalysisTemplate` | Namespaced | [`AnalysisTemplate`] | [`AnalysisTemplateSpec`] |
//! | `ClusterAnalysisTemplate` | Cluster | [`ClusterAnalysisTemplate`] | [`AnalysisTemplateSpec`] |
//! | `AnalysisRun` | Namespaced | [`AnalysisRun`] | [`AnalysisRunSpec`] / [`AnalysisRunStatus`] |
//!
//! Alternatives are enums ([`Strategy`], [`CanaryStep`], [`MetricProvider`], [`ValueFrom`],
//! [`Judge`], ...), ranges are newtypes ([`Weight`], [`Seconds`], [`Count`], [`Limit`],
//! [`MetricWeight`], [`Percent`], [`Duration`]) that refuse bad values on deserialization.
//! The same rules are published in the generated CRDs as schema bounds and CEL
//! `x-kubernetes-validations`, so the API server rejects a bad manifest with a message naming
//! the field before Sluice ever sees it.
//!
//! Read and write YAML with [`from_yaml`] / [`to_yaml`] (serde_yaml alone would use YAML tags for
//! enums). This crate has no Kubernetes client; [`generate`] renders the CRD YAML that the `crdgen`
//! binary writes to `crds/` and `charts/sluice/crds/`.

pub mod analysis;
pub mod analysis_run;
pub mod args;
pub mod bluegreen;
pub mod canary;
pub mod cluster_template;
pub mod duration;
pub mod generate;
pub mod judge;
pub mod provider;
pub mod rollout;
pub(crate) mod schema;
pub mod status;
pub mod traffic;
pub mod units;
pub mod yaml;

pub use analysis::{AnalysisTemplate, AnalysisTemplateSpec, Metric, NoDataPolicy, Score};
pub use analysis_run::{
    AnalysisPhase, AnalysisRun, AnalysisRunSpec, AnalysisRunStatus, Measurement, MetricResult,
    RunSummary,
};
pub use args::{
    AnalysisRunArgument, Argument, DryRun, FieldRef, MeasurementRetention, PodTemplateHashValue,
    SecretKeyRef, ValueFrom,
};
pub use bluegreen::BlueGreenStrategy;
pub use canary::{
    AnalysisTemplateRef, BackgroundAnalysis, CanaryStep, CanaryStrategy, PauseStep,
    RolloutAnalysis, SetCanaryScale, SetHeaderRoute, SetMirrorRoute,
};
pub use cluster_template::ClusterAnalysisTemplate;
pub use duration::Duration;
pub use generate::{CrdFile, generate};
pub use judge::Judge;
pub use provider::{MetricProvider, PrometheusAuth, PrometheusMetric};
pub use rollout::{Rollout, RolloutSpec, Strategy};
pub use status::{
    BlueGreenStatus, CanaryStatus, Condition, ConditionStatus, ConditionType, PauseCondition,
    PauseReason, RolloutAnalysisRunStatus, RolloutPhase, RolloutStatus, TrafficWeights,
    WeightDestination,
};
pub use traffic::{
    HeaderRoutingMatch, IstioDestinationRule, IstioTrafficRouting, IstioVirtualService,
    ManagedRoute, RouteMatch, StringMatch, TcpRoute, TlsRoute, TrafficRouting,
};
pub use units::{Count, IntOrPercent, Limit, MetricWeight, Percent, Seconds, Weight};
pub use yaml::{from_yaml, to_yaml};

/// API group of every Sluice kind.
pub const GROUP: &str = "sluice.dev";
/// API version of every Sluice kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every Sluice object.
pub const API_VERSION: &str = "sluice.dev/v1alpha1";
