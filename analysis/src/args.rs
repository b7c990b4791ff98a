//! `{{args.<name>}}` substitution in queries, addresses and header values, with secret values
//! masked in everything meant for display.
//!
//! The controller resolves each argument of an AnalysisRun (literal values, Rollout fields,
//! pod-template hashes, Secret keys) into an [`Args`] map, marking the ones read from Secrets
//! with [`Args::insert_secret`]. [`render`] then produces two strings per template: the text
//! sent to the provider and a display form where each secret value is `*****`. Only the
//! display form may go into status, messages, events or logs; [`Args::redact`] masks secret
//! values in any other text (such as an error message that quotes a URL).
//!
//! Placeholders are strict: an unknown argument or any other `{{...}}` tag is an error naming
//! it, never left in the query as literal text.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

/// What a secret value looks like in displayed text.
pub const MASK: &str = "*****";

/// Resolved argument values by name, some of them secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Args {
    values: BTreeMap<String, String>,
    secret_names: BTreeSet<String>,
}

impl Args {
    /// No arguments.
    pub fn new() -> Self {
        Args::default()
    }

    /// Adds (or replaces) a value that may be displayed.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let name = name.into();
        self.secret_names.remove(&name);
        self.values.insert(name, value.into());
        self
    }

    /// Adds (or replaces) a value that must never be displayed (read from a Secret).
    pub fn insert_secret(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> &mut Self {
        let name = name.into();
        self.secret_names.insert(name.clone());
        self.values.insert(name, value.into());
        self
    }

    /// Builder form of [`Args::insert`].
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    /// Builder form of [`Args::insert_secret`].
    pub fn with_secret(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert_secret(name, value);
        self
    }

    /// The value of `name`, if supplied.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether `name` holds a secret value.
    pub fn is_secret(&self, name: &str) -> bool {
        self.secret_names.contains(name)
    }

    /// The secret values, for masking text produced elsewhere.
    pub fn secret_values(&self) -> impl Iterator<Item = &str> {
        self.secret_names
            .iter()
            .filter_map(|n| self.values.get(n))
            .map(String::as_str)
    }

    /// `text` with every occurrence of a secret value replaced by [`MASK`].
    ///
    /// Longer secrets are masked first so a secret containing another is masked whole. Empty
    /// secret values are ignored (they would match everywhere). Over-masking a short secret
    /// that also occurs as ordinary text is accepted: showing less is the safe side.
    pub fn redact(&self, text: &str) -> String {
        redact_with(text, self.secret_values())
    }
}

/// `text` with each of `secrets` replaced by [`MASK`]; see [`Args::redact`].
pub fn redact_with<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut secrets: Vec<&str> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for secret in secrets {
        out = out.replace(secret, MASK);
    }
    out
}

impl fmt::Debug for Args {
    /// Secret values are masked, so `Args` can be logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.values {
            let shown = if self.is_secret(name) { MASK } else { value };
            map.entry(name, &shown);
        }
        map.finish()
    }
}

/// A rendered template: what to send and what to show.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    /// With every argument substituted; may contain secret values. Send it, never show it.
    pub text: String,
    /// With secret arguments replaced by [`MASK`]; safe for status, events and logs.
    pub display: String,
}

impl fmt::Debug for Rendered {
    /// Shows only the display form, so a `Rendered` can be logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendered")
            .field("display", &self.display)
            .finish_non_exhaustive()
    }
}

/// Why a template could not be rendered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// Placeholders name arguments that were not supplied.
    #[error("unresolved arguments {}: no value was supplied for them", list_placeholders(.names))]
    Unresolved {
        /// The missing argument names, sorted.
        names: Vec<String>,
    },
    /// A `{{...}}` tag that is not `{{args.<name>}}`.
    #[error(
        "unsupported placeholder {{{{{tag}}}}} at byte {offset}: only {{{{args.<name>}}}} is substituted"
    )]
    UnknownPlaceholder {
        /// The text between the braces.
        tag: String,
        /// Byte offset of the opening braces.
        offset: usize,
    },
    /// `{{` without a closing `}}`.
    #[error("unclosed placeholder at byte {offset}: '{{{{' without a matching '}}}}'")]
    Unclosed {
        /// Byte offset of the opening braces.
        offset: usize,
    },
}

