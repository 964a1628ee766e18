//! General functions every script uses: logging, environment, secrets, time, sleep, assertions.

use std::time::Duration;

use chrono::{DateTime, Local, TimeZone, Utc};
use rhai::{Array, Dynamic, EvalAltResult, FnPtr, Map, NativeCallContext};
use serde::Deserialize;

use crate::ctx::RunCtx;
use crate::error::{ErrorKind, HostError};
use crate::host::registry::Registrar;
use crate::host_fn;
use crate::units::parse_duration;

/// A point in time (local time zone), as returned by `now()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub DateTime<Local>);

impl Time {
    pub fn iso(&self) -> String {
        self.0.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    }
}

pub fn format_time(t: &DateTime<Local>, fmt: &str) -> Result<String, HostError> {
    use std::fmt::Write;
    let mut out = String::new();
    write!(out, "{}", t.format(fmt))
        .map_err(|_| HostError::invalid(format!("invalid format string {fmt:?}")))?;
    Ok(out)
}

fn log_at(ctx: &RunCtx, level: &str, msg: &str) -> Result<(), HostError> {
    let msg = crate::redact::redact(msg);
    let level = level.to_ascii_lowercase();
    if matches!(level.as_str(), "error" | "warn" | "warning" | "info") {
        ctx.log_tail.push(&level, &msg);
    }
    match level.as_str() {
        "error" => tracing::error!(target: "mtn::script", "{msg}"),
        "warn" | "warning" => tracing::warn!(target: "mtn::script", "{msg}"),
        "info" => tracing::info!(target: "mtn::script", "{msg}"),
        "debug" => tracing::debug!(target: "mtn::script", "{msg}"),
        "trace" => tracing::trace!(target: "mtn::script", "{msg}"),
        other => {
            return Err(HostError::invalid(format!(
                "unknown level {other:?} (use error, warn, info, debug, trace)"
            )))
        }
    }
    Ok(())
}

/// Convert a setting found as text (env, --set) to the type of its default.
fn convert_setting(name: &str, v: Dynamic, default: &Dynamic) -> Result<Dynamic, HostError> {
    let text = v.to_string();
    let bad = |what: &str| HostError::invalid(format!("setting {name}: {text:?} is not {what}"));
    if default.is_int() {
        if v.is_int() {
            return Ok(v);
        }
        return text
            .trim()
            .parse::<i64>()
            .map(Dynamic::from)
            .map_err(|_| bad("an integer"));
    }
    if default.is_float() {
        if v.is_float() {
            return Ok(v);
        }
        return text
            .trim()
            .parse::<f64>()
            .map(Dynamic::from)
            .map_err(|_| bad("a number"));
    }
    if default.is_bool() {
        return match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Dynamic::TRUE),
            "false" | "0" | "no" | "off" | "" => Ok(Dynamic::FALSE),
            _ => Err(bad("true or false")),
        };
    }
    if default.is_string() {
        return Ok(Dynamic::from(text));
    }
    Ok(v)
}

fn do_sleep(ctx: &RunCtx, secs: f64) -> Result<(), HostError> {
    let secs = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
    ctx.sleep(Duration::from_secs_f64(secs))
}

/// `time ± seconds`, refusing results outside the dates chrono represents (±262,000 years)
/// instead of panicking on overflow.
fn shift(a: Time, secs: f64, sign: f64) -> Result<Time, Box<EvalAltResult>> {
    let ms = secs * 1000.0 * sign;
    let out = if ms.is_finite() && ms.abs() < i64::MAX as f64 {
        chrono::Duration::try_milliseconds(ms as i64).and_then(|d| a.0.checked_add_signed(d))
    } else {
        None
    };
    out.map(Time).ok_or_else(|| {
        failure(
            ErrorKind::InvalidInput,
            if sign > 0.0 { "+" } else { "-" },
            &format!(
                "{} {} {secs} seconds is outside the dates mtn can represent",
                a.iso(),
                if sign > 0.0 { "+" } else { "-" }
            ),
        )
    })
}

fn failure(kind: ErrorKind, function: &str, msg: &str) -> Box<EvalAltResult> {
    HostError::new(kind, msg).into_rhai(function)
}

