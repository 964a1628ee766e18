//! The monthly restore drill as one call: create a uniquely named scratch database, restore the
//! dump into it, run the checks, and drop it again whatever happened (check failure, error,
//! timeout, cancellation). The last success is recorded for the daemon's metrics.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rhai::{Dynamic, FnPtr, NativeCallContext};
use serde::Serialize;
use serde_json::Value;

use super::options::{RestoreOptions, RestoreTestOptions};
use super::url::{Engine, ServerUrl};
use super::{mysql, postgres, sqlite};
use crate::engine::ctx::Ctx;
use crate::host::error::{HostError, HostResult};

#[derive(Debug, Serialize)]
pub struct CheckResult {
    pub check: String,
    pub expected: Value,
    pub actual: Value,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RestoreTestReport {
    pub ok: bool,
    pub checks: Vec<CheckResult>,
    pub database: String,
    pub restore_ms: u64,
    pub duration_ms: u64,
    pub dropped: bool,
    pub dry_run: bool,
}

/// Drops the scratch database when it goes out of scope, on the runtime, without racing the
/// run's cancellation token (which may already have fired).
struct Scratch {
    ctx: Ctx,
    engine: Engine,
    server: Option<ServerUrl>,
    name: String,
    dir: Option<tempfile::TempDir>,
    dropped: bool,
}

impl Scratch {
    fn url(&self) -> String {
        match (&self.server, &self.dir) {
            (Some(s), _) => s.with_database(&self.name).full(),
            (None, Some(d)) => format!("sqlite://{}", d.path().join(&self.name).display()),
            _ => String::new(),
        }
    }

