//! Total helpers for reading user-owned mesh objects as JSON and writing guarded JSON patches.
//!
//! VirtualServices and DestinationRules belong to the user and may hold anything the API server
//! accepted (and, through `preserveUnknownFields`, more). They are read as untyped JSON so that
//! nothing Sluice does not understand is ever dropped, and every accessor here returns a typed
//! [`TrafficError::InvalidReference`] naming the object and the JSON path instead of panicking.

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation, TestOperation};
use serde_json::{Map, Value};

use crate::traffic::TrafficError;

/// A location inside one named object: the path of patch operations and of error messages.
#[derive(Clone, Debug)]
pub(crate) struct Loc<'a> {
    /// Human name of the object, e.g. `VirtualService shop/web`.
    object: &'a str,
    tokens: Vec<String>,
}

impl<'a> Loc<'a> {
    pub(crate) fn root(object: &'a str) -> Self {
        Self {
            object,
            tokens: Vec::new(),
        }
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        let mut child = self.clone();
        child.tokens.push(key.to_owned());
        child
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        let mut child = self.clone();
        child.tokens.push(index.to_string());
        child
    }

    pub(crate) fn object(&self) -> &'a str {
        self.object
    }

    pub(crate) fn pointer(&self) -> PointerBuf {
        PointerBuf::from_tokens(self.tokens.iter().map(|token| Token::new(token.as_str())))
    }

    /// `spec.http[0].route[1].weight`: how users write paths in kubectl and in docs.
    pub(crate) fn dotted(&self) -> String {
        let mut out = String::new();
        for token in &self.tokens {
            if token.bytes().all(|b| b.is_ascii_digit()) && !out.is_empty() {
                out.push_str(&format!("[{token}]"));
            } else {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(token);
            }
        }
        out
    }

    /// An [`TrafficError::InvalidReference`] about the value at this location.
    pub(crate) fn invalid(&self, problem: &str) -> TrafficError {
        let message = match self.dotted() {
            path if path.is_empty() => format!("{} {problem}", self.object),
            path => format!("{}: {path} {problem}", self.object),
        };
        TrafficError::InvalidReference(message)
    }
}

/// The object at `loc`, or an error when it is something else.
pub(crate) fn object<'v>(
    value: &'v Value,
    loc: &Loc,
) -> Result<&'v Map<String, Value>, TrafficError> {
    value
        .as_object()
        .ok_or_else(|| loc.invalid("must be an object"))
}

/// The list under `key`; absent or `null` reads as empty (Istio treats them the same).
pub(crate) fn list<'v>(
    value: &'v Value,
    key: &str,
    loc: &Loc,
) -> Result<&'v [Value], TrafficError> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(loc.key(key).invalid("must be a list")),
    }
}

/// The string under `key`, if any.
pub(crate) fn string<'v>(
    value: &'v Value,
    key: &str,
    loc: &Loc,
) -> Result<Option<&'v str>, TrafficError> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(loc.key(key).invalid("must be a string")),
    }
}

/// The non-negative integer under `key`, if any (ports). Accepts `8080` and `8080.0`.
pub(crate) fn unsigned(value: &Value, key: &str, loc: &Loc) -> Result<Option<u64>, TrafficError> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(number) => whole_number(number)
            .map(Some)
            .ok_or_else(|| loc.key(key).invalid("must be a non-negative integer")),
    }
}

/// A route weight: an integer 0..=100, or absent.
pub(crate) fn weight(entry: &Value, loc: &Loc) -> Result<Option<u8>, TrafficError> {
    match entry.get("weight") {
        None | Some(Value::Null) => Ok(None),
        Some(number) => whole_number(number)
            .and_then(|w| u8::try_from(w).ok())
            .filter(|w| *w <= 100)
            .map(Some)
            .ok_or_else(|| {
                loc.key("weight")
                    .invalid("must be an integer between 0 and 100")
            }),
    }
}

fn whole_number(value: &Value) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    // Some writers (Argo among them) store weights as floats; 10.0 is still 10.
    let float = value.as_f64()?;
    let is_whole = float >= 0.0 && float.fract() == 0.0 && float <= u32::MAX as f64;
    is_whole.then_some(float as u64)
}

pub(crate) fn test(loc: &Loc, value: Value) -> PatchOperation {
    PatchOperation::Test(TestOperation {
        path: loc.pointer(),
        value,
    })
}

