//! The check language of the restore drill, the same for every engine, and the closure form.

use rhai::{Dynamic, FnPtr, NativeCallContext};
use serde_json::Value;

use super::CheckResult;
use crate::error::{ErrorKind, HostError, HostResult};

/// A closure check is given the scratch URL; returning `false` or throwing fails it.
pub(super) fn run_closure(
    nctx: &NativeCallContext,
    f: &FnPtr,
    url: &str,
) -> HostResult<CheckResult> {
    let (actual, ok, error) = match f.call_within_context::<Dynamic>(nctx, (url.to_string(),)) {
        Ok(v) => {
            let ok = v.as_bool().unwrap_or(true);
            let actual = crate::host::binding::dynamic_to_json(&v).unwrap_or(Value::Null);
            (actual, ok, None)
        }
        // Cancellation/timeout inside the closure: the guard still drops the scratch database.
        Err(e) if matches!(*e, rhai::EvalAltResult::ErrorTerminated(..)) => {
            return Err(HostError::new(ErrorKind::Cancelled, e.to_string()))
        }
        Err(e) => (
            Value::Null,
            false,
            Some(crate::redact::redact(&e.to_string())),
        ),
    };
    Ok(CheckResult {
        check: "closure".into(),
        expected: Value::Bool(true),
        actual,
        ok,
        error,
    })
}

pub(super) enum Checks {
    /// Check → expected value; a check is SQL, or a collection name for MongoDB.
    Map(Vec<(String, Value)>),
    Closure(FnPtr),
}

impl Checks {
    pub(super) fn from(d: Dynamic) -> HostResult<Checks> {
        if d.is_fnptr() {
            return Ok(Checks::Closure(d.cast::<FnPtr>()));
        }
        if d.is_unit() {
            return Ok(Checks::Map(Vec::new()));
        }
        if !d.is_map() {
            return Err(HostError::invalid(format!(
                "checks must be a map (SQL, or a MongoDB collection → expected value) or a closure |url| ..., got {}",
                d.type_name()
            )));
        }
        let mut out = Vec::new();
        for (k, v) in d.cast::<rhai::Map>() {
            let expected = crate::host::binding::dynamic_to_json(&v)?;
            if let Value::Object(range) = &expected {
                let bounds = |key: &str| range.get(key).is_none_or(Value::is_number);
                if range.is_empty()
                    || !range.keys().all(|k| k == "min" || k == "max")
                    || !bounds("min")
                    || !bounds("max")
                {
                    return Err(HostError::invalid(format!(
                        "check {k:?} expects a value, a comparison like \">0\", or #{{ min: N, max: M }}"
                    )));
                }
            }
            out.push((k.to_string(), expected));
        }
        Ok(Checks::Map(out))
    }
}

/// The check language, the same for every engine. Expected values: a value (numbers compare
/// numerically, everything else by text), a string with a comparison (">0", ">= 100", "<5",
/// "!=0"), or a range `#{ min: N, max: M }` (either bound may be left out).
pub fn matches(expected: &Value, actual: &Value) -> bool {
    let num = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        Value::Bool(b) => Some(*b as i64 as f64),
        _ => None,
    };
    if let Value::Object(range) = expected {
        let Some(got) = num(actual) else {
            return false;
        };
        let bound = |k: &str| range.get(k).and_then(Value::as_f64);
        return bound("min").is_none_or(|m| got >= m) && bound("max").is_none_or(|m| got <= m);
    }
    if let Value::String(s) = expected {
        let s = s.trim();
        for op in [">=", "<=", "!=", ">", "<", "="] {
            if let Some(rest) = s.strip_prefix(op) {
                if let (Ok(want), Some(got)) = (rest.trim().parse::<f64>(), num(actual)) {
                    return match op {
                        ">=" => got >= want,
                        "<=" => got <= want,
                        "!=" => got != want,
                        ">" => got > want,
                        "<" => got < want,
                        _ => got == want,
                    };
                }
            }
        }
    }
    if let (Some(a), Some(b)) = (num(expected), num(actual)) {
        if !matches!(expected, Value::String(_)) || !matches!(actual, Value::String(_)) {
            return a == b;
        }
    }
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text(expected) == text(actual)
}

#[cfg(test)]
mod tests {
    use super::matches;
    use serde_json::json;

    #[test]
    fn expected_values() {
        assert!(matches(&json!(3), &json!(3)));
        assert!(matches(&json!(3), &json!("3")));
        assert!(matches(&json!(">0"), &json!(5)));
        assert!(!matches(&json!(">0"), &json!(0)));
        assert!(matches(&json!(">= 10"), &json!("10")));
        assert!(matches(&json!("alice"), &json!("alice")));
        assert!(!matches(&json!(4), &json!(3)));
    }

    #[test]
    fn ranges() {
        assert!(matches(&json!({"min": 10}), &json!(10)));
        assert!(!matches(&json!({"min": 10}), &json!(9)));
        assert!(matches(&json!({"min": 1, "max": 3}), &json!("2")));
        assert!(!matches(&json!({"max": 3}), &json!(4)));
        assert!(!matches(&json!({"min": 1}), &json!(null)));
    }
}
