use sluice_crds::judge::Direction;

use super::close;
use crate::judge::{
    Classification, MannWhitneyConfig, NoData, Phase, mann_whitney,
    rank::{Alternative, ExactU, u_test},
};

fn config(direction: Direction, alpha: f64, margin: f64) -> MannWhitneyConfig {
    MannWhitneyConfig::new(direction, alpha, margin, 3).unwrap()
}

/// m = n = 5, U = 4: the published critical value of the one-sided 5% test (Mann & Whitney
/// 1947 table; P(U <= 4) = 12/252, the partitions of 0..=4 in a 5x5 box: 1+1+2+3+5).
#[test]
fn exact_p_values_match_the_table() {
    let canary = [1.0, 2.0, 3.0, 4.0, 9.0];
    let baseline = [5.0, 6.0, 7.0, 8.0, 10.0];
    let less = u_test(&canary, &baseline, Alternative::Less);
    assert_eq!(less.u, 4.0);
    assert!(less.exact && !less.ties);
    close(less.p_value, 12.0 / 252.0, 1e-12);
    // P(U >= 4) = 1 - P(U <= 3) = 1 - 7/252.
    close(
        u_test(&canary, &baseline, Alternative::Greater).p_value,
        245.0 / 252.0,
        1e-12,
    );
    close(
        u_test(&canary, &baseline, Alternative::TwoSided).p_value,
        24.0 / 252.0,
        1e-12,
    );
}

#[test]
fn exact_distribution_is_symmetric_and_sums_to_one() {
    let exact = ExactU::new(7, 4);
    close(exact.cdf(28), 1.0, 1e-12);
    for k in 0..28 {
        // P(U <= k) = P(U >= 28 - k) = 1 - P(U <= 27 - k)
        close(exact.cdf(k), 1.0 - exact.cdf(27 - k), 1e-12);
    }
    // m = 3, n = 2: counts 1, 1, 2, 2, 2, 1, 1 over C(5, 3) = 10.
    let small = ExactU::new(3, 2);
    let cdf: Vec<f64> = (0..=6).map(|k| small.cdf(k)).collect();
    let expected = [0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0];
    for (a, b) in cdf.iter().zip(expected) {
        close(*a, b, 1e-12);
    }
}

/// Ties force the normal approximation. Computed by hand:
/// canary [1, 2, 2, 3, 5, 5], baseline [0, 1, 2, 2, 4]; pairs won (ties 1/2): 1 -> 1.5,
/// 2 -> 3 (x2), 3 -> 4, 5 -> 5 (x2): U = 21.5; mn/2 = 15. Tie groups {1}x2, {2}x4,
/// {5}x2: sum(t^3 - t) = 6 + 60 + 6 = 72; N = 11.
/// Var = 30/12 * (12 - 72/110) = 28.3636..., sd = 5.32575...
/// Greater: z = (21.5 - 15 - 0.5)/sd = 1.12660..., p = 1 - Phi(z) = 0.129955...
#[test]
fn tie_corrected_normal_approximation() {
    let canary = [1.0, 2.0, 2.0, 3.0, 5.0, 5.0];
    let baseline = [0.0, 1.0, 2.0, 2.0, 4.0];
    let t = u_test(&canary, &baseline, Alternative::Greater);
    assert_eq!(t.u, 21.5);
    assert!(t.ties && !t.exact);
    close(t.sd, (30.0 / 12.0 * (12.0 - 72.0 / 110.0f64)).sqrt(), 1e-12);
    close(t.p_value, 0.129955, 1e-5);
    // Two-sided doubles the smaller tail (same correction towards the mean).
    close(
        u_test(&canary, &baseline, Alternative::TwoSided).p_value,
        0.259910,
        2e-5,
    );
}

#[test]
fn exact_and_normal_agree_for_moderate_samples() {
    let canary: Vec<f64> = (0..30).map(|i| f64::from(i) * 1.07 + 3.0).collect();
    let baseline: Vec<f64> = (0..30).map(|i| f64::from(i) * 1.03).collect();
    let exact = u_test(&canary, &baseline, Alternative::Greater);
    assert!(exact.exact);
    // 50 + 50 values switch to the normal approximation; compare at the same U.
    let z = (exact.u - 450.0 - 0.5) / exact.sd;
    let normal =
        1.0 - statrs::distribution::ContinuousCDF::cdf(&crate::judge::rank::std_normal(), z);
    close(exact.p_value, normal, 0.005);
}

