//! `successCondition` / `failureCondition`: CEL expressions over a measurement's `result`.
//!
//! # The language
//! Conditions are [CEL](https://github.com/google/cel-spec), evaluated by the `cel` crate, with
//! one variable and four extra functions:
//!
//! - `result` is always a **list of doubles**: one value per series of an instant query, in
//!   the order Prometheus returned them; a scalar query gives a one-element list. This is
//!   Argo Rollouts' vector convention, so `result[0] >= 0.95` works for both. A comparison of
//!   the whole list (`result < 0.01`) is rejected when the condition is compiled, with a hint.
//! - `isNaN(x)`, `isInf(x)`, `len(x)` and `default(x, d)`, defined in [`functions`]
//!   (`default(result, 0)` is the first value, or 0 when there is none or it is NaN), plus
//!   CEL's standard library (`size`, `all`, `exists`, `map`, `filter`, arithmetic, ...).
//! - CEL never mixes int and double in arithmetic (`result[0] * 100 > 5` is rejected at
//!   compile time, with a hint to write `100.0`); comparisons do mix them (`result[0] < 1`).
//! - The interpreter refuses to order NaN: `NaN < 1` is an evaluation error, not `false`.
//!
//! A condition sees a result only when it holds data: empty and NaN results are decided by the
//! metric's `onEmpty`/`onNaN` policy first (see [`mod@crate::measure`]), so `isNaN`, `len(result)
//! == 0` and `default` matter for ported Argo expressions and for hand-built inputs, never as a
//! way around the no-data policy.
//!
//! # Compile once, evaluate many times
//! [`Condition::compile`] parses the expression and probes it once against a sample result, so
//! a typo (`results[0]`), an unknown function, a type mismatch or a non-boolean expression is
//! reported when the template is validated, naming the expression and the reason, instead of
//! surfacing as an error on every measurement. [`Condition::evaluate`] never panics: a missing
//! index, a type error or a non-boolean value is a [`ConditionError`].

pub mod functions;

use std::{
    fmt,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, LazyLock},
};

use cel::{Context, Env, ExecutionError, Program, Value};

/// A compiled condition.
#[derive(Clone)]
pub struct Condition {
    source: Arc<str>,
    program: Arc<Program>,
}

/// Why a condition could not be compiled or evaluated. Every variant names the expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// Not valid CEL.
    #[error("'{expression}' is not a valid expression: {reason}")]
    Syntax {
        /// The expression as written.
        expression: String,
        /// Each parser error as `line L, column C: message`.
        reason: String,
    },
    /// Valid CEL that cannot work as a condition (unknown name, type mismatch, wrong result
    /// type), found by probing it at compile time.
    #[error("'{expression}' cannot be used as a condition: {reason}")]
    Invalid {
        /// The expression as written.
        expression: String,
        /// What is wrong and, where possible, how to fix it.
        reason: String,
    },
    /// Evaluation failed for this result (e.g. `result[1]` on a one-element result).
    #[error("'{expression}' could not be evaluated: {reason}")]
    Evaluation {
        /// The expression as written.
        expression: String,
        /// The interpreter's error.
        reason: String,
    },
    /// The expression produced something other than a boolean.
    #[error("'{expression}' must evaluate to a boolean, but evaluated to {got}")]
    NotBoolean {
        /// The expression as written.
        expression: String,
        /// The type and value it produced.
        got: String,
    },
}

impl ConditionError {
    /// Bounded category for metrics labels and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            ConditionError::Syntax { .. } => "syntax",
            ConditionError::Invalid { .. } => "invalid",
            ConditionError::Evaluation { .. } => "evaluation",
            ConditionError::NotBoolean { .. } => "not_boolean",
        }
    }
}

/// The CEL environment, built once: the standard library. Sluice's functions are added per
/// context because the `cel` crate registers plain Rust functions on contexts.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// The result a condition is probed with at compile time: one ordinary value, the shape almost
/// every metric returns.
const PROBE: &[f64] = &[0.5];

impl Condition {
    /// Parses `expression` and probes it once.
    ///
    /// # Guarantees
    /// Rejects syntax errors (with line and column), references to names other than `result`
    /// and the known functions, calls with wrong argument types or counts, and expressions
    /// that evaluate to a non-boolean for the probe result `[0.5]`. Errors that depend on the
    /// values (an index past the end, say) are left to evaluation time.
    pub fn compile(expression: &str) -> Result<Condition, ConditionError> {
        let program = parse(expression)?;
        let condition = Condition {
            source: Arc::from(expression),
            program: Arc::new(program),
        };
        condition.probe()?;
        Ok(condition)
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the condition with `result` bound to `values`.
    ///
    /// # Guarantees
    /// Never panics (a panic inside the interpreter is caught and reported as
    /// [`ConditionError::Evaluation`]); returns `Ok` only for a boolean value.
    pub fn evaluate(&self, values: &[f64]) -> Result<bool, ConditionError> {
        match self.run(values) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(ConditionError::NotBoolean {
                expression: self.source.to_string(),
                got: describe_value(&other),
            }),
            Err(e) => Err(ConditionError::Evaluation {
                expression: self.source.to_string(),
                reason: e.reason(),
            }),
        }
    }

