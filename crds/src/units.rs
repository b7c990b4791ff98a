//! Range-checked numbers used across the API: traffic [`Weight`]s, non-negative [`Seconds`]
//! and [`Count`]s, analysis [`Limit`]s, score [`MetricWeight`]s and [`Percent`] thresholds, and
//! Deployment-style [`IntOrPercent`] surge values.
//!
//! Each type rejects out-of-range values when it is deserialized (so the controller never holds
//! a weight of 120) and publishes the same range in its JSON schema (so the API server rejects
//! the manifest before the controller sees it). The wire format is a plain integer or string,
//! exactly as in Argo Rollouts.

use std::{borrow::Cow, fmt};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A value outside the range its type allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeError {
    /// What kind of value was expected, e.g. "weight".
    pub what: &'static str,
    /// The rejected value, as written.
    pub value: String,
    /// The allowed range in words, e.g. "between 0 and 100".
    pub expected: &'static str,
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} must be {}", self.what, self.value, self.expected)
    }
}

impl std::error::Error for RangeError {}

/// Declares an `i32` newtype with an inclusive lower (and optional upper) bound, checked on
/// deserialization and published as `minimum`/`maximum` in the schema.
macro_rules! bounded_i32 {
    ($(#[$doc:meta])* $name:ident, $what:literal, $min:expr, $max:expr, $expected:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "i32", into = "i32")]
        pub struct $name(i32);

        impl $name {
            /// Smallest allowed value.
            pub const MIN: i32 = $min;

            /// Checks the range; `None` when the value is out of range.
            pub const fn new(value: i32) -> Option<Self> {
                let max: Option<i32> = $max;
                let above = match max {
                    Some(m) => value > m,
                    None => false,
                };
                if value < $min || above { None } else { Some(Self(value)) }
            }

            /// The plain number.
            pub const fn get(self) -> i32 {
                self.0
            }
        }

        impl TryFrom<i32> for $name {
            type Error = RangeError;

            fn try_from(value: i32) -> Result<Self, RangeError> {
                Self::new(value).ok_or_else(|| RangeError {
                    what: $what,
                    value: value.to_string(),
                    expected: $expected,
                })
            }
        }

        impl From<$name> for i32 {
            fn from(value: $name) -> i32 {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                let mut schema = json_schema!({
                    "type": "integer",
                    "format": "int32",
                    "minimum": $min,
                });
                let max: Option<i32> = $max;
                if let Some(max) = max {
                    schema.insert("maximum".into(), max.into());
                }
                schema
            }
        }
    };
}

bounded_i32!(
    /// A share of traffic (or of replicas, or of mirrored requests) in percent, `0..=100`.
    ///
    /// The planner's arithmetic is in whole percent, as in Argo Rollouts; the API server and
    /// deserialization both refuse anything outside `0..=100`, which is safety invariant 1 at
    /// the API boundary.
    Weight, "weight", 0, Some(100), "between 0 and 100"
);

bounded_i32!(
    /// A non-negative number of seconds (delays, deadlines, `minReadySeconds`).
    Seconds, "seconds", 0, None, "0 or more"
);

bounded_i32!(
    /// A non-negative count: replicas, revisions to keep.
    Count, "count", 0, None, "0 or more"
);

bounded_i32!(
    /// A count limit for analysis (`failureLimit`, `inconclusiveLimit`, `consecutiveErrorLimit`).
    ///
    /// `-1` means "no limit": the metric never turns Failed/Inconclusive/Error on this count
    /// alone. Values below `-1` are rejected.
    Limit, "limit", -1, None, "-1 (no limit) or more"
);

bounded_i32!(
    /// A metric's weight in an analysis score (`metrics[].weight`), `1..=100`.
    ///
    /// At least 1 because a metric that should not count belongs in `dryRun`; at most 100 so
    /// one metric cannot drown the others by accident, and the sum over a run's 256 metrics
    /// stays far from overflow.
    MetricWeight, "metric weight", 1, Some(100), "between 1 and 100"
);

bounded_i32!(
    /// A score threshold in percent (`score.pass`, `score.marginal`), `0..=100`.
    Percent, "percentage", 0, Some(100), "between 0 and 100"
);

impl Weight {
    /// No traffic.
    pub const ZERO: Weight = Weight(0);
    /// All traffic.
    pub const FULL: Weight = Weight(100);

    /// The complement, `100 - self`: the stable weight for a given canary weight.
    pub const fn complement(self) -> Weight {
        Weight(100 - self.0)
    }
}

impl Seconds {
    /// As a [`std::time::Duration`].
    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::try_from(self.0).unwrap_or(0))
    }
}

