//! General functions every script uses: logging, environment, secrets, time, sleep, assertions.

use std::time::Duration;

use chrono::{DateTime, Local, TimeZone, Utc};
use rhai::{Dynamic, EvalAltResult, ImmutableString};

use crate::engine::ctx::RunCtx;
use crate::engine::registry::Registrar;
use crate::host::binding::{call, parse_duration, RhaiResult};
use crate::host::error::{ErrorKind, HostError};

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
        .map_err(|_| HostError::invalid(format!("format_time: invalid format string {fmt:?}")))?;
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
                "log: unknown level {other:?} (use error, warn, info, debug, trace)"
            )))
        }
    }
    Ok(())
}

fn seconds_of(d: &Dynamic) -> Result<f64, HostError> {
    if let Ok(i) = d.as_int() {
        return Ok(i as f64);
    }
    if let Ok(f) = d.as_float() {
        return Ok(f);
    }
    if let Some(s) = d.read_lock::<ImmutableString>() {
        return Ok(parse_duration(&s)?.as_secs_f64());
    }
    Err(HostError::invalid(format!(
        "expected a duration (seconds or a string like \"5m\"), got {}",
        d.type_name()
    )))
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
        .register_fn("+", |a: Time, secs: f64| {
            Time(a.0 + chrono::Duration::milliseconds((secs * 1000.0) as i64))
        })
        .register_fn("+", |a: Time, secs: i64| {
            Time(a.0 + chrono::Duration::seconds(secs))
        })
        .register_fn("-", |a: Time, secs: f64| {
            Time(a.0 - chrono::Duration::milliseconds((secs * 1000.0) as i64))
        })
        .register_fn("-", |a: Time, secs: i64| {
            Time(a.0 - chrono::Duration::seconds(secs))
        })
        .register_fn("<", |a: Time, b: Time| a < b)
        .register_fn(">", |a: Time, b: Time| a > b)
        .register_fn("<=", |a: Time, b: Time| a <= b)
        .register_fn(">=", |a: Time, b: Time| a >= b)
        .register_fn("==", |a: Time, b: Time| a == b)
        .register_fn("!=", |a: Time, b: Time| a != b);

    let ctx = r.ctx.clone();
    r.add(
        "log",
        &["message: ?"],
        "()",
        "Log a message at info level (secrets are masked).\n\n```rhai\nlog(\"backup starting\");\n```",
        move |msg: Dynamic| log_at(&ctx, "info", &msg.to_string()).map_err(|e| e.into_rhai("log")),
    );
    let ctx = r.ctx.clone();
    r.add(
        "log",
        &["level: &str", "message: ?"],
        "()",
        "Log a message at a level: error, warn, info, debug or trace.\n\n```rhai\nlog(\"debug\", \"checked 3 files\");\n```",
        move |level: &str, msg: Dynamic| log_at(&ctx, level, &msg.to_string()).map_err(|e| e.into_rhai("log")),
    );
    let ctx = r.ctx.clone();
    r.add(
        "warn",
        &["message: ?"],
        "()",
        "Log a warning; the run still succeeds but ends with status `warning` (exit 3 with `--fail-on-warning`).\n\n```rhai\nif 1 > 0 { warn(\"disk is 85% full\"); }\n```",
        move |msg: Dynamic| {
            ctx.set_warned();
            log_at(&ctx, "warn", &msg.to_string()).map_err(|e| e.into_rhai("warn"))
        },
    );
    r.add(
        "env",
        &["name: &str"],
        "String or ()",
        "The value of an environment variable, or `()` when it is not set.\n\n```rhai\nlet home = env(\"HOME\");\n```",
        |name: &str| -> Dynamic {
            std::env::var(name).map(Dynamic::from).unwrap_or(Dynamic::UNIT)
        },
    );
    r.add(
        "env",
        &["name: &str", "default: ?"],
        "?",
        "The value of an environment variable, or `default` when it is not set or empty.\n\n```rhai\nlet dir = env(\"BACKUP_DIR\", \"./backups\");\n```",
        |name: &str, default: Dynamic| -> Dynamic {
            match std::env::var(name) {
                Ok(v) if !v.is_empty() => Dynamic::from(v),
                _ => default,
            }
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "secret",
        &["name: &str"],
        "String",
        "A secret from the environment variable NAME, or from the file named by NAME_FILE (trailing newline removed). Its value is masked in every log line, error and report from then on.\n\n```rhai\nlet token = secret(\"SLACK_TOKEN\");\n```",
        move |name: &str| -> RhaiResult {
            call(&ctx, "secret", || {
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
            })
        },
    );
    r.add(
        "now",
        &[],
        "Time",
        "The current time (local time zone). `t.unix`, `t.iso`, `t.format(\"%Y\")`, `t - other` (seconds), `t - 3600` (a Time).\n\n```rhai\nlet t = now();\nlog(t.iso);\n```",
        || Time(Local::now()),
    );
    r.add(
        "today",
        &[],
        "String",
        "Today's date as `YYYY-mm-dd` (local time zone), ready for file names.\n\n```rhai\nlet name = `backup_${today()}.sql.gz`;\n```",
        || Local::now().format("%Y-%m-%d").to_string(),
    );
    r.add(
        "time_from_unix",
        &["seconds: i64"],
        "Time",
        "A Time from Unix seconds.\n\n```rhai\nlet t = time_from_unix(0);\n```",
        |secs: i64| -> RhaiResult {
            Utc.timestamp_opt(secs, 0)
                .single()
                .map(|t| Dynamic::from(Time(t.with_timezone(&Local))))
                .ok_or_else(|| {
                    failure(
                        ErrorKind::InvalidInput,
                        "time_from_unix",
                        "timestamp out of range",
                    )
                })
        },
    );
    r.add(
        "format_time",
        &["time: Time", "format: &str"],
        "String",
        "Format a time with strftime codes (`%Y-%m-%d_%H%M%S`), like `date +FORMAT`.\n\n```rhai\nlet stamp = format_time(now(), \"%Y%m%d_%H%M%S\");\n```",
        |t: Time, f: &str| format_time(&t.0, f).map_err(|e| e.into_rhai("format_time")),
    );
    r.add(
        "duration",
        &["text: &str"],
        "f64",
        "Seconds in a duration string: \"30s\", \"5m\", \"12h\", \"30d\", \"1h30m\", \"500ms\".\n\n```rhai\nlet week = duration(\"7d\"); // 604800.0\n```",
        |s: &str| -> RhaiResult {
            parse_duration(s)
                .map(|d| Dynamic::from(d.as_secs_f64()))
                .map_err(|e| e.into_rhai("duration"))
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "sleep",
        &["duration: ?"],
        "()",
        "Pause for a number of seconds or a duration string; ends at once when the run is cancelled or times out.\n\n```rhai\nsleep(\"1s\");\n```",
        move |d: Dynamic| -> RhaiResult {
            let secs = seconds_of(&d).map_err(|e| e.into_rhai("sleep"))?;
            ctx.sleep(Duration::from_secs_f64(secs.max(0.0)))
                .map(|_| Dynamic::UNIT)
                .map_err(|e| e.into_rhai("sleep"))
        },
    );
    // Rhai's built-in blocking `sleep(INT)` / `sleep(FLOAT)` match numbers more exactly than
    // the `Dynamic` overload above and would ignore cancellation: shadow them.
    for_numbers_sleep(r);
    r.add(
        "assert",
        &["condition: bool", "message: ?"],
        "()",
        "Fail the run with `message` unless `condition` is true.\n\n```rhai\nassert(1 + 1 == 2, \"arithmetic is broken\");\n```",
        |cond: bool, msg: Dynamic| -> Result<(), Box<EvalAltResult>> {
            if cond {
                Ok(())
            } else {
                Err(failure(ErrorKind::Failed, "assert", &format!("assertion failed: {msg}")))
            }
        },
    );
    r.add(
        "fail",
        &["message: ?"],
        "()",
        "Fail the run with a message (catchable with try/catch, kind `failed`).\n\n```rhai\ntry { fail(\"no backups found\"); } catch (e) { log(e.message); }\n```",
        |msg: Dynamic| -> Result<(), Box<EvalAltResult>> {
            Err(failure(ErrorKind::Failed, "fail", &msg.to_string()))
        },
    );
    r.add(
        "hostname",
        &[],
        "String",
        "This machine's host name.\n\n```rhai\nlog(`running on ${hostname()}`);\n```",
        hostname,
    );
    r.add(
        "dry_run",
        &[],
        "bool",
        "True when the run was started with `--dry-run`.\n\n```rhai\nif dry_run() { log(\"nothing will be changed\"); }\n```",
        {
            let ctx = r.ctx.clone();
            move || ctx.dry_run
        },
    );
    r.add(
        "var",
        &["name: &str", "default: ?"],
        "?",
        "A `--set NAME=VALUE` value (also a daemon job's `vars`), or `default`. `vars` holds them all as a map.\n\n```rhai\nlet keep = var(\"keep\", \"14\").parse_int();\n```",
        {
            let ctx = r.ctx.clone();
            move |name: &str, default: Dynamic| -> Dynamic {
                ctx.vars.get(name).cloned().unwrap_or(default)
            }
        },
    );
}

fn for_numbers_sleep(r: &mut Registrar) {
    let ctx = r.ctx.clone();
    r.engine
        .register_fn("sleep", move |secs: i64| -> RhaiResult {
            ctx.sleep(Duration::from_secs(secs.max(0) as u64))
                .map(|_| Dynamic::UNIT)
                .map_err(|e| e.into_rhai("sleep"))
        });
    let ctx = r.ctx.clone();
    r.engine
        .register_fn("sleep", move |secs: f64| -> RhaiResult {
            ctx.sleep(Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX))
                .map(|_| Dynamic::UNIT)
                .map_err(|e| e.into_rhai("sleep"))
        });
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".to_string())
}
