//! Pure core for the DestinationRule of a subset-level split: point the canary and stable subsets
//! at ReplicaSets through the `rollouts-pod-template-hash` label, and read the labels back.
//!
//! Guarantees: only that one label of the two named subsets is written; every other label, the
//! subsets' traffic policies, other subsets and the rest of the object are left as they are. The
//! patch tests the subset names at the indices read and the old label values (or the
//! `resourceVersion` when a label is added), and is empty when the labels already match. An empty
//! hash removes the label, as Argo does.

use serde_json::{Map, Value};

use super::config::{DestinationRuleRef, IstioConfig, POD_TEMPLATE_HASH_LABEL};
use super::json::{self, Guarded, Loc};
use crate::traffic::{SubsetHashes, TrafficError};

/// `DestinationRule namespace/name`: how the object is named in errors and events.
pub fn label(config: &IstioConfig, rule: &DestinationRuleRef) -> String {
    format!("DestinationRule {}/{}", config.namespace, rule.name)
}

/// The JSON patch that labels the subsets with `hashes`; empty when they already are.
pub fn render(
    config: &IstioConfig,
    object: &Value,
    hashes: &SubsetHashes,
) -> Result<json_patch::Patch, TrafficError> {
    let rule = configured(config)?;
    let name = label(config, rule);
    let subsets = Subsets::parse(rule, object, &name)?;
    let mut out = Guarded::default();
    set_hash(&subsets.canary, &hashes.canary, &mut out)?;
    set_hash(&subsets.stable, &hashes.stable, &mut out)?;
    Ok(out.finish(object))
}

/// The hash labels of the canary and stable subsets (empty when a subset has none).
pub fn observe(config: &IstioConfig, object: &Value) -> Result<SubsetHashes, TrafficError> {
    let rule = configured(config)?;
    let name = label(config, rule);
    let subsets = Subsets::parse(rule, object, &name)?;
    Ok(SubsetHashes {
        canary: subsets.canary.hash()?.unwrap_or_default().to_owned(),
        stable: subsets.stable.hash()?.unwrap_or_default().to_owned(),
    })
}

/// The DestinationRule reference, or an error saying the split is host-level.
pub(crate) fn configured(config: &IstioConfig) -> Result<&DestinationRuleRef, TrafficError> {
    config.destination_rule.as_ref().ok_or_else(|| {
        TrafficError::InvalidReference(
            "subset hashes were requested but no destinationRule is configured".to_owned(),
        )
    })
}

/// One named subset found in `spec.subsets`.
struct Subset<'v> {
    loc: Loc<'v>,
    name: &'v str,
    value: &'v Value,
}

struct Subsets<'v> {
    canary: Subset<'v>,
    stable: Subset<'v>,
}

impl<'v> Subsets<'v> {
    fn parse(
        rule: &'v DestinationRuleRef,
        object: &'v Value,
        label: &'v str,
    ) -> Result<Self, TrafficError> {
        let root = Loc::root(label);
        json::object(object, &root)?;
        let spec = object.get("spec").unwrap_or(&Value::Null);
        let loc = root.key("spec");
        let list = json::list(spec, "subsets", &loc)?;
        let find = |wanted: &'v str| find_subset(wanted, list, &loc.key("subsets"));
        Ok(Self {
            canary: find(&rule.canary_subset)?,
            stable: find(&rule.stable_subset)?,
        })
    }
}

fn find_subset<'v>(
    wanted: &'v str,
    list: &'v [Value],
    loc: &Loc<'v>,
) -> Result<Subset<'v>, TrafficError> {
    for (index, value) in list.iter().enumerate() {
        let subset_loc = loc.index(index);
        json::object(value, &subset_loc)?;
        if json::string(value, "name", &subset_loc)? == Some(wanted) {
            return Ok(Subset {
                loc: subset_loc,
                name: wanted,
                value,
            });
        }
    }
    Err(TrafficError::InvalidReference(format!(
        "{} has no subset named \"{wanted}\"",
        loc.object()
    )))
}

impl Subset<'_> {
    fn labels(&self) -> Result<Option<&Map<String, Value>>, TrafficError> {
        match self.value.get("labels") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(labels)) => Ok(Some(labels)),
            Some(_) => Err(self.loc.key("labels").invalid("must be a map of strings")),
        }
    }

    fn hash(&self) -> Result<Option<&str>, TrafficError> {
        let Some(labels) = self.labels()? else {
            return Ok(None);
        };
        match labels.get(POD_TEMPLATE_HASH_LABEL) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(hash)) => Ok(Some(hash)),
            Some(_) => Err(self
                .loc
                .key("labels")
                .key(POD_TEMPLATE_HASH_LABEL)
                .invalid("must be a string")),
        }
    }
}

fn set_hash(subset: &Subset, hash: &str, out: &mut Guarded) -> Result<(), TrafficError> {
    let current = subset.hash()?;
    let wanted = (!hash.is_empty()).then_some(hash);
    if current == wanted {
        return Ok(());
    }
    // Pin the subset: if the list was reordered, index k is no longer this subset.
    out.push(json::test(
        &subset.loc.key("name"),
        Value::from(subset.name),
    ));
    let labels_loc = subset.loc.key("labels");
    match (subset.labels()?, wanted) {
        (None, Some(hash)) => {
            let labels = Map::from_iter([(POD_TEMPLATE_HASH_LABEL.to_owned(), Value::from(hash))]);
            out.set_scalar(&labels_loc, None, Some(Value::Object(labels)));
        }
        (None, None) => {}
        (Some(labels), wanted) => out.set_scalar(
            &labels_loc.key(POD_TEMPLATE_HASH_LABEL),
            labels.get(POD_TEMPLATE_HASH_LABEL),
            wanted.map(Value::from),
        ),
    }
    Ok(())
}
