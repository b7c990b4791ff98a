//! Istio `HTTPMatchRequest` evaluation against a simulated request.
//!
//! Only the conditions a simulated request can answer are supported: `headers`,
//! `withoutHeaders`, `uri`, `method` and `authority`. A match entry that uses any other
//! condition (`queryParams`, `sourceLabels`, `port`, ...) never holds: guessing "yes" would send
//! traffic where Envoy would not, which is worse for a test double than sending none.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Map, Value};

/// A simulated request: what the match conditions look at.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    /// The VirtualService host the request was sent to (Istio's `:authority`).
    pub authority: String,
    pub method: String,
    pub path: String,
    /// Header names are lower case, as HTTP/2 and Envoy normalise them.
    pub headers: BTreeMap<String, String>,
}

/// Istio `StringMatch`: one of `exact`, `prefix`, `regex` (RE2, full match); an empty object
/// matches any present value.
#[derive(Clone, Debug)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(Regex),
    Present,
}

impl StringMatch {
    /// Parses a `StringMatch` object; `None` for a shape this simulator does not understand.
    pub fn parse(value: &Value) -> Option<Self> {
        let object = value.as_object()?;
        let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
        if let Some(exact) = text("exact") {
            return Some(Self::Exact(exact));
        }
        if let Some(prefix) = text("prefix") {
            return Some(Self::Prefix(prefix));
        }
        if let Some(pattern) = text("regex") {
            // Envoy's safe_regex must match the whole value, hence the anchors.
            return Regex::new(&format!("^(?:{pattern})$"))
                .ok()
                .map(Self::Regex);
        }
        object.is_empty().then_some(Self::Present)
    }

    pub fn holds(&self, value: &str) -> bool {
        match self {
            Self::Exact(exact) => value == exact,
            Self::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Self::Regex(regex) => regex.is_match(value),
            Self::Present => true,
        }
    }
}

/// One entry of an http route's `match` list: every condition in it must hold.
#[derive(Clone, Debug, Default)]
pub struct MatchRule {
    headers: Vec<(String, StringMatch)>,
    without_headers: Vec<(String, StringMatch)>,
    uri: Option<StringMatch>,
    method: Option<StringMatch>,
    authority: Option<StringMatch>,
    /// Set when the entry uses a condition the simulator cannot evaluate.
    unsupported: bool,
}

impl MatchRule {
    /// Parses one `HTTPMatchRequest`. Never fails: what cannot be understood makes the rule
    /// unsatisfiable (see the module docs).
    pub fn parse(value: &Value) -> Self {
        let Some(object) = value.as_object() else {
            return Self::unsatisfiable();
        };
        let mut rule = Self::default();
        for (key, condition) in object {
            let parsed = match key.as_str() {
                "headers" => header_conditions(condition).map(|h| rule.headers = h),
                "withoutHeaders" => header_conditions(condition).map(|h| rule.without_headers = h),
                "uri" => StringMatch::parse(condition).map(|m| rule.uri = Some(m)),
                "method" => StringMatch::parse(condition).map(|m| rule.method = Some(m)),
                "authority" => StringMatch::parse(condition).map(|m| rule.authority = Some(m)),
                // Labels of the rule, not conditions.
                "name" | "ignoreUriCase" => Some(()),
                _ => None,
            };
            rule.unsupported |= parsed.is_none();
        }
        rule
    }

    fn unsatisfiable() -> Self {
        Self {
            unsupported: true,
            ..Self::default()
        }
    }

    pub fn holds(&self, request: &Request) -> bool {
        !self.unsupported
            && self
                .headers
                .iter()
                .all(|(name, m)| header_holds(request, name, m))
            && !self
                .without_headers
                .iter()
                .any(|(name, m)| header_holds(request, name, m))
            && optional_holds(&self.uri, &request.path)
            && optional_holds(&self.method, &request.method)
            && optional_holds(&self.authority, &request.authority)
    }
}

