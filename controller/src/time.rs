//! Conversions between the planner's clock type (`chrono`) and the API's (`jiff`, through
//! k8s-openapi), kept in one place so no stage converts by hand.

use chrono::{DateTime, Utc};
use k8s_openapi::jiff::Timestamp;

/// An API timestamp as a planner time (saturating at the representable range).
pub fn from_api(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().unsigned_abs())
        .unwrap_or_default()
}

/// A planner time as an API timestamp (falls back to the epoch outside jiff's range).
pub fn to_api(t: DateTime<Utc>) -> Timestamp {
    Timestamp::new(
        t.timestamp(),
        i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    )
    .unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_to_the_nanosecond() {
        let t = DateTime::from_timestamp(1_790_000_000, 123_456_789).expect("valid");
        assert_eq!(from_api(to_api(t)), t);
    }
}
