//! `spec.strategy.blueGreen`: run the new version beside the old one behind a preview Service,
//! then switch the active Service over in one move.

use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use crate::{
    canary::RolloutAnalysis,
    schema::{add_rules, rule},
    traffic::MAX_SERVICE_NAME,
    units::{Count, Seconds},
};

/// Blue-green strategy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = blue_green_rules)]
pub struct BlueGreenStrategy {
    /// Service that receives production traffic; Sluice points its selector at the active
    /// ReplicaSet.
    #[schemars(length(min = 1, max = MAX_SERVICE_NAME))]
    pub active_service: String,
    /// Service pointed at the new ReplicaSet before promotion, for testing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_SERVICE_NAME))]
    pub preview_service: Option<String>,
    /// Promote automatically once the new ReplicaSet is available (and pre-promotion analysis
    /// passed). When false, the rollout pauses until promoted.
    #[serde(default = "default_true")]
    pub auto_promotion_enabled: bool,
    /// Wait this long after the new ReplicaSet is available before auto-promoting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_seconds: Option<Seconds>,
    /// Replicas of the new version before promotion (default: `spec.replicas`); scaled to full
    /// size just before the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_replica_count: Option<Count>,
    /// Analysis that must pass before the active Service is switched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<RolloutAnalysis>,
    /// Analysis after the switch; failure switches the active Service back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<RolloutAnalysis>,
    /// Delay before scaling down the previous version after the switch (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<Seconds>,
    /// Delay before scaling down the preview ReplicaSet after an abort (default 30; 0 keeps
    /// it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<Seconds>,
}

fn default_true() -> bool {
    true
}

fn blue_green_rules(schema: &mut Schema) {
    add_rules(
        schema,
        [rule(
            "!has(self.previewService) || self.activeService != self.previewService",
            "spec.strategy.blueGreen.activeService must differ from spec.strategy.blueGreen.previewService",
        )],
    );
}

impl BlueGreenStrategy {
    /// A strategy with only the active Service set and Argo Rollouts' defaults elsewhere.
    pub fn new(active_service: impl Into<String>) -> Self {
        Self {
            active_service: active_service.into(),
            preview_service: None,
            auto_promotion_enabled: true,
            auto_promotion_seconds: None,
            preview_replica_count: None,
            pre_promotion_analysis: None,
            post_promotion_analysis: None,
            scale_down_delay_seconds: None,
            abort_scale_down_delay_seconds: None,
        }
    }
}
