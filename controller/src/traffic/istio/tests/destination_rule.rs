//! DestinationRule subsets: only the hash label of the two named subsets changes.

use serde_json::{Value, json};

use super::fixtures::*;
use crate::traffic::SubsetHashes;
use crate::traffic::istio::destination_rule;

fn rule(subsets: Value) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": { "name": "web", "namespace": NS, "resourceVersion": "7" },
        "spec": { "host": "web", "trafficPolicy": { "tls": { "mode": "ISTIO_MUTUAL" } }, "subsets": subsets },
    })
}

fn subsets() -> Value {
    json!([
        { "name": "legacy", "labels": { "version": "v0" } },
        { "name": "stable", "labels": { "app": "web", "rollouts-pod-template-hash": "aaa" },
          "trafficPolicy": { "loadBalancer": { "simple": "ROUND_ROBIN" } } },
        { "name": "canary" },
    ])
}

fn hashes(stable: &str, canary: &str) -> SubsetHashes {
    SubsetHashes {
        stable: stable.into(),
        canary: canary.into(),
    }
}

fn applied(object: &Value, wanted: &SubsetHashes) -> Value {
    let patch = destination_rule::render(&subset_config(), object, wanted).expect("render");
    let mut out = object.clone();
    json_patch::patch(&mut out, &patch).expect("applies");
    out
}

#[test]
fn subsets_get_the_hash_label_and_keep_everything_else() {
    let before = rule(subsets());
    let after = applied(&before, &hashes("aaa", "bbb"));
    let mut expected = before.clone();
    expected["spec"]["subsets"][2]["labels"] = json!({ "rollouts-pod-template-hash": "bbb" });
    assert_eq!(after, expected);
    assert_eq!(
        destination_rule::observe(&subset_config(), &after).ok(),
        Some(hashes("aaa", "bbb"))
    );
    let again =
        destination_rule::render(&subset_config(), &after, &hashes("aaa", "bbb")).expect("render");
    assert!(again.0.is_empty(), "idempotent");
}

#[test]
fn promotion_moves_the_stable_label_and_an_empty_hash_removes_it() {
    let after = applied(&rule(subsets()), &hashes("bbb", ""));
    assert_eq!(
        after["spec"]["subsets"][1]["labels"],
        json!({ "app": "web", "rollouts-pod-template-hash": "bbb" })
    );
    assert_eq!(
        after["spec"]["subsets"][2],
        json!({ "name": "canary" }),
        "nothing to remove"
    );
    let cleared = applied(&after, &hashes("", ""));
    assert_eq!(
        cleared["spec"]["subsets"][1]["labels"],
        json!({ "app": "web" })
    );
    assert_eq!(
        destination_rule::observe(&subset_config(), &cleared).ok(),
        Some(hashes("", ""))
    );
}

#[test]
fn a_reordered_or_relabelled_subset_fails_the_stale_patch() {
    let before = rule(subsets());
    let patch =
        destination_rule::render(&subset_config(), &before, &hashes("ccc", "bbb")).expect("render");
    let mut reordered = before.clone();
    if let Some(list) = reordered
        .pointer_mut("/spec/subsets")
        .and_then(Value::as_array_mut)
    {
        list.swap(1, 2);
    }
    assert!(json_patch::patch(&mut reordered, &patch).is_err());
    let mut relabelled = before.clone();
    relabelled["spec"]["subsets"][1]["labels"]["rollouts-pod-template-hash"] = json!("zzz");
    assert!(json_patch::patch(&mut relabelled, &patch).is_err());
}

#[test]
fn missing_or_malformed_subsets_are_invalid_references() {
    let error = |object: &Value| {
        destination_rule::render(&subset_config(), object, &hashes("a", "b"))
            .err()
            .map(|e| e.to_string())
    };
    let no_canary = rule(json!([{ "name": "stable" }]));
    assert_eq!(
        error(&no_canary).as_deref(),
        Some("DestinationRule shop/web has no subset named \"canary\"")
    );
    let bad_labels = rule(json!([{ "name": "stable", "labels": ["x"] }, { "name": "canary" }]));
    assert_eq!(
        error(&bad_labels).as_deref(),
        Some("DestinationRule shop/web: spec.subsets[0].labels must be a map of strings")
    );
    assert_eq!(
        error(&json!([])).as_deref(),
        Some("DestinationRule shop/web must be an object")
    );
    let host_level = destination_rule::render(&config(), &rule(subsets()), &hashes("a", "b"))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        host_level.as_deref(),
        Some("subset hashes were requested but no destinationRule is configured")
    );
}
