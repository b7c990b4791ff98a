//! `spec.strategy.canary`: the canary strategy, its steps, and the analysis references shared
//! with blue-green.
//!
//! Steps keep Argo Rollouts' YAML shape — a list of single-key maps such as `- setWeight: 20`
//! or `- pause: {duration: 5m}` — but are a Rust enum ([`CanaryStep`]), so the controller
//! matches on the step kind instead of probing six optional fields.

use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use crate::{
    args::{AnalysisRunArgument, DryRun, MeasurementRetention},
    duration::Duration,
    schema::{MAX_NAME, add_rules, exactly_one, rule},
    traffic::{HeaderRoutingMatch, MAX_SERVICE_NAME, RouteMatch, TrafficRouting},
    units::{Count, IntOrPercent, Seconds, Weight},
};

/// Canary strategy: shift traffic to the new version step by step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = canary_rules)]
pub struct CanaryStrategy {
    /// Service that selects only canary pods (Sluice sets its selector to the canary hash).
    /// Required for host-level traffic routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_SERVICE_NAME))]
    pub canary_service: Option<String>,
    /// Service that selects only stable pods. Required for host-level traffic routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_SERVICE_NAME))]
    pub stable_service: Option<String>,
    /// The steps, run in order. No steps: promote as soon as the new version is available.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub steps: Vec<CanaryStep>,
    /// Traffic routing through Istio. Without it the split is by replica count only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
    /// Background analysis, running from `startingStep` until the rollout completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<BackgroundAnalysis>,
    /// Pods above the desired count during the update (`25%` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrPercent>,
    /// Pods that may be unavailable during the update (`25%` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrPercent>,
    /// Delay before scaling down the previous stable ReplicaSet after promotion, so proxies
    /// stop sending to it first (default 30). Needs `trafficRouting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<Seconds>,
    /// Delay before scaling down the canary after an abort, once traffic is back on stable
    /// (default 30; 0 keeps the canary running). Needs `trafficRouting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<Seconds>,
}

fn canary_rules(schema: &mut Schema) {
    let has_routes = "has(self.trafficRouting) && has(self.trafficRouting.managedRoutes)";
    add_rules(
        schema,
        [
            rule(
                "!has(self.canaryService) || !has(self.stableService) || self.canaryService != self.stableService",
                "spec.strategy.canary.canaryService must differ from spec.strategy.canary.stableService",
            ),
            // Host-level split moves weight between two Services; without them there is
            // nothing to route to. Subset-level split (destinationRule) needs no Services.
            rule(
                "!has(self.trafficRouting) || has(self.trafficRouting.istio.destinationRule) || (has(self.canaryService) && has(self.stableService))",
                "spec.strategy.canary.canaryService and stableService are required for host-level traffic routing (trafficRouting.istio without destinationRule)",
            ),
            rule(
                "!has(self.scaleDownDelaySeconds) || has(self.trafficRouting)",
                "spec.strategy.canary.scaleDownDelaySeconds can only be used with trafficRouting",
            ),
            rule(
                "!has(self.abortScaleDownDelaySeconds) || has(self.trafficRouting)",
                "spec.strategy.canary.abortScaleDownDelaySeconds can only be used with trafficRouting",
            ),
            rule(
                "!has(self.steps) || has(self.trafficRouting) || self.steps.all(s, !has(s.setCanaryScale))",
                "spec.strategy.canary.steps[].setCanaryScale can only be used with trafficRouting",
            ),
            // Sluice only adds or removes routes it was told it owns.
            rule(
                &format!(
                    "!has(self.steps) || self.steps.all(s, !has(s.setHeaderRoute) || ({has_routes} && self.trafficRouting.managedRoutes.exists(r, r.name == s.setHeaderRoute.name)))"
                ),
                "spec.strategy.canary.steps[].setHeaderRoute.name must be listed in spec.strategy.canary.trafficRouting.managedRoutes",
            ),
            rule(
                &format!(
                    "!has(self.steps) || self.steps.all(s, !has(s.setMirrorRoute) || ({has_routes} && self.trafficRouting.managedRoutes.exists(r, r.name == s.setMirrorRoute.name)))"
                ),
                "spec.strategy.canary.steps[].setMirrorRoute.name must be listed in spec.strategy.canary.trafficRouting.managedRoutes",
            ),
            rule(
                "!has(self.analysis) || !has(self.analysis.startingStep) || (has(self.steps) && self.analysis.startingStep < size(self.steps))",
                "spec.strategy.canary.analysis.startingStep must be less than the number of steps",
            ),
            // Zero surge and zero unavailability leaves no room to replace a single pod.
            rule(
                "!has(self.maxSurge) || !has(self.maxUnavailable) || !(string(self.maxSurge) in ['0', '0%'] && string(self.maxUnavailable) in ['0', '0%'])",
                "spec.strategy.canary.maxSurge and maxUnavailable must not both be 0",
            ),
        ],
    );
}