    fn drop_now(&mut self) -> HostResult<()> {
        if self.dropped {
            return Ok(());
        }
        self.dropped = true;
        if let Some(d) = self.dir.take() {
            return d
                .close()
                .map_err(|e| HostError::io("removing the scratch SQLite database", &e));
        }
        let Some(server) = self.server.clone() else {
            return Ok(());
        };
        let name = self.name.clone();
        let engine = self.engine;
        let fut = async move {
            match engine {
                Engine::Postgres => {
                    let admin = postgres::admin_connect(&server).await?;
                    postgres::drop_database(&admin, &name).await
                }
                Engine::Mysql => mysql::drop_database(&server, &name).await,
                _ => Ok(()),
            }
        };
        let res = self.ctx.handle.block_on(async {
            tokio::time::timeout(Duration::from_secs(60), fut)
                .await
                .unwrap_or_else(|_| {
                    Err(HostError::network(
                        "timed out dropping the scratch database",
                    ))
                })
        });
        match &res {
            Ok(()) => {
                tracing::info!(target: "mtn::db", database = %self.name, "scratch database dropped")
            }
            Err(e) => {
                tracing::error!(target: "mtn::db", database = %self.name, error = %crate::redact::redact(&e.message), "could not drop the scratch database")
            }
        }
        res
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.drop_now();
    }
}

fn scratch_name() -> String {
    let stamp = chrono::Local::now().format("%Y%m%d%H%M%S");
    let r: u32 = rand::random();
    format!("mtn_restore_test_{stamp}_{r:08x}")
}

pub fn run(
    nctx: &NativeCallContext,
    ctx: &Ctx,
    dump: &str,
    server_url: &str,
    checks: Dynamic,
    opts: RestoreTestOptions,
) -> HostResult<RestoreTestReport> {
    let started = Instant::now();
    let engine = Engine::of(server_url)?;
    let dump_path = PathBuf::from(dump);
    if !dump_path.exists() {
        return Err(HostError::not_found(format!(
            "restore_test: dump {dump} does not exist"
        )));
    }
    let checks = Checks::from(checks)?;
    let name = scratch_name();
    let mut scratch = Scratch {
        ctx: ctx.clone(),
        engine,
        server: None,
        name: name.clone(),
        dir: None,
        dropped: true,
    };
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let within = |what: &str| -> HostResult<Duration> {
        match deadline {
            None => Ok(Duration::from_secs(u64::MAX / 4)),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(HostError::new(
                        crate::host::error::ErrorKind::Verification,
                        format!("restore_test timed out ({what})"),
                    ))
                } else {
                    Ok(left)
                }
            }
        }
    };
    // Create the scratch database.
    match engine {
        Engine::Postgres | Engine::Mysql => {
            let server = ServerUrl::parse(server_url)?;
            if ctx.dry_run {
                ctx.block_on(async {
                    match engine {
                        Engine::Postgres => postgres::admin_connect(&server).await.map(|_| ()),
                        _ => mysql::database_exists(&server, "mysql").await.map(|_| ()),
                    }
                })?;
                return Ok(dry(name, started));
            }
            let s2 = server.clone();
            let n2 = name.clone();
            ctx.block_on(async move {
                match engine {
                    Engine::Postgres => {
                        let admin = postgres::admin_connect(&s2).await?;
                        postgres::create_database(&admin, &n2).await
                    }
                    _ => mysql::create_database(&s2, &n2).await,
                }
            })?;
            scratch.server = Some(server);
            scratch.dropped = false;
        }
        Engine::Sqlite => {
            if ctx.dry_run {
                return Ok(dry(name, started));
            }
            let dir = tempfile::Builder::new()
                .prefix("mtn-restore-test-")
                .tempdir()
                .map_err(|e| HostError::io("creating a scratch folder", &e))?;
            scratch.dir = Some(dir);
            scratch.dropped = false;
        }
        Engine::Mongo => unreachable!("mongodb URLs are dispatched before"),
    }
    let scratch_url = scratch.url();
    crate::redact::register_url(&scratch_url);
    tracing::info!(target: "mtn::db", database = %name, "restore test: scratch database created");

    // Restore.
    let restore_started = Instant::now();
    let ropts = RestoreOptions {
        create: true,
        clean: false,
        jobs: opts.jobs,
        no_owner: opts.no_owner,
    };
    let limit = within("before restoring")?;
    let restored: HostResult<()> = match engine {
        Engine::Sqlite => {
            let target = super::url::sqlite_path(&scratch_url)?;
            sqlite::restore_into(ctx, &dump_path, &target)
        }
        _ => {
            let u = scratch_url.clone();
            let c = ctx.clone();
            let d = dump_path.clone();
            ctx.block_on(async move {
                let fut = async {
                    if engine == Engine::Postgres {
                        postgres::restore(&c, &d, &u, ropts).await.map(|_| ())
                    } else {
                        mysql::restore(&c, &d, &u, ropts).await.map(|_| ())
                    }
                };
                tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
                    Err(HostError::verification(
                        "restore_test timed out while restoring",
                    ))
                })
            })
        }
    };
    restored.map_err(|e| e.context("restore_test: restoring into the scratch database"))?;
    let restore_ms = restore_started.elapsed().as_millis() as u64;

    // Checks.
    let mut results = Vec::new();
    match checks {
        Checks::Queries(list) => {
            for (sql, expected) in list {
                let limit = within("running checks")?;
                let u = scratch_url.clone();
                let s2 = sql.clone();
                let c = ctx.clone();
                let got = ctx.block_on(async move {
                    tokio::time::timeout(limit, super::query(&c, &u, &s2, &[]))
                        .await
                        .unwrap_or_else(|_| {
                            Err(HostError::verification("restore_test timed out in a check"))
                        })
                });
                results.push(match got {
                    Ok(rows) => {
                        let actual = rows
                            .first()
                            .and_then(|r| r.values().next().cloned())
                            .unwrap_or(Value::Null);
                        let ok = matches(&expected, &actual);
                        CheckResult {
                            check: sql,
                            expected,
                            actual,
                            ok,
                            error: None,
                        }
                    }
                    Err(e) => CheckResult {
                        check: sql,
                        expected,
                        actual: Value::Null,
                        ok: false,
                        error: Some(crate::redact::redact(&e.message)),
                    },
                });
            }
        }
        Checks::Closure(f) => {
            let r = f.call_within_context::<Dynamic>(nctx, (scratch_url.clone(),));
            results.push(match r {
                Ok(v) => {
                    let ok = !v.is_bool() || v.as_bool().unwrap_or(true);
                    let actual = crate::host::binding::dynamic_to_json(&v).unwrap_or(Value::Null);
                    CheckResult {
                        check: "closure".into(),
                        expected: Value::Bool(true),
                        actual,
                        ok,
                        error: None,
                    }
                }
                Err(e) => {
                    if matches!(*e, rhai::EvalAltResult::ErrorTerminated(..)) {
                        // Cancellation/timeout inside the closure: the guard still drops the scratch db.
                        return Err(HostError::new(
                            crate::host::error::ErrorKind::Cancelled,
                            e.to_string(),
                        ));
                    }
                    CheckResult {
                        check: "closure".into(),
                        expected: Value::Bool(true),
                        actual: Value::Null,
                        ok: false,
                        error: Some(crate::redact::redact(&e.to_string())),
                    }
                }
            });
        }
    }
    let ok = results.iter().all(|r| r.ok);
    scratch
        .drop_now()
        .map_err(|e| e.context(format!("restore_test: dropping scratch database {name}")))?;
    let duration_ms = started.elapsed().as_millis() as u64;
    if ok {
        record_success(ctx, dump, server_url, duration_ms)?;
    }
    Ok(RestoreTestReport {
        ok,
        checks: results,
        database: name,
        restore_ms,
        duration_ms,
        dropped: true,
        dry_run: false,
    })
}

