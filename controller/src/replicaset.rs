//! ReplicaSets of a Rollout: the pod-template hash, building a ReplicaSet for a revision, and
//! reading one back into the planner's view.
//!
//! Labels and annotations follow Argo Rollouts where a user or a tool may look for them
//! (`rollouts-pod-template-hash`), so dashboards and queries keep working after a migration.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use sha2::{Digest, Sha256};

use crate::rollout::model::ReplicaSetView;

/// Label on pods, ReplicaSets, Service selectors and DestinationRule subsets naming a version.
pub const HASH_LABEL: &str = "rollouts-pod-template-hash";
/// Revision number of a ReplicaSet (increases with every new or re-used template).
pub const REVISION_ANNOTATION: &str = "sluice.dev/revision";
/// RFC 3339 time after which the ReplicaSet may be scaled to zero; persisted so a restarted
/// controller neither shortens nor repeats the delay.
pub const SCALE_DOWN_ANNOTATION: &str = "sluice.dev/scale-down-deadline";

/// Alphabet without vowels and look-alike characters, as Kubernetes uses for generated names,
/// so a hash never spells a word and reads unambiguously.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A stable hash of the pod template (10 characters), independent of the Rust version.
///
/// The template is hashed as JSON with `HASH_LABEL` removed, so a ReplicaSet's own template
/// hashes to the same value as the Rollout's.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    // Serialising k8s-openapi types is deterministic: struct fields in order, maps sorted.
    let bytes = serde_json::to_vec(&template).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let mut n = u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]));
    (0..10)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize];
            n /= ALPHABET.len() as u64;
            c as char
        })
        .collect()
}

/// The owner of the ReplicaSets: the Rollout's identity.
#[derive(Clone, Debug)]
pub struct Owner {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

/// Everything needed to build the ReplicaSet of one revision.
#[derive(Clone, Debug)]
pub struct Revision<'a> {
    pub owner: &'a Owner,
    pub selector: &'a LabelSelector,
    pub template: &'a PodTemplateSpec,
    pub min_ready_seconds: i32,
    pub hash: &'a str,
    pub replicas: i32,
    pub revision: i64,
}

/// Builds the ReplicaSet `<rollout>-<hash>`: the template and selector gain the hash label.
pub fn build(rev: &Revision<'_>) -> ReplicaSet {
    let hash_label = || BTreeMap::from([(HASH_LABEL.to_owned(), rev.hash.to_owned())]);
    let mut template = rev.template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .extend(hash_label());
    let mut selector = rev.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .extend(hash_label());
    let mut labels = meta.labels.clone().unwrap_or_default();
    labels.extend(hash_label());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{}", rev.owner.name, rev.hash)),
            namespace: Some(rev.owner.namespace.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                REVISION_ANNOTATION.to_owned(),
                rev.revision.to_string(),
            )])),
            owner_references: Some(vec![owner_reference(rev.owner)]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(rev.replicas),
            min_ready_seconds: Some(rev.min_ready_seconds),
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

fn owner_reference(owner: &Owner) -> OwnerReference {
    OwnerReference {
        api_version: owner.api_version.clone(),
        kind: owner.kind.clone(),
        name: owner.name.clone(),
        uid: owner.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// True when `rs` is controlled by the object with `uid`.
pub fn is_owned_by(rs: &ReplicaSet, uid: &str) -> bool {
    rs.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

/// The planner's view of an owned ReplicaSet; `None` when it has no hash label (not ours to
/// manage by revision).
pub fn view(rs: &ReplicaSet) -> Option<ReplicaSetView> {
    let labels = rs.metadata.labels.as_ref()?;
    let hash = labels.get(HASH_LABEL)?.clone();
    let annotations = rs.metadata.annotations.clone().unwrap_or_default();
    let status = rs.status.as_ref();
    Some(ReplicaSetView {
        name: rs.metadata.name.clone()?,
        hash,
        revision: annotations
            .get(REVISION_ANNOTATION)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        available: status.and_then(|s| s.available_replicas).unwrap_or(0),
        scale_down_at: annotations
            .get(SCALE_DOWN_ANNOTATION)
            .and_then(|v| parse_time(v)),
    })
}

fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]}
        }))
        .expect("valid template")
    }

    #[test]
    fn hash_is_stable_and_changes_with_the_template() {
        let a = template_hash(&template("web:1"));
        assert_eq!(a, template_hash(&template("web:1")));
        assert_ne!(a, template_hash(&template("web:2")));
        assert_eq!(a.len(), 10);
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)));
    }

    #[test]
    fn a_built_replica_set_hashes_like_its_rollout_and_reads_back() {
        let owner = Owner {
            api_version: "sluice.dev/v1alpha1".into(),
            kind: "Rollout".into(),
            name: "web".into(),
            namespace: "ns".into(),
            uid: "u-1".into(),
        };
        let selector = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
            ..LabelSelector::default()
        };
        let t = template("web:1");
        let hash = template_hash(&t);
        let rs = build(&Revision {
            owner: &owner,
            selector: &selector,
            template: &t,
            min_ready_seconds: 0,
            hash: &hash,
            replicas: 3,
            revision: 2,
        });
        let rs_template = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .expect("template");
        assert_eq!(template_hash(&rs_template), hash);
        assert!(is_owned_by(&rs, "u-1"));
        let v = view(&rs).expect("view");
        assert_eq!(
            (v.name.as_str(), v.replicas, v.revision),
            (format!("web-{hash}").as_str(), 3, 2)
        );
        let sel = rs
            .spec
            .expect("spec")
            .selector
            .match_labels
            .expect("labels");
        assert_eq!(sel.get(HASH_LABEL), Some(&hash));
    }
}
