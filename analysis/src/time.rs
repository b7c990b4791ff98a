//! Conversions between this crate's clock type (`chrono`) and the API's `Time` (`jiff`, through
//! k8s-openapi), and between API durations and `chrono` deltas, kept in one place.

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

/// An API timestamp as a `chrono` time (the epoch if out of chrono's range, which no API
/// server produces).
pub fn from_api(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().unsigned_abs())
        .unwrap_or_default()
}

/// A `chrono` time as an API timestamp (the epoch if out of jiff's range).
pub fn to_api(t: DateTime<Utc>) -> Time {
    let ts = Timestamp::new(
        t.timestamp(),
        i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    )
    .unwrap_or(Timestamp::UNIX_EPOCH);
    Time(ts)
}

/// The longest delta [`delta`] returns: a thousand years, "never" for any schedule, and short
/// enough that every API time (at most year 9999) plus it is still a date `chrono` can hold.
pub const MAX_DELTA: TimeDelta = TimeDelta::days(365_250);

/// An API duration as a `chrono` delta, saturating at [`MAX_DELTA`].
///
/// The schema bounds a duration's text, not its length: `9999999999h` is valid, and adding it
/// (or `TimeDelta::MAX`) to a date would panic in `chrono`.
pub fn delta(d: sluice_crds::Duration) -> TimeDelta {
    TimeDelta::from_std(d.get()).map_or(MAX_DELTA, |d| d.min(MAX_DELTA))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_to_the_nanosecond() {
        let t = DateTime::from_timestamp(1_790_000_000, 123_456_789).unwrap();
        assert_eq!(from_api(&to_api(t)), t);
    }

    #[test]
    fn durations_convert() {
        assert_eq!(
            delta(sluice_crds::Duration::from_secs(90)),
            TimeDelta::seconds(90)
        );
        let huge: sluice_crds::Duration = "9999999999h".parse().unwrap();
        assert_eq!(delta(huge), MAX_DELTA);
    }
}
