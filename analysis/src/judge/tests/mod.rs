//! Judge tests against published or hand-computed values, and simulations with fixed seeds.

mod mann_whitney;
mod measure;
mod promote_early;
mod sequential;
mod slo;

/// `|a - b| <= tol`, with both values in the failure message.
#[track_caller]
pub(super) fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() <= tol, "{a} is not within {tol} of {b}");
}
