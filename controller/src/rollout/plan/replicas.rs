//! ReplicaSet and Service moves both strategies make, and the progress messages about them.

use super::{Draft, Intent};
use crate::rollout::model::{Observed, ReplicaSetView, ValidatedRollout};

/// Creates or scales the ReplicaSet of `hash` to `replicas`, clearing a pending scale-down.
pub(crate) fn ensure_scale(
    r: &ValidatedRollout,
    o: &Observed,
    d: &mut Draft,
    hash: &str,
    replicas: i32,
) {
    match o.replica_set(hash) {
        None => {
            let revision = o.next_revision();
            let pending = d
                .intents
                .iter()
                .any(|i| matches!(i, Intent::CreateReplicaSet { hash: h, .. } if h == hash));
            if !pending {
                d.push(Intent::CreateReplicaSet {
                    hash: hash.to_owned(),
                    replicas,
                    revision,
                });
            }
        }
        Some(rs) => {
            if rs.scale_down_at.is_some() {
                d.push(Intent::SetScaleDownDeadline {
                    name: rs.name.clone(),
                    at: None,
                });
            }
            if rs.replicas != replicas {
                d.push(Intent::ScaleReplicaSet {
                    name: rs.name.clone(),
                    replicas,
                });
            }
            let next = o.next_revision();
            if hash == r.template_hash && rs.revision < next - 1 {
                d.push(Intent::SetRevision {
                    name: rs.name.clone(),
                    revision: next,
                });
            }
        }
    }
}

/// Scales a ReplicaSet to zero (no-op when it already is).
pub(crate) fn ensure_scale_down(d: &mut Draft, rs: &ReplicaSetView) {
    if rs.replicas != 0 {
        d.push(Intent::ScaleReplicaSet {
            name: rs.name.clone(),
            replicas: 0,
        });
    }
}

/// Points `service` at `hash` unless `current` (its selector now) already does.
pub(crate) fn point_service(current: Option<&str>, d: &mut Draft, service: &str, hash: &str) {
    if current != Some(hash) {
        d.push(Intent::PointService {
            service: service.to_owned(),
            hash: hash.to_owned(),
        });
    }
}

pub(crate) fn progressing(reason: &str, message: String) -> (String, String) {
    (reason.to_owned(), message)
}

/// How far the ReplicaSet of `hash` is from `replicas` available pods.
pub(crate) fn waiting_for(o: &Observed, hash: &str, replicas: i32) -> String {
    let available = o.replica_set(hash).map_or(0, |rs| rs.available);
    format!("waiting for ReplicaSet {hash}: {available}/{replicas} available")
}

/// `Progressing` once `hash` serves at full size (`done`), or how far it still is.
pub(crate) fn healthy_or_waiting(
    o: &Observed,
    hash: &str,
    replicas: i32,
    done: bool,
) -> (String, String) {
    if done {
        progressing("NewReplicaSetAvailable", "Rollout is healthy".into())
    } else {
        progressing("ReplicaSetUpdated", waiting_for(o, hash, replicas))
    }
}
