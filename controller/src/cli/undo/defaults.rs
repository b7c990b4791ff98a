//! Taking the API server's defaults back out of a ReplicaSet's pod template.
//!
//! The ReplicaSet of a revision holds the Rollout's template *after* the API server defaulted
//! it (`imagePullPolicy`, `terminationMessagePath`, `dnsPolicy`, ...), while the Rollout's own
//! template (a custom resource) is stored as written. The controller names a revision by the
//! hash of the Rollout's template, so writing a ReplicaSet's template back verbatim would hash
//! differently: `undo` to the stable revision would start a new release through every step
//! instead of the fast-tracked rollback to the existing ReplicaSet.
//!
//! These functions remove such defaults; the caller keeps a result only if it hashes to the
//! revision's hash again, so a wrong guess here can never pick the wrong template.

use serde_json::{Map, Value};

/// Removes from `target` what the API server added to `original` when it became `defaulted`:
/// every field absent from `original`, present in `defaulted`, with the same value in
/// `target`. List items are paired by `name` when they have one, else by position.
pub(crate) fn strip_like(target: &mut Value, original: &Value, defaulted: &Value) {
    match (target, defaulted) {
        (Value::Object(t), Value::Object(d)) => {
            let o = original.as_object();
            t.retain(|k, v| o.is_some_and(|o| o.contains_key(k)) || d.get(k) != Some(v));
            for (k, v) in t.iter_mut() {
                if let (Some(ov), Some(dv)) = (o.and_then(|o| o.get(k)), d.get(k)) {
                    strip_like(v, ov, dv);
                }
            }
        }
        (Value::Array(t), Value::Array(d)) => {
            let empty = Vec::new();
            let o = original.as_array().unwrap_or(&empty);
            for (i, item) in t.iter_mut().enumerate() {
                if let (Some(oi), Some(di)) = (pair(o, item, i), pair(d, item, i)) {
                    strip_like(item, oi, di);
                }
            }
        }
        _ => {}
    }
}

fn pair<'a>(list: &'a [Value], item: &Value, index: usize) -> Option<&'a Value> {
    match item.get("name") {
        Some(name) => list.iter().find(|v| v.get("name") == Some(name)),
        None => list.get(index),
    }
}

/// Removes the Kubernetes defaults of a pod template that equal their default value (pod
/// spec, containers, ports, probes).
pub(crate) fn strip_known(template: &mut Value) {
    let Some(spec) = template.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    remove_if(spec, "dnsPolicy", "ClusterFirst");
    remove_if(spec, "restartPolicy", "Always");
    remove_if(spec, "schedulerName", "default-scheduler");
    remove_if(spec, "terminationGracePeriodSeconds", 30);
    remove_if(spec, "securityContext", Value::Object(Map::new()));
    for list in ["containers", "initContainers"] {
        for container in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(c) = container.as_object_mut() {
                strip_container(c);
            }
        }
    }
}

fn strip_container(c: &mut Map<String, Value>) {
    remove_if(c, "terminationMessagePath", "/dev/termination-log");
    remove_if(c, "terminationMessagePolicy", "File");
    remove_if(c, "resources", Value::Object(Map::new()));
    let latest = c.get("image").and_then(Value::as_str).is_some_and(|i| {
        i.ends_with(":latest") || !i.rsplit('/').next().unwrap_or(i).contains(':')
    });
    remove_if(
        c,
        "imagePullPolicy",
        if latest { "Always" } else { "IfNotPresent" },
    );
    for port in c
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(p) = port.as_object_mut() {
            remove_if(p, "protocol", "TCP");
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            remove_if(p, "timeoutSeconds", 1);
            remove_if(p, "periodSeconds", 10);
            remove_if(p, "successThreshold", 1);
            remove_if(p, "failureThreshold", 3);
            if let Some(get) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                remove_if(get, "scheme", "HTTP");
            }
        }
    }
}

fn remove_if(map: &mut Map<String, Value>, key: &str, default: impl Into<Value>) {
    if map.get(key) == Some(&default.into()) {
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaulted(image: &str) -> Value {
        json!({
            "metadata": { "labels": { "app": "web" } },
            "spec": {
                "containers": [{ "name": "web", "image": image, "imagePullPolicy": "IfNotPresent",
                    "resources": {}, "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "ports": [{ "containerPort": 8080, "protocol": "TCP" }] }],
                "dnsPolicy": "ClusterFirst", "restartPolicy": "Always",
                "schedulerName": "default-scheduler", "securityContext": {},
                "terminationGracePeriodSeconds": 30,
            },
        })
    }

    fn written(image: &str) -> Value {
        json!({
            "metadata": { "labels": { "app": "web" } },
            "spec": { "containers": [{ "name": "web", "image": image,
                "ports": [{ "containerPort": 8080 }] }] },
        })
    }

    #[test]
    fn strip_like_removes_what_the_server_added_to_the_current_template() {
        let mut old = defaulted("web:1");
        strip_like(&mut old, &written("web:2"), &defaulted("web:2"));
        assert_eq!(old, written("web:1"));
    }

    #[test]
    fn strip_like_keeps_what_the_user_wrote() {
        let mut current = written("web:2");
        current["spec"]["dnsPolicy"] = json!("ClusterFirst");
        let mut old = defaulted("web:1");
        strip_like(&mut old, &current, &defaulted("web:2"));
        assert_eq!(old["spec"]["dnsPolicy"], "ClusterFirst");
    }

    #[test]
    fn strip_known_removes_common_defaults() {
        let mut t = defaulted("web:1");
        strip_known(&mut t);
        assert_eq!(t, written("web:1"));
        let mut latest = defaulted("web");
        latest["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        strip_known(&mut latest);
        assert_eq!(latest, written("web"));
    }
}