/// `add` creates a missing object member and replaces an existing one (RFC 6902 4.1); on a list
/// index it inserts before that index.
pub(crate) fn add(loc: &Loc, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: loc.pointer(),
        value,
    })
}

pub(crate) fn replace(loc: &Loc, value: Value) -> PatchOperation {
    PatchOperation::Replace(ReplaceOperation {
        path: loc.pointer(),
        value,
    })
}

pub(crate) fn remove(loc: &Loc) -> PatchOperation {
    PatchOperation::Remove(RemoveOperation {
        path: loc.pointer(),
    })
}

/// Guards for one patch: `test` operations that must hold for the writes to apply.
///
/// Scalars Sluice replaces are tested directly (the route name, the destination host, the old
/// weight), so an unrelated edit elsewhere in the object does not force a retry. Where there is no
/// scalar to test (a weight or label being added, routes being inserted or removed) the patch is
/// guarded by the whole object's `resourceVersion` instead.
#[derive(Debug, Default)]
pub(crate) struct Guarded {
    ops: Vec<PatchOperation>,
    needs_resource_version: bool,
}

impl Guarded {
    pub(crate) fn push(&mut self, op: PatchOperation) {
        self.ops.push(op);
    }

    pub(crate) fn needs_resource_version(&mut self) {
        self.needs_resource_version = true;
    }

    /// Sets the scalar at `loc` from `current` to `wanted` (removing it when `wanted` is `None`),
    /// testing the old value first; nothing when they already agree.
    pub(crate) fn set_scalar(&mut self, loc: &Loc, current: Option<&Value>, wanted: Option<Value>) {
        match (current, wanted) {
            (Some(old), Some(new)) if *old == new => {}
            (None, None) => {}
            (Some(old), Some(new)) => {
                self.push(test(loc, old.clone()));
                self.push(replace(loc, new));
            }
            (Some(old), None) => {
                self.push(test(loc, old.clone()));
                self.push(remove(loc));
            }
            (None, Some(new)) => {
                self.needs_resource_version();
                self.push(add(loc, new));
            }
        }
    }

    /// True when at least one operation changes something (tests alone change nothing).
    pub(crate) fn writes(&self) -> bool {
        self.ops
            .iter()
            .any(|op| !matches!(op, PatchOperation::Test(_)))
    }

    /// The final patch; empty when nothing is written, so an idle object costs no write.
    pub(crate) fn finish(self, object: &Value) -> json_patch::Patch {
        if !self.writes() {
            return json_patch::Patch(Vec::new());
        }
        let mut ops = Vec::with_capacity(self.ops.len() + 1);
        // Objects read from the API server always carry a resourceVersion; a hand-built one
        // without it has nothing to guard with.
        let version = object.pointer("/metadata/resourceVersion");
        if let (true, Some(version)) = (self.needs_resource_version, version) {
            let loc = Loc::root("").key("metadata").key("resourceVersion");
            ops.push(test(&loc, version.clone()));
        }
        ops.extend(self.ops);
        json_patch::Patch(ops)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paths_read_like_kubectl_and_point_like_rfc_6901() {
        let loc = Loc::root("VirtualService shop/web")
            .key("spec")
            .key("http")
            .index(2)
            .key("a/b");
        assert_eq!(loc.dotted(), "spec.http[2].a/b");
        assert_eq!(loc.pointer().as_str(), "/spec/http/2/a~1b");
    }

    #[test]
    fn weights_accept_integers_and_whole_floats_only() {
        let loc = Loc::root("VS x");
        assert_eq!(weight(&json!({"weight": 10}), &loc).ok(), Some(Some(10)));
        assert_eq!(weight(&json!({"weight": 10.0}), &loc).ok(), Some(Some(10)));
        assert_eq!(weight(&json!({}), &loc).ok(), Some(None));
        for bad in [json!(10.5), json!(-1), json!(101), json!("10"), json!([10])] {
            let err = weight(&json!({ "weight": bad }), &loc)
                .err()
                .map(|e| e.to_string());
            assert_eq!(
                err.as_deref(),
                Some("VS x: weight must be an integer between 0 and 100")
            );
        }
    }

    #[test]
    fn an_unchanged_scalar_writes_nothing() {
        let mut guarded = Guarded::default();
        let loc = Loc::root("x").key("w");
        guarded.set_scalar(&loc, Some(&json!(5)), Some(json!(5)));
        guarded.set_scalar(&loc, None, None);
        assert!(guarded.finish(&json!({})).0.is_empty());
    }
}
