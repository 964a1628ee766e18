//! The Rhai half of a host function: one definition, one wrapper.
//!
//! Every host function is defined once with [`host_fn!`](crate::host_fn): its name, doc text,
//! return type and a closure-like parameter list. From that one definition the macro derives
//! the registration of both arities when the list ends in `; opts` (without the map, the core
//! sees an empty one), the parameter names (the closure's identifiers) and types (the Rust
//! types, named by [`RhaiType`]) that `mtn fns`, `mtn docs` and `mtn defs` show, and the
//! wrapper: every call runs inside [`call`] / [`call_dyn`] (or [`call_rhai`] for functions
//! that run script closures), which checks cancellation, times and counts the call, emits the
//! redacted `host_call` event and turns a [`HostError`] into a Rhai error carrying the function
//! name. Cores therefore never prefix their messages with their own name. Arities that differ by
//! more than a trailing options map (`log(message)` / `log(level, message)`) are separate
//! `host_fn!` definitions under the same name.

use std::time::Instant;

use rhai::{Dynamic, EvalAltResult, FnPtr, Map};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::units::parse_duration;

pub type RhaiResult = Result<Dynamic, Box<EvalAltResult>>;

/// Decode an options map into `T` (which should be `#[serde(deny_unknown_fields, default)]`).
/// A typo gives "unknown option `compres` (did you mean `compress`?); allowed: ...".
/// The message does not name the function: the wrapper does.
pub fn opts<T: DeserializeOwned>(map: &Map) -> HostResult<T> {
    let value = map_to_json(map)?;
    serde_json::from_value::<T>(value)
        .map_err(|e| HostError::invalid(describe_serde_error(&e.to_string())))
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

fn describe_serde_error(msg: &str) -> String {
    // serde: "unknown field `compres`, expected one of `to`, `format`"
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        if let Some((bad, tail)) = rest.split_once('`') {
            let allowed: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
            return crate::host::options::unknown_option_text(bad, &allowed);
        }
    }
    format!("invalid options: {msg}")
}

