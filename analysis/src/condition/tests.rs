use super::*;

fn eval(expr: &str, values: &[f64]) -> Result<bool, ConditionError> {
    Condition::compile(expr)?.evaluate(values)
}

fn invalid_reason(expr: &str) -> String {
    match Condition::compile(expr) {
        Err(ConditionError::Invalid { reason, .. }) => reason,
        other => panic!("{expr}: expected Invalid, got {other:?}"),
    }
}

#[test]
fn argo_style_thresholds() {
    assert_eq!(eval("result[0] >= 0.95", &[0.97]), Ok(true));
    assert_eq!(eval("result[0] >= 0.95", &[0.91]), Ok(false));
    // Integer literals compare with doubles.
    assert_eq!(eval("result[0] < 1", &[0.5]), Ok(true));
    assert_eq!(eval("result[0] == 0", &[0.0]), Ok(true));
    assert_eq!(
        eval("result[0] > 0.5 && result[1] < 0.1", &[0.9, 0.05]),
        Ok(true)
    );
}

#[test]
fn size_len_and_macros() {
    assert_eq!(eval("size(result) == 2", &[1.0, 2.0]), Ok(true));
    assert_eq!(eval("len(result) == 0 || result[0] < 0.01", &[]), Ok(true));
    assert_eq!(
        eval("len(result) == 0 || result[0] < 0.01", &[0.5]),
        Ok(false)
    );
    assert_eq!(eval("result.all(x, x < 0.5)", &[0.1, 0.2]), Ok(true));
    assert_eq!(eval("result.exists(x, x > 0.5)", &[0.1, 0.9]), Ok(true));
    assert_eq!(eval("len('abc') == 3", &[0.1]), Ok(true));
}

#[test]
fn nan_and_inf_helpers() {
    assert_eq!(eval("isNaN(result[0])", &[f64::NAN]), Ok(true));
    assert_eq!(eval("isNaN(result[0])", &[0.1]), Ok(false));
    assert_eq!(eval("isInf(result[0])", &[f64::INFINITY]), Ok(true));
    assert_eq!(eval("isInf(result[0])", &[f64::NEG_INFINITY]), Ok(true));
    assert_eq!(eval("isInf(result[0])", &[1.0]), Ok(false));
    assert_eq!(eval("isNaN(1)", &[1.0]), Ok(false));
    assert_eq!(
        eval("isNaN(result[0]) || result[0] < 0.01", &[f64::NAN]),
        Ok(true)
    );
    // The interpreter refuses to order NaN (instead of IEEE's false): a typed error with a
    // hint, never a verdict. Measurements never get here: NaN results go to `onNaN` first.
    let err = eval("result[0] < 0.01", &[f64::NAN]).unwrap_err();
    assert!(matches!(err, ConditionError::Evaluation { .. }));
    assert!(err.to_string().contains("guard with isNaN"), "{err}");
    assert_eq!(eval("result[0] > 100.0", &[f64::INFINITY]), Ok(true));
}

#[test]
fn default_covers_empty_and_nan() {
    assert_eq!(eval("default(result, 0) < 0.01", &[]), Ok(true));
    assert_eq!(eval("default(result, 0) < 0.01", &[f64::NAN]), Ok(true));
    assert_eq!(eval("default(result, 0) < 0.01", &[0.5]), Ok(false));
    assert_eq!(eval("default(result, 1.5) == 1.5", &[]), Ok(true));
    assert_eq!(eval("default(result[0], 2) == 2.0", &[f64::NAN]), Ok(true));
    assert_eq!(eval("default(result[0], 2) == 0.3", &[0.3]), Ok(true));
    assert_eq!(eval("default(null, 7) == 7.0", &[0.3]), Ok(true));
}

#[test]
fn syntax_errors_name_expression_and_position() {
    let err = Condition::compile("result[0] >= ").unwrap_err();
    let ConditionError::Syntax { expression, reason } = &err else {
        panic!("expected a syntax error, got {err:?}");
    };
    assert_eq!(expression, "result[0] >= ");
    assert!(reason.contains("line 1, column"), "{reason}");
    assert!(
        err.to_string()
            .starts_with("'result[0] >= ' is not a valid expression: line 1")
    );
    assert!(matches!(
        Condition::compile("result[0] >= 0.95 )"),
        Err(ConditionError::Syntax { .. })
    ));
    assert!(matches!(
        Condition::compile(""),
        Err(ConditionError::Syntax { .. })
    ));
}

#[test]
fn structural_mistakes_are_caught_at_compile_time() {
    assert!(invalid_reason("results[0] > 1").contains("unknown name 'results'"));
    assert!(invalid_reason("nope(result)").contains("unknown name 'nope'"));
    let hint = invalid_reason("result >= 0.95");
    assert!(hint.contains("use result[0]"), "{hint}");
    assert!(invalid_reason("result[0] + 1.0").contains("evaluates to double 1.5, not a boolean"));
    assert!(invalid_reason("result[0] + 1 > 2.0").contains("write 1.0, not 1"));
    assert!(invalid_reason("isNaN('x')").contains("isNaN"));
    assert!(invalid_reason("default(result, 'x') > 1").contains("second argument"));
    assert!(invalid_reason("result[0] > 'a'").contains("(double, string)"));
}

#[test]
fn value_dependent_errors_are_left_to_evaluation_and_never_panic() {
    // Valid for results with two series; the probe has one, so this must still compile.
    let c = Condition::compile("result[1] > 0.5").unwrap();
    let err = c.evaluate(&[0.9]).unwrap_err();
    assert!(matches!(err, ConditionError::Evaluation { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("'result[1] > 0.5' could not be evaluated")
    );
    // Index into an empty result.
    assert!(matches!(
        Condition::compile("result[0] > 0.5").unwrap().evaluate(&[]),
        Err(ConditionError::Evaluation { .. })
    ));
}

#[test]
fn non_boolean_at_evaluation_time_is_a_typed_error() {
    // Boolean for the probe, a double for other inputs.
    let c = Condition::compile("result[0] < 1.0 ? true : result[0]").unwrap();
    assert_eq!(c.evaluate(&[0.2]), Ok(true));
    assert_eq!(
        c.evaluate(&[3.0]),
        Err(ConditionError::NotBoolean {
            expression: "result[0] < 1.0 ? true : result[0]".into(),
            got: "double 3".into()
        })
    );
}

#[test]
fn conditions_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Condition>();
    let c = Condition::compile("result[0] > 0.5").unwrap();
    let handle = std::thread::spawn(move || c.evaluate(&[0.7]));
    assert_eq!(handle.join().unwrap(), Ok(true));
}

#[test]
fn categories_are_bounded() {
    let err = Condition::compile("(").unwrap_err();
    assert_eq!(err.category(), "syntax");
    assert_eq!(
        Condition::compile("results").unwrap_err().category(),
        "invalid"
    );
}