impl MetricWeight {
    /// A metric's weight when `weight` is unset.
    pub const DEFAULT: MetricWeight = MetricWeight(1);
}

impl Limit {
    /// `-1`: no limit.
    pub const UNLIMITED: Limit = Limit(-1);

    /// Whether `count` occurrences exceed this limit (never, for [`Limit::UNLIMITED`]).
    pub fn exceeded_by(self, count: i32) -> bool {
        self.0 >= 0 && count > self.0
    }
}

/// `maxSurge` / `maxUnavailable`: an absolute number of pods (`3`) or a percentage of the
/// desired replicas (`"25%"`), as in a Deployment.
///
/// Wraps [`IntOrString`] so the schema can carry the allowed shapes: a non-negative integer or
/// a string of digits followed by `%`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IntOrPercent(pub IntOrString);

impl IntOrPercent {
    /// Resolves against `total` replicas. Percentages round up when `round_up` (as
    /// `maxSurge` does) and down otherwise (as `maxUnavailable` does). Returns `None` for a
    /// malformed value the schema would have rejected.
    pub fn resolve(&self, total: i32, round_up: bool) -> Option<i32> {
        match &self.0 {
            IntOrString::Int(n) => (*n >= 0).then_some(*n),
            IntOrString::String(s) => {
                let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
                let scaled = pct * i64::from(total);
                let value = if round_up {
                    (scaled + 99) / 100
                } else {
                    scaled / 100
                };
                i32::try_from(value).ok()
            }
        }
    }

    /// Whether this resolves to zero pods for any replica count (`0` or `"0%"`).
    pub fn is_zero(&self) -> bool {
        match &self.0 {
            IntOrString::Int(n) => *n == 0,
            IntOrString::String(s) => {
                s.strip_suffix('%').and_then(|p| p.parse::<u32>().ok()) == Some(0)
            }
        }
    }
}

impl JsonSchema for IntOrPercent {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "IntOrPercent".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // `minimum` applies only to the integer form and `pattern`/`maxLength` only to the
        // string form; the API server's validator checks each keyword against matching types.
        json_schema!({
            "x-kubernetes-int-or-string": true,
            "minimum": 0,
            "maxLength": 5,
            "pattern": "^[0-9]+%$",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_rejects_out_of_range() {
        assert!(serde_json::from_str::<Weight>("101").is_err());
        assert!(serde_json::from_str::<Weight>("-1").is_err());
        assert_eq!(serde_json::from_str::<Weight>("20").unwrap().get(), 20);
        assert_eq!(Weight::new(30).unwrap().complement().get(), 70);
    }

    #[test]
    fn limit_allows_minus_one() {
        assert_eq!(
            serde_json::from_str::<Limit>("-1").unwrap(),
            Limit::UNLIMITED
        );
        assert!(serde_json::from_str::<Limit>("-2").is_err());
        assert!(!Limit::UNLIMITED.exceeded_by(1000));
        assert!(Limit::new(2).unwrap().exceeded_by(3));
    }

    #[test]
    fn metric_weight_and_percent_reject_out_of_range() {
        assert!(serde_json::from_str::<MetricWeight>("0").is_err());
        assert!(serde_json::from_str::<MetricWeight>("101").is_err());
        assert_eq!(
            serde_json::from_str::<MetricWeight>("100").unwrap().get(),
            100
        );
        assert!(serde_json::from_str::<Percent>("-1").is_err());
        assert!(serde_json::from_str::<Percent>("101").is_err());
        assert_eq!(serde_json::from_str::<Percent>("0").unwrap().get(), 0);
    }

    #[test]
    fn int_or_percent_resolves_like_a_deployment() {
        let pct = IntOrPercent(IntOrString::String("25%".into()));
        assert_eq!(pct.resolve(10, true), Some(3));
        assert_eq!(pct.resolve(10, false), Some(2));
        assert!(IntOrPercent(IntOrString::String("0%".into())).is_zero());
        assert_eq!(IntOrPercent(IntOrString::Int(2)).resolve(10, true), Some(2));
    }
}