/// canary [3, 5, 8], baseline [1, 4]: differences -1, 1, 2, 4, 4, 7; median (2 + 4)/2 = 3.
#[test]
fn hodges_lehmann_on_a_tiny_sample() {
    let canary = [3.0, 5.0, 8.0];
    let baseline = [1.0, 4.0];
    // m = 3, n = 2 (too few for any finite 95% bound): P(U <= 0) = 0.1 > 0.05.
    let c = MannWhitneyConfig::new(Direction::Increase, 0.05, 0.0, 2).unwrap();
    let report = mann_whitney(&c, &canary, &baseline);
    assert_eq!(report.shift, Some(3.0));
    let bounds = report.verdict.bounds.unwrap();
    assert_eq!(
        (bounds.lower, bounds.upper),
        (f64::NEG_INFINITY, f64::INFINITY)
    );
    // At alpha 0.1 one arrangement is excluded on each side: [D(1), D(6)] = [-1, 7].
    let c = MannWhitneyConfig::new(Direction::Increase, 0.1, 0.0, 2).unwrap();
    let bounds = mann_whitney(&c, &canary, &baseline).verdict.bounds.unwrap();
    assert_eq!((bounds.lower, bounds.upper), (-1.0, 7.0));
    close(bounds.confidence, 0.8, 1e-12);
}

/// Baseline 1..=10, canary shifted by exactly 10. The one-sided 5% critical value for
/// m = n = 10 is U = 27 (published tables), so the bounds are D(28) and D(73); the
/// differences are 10 + (i - j), where the value k occurs 10 - |k| times, and the 28th
/// smallest i - j is -3.
#[test]
fn hodges_lehmann_interval_for_a_pure_shift() {
    let baseline: Vec<f64> = (1..=10).map(f64::from).collect();
    let canary: Vec<f64> = baseline.iter().map(|v| v + 10.0).collect();
    let report = mann_whitney(&config(Direction::Increase, 0.05, 0.05), &canary, &baseline);
    assert_eq!(report.shift, Some(10.0));
    let bounds = report.verdict.bounds.unwrap();
    assert_eq!((bounds.lower, bounds.upper), (7.0, 13.0));
    assert_eq!(report.classification, Classification::High);
    assert_eq!(report.verdict.phase, Phase::Fail);
    assert!(
        report.verdict.message.contains("shift 10 in [7, 13]"),
        "{}",
        report.verdict.message
    );
}

#[test]
fn a_significant_but_tiny_shift_passes() {
    // Baseline around 100, canary 0.5% higher, 40 points each: clearly significant.
    let baseline: Vec<f64> = (0..40).map(|i| 100.0 + f64::from(i % 7) * 0.01).collect();
    let canary: Vec<f64> = baseline.iter().map(|v| v * 1.005).collect();
    let report = mann_whitney(&config(Direction::Increase, 0.05, 0.05), &canary, &baseline);
    assert!(report.test.unwrap().p_value < 0.001);
    assert_eq!(report.classification, Classification::Pass);
    assert_eq!(report.verdict.phase, Phase::Pass);
    close(report.floor, 5.0, 0.01);
    // Without a floor the same data fails.
    let strict = mann_whitney(&config(Direction::Increase, 0.05, 0.0), &canary, &baseline);
    assert_eq!(strict.verdict.phase, Phase::Fail);
}

#[test]
fn direction_decides_which_shift_fails() {
    let baseline: Vec<f64> = (0..20).map(|i| 10.0 + f64::from(i) * 0.1).collect();
    let lower: Vec<f64> = baseline.iter().map(|v| v - 5.0).collect();
    let phase = |d| mann_whitney(&config(d, 0.05, 0.05), &lower, &baseline);
    let increase = phase(Direction::Increase);
    assert_eq!(increase.classification, Classification::Low);
    assert_eq!(increase.verdict.phase, Phase::Pass, "an improvement passes");
    assert_eq!(phase(Direction::Decrease).verdict.phase, Phase::Fail);
    assert_eq!(phase(Direction::Either).verdict.phase, Phase::Fail);
}

#[test]
fn too_few_empty_or_nan_is_no_data() {
    let c = config(Direction::Increase, 0.05, 0.05);
    let report = mann_whitney(&c, &[1.0, 2.0], &[1.0, 2.0, 3.0]);
    assert_eq!(
        report.verdict.phase,
        Phase::NoData(NoData::TooFew { have: 2, need: 3 })
    );
    assert_eq!(report.classification, Classification::NoData);
    assert_eq!(
        mann_whitney(&c, &[], &[1.0]).verdict.phase,
        Phase::NoData(NoData::Empty)
    );
    assert_eq!(
        mann_whitney(&c, &[1.0, f64::NAN, 2.0], &[1.0, 2.0, 3.0])
            .verdict
            .phase,
        Phase::NoData(NoData::NaN)
    );
}

#[test]
fn identical_samples_pass() {
    let same = [4.0; 12];
    let report = mann_whitney(&config(Direction::Either, 0.05, 0.0), &same, &same);
    assert_eq!(report.verdict.phase, Phase::Pass);
    assert_eq!(report.verdict.value, Some(1.0));
}