    /// Evaluates against [`PROBE`]; value-independent failures make the condition
    /// [`ConditionError::Invalid`], value-dependent ones (an index past the end) are accepted.
    fn probe(&self) -> Result<(), ConditionError> {
        let reason = match self.run(PROBE) {
            Ok(Value::Bool(_)) => return Ok(()),
            Ok(other) => format!("it evaluates to {}, not a boolean", describe_value(&other)),
            Err(RunError::Cel(e)) => match structural_reason(&e) {
                Some(reason) => reason,
                None => return Ok(()),
            },
            Err(e @ RunError::Panicked) => e.reason(),
        };
        Err(ConditionError::Invalid {
            expression: self.source.to_string(),
            reason,
        })
    }

    fn run(&self, values: &[f64]) -> Result<Value, RunError> {
        // The interpreter has unfinished code paths (`todo!()`); a user's expression must
        // never take the controller down with it.
        catch_unwind(AssertUnwindSafe(|| {
            let mut ctx = Context::with_env(ENV.clone());
            functions::register(&mut ctx)
                .map_err(|e| ExecutionError::InternalError(e.to_string()))?;
            ctx.add_variable_from_value("result", values.to_vec());
            self.program.execute(&ctx)
        }))
        .map_err(|_| RunError::Panicked)?
        .map_err(RunError::Cel)
    }
}

/// Why a run of the interpreter produced no value.
enum RunError {
    Cel(ExecutionError),
    Panicked,
}

impl RunError {
    fn reason(&self) -> String {
        match self {
            RunError::Cel(e) => explain(e),
            RunError::Panicked => "the expression interpreter failed internally".to_string(),
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl PartialEq for Condition {
    /// Same source, same condition: compilation is deterministic.
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

fn parse(expression: &str) -> Result<Program, ConditionError> {
    let syntax = |reason: String| ConditionError::Syntax {
        expression: expression.to_string(),
        reason,
    };
    match catch_unwind(AssertUnwindSafe(|| ENV.compile(expression))) {
        Ok(Ok(program)) => Ok(program),
        Ok(Err(errors)) => Err(syntax(
            errors
                .errors
                .iter()
                .map(|e| format!("line {}, column {}: {}", e.pos.0, e.pos.1 + 1, e.msg))
                .collect::<Vec<_>>()
                .join("; "),
        )),
        Err(_) => Err(syntax("the parser failed internally".to_string())),
    }
}

/// The reason for errors that no input could avoid; `None` for value-dependent ones.
fn structural_reason(error: &ExecutionError) -> Option<String> {
    match error {
        ExecutionError::UndeclaredReference(name) => Some(format!(
            "unknown name '{name}': the only variable is 'result' and the functions are CEL's \
             standard library plus isNaN, isInf, len and default"
        )),
        ExecutionError::NoSuchOverload(_)
        | ExecutionError::InvalidArgumentCount { .. }
        | ExecutionError::UnexpectedType { .. }
        | ExecutionError::UnsupportedBinaryOperator(..)
        | ExecutionError::ValuesNotComparable(..)
        | ExecutionError::FunctionError { .. }
        | ExecutionError::NoSuchKey(_) => Some(explain(error)),
        _ => None,
    }
}

/// The interpreter's message, in CEL's type names, with a hint for the usual mistakes.
fn explain(error: &ExecutionError) -> String {
    match error {
        ExecutionError::UnsupportedBinaryOperator(op, a, b) => {
            let (a, b) = (functions::type_name(a), functions::type_name(b));
            let hint = if (a == "int" && b == "double") || (a == "double" && b == "int") {
                " (CEL never mixes int and double in arithmetic: write 1.0, not 1)"
            } else {
                list_hint(a, b)
            };
            format!("operator '{op}' does not apply to {a} and {b}{hint}")
        }
        ExecutionError::ValuesNotComparable(a, b) => {
            let (a, b) = (functions::type_name(a), functions::type_name(b));
            format!("{a} cannot be compared with {b}{}", list_hint(a, b))
        }
        ExecutionError::NoSuchOverload(o) => {
            let types = o.argument_types();
            let hint = if types.iter().any(|t| t == "list") {
                list_hint("list", "")
            } else if is_comparison(o.function()) && types.iter().all(|t| t == "double") {
                // The interpreter refuses to order NaN rather than answering false.
                " (a value is NaN and NaN cannot be ordered: guard with isNaN(...))"
            } else {
                ""
            };
            format!("{error}{hint}")
        }
        other => other.to_string(),
    }
}

fn list_hint(a: &str, b: &str) -> &'static str {
    if a == "list" || b == "list" {
        " (result is a list with one value per series: use result[0])"
    } else {
        ""
    }
}

fn is_comparison(function: &str) -> bool {
    matches!(function, "_<_" | "_<=_" | "_>_" | "_>=_")
}

fn describe_value(v: &Value) -> String {
    let ty = functions::type_name(v);
    match v {
        Value::Int(i) => format!("{ty} {i}"),
        Value::UInt(u) => format!("{ty} {u}"),
        Value::Float(f) => format!("{ty} {}", crate::value::format_number(*f)),
        Value::String(s) => format!("{ty} {s:?}"),
        _ => ty.to_string(),
    }
}

#[cfg(test)]
mod tests;
