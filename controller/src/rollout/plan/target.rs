//! The target of a canary step: the weight, canary size and managed routes in force at it.

use crate::rollout::model::{Canary, CanaryScale, Step, ValidatedRollout};

/// The replica counts, weight and managed routes in force at a step.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Target {
    pub weight: u8,
    pub canary_replicas: i32,
    pub header_routes: Vec<crate::traffic::HeaderRoute>,
    pub mirror_routes: Vec<crate::traffic::MirrorRoute>,
}

impl Target {
    /// Folds steps `0..=index`: the last `setWeight`, `setCanaryScale` and route steps win.
    pub fn at(r: &ValidatedRollout, c: &Canary, index: usize) -> Target {
        let mut weight = 0u8;
        let mut scale = CanaryScale::MatchTrafficWeight;
        let mut header_routes: Vec<crate::traffic::HeaderRoute> = Vec::new();
        let mut mirror_routes: Vec<crate::traffic::MirrorRoute> = Vec::new();
        for step in c.steps.iter().take(index + 1) {
            match step {
                Step::SetWeight(w) => weight = *w,
                Step::SetCanaryScale(s) => scale = *s,
                Step::SetHeaderRoute(h) => {
                    upsert(&mut header_routes, h.clone(), h.matches.is_empty())
                }
                Step::SetMirrorRoute(m) => {
                    upsert(&mut mirror_routes, m.clone(), m.matches.is_empty())
                }
                Step::Pause(_) | Step::Analysis => {}
            }
        }
        let canary_replicas = match scale {
            CanaryScale::Replicas(n) => n.clamp(0, r.replicas.max(n)),
            CanaryScale::Weight(w) => share(r.replicas, w),
            CanaryScale::MatchTrafficWeight => share(r.replicas, weight),
        };
        if canary_replicas == 0 {
            // A canary scaled to no pods can take no traffic (invariant 2): its weight and
            // routes would go nowhere, so the step asks for none.
            weight = 0;
            header_routes.clear();
            mirror_routes.clear();
        }
        Target {
            weight,
            canary_replicas,
            header_routes,
            mirror_routes,
        }
    }
}

trait Named {
    fn name(&self) -> &str;
}
impl Named for crate::traffic::HeaderRoute {
    fn name(&self) -> &str {
        &self.name
    }
}
impl Named for crate::traffic::MirrorRoute {
    fn name(&self) -> &str {
        &self.name
    }
}

/// Replaces the route of the same name, or removes it when `remove` is set.
fn upsert<T: Named>(routes: &mut Vec<T>, route: T, remove: bool) {
    routes.retain(|r| r.name() != route.name());
    if !remove {
        routes.push(route);
    }
}

/// `replicas * percent / 100`, rounded up (Argo's rule), so a non-zero weight gets a pod.
pub(crate) fn share(replicas: i32, percent: u8) -> i32 {
    let replicas = i64::from(replicas.max(0));
    let scaled = (replicas * i64::from(percent) + 99) / 100;
    i32::try_from(scaled).unwrap_or(i32::MAX)
}