fn list_placeholders(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{{{{args.{n}}}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Substitutes every `{{args.<name>}}` (spaces inside the braces allowed) in `template`.
///
/// # Guarantees
/// - `Rendered::display` never contains the value of a secret argument.
/// - Every missing argument is reported at once, sorted, in [`ArgsError::Unresolved`].
/// - Substituted values are not scanned again, so a value containing `{{` is inserted as is.
pub fn render(template: &str, args: &Args) -> Result<Rendered, ArgsError> {
    let mut text = String::with_capacity(template.len());
    let mut display = String::with_capacity(template.len());
    let mut missing = BTreeSet::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        let (literal, after) = rest.split_at(start);
        text.push_str(literal);
        display.push_str(literal);
        let open_at = offset + start;
        let end = after
            .find("}}")
            .ok_or(ArgsError::Unclosed { offset: open_at })?;
        let tag = after[2..end].trim();
        let name = arg_name(tag).ok_or_else(|| ArgsError::UnknownPlaceholder {
            tag: tag.to_string(),
            offset: open_at,
        })?;
        match args.get(name) {
            Some(value) => {
                text.push_str(value);
                display.push_str(if args.is_secret(name) { MASK } else { value });
            }
            None => {
                missing.insert(name.to_string());
            }
        }
        rest = &after[end + 2..];
        offset = open_at + end + 2;
    }
    if !missing.is_empty() {
        return Err(ArgsError::Unresolved {
            names: missing.into_iter().collect(),
        });
    }
    text.push_str(rest);
    display.push_str(rest);
    Ok(Rendered { text, display })
}

/// The argument name of an `args.<name>` tag; `None` for any other tag.
fn arg_name(tag: &str) -> Option<&str> {
    let name = tag.strip_prefix("args.")?.trim();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> Args {
        Args::new()
            .with("service", "checkout")
            .with("hash", "5d8f9c")
            .with_secret("token", "s3cr3t")
    }

    #[test]
    fn substitutes_and_masks_secrets_in_display_only() {
        let r = render(
            "sum(rate(x{svc=\"{{args.service}}\",h=\"{{ args.hash }}\",t=\"{{args.token}}\"}[1m]))",
            &args(),
        )
        .unwrap();
        assert_eq!(
            r.text,
            "sum(rate(x{svc=\"checkout\",h=\"5d8f9c\",t=\"s3cr3t\"}[1m]))"
        );
        assert_eq!(
            r.display,
            "sum(rate(x{svc=\"checkout\",h=\"5d8f9c\",t=\"*****\"}[1m]))"
        );
        assert!(!format!("{r:?}").contains("s3cr3t"));
    }

    #[test]
    fn reports_every_missing_argument() {
        let err = render("{{args.b}} {{args.a}} {{args.service}} {{args.b}}", &args()).unwrap_err();
        assert_eq!(
            err,
            ArgsError::Unresolved {
                names: vec!["a".into(), "b".into()]
            }
        );
        assert_eq!(
            err.to_string(),
            "unresolved arguments {{args.a}}, {{args.b}}: no value was supplied for them"
        );
    }

    #[test]
    fn rejects_other_placeholders_and_unclosed_braces() {
        assert_eq!(
            render("up{x=\"{{inputs.y}}\"}", &args()).unwrap_err(),
            ArgsError::UnknownPlaceholder {
                tag: "inputs.y".into(),
                offset: 6
            }
        );
        assert!(matches!(
            render("{{args.}}", &args()),
            Err(ArgsError::UnknownPlaceholder { .. })
        ));
        assert_eq!(
            render("up {{args.service", &args()).unwrap_err(),
            ArgsError::Unclosed { offset: 3 }
        );
        assert!(
            render("{{nope}}", &args())
                .unwrap_err()
                .to_string()
                .contains("only {{args.<name>}} is substituted")
        );
    }

    #[test]
    fn plain_text_and_single_braces_pass_through() {
        let r = render("sum by (pod) (up{job=\"x\"})", &Args::new()).unwrap();
        assert_eq!(r.text, r.display);
        assert_eq!(r.text, "sum by (pod) (up{job=\"x\"})");
    }

    #[test]
    fn values_are_not_rescanned() {
        let a = Args::new().with("x", "{{args.y}}");
        assert_eq!(render("{{args.x}}", &a).unwrap().text, "{{args.y}}");
    }

    #[test]
    fn redact_masks_secret_values_anywhere() {
        let a = Args::new()
            .with_secret("short", "abc")
            .with_secret("long", "abcdef")
            .with_secret("empty", "")
            .with("public", "abc-public");
        assert_eq!(
            a.redact("url http://h/?k=abcdef&j=abc"),
            "url http://h/?k=*****&j=*****"
        );
        assert!(!format!("{a:?}").contains("abcdef"));
        assert!(format!("{a:?}").contains("abc-public"));
    }

    #[test]
    fn a_public_value_replacing_a_secret_is_shown_again() {
        let mut a = Args::new().with_secret("x", "hidden");
        a.insert("x", "shown");
        assert!(!a.is_secret("x"));
        assert_eq!(render("{{args.x}}", &a).unwrap().display, "shown");
    }
}