/// One canary step. Exactly one kind per list entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = step_rules)]
pub enum CanaryStep {
    /// Send this percentage of traffic to the canary (and scale it to match).
    SetWeight(Weight),
    /// Wait: for `duration`, or until promoted when no duration is given.
    Pause(PauseStep),
    /// Run analysis templates; the step completes when the run succeeds.
    Analysis(RolloutAnalysis),
    /// Scale the canary independently of its traffic weight.
    SetCanaryScale(SetCanaryScale),
    /// Route requests matching headers to the canary (a managed route).
    SetHeaderRoute(SetHeaderRoute),
    /// Mirror a share of matching requests to the canary (a managed route).
    SetMirrorRoute(SetMirrorRoute),
}

fn step_rules(schema: &mut Schema) {
    exactly_one(
        schema,
        "each spec.strategy.canary.steps[] entry must set exactly one of setWeight, pause, analysis, setCanaryScale, setHeaderRoute or setMirrorRoute",
    );
}

/// A pause step. `{}` waits until promoted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    /// How long to wait; unset waits for a manual promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
}

/// How many canary pods to run, independently of traffic. Exactly one form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = canary_scale_rules)]
pub enum SetCanaryScale {
    /// An absolute number of pods.
    Replicas(Count),
    /// A percentage of `spec.replicas`.
    Weight(Weight),
    /// Go back to scaling with the traffic weight (`true`; `false` is accepted and ignored,
    /// as in Argo Rollouts).
    MatchTrafficWeight(bool),
}

fn canary_scale_rules(schema: &mut Schema) {
    exactly_one(
        schema,
        "steps[].setCanaryScale must set exactly one of replicas, weight or matchTrafficWeight",
    );
}

/// A header-based route to the canary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetHeaderRoute {
    /// Route name; must be in `trafficRouting.managedRoutes`.
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub name: String,
    /// Header conditions; a request matching any one of them goes to the canary (as in Argo
    /// Rollouts). Empty removes the route.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub matches: Vec<HeaderRoutingMatch>,
}

/// A mirror route: copies of matching requests go to the canary; responses are discarded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetMirrorRoute {
    /// Route name; must be in `trafficRouting.managedRoutes`.
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub name: String,
    /// Percentage of matching requests mirrored (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Weight>,
    /// Request conditions; a request matching any entry is mirrored. Empty removes the
    /// route.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub matches: Vec<RouteMatch>,
}

/// Analysis templates to run and the arguments to give them (a step, blue-green pre/post
/// promotion, or the base of background analysis).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysis {
    /// Templates combined into one AnalysisRun.
    #[schemars(length(min = 1, max = 16))]
    pub templates: Vec<AnalysisTemplateRef>,
    /// Values for the templates' arguments. Names are unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub args: Vec<AnalysisRunArgument>,
    /// Metrics to run in dry-run mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["metricName"]))]
    pub dry_run: Vec<DryRun>,
    /// Measurement retention per metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["metricName"]))]
    pub measurement_retention: Vec<MeasurementRetention>,
}

/// Background analysis: a [`RolloutAnalysis`] that starts at a given step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundAnalysis {
    /// Templates, args, dry-run and retention, as in a step.
    #[serde(flatten)]
    pub analysis: RolloutAnalysis,
    /// Index of the step at which the run starts (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_step: Option<i32>,
}

/// A reference to an `AnalysisTemplate` (or, with `clusterScope`, a
/// `ClusterAnalysisTemplate`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateRef {
    /// Template name.
    #[schemars(length(min = 1, max = MAX_NAME))]
    pub template_name: String,
    /// Look the name up among ClusterAnalysisTemplates.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scope: bool,
}
