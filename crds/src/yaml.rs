//! YAML in and out of the API types, the way `kubectl` does it: through JSON.
//!
//! serde_yaml 0.9 writes and expects enums as YAML tags (`!setWeight 20`), not as the
//! single-key maps (`setWeight: 20`) that Kubernetes manifests use. Converting via
//! [`serde_json::Value`] gives the Kubernetes shape in both directions, so every YAML reader and
//! writer of Sluice objects (tests, `kubectl sluice lint`, examples) should use these functions
//! instead of calling serde_yaml on the types directly.

use serde::{Serialize, de::DeserializeOwned};

/// Why a YAML document could not be turned into a value of the wanted type.
#[derive(Debug)]
pub enum YamlError {
    /// Not YAML, or not representable as JSON.
    Syntax(serde_yaml::Error),
    /// Valid YAML that does not match the type (the message names the field).
    Shape(serde_json::Error),
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            YamlError::Syntax(e) => write!(f, "invalid YAML: {e}"),
            YamlError::Shape(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for YamlError {}

/// Parses one YAML document into `T`, reading enums as single-key maps.
pub fn from_yaml<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let value: serde_json::Value = serde_yaml::from_str(text).map_err(YamlError::Syntax)?;
    serde_json::from_value(value).map_err(YamlError::Shape)
}

/// Splits a multi-document YAML stream (`---` separated) into JSON values, skipping empty
/// documents.
pub fn documents(text: &str) -> Result<Vec<serde_json::Value>, YamlError> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(doc).map_err(YamlError::Syntax)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Writes `value` as YAML with enums as single-key maps.
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, YamlError> {
    let json = serde_json::to_value(value).map_err(YamlError::Shape)?;
    serde_yaml::to_string(&json).map_err(YamlError::Syntax)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CanaryStep, Weight};

    #[test]
    fn enums_use_the_kubernetes_shape() {
        let step: CanaryStep = from_yaml("setWeight: 20").unwrap();
        assert_eq!(step, CanaryStep::SetWeight(Weight::new(20).unwrap()));
        assert_eq!(to_yaml(&step).unwrap(), "setWeight: 20\n");
    }

    #[test]
    fn documents_skip_empty_ones() {
        let docs = documents("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
    }
}
