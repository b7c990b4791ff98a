//! Functions Sluice adds to CEL for metric conditions: `isNaN`, `isInf`, `len` and `default`.
//!
//! They mirror the helpers Argo Rollouts users know from its expression language, so ported
//! conditions keep working. Each one checks its argument types and returns a CEL error naming
//! the function for anything else; none of them panics.
//!
//! | Function | Meaning |
//! |---|---|
//! | `isNaN(x)` | `x` is a double and NaN; false for integers. |
//! | `isInf(x)` | `x` is a double and +/- infinity; false for integers. |
//! | `len(x)` | Number of elements of a list or map, characters of a string (same as `size`). |
//! | `default(x, d)` | For a list: its first value, or `d` when the list is empty or that value is NaN. For a number: `x`, or `d` when `x` is NaN. For `null`: `d`. An integer `d` becomes a double, so `default(result, 0) < 0.01` compares doubles. |

use cel::{Context, DeclarationError, ExecutionError, Value};

/// Adds the functions to a CEL context.
pub(super) fn register(ctx: &mut Context<'_, '_>) -> Result<(), DeclarationError> {
    ctx.add_function("isNaN", is_nan)?;
    ctx.add_function("isInf", is_inf)?;
    ctx.add_function("len", len)?;
    ctx.add_function("default", default)?;
    Ok(())
}

fn is_nan(x: Value) -> Result<bool, ExecutionError> {
    match x {
        Value::Float(f) => Ok(f.is_nan()),
        Value::Int(_) | Value::UInt(_) => Ok(false),
        other => Err(type_error("isNaN", "a number", &other)),
    }
}

fn is_inf(x: Value) -> Result<bool, ExecutionError> {
    match x {
        Value::Float(f) => Ok(f.is_infinite()),
        Value::Int(_) | Value::UInt(_) => Ok(false),
        other => Err(type_error("isInf", "a number", &other)),
    }
}

fn len(x: Value) -> Result<i64, ExecutionError> {
    let n = match &x {
        Value::List(items) => items.len(),
        Value::Map(map) => map.map.len(),
        Value::String(s) => s.chars().count(),
        Value::Bytes(b) => b.len(),
        other => return Err(type_error("len", "a list, map or string", other)),
    };
    // Lengths of in-memory values always fit; saturate rather than wrap if they ever did not.
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}

fn default(x: Value, fallback: Value) -> Result<Value, ExecutionError> {
    let fallback = as_double(fallback)?;
    let value = match x {
        Value::Null => None,
        Value::List(items) => items.first().cloned(),
        number @ (Value::Float(_) | Value::Int(_) | Value::UInt(_)) => Some(number),
        other => return Err(type_error("default", "a list, a number or null", &other)),
    };
    Ok(match value {
        Some(Value::Float(f)) if f.is_nan() => fallback,
        Some(v) => v,
        None => fallback,
    })
}

/// Integers become doubles so `default` returns the element type of `result`.
fn as_double(v: Value) -> Result<Value, ExecutionError> {
    match v {
        // Metric thresholds are far below 2^53, where the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        Value::Int(i) => Ok(Value::Float(i as f64)),
        #[allow(clippy::cast_precision_loss)]
        Value::UInt(u) => Ok(Value::Float(u as f64)),
        Value::Float(_) => Ok(v),
        other => Err(type_error(
            "default",
            "a number as its second argument",
            &other,
        )),
    }
}

fn type_error(function: &str, expected: &str, got: &Value) -> ExecutionError {
    ExecutionError::function_error(
        function,
        format!("expects {expected}, got {}", type_name(got)),
    )
}

/// CEL's name for a value's type, for error messages.
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::List(_) => "list",
        Value::Map(_) => "map",
        Value::Function(..) => "function",
        Value::Int(_) => "int",
        Value::UInt(_) => "uint",
        Value::Float(_) => "double",
        Value::String(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "bool",
        Value::Null => "null",
        _ => "other",
    }
}