/// Remove a closure option (closures cannot go through serde) from an options map.
pub fn take_fn(map: &mut Map, key: &str) -> HostResult<Option<FnPtr>> {
    match map.remove(key) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(v) => v.try_cast::<FnPtr>().map(Some).ok_or_else(|| {
            HostError::invalid(format!("option `{key}` must be a function (|x| ...)"))
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
    match result {
        Ok(v) => {
            finish(ctx, function, started, None);
            Ok(v)
        }
        Err(e) => {
            finish(ctx, function, started, Some((e.kind.as_str(), &e.message)));
            Err(e.into_rhai(function))
        }
    }
}

/// Like [`call_dyn`] for functions that run a script closure (`retry`): the closure's own error
/// passes through unchanged, since its function and kind are the closure's, not ours.
pub fn call_rhai(ctx: &RunCtx, function: &str, f: impl FnOnce() -> RhaiResult) -> RhaiResult {
    let started = Instant::now();
    if let Err(e) = ctx.check_cancelled() {
        finish(ctx, function, started, Some((e.kind.as_str(), &e.message)));
        return Err(e.into_rhai(function));
    }
    let result = f();
    match &result {
        Ok(_) => finish(ctx, function, started, None),
        Err(e) => finish(ctx, function, started, Some(("script", &e.to_string()))),
    }
    result
}

/// Count the call and emit its `host_call` event (error text redacted).
fn finish(ctx: &RunCtx, function: &str, started: Instant, error: Option<(&str, &str)>) {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    ctx.count_call(error.is_none());
    match error {
        None => {
            tracing::debug!(target: "mtn::host_call", event = "host_call", function, duration_ms = ms, outcome = "ok", dry_run = ctx.dry_run);
        }
        Some((kind, message)) => {
            let msg = crate::redact::redact(message);
            tracing::debug!(target: "mtn::host_call", event = "host_call", function, duration_ms = ms, outcome = "error", kind, error = %msg);
        }
    }
}

/// The name a Rust parameter type has in `mtn fns`, `mtn docs` and `mtn defs`. A type without
/// an impl cannot be a host function parameter, so the shown type cannot drift from the code.
pub trait RhaiType {
    const NAME: &'static str;
}

macro_rules! rhai_type {
    ($($t:ty => $n:literal),* $(,)?) => {
        $(impl RhaiType for $t {
            const NAME: &'static str = $n;
        })*
    };
}

rhai_type! {
    &str => "&str",
    Map => "Map",
    rhai::Array => "Array",
    Dynamic => "?",
    i64 => "i64",
    f64 => "f64",
    bool => "bool",
    FnPtr => "FnPtr",
    crate::host::core::Time => "Time",
}

/// The calling context Rhai passes first to functions that call script closures: not a
/// parameter a script writes, so it has no name in the reference (see [`Registrar::add`]).
///
/// [`Registrar::add`]: crate::host::registry::Registrar::add
impl RhaiType for rhai::NativeCallContext<'_> {
    const NAME: &'static str = "";
}

/// The doc text of a function with an options arity: one text for both, or a pair
/// (without options, with options) when the options arity documents its options separately.
pub trait ArityDoc {
    fn without_opts(&self) -> &str;
    fn with_opts(&self) -> &str;
}

impl ArityDoc for str {
    fn without_opts(&self) -> &str {
        self
    }
    fn with_opts(&self) -> &str {
        self
    }
}

impl ArityDoc for String {
    fn without_opts(&self) -> &str {
        self
    }
    fn with_opts(&self) -> &str {
        self
    }
}

impl<T: ArityDoc + ?Sized> ArityDoc for &T {
    fn without_opts(&self) -> &str {
        (**self).without_opts()
    }
    fn with_opts(&self) -> &str {
        (**self).with_opts()
    }
}

impl<A: AsRef<str>, B: AsRef<str>> ArityDoc for (A, B) {
    fn without_opts(&self) -> &str {
        self.0.as_ref()
    }
    fn with_opts(&self) -> &str {
        self.1.as_ref()
    }
}

/// Define a host function: `host_fn!(r, "name", DOC, |ctx, a: &str, b: i64; opts| -> "Map" body)`.
///
/// - `ctx` names the run context (`Ctx`) inside `body`; the parameters follow, each with its
///   Rust type (shown through [`RhaiType`]). A leading `nctx: NativeCallContext` parameter is
///   passed by Rhai and not shown.
/// - `; opts` registers two arities, without and with a trailing `opts: Map`; without it `opts`
///   is an empty map. `; opts: T` decodes the map into `T` with [`opts()`] first (unknown keys
///   are an error the wrapper names with the function). Any identifier works; it is the name shown.
/// - `-> "Map" body`: `body` is a `HostResult<T: Serialize>` run inside [`call`];
///   `-> dyn "Time" body` a `HostResult<Dynamic>` inside [`call_dyn`]; `-> rhai "?" body` a
///   [`RhaiResult`] inside [`call_rhai`]. The string is the return type shown.
/// - `DOC` is the doc text (Markdown, first line the summary, a ```rhai example); with `; opts`
///   it may be a pair `(without, with)` (see [`ArityDoc`]).
#[macro_export]
macro_rules! host_fn {
    ($r:ident, $name:literal, $doc:expr,
     |$ctx:ident $(, $p:ident : $t:ty)* $(; $opts:ident $(: $ot:ty)?)?| -> $($rest:tt)+) => {
        $crate::host_fn!(@mode $r, $name, $doc, $ctx, [$($p : $t),*], [$($opts $(: $ot)?)?], $($rest)+)
    };
    (@mode $r:ident, $name:literal, $doc:expr, $ctx:ident, $ps:tt, $o:tt, dyn $ret:literal $body:expr) => {
        $crate::host_fn!(@opts $r, $name, $doc, $ctx, $ps, $o, call_dyn, $ret, $body)
    };
    (@mode $r:ident, $name:literal, $doc:expr, $ctx:ident, $ps:tt, $o:tt, rhai $ret:literal $body:expr) => {
        $crate::host_fn!(@opts $r, $name, $doc, $ctx, $ps, $o, call_rhai, $ret, $body)
    };
    (@mode $r:ident, $name:literal, $doc:expr, $ctx:ident, $ps:tt, $o:tt, $ret:literal $body:expr) => {
        $crate::host_fn!(@opts $r, $name, $doc, $ctx, $ps, $o, call, $ret, $body)
    };
    // One arity.
    (@opts $r:ident, $name:literal, $doc:expr, $ctx:ident, [$($p:ident : $t:ty),*], [],
     $wrap:ident, $ret:literal, $body:expr) => {
        $crate::host_fn!(@add $r, $name, $crate::host::binding::ArityDoc::without_opts(&$doc), $ctx,
            $ret, [$($p : $t,)*], $crate::host::binding::$wrap(&$ctx, $name, || $body))
    };
    // Two arities: without the options map (the body sees an empty one) and with it; a typed
    // `opts: T` is decoded before the body runs.
    (@opts $r:ident, $name:literal, $doc:expr, $ctx:ident, [$($p:ident : $t:ty),*], [$opts:ident $(: $ot:ty)?],
     $wrap:ident, $ret:literal, $body:expr) => {{
        let doc = $doc;
        $crate::host_fn!(@add $r, $name, $crate::host::binding::ArityDoc::without_opts(&doc), $ctx,
            $ret, [$($p : $t,)*], {
                let $opts = ::rhai::Map::new();
                $crate::host::binding::$wrap(&$ctx, $name, || {
                    $(let $opts: $ot = $crate::host::binding::opts(&$opts)?;)?
                    $body
                })
            });
        $crate::host_fn!(@add $r, $name, $crate::host::binding::ArityDoc::with_opts(&doc), $ctx,
            $ret, [$($p : $t,)* $opts : ::rhai::Map,],
            $crate::host::binding::$wrap(&$ctx, $name, || {
                $(let $opts: $ot = $crate::host::binding::opts(&$opts)?;)?
                $body
            }));
    }};
    // Register one closure: parameter names from the identifiers, types through `RhaiType`.
    (@add $r:ident, $name:literal, $doc:expr, $ctx:ident, $ret:literal, [$($p:ident : $t:ty,)*], $call:expr) => {{
        let $ctx = $r.ctx.clone();
        $r.add(
            $name,
            &[$((stringify!($p), <$t as $crate::host::binding::RhaiType>::NAME)),*],
            $ret,
            $doc,
            move |$($p: $t),*| -> $crate::host::binding::RhaiResult { $call },
        );
    }};
}

/// An age given as a duration string ("30d", "12h") or as a number of seconds (delete_older_than,
/// delete_rows_older_than). Negative, NaN and infinite seconds are refused: clamping them to 0
/// would make "older than" mean "everything".
pub fn age_arg(age: &rhai::Dynamic) -> crate::error::HostResult<std::time::Duration> {
    if let Some(s) = age.read_lock::<rhai::ImmutableString>() {
        return parse_duration(&s);
    }
    let secs = if let Ok(i) = age.as_int() {
        i as f64
    } else if let Ok(f) = age.as_float() {
        f
    } else {
        return Err(crate::error::HostError::invalid(format!(
            "age must be a duration like \"30d\" or a number of seconds, not a {}",
            age.type_name()
        )));
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(crate::error::HostError::invalid(format!(
            "age must be zero or more seconds, got {secs}"
        )));
    }
    std::time::Duration::try_from_secs_f64(secs)
        .map_err(|e| crate::error::HostError::invalid(format!("age {secs}: {e}")))
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
        let err = opts::<O>(&m).unwrap_err();
        assert_eq!(
            err.message,
            "unknown option `compres` (did you mean `compress`?); allowed options: compress, to"
        );
    }
}
