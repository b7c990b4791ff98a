//! Reading the Secrets a run needs, and resolving its arguments.
//!
//! Least privilege: each Secret is read by one GET, by name, in the run's own namespace, once
//! per reconcile that measures; Secrets are never listed or watched, and nothing of a Secret
//! is kept beyond the keys' values for that reconcile. Secret values go into [`Args`] with
//! [`Args::insert_secret`], so they only ever appear masked.
//!
//! A Secret that does not exist (or may not be read) is the user's problem, not a transient
//! one: it becomes the reason of an `Error` measurement of each metric that needs it. Any other
//! API error fails the reconcile, which backs off and retries.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use sluice_analysis::{Args, ArgsError, SecretValues};
use sluice_crds::{Argument, SecretKeyRef, ValueFrom};

/// What one reconcile read: each needed Secret's keys, or why it could not be read.
#[derive(Default)]
pub struct Secrets {
    read: BTreeMap<String, Result<SecretData, String>>,
}

struct SecretData {
    data: BTreeMap<String, Vec<u8>>,
    resource_version: String,
}

/// Reads each Secret in `names` (one GET each) from `namespace`.
pub async fn read(
    client: &kube::Client,
    namespace: &str,
    names: BTreeSet<String>,
) -> Result<Secrets, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut secrets = Secrets::default();
    for name in names {
        let read = match api.get_opt(&name).await {
            Ok(Some(secret)) => Ok(SecretData::from(secret)),
            Ok(None) => Err(format!(
                "Secret {name:?} does not exist in namespace {namespace:?}"
            )),
            Err(kube::Error::Api(e)) if e.code == 403 => Err(format!(
                "Secret {name:?} in namespace {namespace:?} may not be read: {}",
                e.message
            )),
            Err(e) => return Err(e),
        };
        secrets.read.insert(name, read);
    }
    Ok(secrets)
}

impl From<Secret> for SecretData {
    fn from(secret: Secret) -> Self {
        SecretData {
            data: secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect(),
            resource_version: secret.metadata.resource_version.unwrap_or_default(),
        }
    }
}

/// The Secrets the run's arguments name (whether or not a due metric uses them).
pub fn argument_secret_names(args: &[Argument]) -> impl Iterator<Item = &str> {
    args.iter().filter_map(|a| match &a.value_from {
        Some(ValueFrom::SecretKeyRef(r)) if a.value.is_none() => Some(r.name.as_str()),
        _ => None,
    })
}

impl Secrets {
    /// The bytes of one key, or why they are not available.
    fn bytes(&self, r: &SecretKeyRef) -> Result<&[u8], String> {
        let data = match self.read.get(&r.name) {
            Some(Ok(data)) => data,
            Some(Err(problem)) => return Err(problem.clone()),
            // The caller asks only for Secrets it had read; say so rather than panic.
            None => return Err(format!("Secret {:?} was not read", r.name)),
        };
        data.data
            .get(&r.key)
            .map(Vec::as_slice)
            .ok_or_else(|| format!("Secret {:?} has no key {:?}", r.name, r.key))
    }

    /// The values of `refs` for a provider's credentials and CA, and the resource versions
    /// they were read at. `Err` names the first Secret problem.
    pub fn values(&self, refs: &[&SecretKeyRef]) -> Result<(SecretValues, Vec<String>), String> {
        let mut values = SecretValues::new();
        let mut versions = Vec::with_capacity(refs.len());
        for r in refs {
            values.insert(r.name.clone(), r.key.clone(), self.bytes(r)?.to_vec());
            if let Some(Ok(data)) = self.read.get(&r.name) {
                versions.push(format!("{}/{}@{}", r.name, r.key, data.resource_version));
            }
        }
        Ok((values, versions))
    }

    #[cfg(test)]
    pub fn with(mut self, name: &str, data: &[(&str, &str)], version: &str) -> Self {
        let data = data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect();
        let read = Ok(SecretData {
            data,
            resource_version: version.to_owned(),
        });
        self.read.insert(name.to_owned(), read);
        self
    }

    #[cfg(test)]
    pub fn with_problem(mut self, name: &str, problem: &str) -> Self {
        self.read.insert(name.to_owned(), Err(problem.to_owned()));
        self
    }
}

/// A run's arguments with values, and why the others have none.
#[derive(Debug, Default)]
pub struct ResolvedArgs {
    pub args: Args,
    pub(super) problems: BTreeMap<String, String>,
}

