//! `undo NAME [--to-revision N]`: put an earlier revision's pod template back into
//! `spec.template`, as `kubectl argo rollouts undo` does.
//!
//! The template comes from the revision's ReplicaSet, minus the `rollouts-pod-template-hash`
//! label the controller added and the API server's defaults ([`defaults`]), so it hashes to
//! that ReplicaSet again and the controller reuses it: undo to the stable revision in the
//! middle of a canary is the fast-tracked rollback. When the original cannot be reproduced
//! exactly, the ReplicaSet's template is written as it is (the same pods, as a new revision)
//! and the command says so. Without `--to-revision` the target is the newest revision other
//! than the current one.

mod defaults;

use std::io::Write;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;
use serde_json::Value;
use sluice_crds::Rollout;

use super::client::{Target, is_stale};
use super::snapshot::{Snapshot, hash_of, revision};
use super::{CliError, Exit, Output};
use crate::replicaset::{HASH_LABEL, template_hash};

/// The template to restore.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    pub revision: i64,
    pub template: PodTemplateSpec,
    /// The Rollout already runs this revision: nothing to write.
    pub current: bool,
    /// `template` hashes to the revision's ReplicaSet (it will be reused).
    pub exact: bool,
}

/// One revision as its ReplicaSet records it.
struct Revision<'a> {
    number: i64,
    hash: &'a str,
    template: &'a PodTemplateSpec,
}

/// Picks the revision and rebuilds its template. Unknown revision or none to go back to:
/// NotFound.
pub(crate) fn plan(r: &Rollout, sets: &[ReplicaSet], to: Option<i64>) -> Result<Plan, CliError> {
    let current = template_hash(&r.spec.template);
    let revisions: Vec<Revision<'_>> = sets
        .iter()
        .filter_map(|rs| {
            Some(Revision {
                number: revision(rs),
                hash: hash_of(&rs.metadata)?,
                template: rs.spec.as_ref()?.template.as_ref()?,
            })
        })
        .collect();
    let target = match to {
        Some(n) => revisions.iter().find(|rev| rev.number == n),
        None => revisions
            .iter()
            .filter(|rev| rev.hash != current)
            .max_by_key(|rev| rev.number),
    };
    let Some(target) = target else {
        return Err(not_found(&r.name_any(), to, &revisions));
    };
    let running = revisions.iter().find(|rev| rev.hash == current);
    let (template, exact) = restore(target, &r.spec.template, running.map(|rev| rev.template));
    Ok(Plan {
        revision: target.number,
        template,
        current: target.hash == current,
        exact,
    })
}

fn not_found(name: &str, to: Option<i64>, revisions: &[Revision<'_>]) -> CliError {
    let mut known: Vec<i64> = revisions.iter().map(|rev| rev.number).collect();
    known.sort_unstable_by(|a, b| b.cmp(a));
    let known: Vec<String> = known.iter().map(ToString::to_string).collect();
    let what = to.map_or("no previous revision".to_owned(), |n| {
        format!("no revision {n}")
    });
    let known = if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    };
    CliError::NotFound(format!("rollout {name} has {what} (revisions: {known})"))
}

/// The target's template without the hash label and, if that reproduces its hash, without
/// the API server's defaults. Returns whether the hash matched.
fn restore(
    target: &Revision<'_>,
    spec_template: &PodTemplateSpec,
    running: Option<&PodTemplateSpec>,
) -> (PodTemplateSpec, bool) {
    let raw = unlabelled(target.template);
    let mut candidates = vec![raw.clone()];
    let mut stripped = raw.clone();
    if let (Some(running), Ok(written)) = (running, serde_json::to_value(spec_template)) {
        defaults::strip_like(&mut stripped, &written, &unlabelled(running));
        candidates.push(stripped.clone());
    }
    defaults::strip_known(&mut stripped);
    candidates.push(stripped);
    let matching = candidates
        .into_iter()
        .filter_map(|c| serde_json::from_value::<PodTemplateSpec>(c).ok())
        .find(|t| template_hash(t) == target.hash);
    match matching {
        Some(t) => (t, true),
        None => {
            let raw = serde_json::from_value(raw).unwrap_or_else(|_| target.template.clone());
            (raw, false)
        }
    }
}

/// The template as JSON without the hash label.
fn unlabelled(template: &PodTemplateSpec) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    serde_json::to_value(&t).unwrap_or(Value::Null)
}

