//! [`Duration`]: the `30s` / `5m` / `1h` / `300` values of pause steps, metric intervals and
//! timeouts.
//!
//! Argo Rollouts accepts a pause duration either as an integer number of seconds or as a Go
//! duration string, and metric intervals as Go duration strings. Sluice accepts both forms
//! everywhere a duration appears, parses them once into a [`std::time::Duration`], and writes
//! them back as a canonical Go duration string (`300` reads back as `"5m"`). Negative durations
//! are rejected, both here and in the schema.

use std::{borrow::Cow, fmt, str::FromStr, time::Duration as StdDuration};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// The schema pattern for the string form: digits (seconds), or one or more
/// `<number><unit>` groups with units `ns`, `us`, `ms`, `s`, `m`, `h`.
pub const DURATION_PATTERN: &str = r"^([0-9]+|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$";

/// A non-negative duration written as integer seconds (`300`) or a Go duration string
/// (`"5m"`, `"1h30m"`, `"500ms"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(StdDuration);

/// Why a duration string was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationError(String);

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid duration {:?}: expected seconds (300) or a duration like 30s, 5m, 1h30m",
            self.0
        )
    }
}

impl std::error::Error for DurationError {}

impl Duration {
    /// Zero length.
    pub const ZERO: Duration = Duration(StdDuration::ZERO);

    /// From whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration(StdDuration::from_secs(secs))
    }

    /// The parsed value.
    pub const fn get(self) -> StdDuration {
        self.0
    }
}

impl From<StdDuration> for Duration {
    fn from(d: StdDuration) -> Self {
        Duration(d)
    }
}

impl From<Duration> for StdDuration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, DurationError> {
        let err = || DurationError(s.to_string());
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(Duration::from_secs).map_err(|_| err());
        }
        let mut rest = s;
        let mut total = StdDuration::ZERO;
        if rest.is_empty() {
            return Err(err());
        }
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(err)?;
            let (num, tail) = rest.split_at(num_len);
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_len);
            let value: f64 = num.parse().map_err(|_| err())?;
            let unit_secs = match unit {
                "ns" => 1e-9,
                "us" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(err()),
            };
            let part = StdDuration::try_from_secs_f64(value * unit_secs).map_err(|_| err())?;
            // Within the schema's 32 characters two parts can still sum past `u64` seconds
            // (`5100000000000000h50000000000000h`); `+=` would panic while deserializing.
            total = total.checked_add(part).ok_or_else(err)?;
            rest = tail;
        }
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    /// Canonical Go-style form without zero components: `5m`, `1h30m`, `1m0.5s` is written
    /// `1m500ms`, zero is `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        let secs = self.0.as_secs();
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        let nanos = self.0.subsec_nanos();
        for (value, unit) in [(h, "h"), (m, "m"), (s, "s")] {
            if value > 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        match nanos {
            0 => Ok(()),
            n if n % 1_000_000 == 0 => write!(f, "{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => write!(f, "{}us", n / 1_000),
            n => write!(f, "{n}ns"),
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl de::Visitor<'_> for Visitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative number of seconds or a duration string like 5m")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom(format!("duration {v} must not be negative")))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for Duration {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // int-or-string: `minimum` guards the integer form, `pattern`/`maxLength` the string
        // form (the API server applies each keyword only to values of its type).
        json_schema!({
            "description": "Seconds as an integer (300) or a duration string such as 30s, 5m, 1h30m.",
            "x-kubernetes-int-or-string": true,
            "minimum": 0,
            "maxLength": 32,
            "pattern": DURATION_PATTERN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> StdDuration {
        s.parse::<Duration>().unwrap().get()
    }

    #[test]
    fn parses_go_durations_and_plain_seconds() {
        assert_eq!(parse("300"), StdDuration::from_secs(300));
        assert_eq!(parse("5m"), StdDuration::from_secs(300));
        assert_eq!(parse("1h30m"), StdDuration::from_secs(5400));
        assert_eq!(parse("1.5h"), StdDuration::from_secs(5400));
        assert_eq!(parse("500ms"), StdDuration::from_millis(500));
        assert_eq!(parse("0"), StdDuration::ZERO);
    }

    #[test]
    fn rejects_garbage_and_negatives() {
        let too_long = "5100000000000000h50000000000000h";
        assert!(too_long.len() <= 32, "the schema's maxLength admits it");
        for bad in ["", "-5m", "5 m", "5d", "m", "1h-1m", "5m3", too_long] {
            assert!(
                bad.parse::<Duration>().is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(serde_json::from_str::<Duration>("-1").is_err());
    }

    #[test]
    fn pattern_agrees_with_parser_on_examples() {
        // The schema pattern is what the API server enforces; keep it in step with FromStr.
        let accepted = ["300", "30s", "5m", "1h30m", "1.5h", "500ms", "10us", "7ns"];
        for s in accepted {
            assert!(s.parse::<Duration>().is_ok(), "{s}");
        }
        assert!(DURATION_PATTERN.contains("ns|us|ms|s|m|h"));
    }

    #[test]
    fn writes_canonical_form() {
        let show = |secs: u64| Duration::from_secs(secs).to_string();
        assert_eq!(show(300), "5m");
        assert_eq!(show(5400), "1h30m");
        assert_eq!(show(3661), "1h1m1s");
        assert_eq!(show(0), "0s");
        assert_eq!(
            Duration::from(StdDuration::from_millis(1500)).to_string(),
            "1s500ms"
        );
    }

    #[test]
    fn round_trips_int_and_string() {
        let from_int: Duration = serde_yaml::from_str("300").unwrap();
        let from_str: Duration = serde_yaml::from_str("5m").unwrap();
        assert_eq!(from_int, from_str);
        let back: Duration =
            serde_yaml::from_str(&serde_yaml::to_string(&from_int).unwrap()).unwrap();
        assert_eq!(back, from_int);
    }
}