/// Resolves each argument of a run: literal values as they are, `secretKeyRef`s from `secrets`.
pub fn resolve_args(arguments: &[Argument], secrets: &Secrets) -> ResolvedArgs {
    let mut resolved = ResolvedArgs::default();
    for arg in arguments {
        let name = arg.name.clone();
        match (&arg.value, &arg.value_from) {
            (Some(value), _) => {
                resolved.args.insert(name, value.clone());
            }
            (None, Some(ValueFrom::SecretKeyRef(r))) => match secret_text(secrets, r) {
                Ok(text) => {
                    resolved.args.insert_secret(name, text);
                }
                Err(problem) => {
                    resolved.problems.insert(name, problem);
                }
            },
            (None, Some(ValueFrom::FieldRef(_) | ValueFrom::PodTemplateHashValue(_))) => {
                let problem = "valueFrom.fieldRef and valueFrom.podTemplateHashValue are resolved \
                               by the Rollout when it creates the run; this run still holds the \
                               reference";
                resolved.problems.insert(name, problem.to_owned());
            }
            (None, None) => {
                resolved.problems.insert(name, "has no value".to_owned());
            }
        }
    }
    resolved
}

fn secret_text(secrets: &Secrets, r: &SecretKeyRef) -> Result<String, String> {
    let bytes = secrets.bytes(r)?;
    let text = std::str::from_utf8(bytes)
        .map_err(|_| format!("Secret {:?} key {:?} is not UTF-8 text", r.name, r.key))?;
    // A Secret made with `echo` ends in a newline that is not part of the value (the analysis
    // crate trims credentials the same way); in a PromQL label value it would match nothing.
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

impl ResolvedArgs {
    /// `message`, or, when `error` is about arguments that could not be resolved, the reason
    /// each of them has no value (a missing Secret says more than "no value was supplied").
    pub fn explain(&self, message: String, error: Option<&ArgsError>) -> String {
        let Some(ArgsError::Unresolved { names }) = error else {
            return message;
        };
        let reasons: Vec<String> = names
            .iter()
            .filter_map(|n| Some(format!("argument {n:?}: {}", self.problems.get(n)?)))
            .collect();
        if reasons.is_empty() {
            message
        } else {
            format!("{message} ({})", reasons.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_analysis::render;

    fn arg(json: serde_json::Value) -> Argument {
        serde_json::from_value(json).expect("argument")
    }

    fn run_args() -> Vec<Argument> {
        vec![
            arg(serde_json::json!({"name": "service", "value": "checkout"})),
            arg(
                serde_json::json!({"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}}),
            ),
            arg(
                serde_json::json!({"name": "gone", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k"}}}),
            ),
            arg(
                serde_json::json!({"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}}),
            ),
        ]
    }

    #[test]
    fn literal_and_secret_arguments_resolve_and_secrets_are_masked() {
        let secrets = Secrets::default()
            .with("s", &[("token", "t0k3n-value\n")], "7")
            .with_problem("missing", "Secret \"missing\" does not exist");
        let resolved = resolve_args(&run_args(), &secrets);
        let r = render(
            "x{s=\"{{args.service}}\",t=\"{{args.token}}\"}",
            &resolved.args,
        )
        .expect("rendered");
        assert_eq!(r.text, "x{s=\"checkout\",t=\"t0k3n-value\"}");
        assert_eq!(r.display, "x{s=\"checkout\",t=\"*****\"}");
        assert!(!format!("{resolved:?}").contains("t0k3n-value"));
    }

    #[test]
    fn an_unresolved_argument_is_explained_by_its_secret_problem() {
        let secrets = Secrets::default().with_problem("missing", "Secret \"missing\" is gone");
        let resolved = resolve_args(&run_args(), &secrets);
        let err = render("{{args.gone}} {{args.hash}} {{args.nope}}", &resolved.args)
            .expect_err("unresolved");
        let message = resolved.explain(err.to_string(), Some(&err));
        assert!(
            message.contains("argument \"gone\": Secret \"missing\" is gone"),
            "{message}"
        );
        assert!(
            message.contains("argument \"hash\": valueFrom.fieldRef"),
            "{message}"
        );
        assert!(message.starts_with("unresolved arguments"), "{message}");
    }

    #[test]
    fn provider_values_name_the_missing_key_and_carry_versions() {
        let secrets = Secrets::default().with("auth", &[("token", "abc")], "42");
        let token = SecretKeyRef {
            name: "auth".into(),
            key: "token".into(),
        };
        let (_, versions) = secrets.values(&[&token]).expect("values");
        assert_eq!(versions, ["auth/token@42"]);
        let other = SecretKeyRef {
            name: "auth".into(),
            key: "password".into(),
        };
        let problem = secrets.values(&[&other]).expect_err("no such key");
        assert_eq!(problem, "Secret \"auth\" has no key \"password\"");
    }

    #[test]
    fn only_secret_references_name_secrets() {
        let args = run_args();
        let names: Vec<&str> = argument_secret_names(&args).collect();
        assert_eq!(names, ["s", "missing"]);
    }
}