/// Reads, plans, writes (again on a conflict), prints the confirmation.
pub async fn run<W: Write>(
    target: &Target,
    name: &str,
    to: Option<i64>,
    out: &mut Output<W>,
) -> Result<Exit, CliError> {
    for attempt in 1.. {
        let Snapshot {
            rollout,
            replica_sets,
            ..
        } = target.snapshot(name).await?;
        let plan = plan(&rollout, &replica_sets, to)?;
        if plan.current {
            out.line(&format!(
                "rollout '{name}' already runs the template of revision {}",
                plan.revision
            ))?;
            return Ok(Exit::Ok);
        }
        let template = serde_json::to_value(&plan.template)
            .map_err(|e| CliError::kube("encoding the template", kube::Error::SerdeError(e)))?;
        let version = rollout.resource_version().unwrap_or_default();
        match target.replace_template(name, &version, &template).await {
            Ok(_) => {
                out.line(&format!(
                    "rollout '{name}' rolled back to revision {}",
                    plan.revision
                ))?;
                if !plan.exact {
                    out.line(&format!(
                        "note: revision {}'s original template could not be rebuilt from its ReplicaSet, so it rolls out as a new revision",
                        plan.revision
                    ))?;
                }
                return Ok(Exit::Ok);
            }
            Err(e) if is_stale(&e) && attempt < 4 => continue,
            Err(e) => return Err(CliError::kube(format!("updating rollout {name}"), e)),
        }
    }
    Ok(Exit::Failed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cli::render::fixtures::rollout;

    /// The template as the user wrote it.
    fn written(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": { "labels": { "app": "web" } },
            "spec": { "containers": [{ "name": "web", "image": image }] },
        }))
        .unwrap()
    }

    /// The ReplicaSet of `image` at `revision`, as stored: hash label and server defaults.
    fn replica_set(revision: i64, image: &str) -> ReplicaSet {
        let hash = template_hash(&written(image));
        serde_json::from_value(json!({
            "metadata": {
                "name": format!("web-{hash}"),
                "labels": { "app": "web", HASH_LABEL: hash },
                "annotations": { "sluice.dev/revision": revision.to_string() },
            },
            "spec": {
                "selector": { "matchLabels": { "app": "web", HASH_LABEL: hash } },
                "template": {
                    "metadata": { "labels": { "app": "web", HASH_LABEL: hash } },
                    "spec": {
                        "containers": [{ "name": "web", "image": image,
                            "imagePullPolicy": "IfNotPresent", "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File" }],
                        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always",
                        "schedulerName": "default-scheduler", "securityContext": {},
                        "terminationGracePeriodSeconds": 30,
                    },
                },
            },
        }))
        .unwrap()
    }

    fn sets() -> Vec<ReplicaSet> {
        vec![
            replica_set(3, "web:3"),
            replica_set(2, "web:2"),
            replica_set(1, "web:1"),
        ]
    }

    fn running(image: &str) -> Rollout {
        let mut r = rollout();
        r.spec.template = written(image);
        r
    }

    #[test]
    fn defaults_to_the_previous_revision_as_it_was_written() {
        let p = plan(&running("web:3"), &sets(), None).unwrap();
        assert_eq!((p.revision, p.current, p.exact), (2, false, true));
        assert_eq!(
            p.template,
            written("web:2"),
            "no hash label, no server defaults"
        );
    }

    #[test]
    fn the_defaults_are_removed_even_without_a_running_replica_set() {
        let only_old = vec![replica_set(1, "web:1")];
        let p = plan(&running("web:2"), &only_old, None).unwrap();
        assert_eq!((p.template, p.exact), (written("web:1"), true));
    }

    #[test]
    fn after_an_undo_the_previous_revision_is_the_newest_other_one() {
        let p = plan(&running("web:2"), &sets(), None).unwrap();
        assert_eq!(p.revision, 3);
    }

    #[test]
    fn to_revision_picks_that_one_or_says_which_exist() {
        let p = plan(&running("web:3"), &sets(), Some(1)).unwrap();
        assert_eq!(p.template, written("web:1"));
        assert!(plan(&running("web:3"), &sets(), Some(3)).unwrap().current);
        let e = plan(&running("web:3"), &sets(), Some(7)).unwrap_err();
        assert_eq!(e.exit(), Exit::Usage);
        assert!(e.to_string().contains("revisions: 3, 2, 1"), "{e}");
    }

    #[test]
    fn a_single_revision_has_nothing_to_go_back_to() {
        let only = vec![replica_set(1, "web:1")];
        let e = plan(&running("web:1"), &only, None).unwrap_err();
        assert!(e.to_string().contains("no previous revision"), "{e}");
    }

    #[test]
    fn a_template_that_cannot_be_rebuilt_is_restored_as_stored() {
        let mut odd = replica_set(1, "web:1");
        let template = odd.spec.as_mut().unwrap().template.as_mut().unwrap();
        template.spec.as_mut().unwrap().hostname = Some("pinned".into());
        let p = plan(&running("web:2"), &[odd], None).unwrap();
        assert!(!p.exact);
        let spec = p.template.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("pinned"));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        let labels = p.template.metadata.unwrap().labels.unwrap();
        assert!(!labels.contains_key(HASH_LABEL));
    }
}
