use std::time::Duration;

use super::close;
use crate::judge::{Counts, NoData, Phase, SloConfig, SloWindow, WindowCounts, slo};

fn fast_and_slow() -> SloConfig {
    let window = |long, short, burn_rate| SloWindow {
        long: Duration::from_secs(long),
        short: Duration::from_secs(short),
        burn_rate,
    };
    SloConfig::new(
        99.5,
        vec![window(3600, 300, 14.4), window(21_600, 1800, 6.0)],
        50,
    )
    .unwrap()
}

fn counts(long: (f64, f64), short: (f64, f64)) -> WindowCounts {
    WindowCounts {
        long: Counts::new(long.0, long.1),
        short: Counts::new(short.0, short.1),
    }
}

/// Budget 0.5%: 10% errors burn 20x, 12% burn 24x, 3% burn 6x.
#[test]
fn burn_rates_are_error_ratio_over_budget() {
    let c = fast_and_slow();
    close(c.budget(), 0.005, 1e-12);
    let report = slo(
        &c,
        &[
            counts((100.0, 1000.0), (12.0, 100.0)),
            counts((30.0, 1000.0), (3.0, 100.0)),
        ],
    );
    let first = report.pairs[0];
    close(first.long, 20.0, 1e-9);
    close(first.short, 24.0, 1e-9);
    assert!(first.firing);
    assert!(!report.pairs[1].firing, "6x is not above 6x");
    assert_eq!(report.verdict.phase, Phase::Fail);
    close(report.verdict.value.unwrap(), 20.0 / 14.4, 1e-9);
    assert!(
        report
            .verdict
            .message
            .contains("1h/5m burn 20x/24x vs 14.4x FIRING"),
        "{}",
        report.verdict.message
    );
}

#[test]
fn both_windows_must_burn() {
    let c = fast_and_slow();
    // The long window burns 20x but the short one has recovered (2x): no page.
    let report = slo(
        &c,
        &[
            counts((100.0, 1000.0), (1.0, 100.0)),
            counts((10.0, 1000.0), (1.0, 100.0)),
        ],
    );
    assert_eq!(report.verdict.phase, Phase::Pass);
    // A short spike alone does not fire either.
    let report = slo(
        &c,
        &[
            counts((5.0, 1000.0), (50.0, 100.0)),
            counts((5.0, 1000.0), (50.0, 100.0)),
        ],
    );
    assert_eq!(report.verdict.phase, Phase::Pass);
}

#[test]
fn too_little_traffic_is_no_data() {
    let c = fast_and_slow();
    let report = slo(
        &c,
        &[
            counts((1.0, 40.0), (1.0, 3.0)),
            counts((1.0, 60.0), (1.0, 60.0)),
        ],
    );
    assert_eq!(
        report.verdict.phase,
        Phase::NoData(NoData::TooFew { have: 3, need: 50 })
    );
    let report = slo(
        &c,
        &[
            counts((1.0, 100.0), (f64::NAN, 100.0)),
            counts((1.0, 100.0), (1.0, 100.0)),
        ],
    );
    assert_eq!(report.verdict.phase, Phase::NoData(NoData::NaN));
    assert_eq!(slo(&c, &[]).verdict.phase, Phase::NoData(NoData::Empty));
    let report = slo(
        &c,
        &[
            counts((200.0, 100.0), (1.0, 100.0)),
            counts((1.0, 100.0), (1.0, 100.0)),
        ],
    );
    assert_eq!(report.verdict.phase, Phase::Invalid);
}

#[test]
fn settings_are_checked() {
    let w = SloWindow {
        long: Duration::from_secs(300),
        short: Duration::from_secs(3600),
        burn_rate: 14.4,
    };
    assert!(
        SloConfig::new(99.9, vec![w], 1).is_err(),
        "short longer than long"
    );
    assert!(SloConfig::new(100.0, vec![], 1).is_err());
    assert!(SloConfig::new(99.9, vec![], 1).is_err());
}
