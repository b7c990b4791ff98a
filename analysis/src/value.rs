//! [`MetricValue`]: what a provider fetched, typed so that "no data" can never pass for a
//! number.
//!
//! A provider turns its answer into a flat list of values (one per series for an instant
//! query, one per point for a range query) and the status is derived from that list, once,
//! here: no values is [`ValueStatus::Empty`], any NaN is [`ValueStatus::NaN`]. Fetch errors are
//! not a status but a [`ProviderError`](crate::ProviderError), so a caller cannot mistake a
//! failed request for an empty answer.

use std::fmt::Write as _;

/// What a provider fetched.
///
/// # Guarantees
/// `sample_count() == values().len()`, and `status()` agrees with `values()`: a value is never
/// `Ok` while holding a NaN, and never `Empty` while holding values.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricValue {
    values: Vec<f64>,
    status: ValueStatus,
}

/// Whether a [`MetricValue`] holds usable numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueStatus {
    /// At least one value, none of them NaN (infinities are numbers and count as data).
    Ok,
    /// The query answered with no series (or no points).
    Empty,
    /// At least one value is NaN, typically a ratio over zero requests (`0/0`). One NaN makes
    /// the whole result NaN: a condition reading `result[1] > x` would otherwise quietly be
    /// false for the missing series, and a failure-only condition would pass.
    NaN,
}

impl MetricValue {
    /// Wraps fetched values, deriving the status.
    pub fn new(values: Vec<f64>) -> Self {
        let status = if values.is_empty() {
            ValueStatus::Empty
        } else if values.iter().any(|v| v.is_nan()) {
            ValueStatus::NaN
        } else {
            ValueStatus::Ok
        };
        MetricValue { values, status }
    }

    /// No data.
    pub fn empty() -> Self {
        MetricValue::new(Vec::new())
    }

    /// The values, in the order the provider returned them.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Number of samples (series of an instant query, points of a range query).
    pub fn sample_count(&self) -> usize {
        self.values.len()
    }

    /// Whether the values are usable.
    pub fn status(&self) -> ValueStatus {
        self.status
    }
}

/// How many values [`format_values`] prints before summarising the rest; keeps measurement
/// messages and status small when a query returns thousands of series.
const MAX_SHOWN: usize = 10;

/// Values as written in a measurement's `value` field: `[0.97]`, `[0.1, NaN, +Inf]`, with at
/// most ten values shown (`[..., +5 more]`).
pub fn format_values(values: &[f64]) -> String {
    let mut out = String::from("[");
    for (i, v) in values.iter().take(MAX_SHOWN).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format_number(*v));
    }
    if values.len() > MAX_SHOWN {
        // Writing to a String cannot fail.
        let _ = write!(out, ", +{} more", values.len() - MAX_SHOWN);
    }
    out.push(']');
    out
}

/// One number the way Prometheus writes it (`NaN`, `+Inf`, `-Inf`, shortest round-trip
/// decimal otherwise).
pub fn format_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        v.to_string()
    }
}

/// The result as named in condition messages: `result[0]=0.91` for one value,
/// `result=[0.91, 0.5]` for several.
pub fn describe_result(values: &[f64]) -> String {
    match values {
        [one] => format!("result[0]={}", format_number(*one)),
        _ => format!("result={}", format_values(values)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_values() {
        assert_eq!(MetricValue::new(vec![]).status(), ValueStatus::Empty);
        assert_eq!(MetricValue::new(vec![0.5]).status(), ValueStatus::Ok);
        assert_eq!(
            MetricValue::new(vec![f64::INFINITY]).status(),
            ValueStatus::Ok
        );
        assert_eq!(
            MetricValue::new(vec![0.5, f64::NAN]).status(),
            ValueStatus::NaN
        );
        assert_eq!(MetricValue::new(vec![1.0, 2.0]).sample_count(), 2);
    }

    #[test]
    fn formats_like_prometheus_and_stays_short() {
        assert_eq!(format_values(&[0.97]), "[0.97]");
        assert_eq!(
            format_values(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.0]),
            "[NaN, +Inf, -Inf, 1]"
        );
        let many: Vec<f64> = (0..15).map(f64::from).collect();
        assert_eq!(
            format_values(&many),
            "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, +5 more]"
        );
        assert_eq!(describe_result(&[0.91]), "result[0]=0.91");
        assert_eq!(describe_result(&[0.91, 0.5]), "result=[0.91, 0.5]");
    }
}
