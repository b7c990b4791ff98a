//! Helpers that shape the generated OpenAPI schema into what the API server wants.
//!
//! The types in this crate derive [`schemars::JsonSchema`]; kube-derive turns that into a
//! structural CRD schema. Three things need help on the way:
//!
//! - **CEL rules** (`x-kubernetes-validations`) are attached per type with
//!   `#[schemars(transform = ...)]` functions that call [`add_rules`], so each rule sits next to
//!   the type it guards, with a comment saying what it prevents.
//! - **Externally tagged enums** (`Strategy`, `CanaryStep`, ...) come out of schemars as a
//!   `oneOf` of single-property objects. The API server's error for a failed `oneOf` ("must
//!   validate one and only one schema") names neither the field nor the choices, so
//!   [`exactly_one`] rewrites the enum into an object with every variant as an optional
//!   property plus one CEL rule with a message that lists the choices.
//! - **Embedded Kubernetes types** (`PodTemplateSpec`, `LabelSelector`) carry long upstream
//!   descriptions and unbounded maps; [`strip_descriptions`] and [`bound_string_map`] keep the
//!   CRD small and give the CEL cost estimator the bounds it needs.
//!
//! CEL cost: the API server estimates the worst-case cost of every rule from `maxItems`,
//! `maxLength` and `maxProperties` of what the rule touches, and rejects the CRD when the
//! estimate is too high. Every list and string a rule iterates over therefore has a bound.

use kube::core::Rule;
use schemars::Schema;
use serde_json::{Map, Value};

/// Longest Kubernetes object name (DNS-1123 subdomain).
pub(crate) const MAX_NAME: u32 = 253;
/// Longest Service name, label value or DNS-1123 label.
pub(crate) const MAX_LABEL: u32 = 63;
/// Longest free-text field we accept (queries, conditions, messages).
pub(crate) const MAX_TEXT: u32 = 8192;
/// Most labels a selector or template may carry; bounds the selector/template CEL rule.
pub(crate) const MAX_LABELS: u32 = 64;

/// Appends CEL rules to the schema's `x-kubernetes-validations`.
pub(crate) fn add_rules(schema: &mut Schema, rules: impl IntoIterator<Item = Rule>) {
    for rule in rules {
        kube::core::validate(schema, rule).expect("a CEL rule always serializes");
    }
}

/// Builds a rule with a message; every Sluice rule has one so the user sees which field broke
/// which rule.
pub(crate) fn rule(expr: &str, message: &str) -> Rule {
    Rule::new(expr).message(message)
}

/// Rewrites an externally tagged enum (`oneOf` of `{variant: ...}` objects) into one object
/// whose properties are the variants, plus a CEL rule requiring exactly one of them.
///
/// The YAML shape is unchanged (`{canary: {...}}`); only the validation moves from `oneOf` to
/// CEL so the rejection reads `<message>` instead of "must validate one and only one schema".
/// A variant's doc comment becomes its property's description.
///
/// Panics (at CRD generation time, caught by the crate's tests) if the schema is not such an
/// enum.
pub(crate) fn exactly_one(schema: &mut Schema, message: &str) {
    let obj = schema.ensure_object();
    let Some(Value::Array(variants)) = obj.remove("oneOf") else {
        panic!("exactly_one applied to a schema without oneOf: {obj:?}");
    };
    let mut properties = Map::new();
    for variant in variants {
        let Value::Object(mut variant) = variant else {
            panic!("enum variant schema is not an object");
        };
        let description = variant.remove("description");
        let Some(Value::Object(props)) = variant.remove("properties") else {
            panic!("exactly_one needs newtype or struct variants, found {variant:?}");
        };
        for (name, mut prop) in props {
            if let (Some(desc), Value::Object(p)) = (&description, &mut prop) {
                p.insert("description".into(), desc.clone());
            }
            properties.insert(name, prop);
        }
    }
    let names: Vec<String> = properties.keys().cloned().collect();
    let count = names
        .iter()
        .map(|n| format!("(has(self.{n}) ? 1 : 0)"))
        .collect::<Vec<_>>()
        .join(" + ");
    obj.insert("type".into(), "object".into());
    obj.insert("properties".into(), Value::Object(properties));
    add_rules(schema, [rule(&format!("{count} == 1"), message)]);
}

/// Removes every `description` below this schema. Used on embedded upstream Kubernetes types,
/// whose documentation lives in the Kubernetes API reference and would otherwise make the
/// Rollout CRD several hundred kilobytes.
pub(crate) fn strip_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("description");
            for (key, child) in map.iter_mut() {
                // `properties` maps field names to schemas; a field may be called "description".
                if key == "properties" {
                    if let Value::Object(props) = child {
                        props.values_mut().for_each(strip_descriptions);
                    }
                } else {
                    strip_descriptions(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_descriptions),
        _ => {}
    }
}

/// Bounds a `map[string]string` schema (labels, matchLabels) so CEL rules that iterate over it
/// have a finite estimated cost.
pub(crate) fn bound_string_map(map_schema: &mut Value) {
    let Value::Object(map) = map_schema else {
        return;
    };
    map.insert("maxProperties".into(), MAX_LABELS.into());
    if let Some(Value::Object(values)) = map.get_mut("additionalProperties") {
        values.insert("maxLength".into(), MAX_LABEL.into());
    }
}

/// Walks `path` (a list of property names) down a schema's `properties`.
pub(crate) fn property_mut<'a>(schema: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(schema, |node, name| {
        node.get_mut("properties")?.get_mut(*name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_lists_every_variant() {
        let mut schema: Schema = serde_json::from_value(serde_json::json!({
            "oneOf": [
                {"type": "object", "description": "A", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"type": "object", "properties": {"b": {"type": "string"}}, "required": ["b"]},
            ]
        }))
        .unwrap();
        exactly_one(&mut schema, "must set exactly one of a, b");
        let v = schema.to_value();
        assert_eq!(v["properties"]["a"]["description"], "A");
        assert_eq!(
            v["x-kubernetes-validations"][0]["rule"],
            "(has(self.a) ? 1 : 0) + (has(self.b) ? 1 : 0) == 1"
        );
        assert!(v.get("oneOf").is_none());
    }

    #[test]
    fn strip_keeps_fields_named_description() {
        let mut v = serde_json::json!({
            "description": "x",
            "properties": {"description": {"type": "string", "description": "y"}}
        });
        strip_descriptions(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"properties": {"description": {"type": "string"}}})
        );
    }
}