pub fn register(r: &mut Registrar) {
    r.category("core");
    r.engine
        .register_type_with_name::<Time>("Time")
        .register_fn("to_string", |t: &mut Time| t.iso())
        .register_fn("to_debug", |t: &mut Time| t.iso())
        .register_get("unix", |t: &mut Time| t.0.timestamp())
        .register_get("iso", |t: &mut Time| t.iso())
        .register_fn("format", |t: &mut Time, f: &str| {
            format_time(&t.0, f).map_err(|e| e.into_rhai("format"))
        })
        .register_fn("-", |a: Time, b: Time| {
            (a.0 - b.0).num_milliseconds() as f64 / 1000.0
        })
        .register_fn("+", |a: Time, secs: f64| shift(a, secs, 1.0))
        .register_fn("+", |a: Time, secs: i64| shift(a, secs as f64, 1.0))
        .register_fn("-", |a: Time, secs: f64| shift(a, secs, -1.0))
        .register_fn("-", |a: Time, secs: i64| shift(a, secs as f64, -1.0))
        .register_fn("<", |a: Time, b: Time| a < b)
        .register_fn(">", |a: Time, b: Time| a > b)
        .register_fn("<=", |a: Time, b: Time| a <= b)
        .register_fn(">=", |a: Time, b: Time| a >= b)
        .register_fn("==", |a: Time, b: Time| a == b)
        .register_fn("!=", |a: Time, b: Time| a != b);

    host_fn!(r, "log", "Log a message at info level (secrets are masked).\n\n```rhai\nlog(\"backup starting\");\n```", |ctx, message: Dynamic| -> "()" {
        log_at(&ctx, "info", &message.to_string())
    });
    host_fn!(r, "log", "Log a message at a level: error, warn, info, debug or trace.\n\n```rhai\nlog(\"debug\", \"checked 3 files\");\n```", |ctx, level: &str, message: Dynamic| -> "()" {
        log_at(&ctx, level, &message.to_string())
    });
    // Rhai's built-in `log(FLOAT)` and `log(FLOAT, FLOAT)` are logarithms, and an exact-type
    // built-in beats a `Dynamic` parameter: `log(1.5)` or `log(duration("1h"))` would compute a
    // number and print nothing. These exact overloads make mtn's `log` win for every type
    // (the logarithm stays available as `ln(x)`; base 10 is `ln(x) / ln(10.0)`).
    host_fn!(r, "log", "Log a number at info level (not a logarithm: use `ln(x)` for that).\n\n```rhai\nlog(duration(\"1h\"));\n```", |ctx, message: f64| -> "()" {
        log_at(&ctx, "info", &Dynamic::from(message).to_string())
    });
    host_fn!(r, "log", "`log(level, message)` with a number as the level is an error naming the levels (Rhai's `log(x, base)` logarithm is not available under this name).\n\n```rhai\nlog(\"info\", 2.5);\n```", |ctx, level: f64, message: f64| -> "()" {
        log_at(&ctx, &Dynamic::from(level).to_string(), &Dynamic::from(message).to_string())
    });
    host_fn!(r, "warn", "Log a warning; the run still succeeds but ends with status `warning` (exit 3 with `--fail-on-warning`).\n\n```rhai\nif 1 > 0 { warn(\"disk is 85% full\"); }\n```", |ctx, message: Dynamic| -> "()" {
        ctx.set_warned();
        log_at(&ctx, "warn", &message.to_string())
    });
    host_fn!(r, "env", "The value of an environment variable, or `()` when it is not set.\n\n```rhai\nlet home = env(\"HOME\");\n```", |ctx, name: &str| -> dyn "String or ()" {
        Ok(std::env::var(name).map(Dynamic::from).unwrap_or(Dynamic::UNIT))
    });
    host_fn!(r, "env", "The value of an environment variable, or `default` when it is not set or empty.\n\n```rhai\nlet dir = env(\"BACKUP_DIR\", \"./backups\");\n```", |ctx, name: &str, default: Dynamic| -> dyn "?" {
        Ok(match std::env::var(name) {
            Ok(v) if !v.is_empty() => Dynamic::from(v),
            _ => default,
        })
    });
    host_fn!(r, "secret", "A secret from the environment variable NAME, or from the file named by NAME_FILE (trailing newline removed). Its value is masked in every log line, error and report from then on.\n\n```rhai\nlet token = secret(\"SLACK_TOKEN\");\n```", |ctx, name: &str| -> "String" {
        let value = match std::env::var(name) {
            Ok(v) if !v.is_empty() => v,
            _ => {
                let file_var = format!("{name}_FILE");
                match std::env::var(&file_var) {
                    Ok(path) if !path.is_empty() => std::fs::read_to_string(&path)
                        .map_err(|e| HostError::io(format!("reading secret file {path} (from {file_var})"), &e))?
                        .trim_end_matches(['\n', '\r'])
                        .to_string(),
                    _ => {
                        return Err(HostError::not_found(format!(
                            "secret {name} is not set: set the environment variable {name} or point {file_var} at a file"
                        )))
                    }
                }
            }
        };
        crate::redact::register(&value);
        Ok(value)
    });
    host_fn!(r, "now", "The current time (local time zone). `t.unix`, `t.iso`, `t.format(\"%Y\")`, `t - other` (seconds), `t - 3600` (a Time).\n\n```rhai\nlet t = now();\nlog(t.iso);\n```", |ctx| -> dyn "Time" {
        Ok(Dynamic::from(Time(Local::now())))
    });
    host_fn!(r, "today", "Today's date as `YYYY-mm-dd` (local time zone), ready for file names.\n\n```rhai\nlet name = `backup_${today()}.sql.gz`;\n```", |ctx| -> "String" {
        Ok(Local::now().format("%Y-%m-%d").to_string())
    });
    host_fn!(r, "time_from_unix", "A Time from Unix seconds.\n\n```rhai\nlet t = time_from_unix(0);\n```", |ctx, seconds: i64| -> dyn "Time" {
        Utc.timestamp_opt(seconds, 0)
            .single()
            .map(|t| Dynamic::from(Time(t.with_timezone(&Local))))
            .ok_or_else(|| HostError::invalid("timestamp out of range"))
    });
    host_fn!(r, "format_time", "Format a time with strftime codes (`%Y-%m-%d_%H%M%S`), like `date +FORMAT`.\n\n```rhai\nlet stamp = format_time(now(), \"%Y%m%d_%H%M%S\");\n```", |ctx, time: Time, format: &str| -> "String" {
        format_time(&time.0, format)
    });
    host_fn!(r, "duration", "Seconds in a duration string: \"30s\", \"5m\", \"12h\", \"30d\", \"1h30m\", \"500ms\".\n\n```rhai\nlet week = duration(\"7d\"); // 604800.0\n```", |ctx, text: &str| -> "f64" {
        parse_duration(text).map(|d| d.as_secs_f64())
    });
    // Rhai's own `sleep(INT)`/`sleep(FLOAT)` block the thread uncancellably; these exact-type
    // overloads take precedence over them (a `Dynamic` parameter would not).
    let doc = "Pause for a number of seconds or a duration string; ends at once when the run is cancelled or times out.\n\n```rhai\nsleep(\"1s\");\nsleep(0.5);\n```";
    host_fn!(r, "sleep", doc, |ctx, seconds: i64| -> "()" {
        do_sleep(&ctx, seconds.max(0) as f64)
    });
    host_fn!(r, "sleep", doc, |ctx, seconds: f64| -> "()" {
        do_sleep(&ctx, seconds)
    });
    host_fn!(r, "sleep", doc, |ctx, duration: &str| -> "()" {
        do_sleep(&ctx, parse_duration(duration)?.as_secs_f64())
    });
    host_fn!(r, "assert", "Fail the run with `message` unless `condition` is true.\n\n```rhai\nassert(1 + 1 == 2, \"arithmetic is broken\");\n```", |ctx, condition: bool, message: Dynamic| -> "()" {
        if condition {
            Ok(())
        } else {
            Err(HostError::new(ErrorKind::Failed, format!("assertion failed: {message}")))
        }
    });
    host_fn!(r, "fail", "Fail the run with a message (catchable with try/catch, kind `failed`).\n\n```rhai\ntry { fail(\"no backups found\"); } catch (e) { log(e.message); }\n```", |ctx, message: Dynamic| -> "()" {
        Err::<(), _>(HostError::new(ErrorKind::Failed, message.to_string()))
    });
    // The error names the script's function (`backup::run`), not check_options: Rhai errors.
    host_fn!(r, "check_options", "Fail when `opts` has a key not in `allowed`, naming the allowed keys and the closest one: how a stdlib module function checks its options map. With a literal array, `mtn check` and `mtn run` also check literal maps passed to that function before anything runs.\n\n```rhai\nfn run(o) {\n    check_options(\"backup::run\", o, [\"url\", \"dir\", \"keep\"]);\n}\nrun(#{ url: \"sqlite://examples/app.db\" });\n```",
        |ctx, function: &str, opts: Map, allowed: Array| -> rhai "()" {
            let allowed: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
            let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
            for key in opts.keys() {
                if !allowed.contains(&key.as_str()) {
                    let msg = crate::host::options::unknown_option(function, key, &allowed);
                    return Err(HostError::invalid(msg).into_rhai(function));
                }
            }
            Ok(Dynamic::UNIT)
        }
    );
    // `f`'s own error passes through unchanged: Rhai errors. The two arities have their own docs.
    host_fn!(r, "retry", "Call `f` until it succeeds. Options: `attempts` (3), `delay` (\"1s\"), `backoff` (2.0). Returns what `f` returns; after the last attempt the last error is raised. Timeouts and cancellation are never retried.\n\n```rhai\nlet n = retry(|| 40 + 2, #{ attempts: 5, delay: \"2s\" });\n```", |ctx, nctx: NativeCallContext, f: FnPtr, options: Map| -> rhai "?" {
        let o = crate::host::binding::opts::<RetryOptions>(&options)
            .map_err(|e| e.into_rhai("retry"))?;
        retry(&nctx, &ctx, &f, o)
    });
    host_fn!(r, "retry", "Call `f` up to 3 times with 1 s, then 2 s between attempts.\n\n```rhai\nlet n = retry(|| 40 + 2);\n```", |ctx, nctx: NativeCallContext, f: FnPtr| -> rhai "?" {
        retry(&nctx, &ctx, &f, RetryOptions::default())
    });
    host_fn!(r, "setting", "A setting from `--set name=...` (or a daemon job's `vars`), else the environment variable NAME (upper case), else `default`; converted to the default's type (int, float, bool).\n\nOne line replaces the usual \"vars, else env, else default\" dance, and a value that does not fit the type is an error naming the setting.\n\n```rhai\nlet keep = setting(\"keep\", 14);          // --set keep=30, or KEEP=30, else 14\nlet dir = setting(\"backup_dir\", \"./backups\");\n```", |ctx, name: &str, default: Dynamic| -> dyn "?" {
        let found = ctx
            .vars
            .get(name)
            .or_else(|| ctx.vars.get(name.to_lowercase().as_str()))
            .cloned()
            .or_else(|| match std::env::var(name.to_uppercase()) {
                Ok(v) if !v.is_empty() => Some(Dynamic::from(v)),
                _ => None,
            });
        match found {
            None => Ok(default),
            Some(v) => convert_setting(name, v, &default),
        }
    });
    host_fn!(r, "with_password", "The URL with its password set (percent-encoded), unless it already has one. The password is registered as a secret, so it is masked in every log line.\n\n```rhai\nlet url = with_password(\"postgres://app@127.0.0.1/app\", \"p@ss\");\n```", |ctx, url: &str, password: &str| -> "String" {
        with_password(url, password)
    });
    host_fn!(r, "hostname", "This machine's host name.\n\n```rhai\nlog(`running on ${hostname()}`);\n```", |ctx| -> "String" { Ok(hostname()) });
    host_fn!(r, "dry_run", "True when the run was started with `--dry-run`.\n\n```rhai\nif dry_run() { log(\"nothing will be changed\"); }\n```", |ctx| -> "bool" { Ok(ctx.dry_run) });
    host_fn!(r, "var_or", "A `--set NAME=VALUE` value (also a daemon job's `vars`), or `default`. `vars` holds them all as a map.\n\n```rhai\nlet keep = var_or(\"keep\", 14);\n```", |ctx, name: &str, default: Dynamic| -> dyn "?" {
        Ok(ctx.vars.get(name).cloned().unwrap_or(default))
    });
}

