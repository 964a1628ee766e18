//! The Rhai half of a host function: decoding options, running the core, reporting the call.
//!
//! A binding is a thin closure: decode arguments with [`opts`], call the core inside [`call`]
//! (which times, counts, logs and converts errors), and return the report as a Rhai value.

use std::time::Instant;

use rhai::{Dynamic, EvalAltResult, FnPtr, Map};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::engine::ctx::RunCtx;
use crate::host::error::{HostError, HostResult};

pub type RhaiResult = Result<Dynamic, Box<EvalAltResult>>;

/// Decode an options map into `T` (which should be `#[serde(deny_unknown_fields, default)]`).
/// A typo gives "unknown option `compres` (did you mean `compress`?); allowed: ...".
pub fn opts<T: DeserializeOwned>(function: &str, map: &Map) -> HostResult<T> {
    let value = map_to_json(map)?;
    serde_json::from_value::<T>(value)
        .map_err(|e| HostError::invalid(describe_serde_error(function, &e.to_string())))
}

/// A Rhai map as JSON, for decoding and for documents sent to servers.
pub fn map_to_json(map: &Map) -> HostResult<serde_json::Value> {
    serde_json::to_value(Dynamic::from_map(map.clone()))
        .map_err(|e| HostError::invalid(format!("option value cannot be used: {e}")))
}

pub fn dynamic_to_json(value: &Dynamic) -> HostResult<serde_json::Value> {
    serde_json::to_value(value)
        .map_err(|e| HostError::invalid(format!("value cannot be used: {e}")))
}

fn describe_serde_error(function: &str, msg: &str) -> String {
    // serde: "unknown field `compres`, expected one of `to`, `format`"
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        if let Some((bad, tail)) = rest.split_once('`') {
            let allowed: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
            return crate::engine::options::unknown_option(function, bad, &allowed);
        }
    }
    format!("{function}: invalid options: {msg}")
}

/// Remove a closure option (closures cannot go through serde) from an options map.
pub fn take_fn(function: &str, map: &mut Map, key: &str) -> HostResult<Option<FnPtr>> {
    match map.remove(key) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(v) => v.try_cast::<FnPtr>().map(Some).ok_or_else(|| {
            HostError::invalid(format!(
                "{function}: option `{key}` must be a function (|x| ...)"
            ))
        }),
    }
}

/// Convert a report into a Rhai value (maps, arrays, strings, numbers).
pub fn to_dynamic<T: Serialize>(value: &T) -> HostResult<Dynamic> {
    rhai::serde::to_dynamic(value)
        .map_err(|e| HostError::other(format!("cannot convert report: {e}")))
}

/// Run one host call: time it, count it, emit a `host_call` event, convert the result.
pub fn call<T: Serialize>(
    ctx: &RunCtx,
    function: &str,
    f: impl FnOnce() -> HostResult<T>,
) -> RhaiResult {
    call_dyn(ctx, function, || f().and_then(|v| to_dynamic(&v)))
}

/// Like [`call`] for functions that already return a `Dynamic`.
pub fn call_dyn(
    ctx: &RunCtx,
    function: &str,
    f: impl FnOnce() -> HostResult<Dynamic>,
) -> RhaiResult {
    let started = Instant::now();
    let result = ctx.check_cancelled().and_then(|_| f());
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    ctx.count_call(result.is_ok());
    match result {
        Ok(v) => {
            tracing::debug!(target: "mtn::host_call", event = "host_call", function, duration_ms = ms, outcome = "ok", dry_run = ctx.dry_run);
            Ok(v)
        }
        Err(e) => {
            let msg = crate::redact::redact(&e.message);
            tracing::debug!(target: "mtn::host_call", event = "host_call", function, duration_ms = ms, outcome = "error", kind = e.kind.as_str(), error = %msg);
            Err(e.into_rhai(function))
        }
    }
}

/// Parse "30d", "12h", "90m", "1h30m", "500ms", "2 weeks" into a Duration.
pub fn parse_duration(text: &str) -> HostResult<std::time::Duration> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(t).map_err(|e| {
        HostError::invalid(format!(
            "invalid duration {text:?}: {e} (use e.g. \"30s\", \"5m\", \"12h\", \"30d\", \"1h30m\")"
        ))
    })
}

/// An age given as a duration string ("30d", "12h") or as a number of seconds (delete_older_than,
/// delete_rows_older_than). Negative, NaN and infinite seconds are refused: clamping them to 0
/// would make "older than" mean "everything".
pub fn age_arg(age: &rhai::Dynamic) -> crate::host::error::HostResult<std::time::Duration> {
    if let Some(s) = age.read_lock::<rhai::ImmutableString>() {
        return parse_duration(&s);
    }
    let secs = if let Ok(i) = age.as_int() {
        i as f64
    } else if let Ok(f) = age.as_float() {
        f
    } else {
        return Err(crate::host::error::HostError::invalid(format!(
            "age must be a duration like \"30d\" or a number of seconds, not a {}",
            age.type_name()
        )));
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(crate::host::error::HostError::invalid(format!(
            "age must be zero or more seconds, got {secs}"
        )));
    }
    std::time::Duration::try_from_secs_f64(secs)
        .map_err(|e| crate::host::error::HostError::invalid(format!("age {secs}: {e}")))
}

/// Serde helpers for options that take a duration: accept "5m" or a number of seconds.
pub mod serde_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(f64),
        Text(String),
    }

    fn convert<E: serde::de::Error>(raw: Raw) -> Result<Duration, E> {
        match raw {
            Raw::Secs(s) if s >= 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(s)),
            Raw::Secs(s) => Err(E::custom(format!("invalid duration {s}"))),
            Raw::Text(t) => super::parse_duration(&t).map_err(|e| E::custom(e.message)),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        convert(Raw::deserialize(d)?)
    }

    pub mod option {
        use super::*;
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<Raw>::deserialize(d)? {
                None => Ok(None),
                Some(raw) => convert(raw).map(Some),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, Default)]
    #[serde(deny_unknown_fields, default)]
    #[allow(dead_code)]
    struct O {
        compress: String,
        to: String,
    }

    #[test]
    fn unknown_option_is_named_with_hint() {
        let mut m = Map::new();
        m.insert("compres".into(), "gzip".into());
        let err = opts::<O>("dump_db", &m).unwrap_err();
        assert_eq!(
            err.message,
            "dump_db: unknown option `compres` (did you mean `compress`?); allowed options: compress, to"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap().as_secs(), 30 * 86400);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert!(parse_duration("5 parsecs").is_err());
    }
}