fn dry(name: String, started: Instant) -> RestoreTestReport {
    RestoreTestReport {
        ok: true,
        checks: Vec::new(),
        database: name,
        restore_ms: 0,
        duration_ms: started.elapsed().as_millis() as u64,
        dropped: false,
        dry_run: true,
    }
}

enum Checks {
    Queries(Vec<(String, Value)>),
    Closure(FnPtr),
}

impl Checks {
    fn from(d: Dynamic) -> HostResult<Checks> {
        if d.is_fnptr() {
            return Ok(Checks::Closure(d.cast::<FnPtr>()));
        }
        if d.is_map() {
            let m = d.cast::<rhai::Map>();
            let mut out = Vec::new();
            for (k, v) in m {
                out.push((k.to_string(), crate::host::binding::dynamic_to_json(&v)?));
            }
            return Ok(Checks::Queries(out));
        }
        if d.is_unit() {
            return Ok(Checks::Queries(Vec::new()));
        }
        Err(HostError::invalid(format!(
            "restore_test: checks must be a map of SQL → expected value or a closure |url| ..., got {}",
            d.type_name()
        )))
    }
}

/// Expected values: a value (numbers compare numerically, everything else by text), or a
/// string with a comparison: ">0", ">= 100", "<5", "!=0".
pub fn matches(expected: &Value, actual: &Value) -> bool {
    let num = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        Value::Bool(b) => Some(*b as i64 as f64),
        _ => None,
    };
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

fn record_success(ctx: &Ctx, dump: &str, url: &str, duration_ms: u64) -> HostResult<()> {
    let dir: &Path = &ctx.state_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| HostError::io(format!("creating state directory {}", dir.display()), &e))?;
    let doc = serde_json::json!({
        "timestamp": chrono::Utc::now().timestamp(),
        "dump": dump,
        "url": crate::redact::register_url(url),
        "ok": true,
        "duration_ms": duration_ms,
    });
    let path = dir.join("last_restore_test.json");
    crate::atomic::write_atomic(&path, doc.to_string().as_bytes())
        .map_err(|e| HostError::io(format!("writing {}", path.display()), &e))
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
}