/// `with_password(url, password)`: the URL with its password set, unless it has one.
fn with_password(raw: &str, password: &str) -> Result<String, HostError> {
    crate::redact::register(password);
    let mut u = url::Url::parse(raw).map_err(|e| {
        HostError::invalid(format!("invalid URL {}: {e}", crate::redact::redact(raw)))
    })?;
    if u.password().is_none() && !u.username().is_empty() {
        // Encode every byte outside RFC 3986's unreserved set ourselves: the url crate
        // keeps an existing `%41` as is, which would turn the password `a%41` into `aA`.
        let encoded: String = password
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        u.set_password(Some(&encoded))
            .map_err(|_| HostError::invalid("this URL cannot carry a password"))?;
    }
    let s = u.to_string();
    crate::redact::register_url(&s);
    Ok(s)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryOptions {
    attempts: u32,
    #[serde(with = "crate::host::binding::serde_duration")]
    delay: Duration,
    backoff: f64,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            attempts: 3,
            delay: Duration::from_secs(1),
            backoff: 2.0,
        }
    }
}

/// Call `f` until it succeeds, up to `attempts` times, sleeping `delay × backoff^n` between
/// tries. Timeouts and cancellation are never retried.
fn retry(
    nctx: &NativeCallContext,
    ctx: &crate::ctx::RunCtx,
    f: &FnPtr,
    opts: RetryOptions,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let attempts = opts.attempts.max(1);
    let mut delay = opts.delay;
    let mut attempt = 1;
    loop {
        match f.call_within_context::<Dynamic>(nctx, ()) {
            Ok(v) => return Ok(v),
            Err(e) if matches!(*e, EvalAltResult::ErrorTerminated(..)) => return Err(e),
            Err(e) if attempt >= attempts => return Err(e),
            Err(e) => {
                let shown = crate::redact::redact(&e.to_string());
                tracing::warn!(target: "mtn::script", "retry: attempt {attempt}/{attempts} failed: {shown}; next in {:.1}s", delay.as_secs_f64());
                ctx.sleep(delay).map_err(|e| e.into_rhai("retry"))?;
                delay = delay.mul_f64(opts.backoff.clamp(1.0, 10.0));
                attempt += 1;
            }
        }
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".to_string())
}