/// A route's `match` list holds when it is empty or any entry holds (Istio ORs the entries).
pub fn any_holds(rules: &[MatchRule], request: &Request) -> bool {
    rules.is_empty() || rules.iter().any(|rule| rule.holds(request))
}

fn header_conditions(value: &Value) -> Option<Vec<(String, StringMatch)>> {
    let object: &Map<String, Value> = value.as_object()?;
    object
        .iter()
        .map(|(name, m)| Some((name.to_ascii_lowercase(), StringMatch::parse(m)?)))
        .collect()
}

fn header_holds(request: &Request, name: &str, m: &StringMatch) -> bool {
    request
        .headers
        .get(name)
        .is_some_and(|value| m.holds(value))
}

fn optional_holds(m: &Option<StringMatch>, value: &str) -> bool {
    m.as_ref().is_none_or(|m| m.holds(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            authority: "web".to_owned(),
            method: "GET".to_owned(),
            path: "/api/orders".to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn holds(rule: Value, request: &Request) -> bool {
        MatchRule::parse(&rule).holds(request)
    }

    #[test]
    fn string_matches() {
        let parse = |v: Value| StringMatch::parse(&v).unwrap();
        assert!(parse(json!({"exact": "true"})).holds("true"));
        assert!(!parse(json!({"exact": "true"})).holds("truer"));
        assert!(parse(json!({"prefix": "/api"})).holds("/api/orders"));
        assert!(parse(json!({"regex": "tr.e"})).holds("true"));
        assert!(
            !parse(json!({"regex": "tr"})).holds("true"),
            "regex is a full match"
        );
        assert!(parse(json!({})).holds("anything"));
        assert!(StringMatch::parse(&json!({"regex": "("})).is_none());
    }

    #[test]
    fn header_conditions_are_anded_and_case_insensitive_in_the_name() {
        let rule = json!({"headers": {"X-Canary": {"exact": "true"}, "x-user": {"prefix": "qa-"}}});
        assert!(holds(
            rule.clone(),
            &request(&[("x-canary", "true"), ("x-user", "qa-1")])
        ));
        assert!(!holds(rule.clone(), &request(&[("x-canary", "true")])));
        assert!(!holds(rule, &request(&[])));
    }

    #[test]
    fn without_headers_excludes() {
        let rule = json!({"withoutHeaders": {"x-canary": {}}});
        assert!(holds(rule.clone(), &request(&[])));
        assert!(!holds(rule, &request(&[("x-canary", "false")])));
    }

    #[test]
    fn uri_method_authority() {
        let r = request(&[]);
        assert!(holds(
            json!({"uri": {"prefix": "/api"}, "method": {"exact": "GET"}}),
            &r
        ));
        assert!(!holds(json!({"uri": {"exact": "/"}}), &r));
        assert!(holds(json!({"authority": {"exact": "web"}}), &r));
        assert!(holds(json!({"name": "canary", "ignoreUriCase": true}), &r));
    }

    #[test]
    fn unsupported_conditions_never_hold() {
        let r = request(&[("x-canary", "true")]);
        assert!(!holds(json!({"queryParams": {"a": {"exact": "b"}}}), &r));
        assert!(!holds(
            json!({"headers": {"x-canary": {"exact": "true"}}, "port": 80}),
            &r
        ));
        assert!(!holds(json!({"headers": {"x-canary": {"regex": "("}}}), &r));
        assert!(!holds(json!("not an object"), &r));
    }

    #[test]
    fn a_match_list_is_an_or_and_empty_means_always() {
        let rules = [
            MatchRule::parse(&json!({"headers": {"x-canary": {"exact": "true"}}})),
            MatchRule::parse(&json!({"uri": {"prefix": "/api"}})),
        ];
        assert!(any_holds(&rules, &request(&[])));
        assert!(any_holds(&rules[..1], &request(&[("x-canary", "true")])));
        assert!(!any_holds(&rules[..1], &request(&[])));
        assert!(any_holds(&[], &request(&[])));
    }
}
