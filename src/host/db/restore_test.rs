//! The restore drill as one call, the same for every engine: create a uniquely named scratch
//! database, restore the dump into it, evaluate the checks, and drop it again whatever happened
//! (check failure, error, timeout, cancellation). A failed check makes `ok` false (the script
//! decides whether to `fail`); a success is recorded in `<state_dir>/last_restore_test.json` for
//! the daemon's "last verified" metric.
//!
//! What differs per engine lives in [`Scratch`] (create, url, restore, evaluate one check, drop);
//! the driver [`run`], the check language ([`matches`]) and the report are shared.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rhai::{Dynamic, FnPtr, NativeCallContext};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::options::RestoreOptions;
use super::url::{Engine, ServerUrl};
use super::{mongo, mysql, postgres, sqlite, Db};
use crate::engine::ctx::Ctx;
use crate::host::binding::serde_duration;
use crate::host::error::{ErrorKind, HostError, HostResult};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreTestOptions {
    /// Give up (and still drop the scratch database) after this long.
    #[serde(with = "serde_duration::option")]
    pub timeout: Option<Duration>,
    /// Scratch database name (default `mtn_restore_test_<stamp>_<random>`); must not exist.
    pub database: Option<String>,
    /// pg_restore --jobs (PostgreSQL custom/directory dumps).
    pub jobs: Option<u32>,
    /// pg_restore --no-owner.
    pub no_owner: bool,
    /// MongoDB: restore only these collections / all but these.
    pub collections: Vec<String>,
    pub exclude_collections: Vec<String>,
    /// MongoDB: which database of the dump to restore when it holds several.
    pub from_db: Option<String>,
}

impl RestoreTestOptions {
    /// Options that only one kind of engine understands are refused elsewhere, not ignored.
    fn check_for(&self, engine: Engine) -> HostResult<()> {
        let mongo_only = !self.collections.is_empty()
            || !self.exclude_collections.is_empty()
            || self.from_db.is_some();
        let sql_only = self.jobs.is_some() || self.no_owner;
        let bad = match engine {
            Engine::Mongo if sql_only => Some("`jobs` and `no_owner` are for PostgreSQL dumps"),
            Engine::Mongo => None,
            _ if mongo_only => {
                Some("`collections`, `exclude_collections` and `from_db` are for MongoDB dumps")
            }
            _ => None,
        };
        match bad {
            Some(why) => Err(HostError::invalid(format!(
                "restore_test: {why}, not for this engine"
            ))),
            None => Ok(()),
        }
    }
}

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
    /// The engine's restore report (`restore_db`'s return value for that engine).
    pub restore: Value,
    pub restore_ms: u64,
    pub duration_ms: u64,
    pub dropped: bool,
    pub dry_run: bool,
}

/// Where the scratch database lives. Dropped when it goes out of scope, on the runtime, without
/// racing the run's cancellation token (which may already have fired).
enum Place {
    /// A database on the PostgreSQL or MySQL/MariaDB server of the URL.
    Server { engine: Engine, server: ServerUrl },
    /// A file in a private temporary folder (SQLite).
    File { dir: tempfile::TempDir },
    /// A database on the MongoDB deployment of the URL (created by the restore itself).
    Mongo {
        url: String,
        timeout: Option<Duration>,
    },
}

struct Scratch {
    ctx: Ctx,
    name: String,
    place: Place,
    /// False until something exists that must be dropped.
    live: bool,
}

impl Scratch {
    /// Create the scratch database (in a dry run: only prove the server is reachable).
    fn create(ctx: &Ctx, db: &Db, name: &str, o: &RestoreTestOptions) -> HostResult<Scratch> {
        let dry = ctx.dry_run;
        let (engine, url) = (db.engine, db.url.as_str());
        let place = match (engine, &db.server) {
            (Engine::Postgres | Engine::Mysql, Some(server)) => {
                let server = server.clone();
                let (s, n) = (server.clone(), name.to_string());
                ctx.block_on(async move {
                    if engine == Engine::Postgres {
                        let admin = postgres::admin_connect(&s).await?;
                        if dry {
                            return Ok(());
                        }
                        postgres::create_database(&admin, &n).await
                    } else if dry {
                        mysql::database_exists(&s, "mysql").await.map(|_| ())
                    } else {
                        mysql::create_database(&s, &n).await
                    }
                })?;
                Place::Server { engine, server }
            }
            (Engine::Sqlite, _) => Place::File {
                dir: tempfile::Builder::new()
                    .prefix("mtn-restore-test-")
                    .tempdir()
                    .map_err(|e| HostError::io("creating a scratch folder", &e))?,
            },
            (Engine::Mongo, _) => {
                let scratch_url = mongo::conn::with_database(url, name)?;
                let n = name.to_string();
                let (base, exists) = ctx.block_on(async move {
                    let c = mongo::conn::connect(url, o.timeout).await?;
                    let names = c
                        .client
                        .list_database_names()
                        .await
                        .map_err(|e| mongo::conn::map_err(e, "listing databases", &c.shown))?;
                    Ok((c.db.name().to_string(), names.contains(&n)))
                })?;
                if base == name {
                    return Err(HostError::invalid(format!(
                        "restore_test: the scratch database must differ from {base}, the URL's database"
                    )));
                }
                if exists {
                    return Err(HostError::refused(format!(
                        "restore_test: scratch database {name} already exists; refusing to restore into (and then drop) it"
                    )));
                }
                Place::Mongo {
                    url: scratch_url,
                    timeout: o.timeout,
                }
            }
            (_, None) => return Err(HostError::other("restore_test: no server URL")),
        };
        let scratch = Scratch {
            ctx: ctx.clone(),
            name: name.to_string(),
            place,
            live: !dry,
        };
        crate::redact::register_url(&scratch.url());
        Ok(scratch)
    }

    fn url(&self) -> String {
        match &self.place {
            Place::Server { server, .. } => server.with_database(&self.name).full(),
            Place::File { dir } => format!("sqlite://{}", dir.path().join(&self.name).display()),
            Place::Mongo { url, .. } => url.clone(),
        }
    }

    /// Restore `dump` into the scratch database; returns the engine's restore report.
    async fn restore(&self, dump: &Path, o: &RestoreTestOptions) -> HostResult<Value> {
        let ctx = &self.ctx;
        let url = self.url();
        let sql_opts = RestoreOptions {
            create: true,
            clean: false,
            jobs: o.jobs,
            no_owner: o.no_owner,
        };
        let report = match &self.place {
            Place::Server {
                engine: Engine::Postgres,
                ..
            } => to_json(&postgres::restore(ctx, dump, &url, sql_opts).await?),
            Place::Server { .. } => to_json(&mysql::restore(ctx, dump, &url, sql_opts).await?),
            Place::File { .. } if ctx.dry_run => Value::Null,
            Place::File { .. } => {
                // Straight into the private scratch file (not through restore_db's policy
                // check: the scratch folder is mtn's own, not a user path).
                let started = std::time::Instant::now();
                let target = super::url::sqlite_path(&url)?;
                sqlite::restore_into(ctx, dump, &target)?;
                to_json(&super::options::RestoreReport {
                    database: target.display().to_string(),
                    format: "sqlite".into(),
                    dump_bytes: std::fs::metadata(dump).map(|m| m.len()).unwrap_or(0),
                    duration_ms: started.elapsed().as_millis() as u64,
                    dry_run: false,
                })
            }
            Place::Mongo { timeout, .. } => {
                let mopts = mongo::restore::RestoreOptions {
                    collections: o.collections.clone(),
                    exclude_collections: o.exclude_collections.clone(),
                    from_db: o.from_db.clone(),
                    timeout: *timeout,
                    ..Default::default()
                };
                let dump = dump.to_string_lossy();
                to_json(&mongo::restore::restore_async(ctx, &dump, &url, mopts).await?)
            }
        };
        Ok(report)
    }

    /// The value a check names: SQL → the first column of the first row; MongoDB → the number
    /// of documents in the collection.
    async fn evaluate(&self, check: &str) -> HostResult<Value> {
        let url = self.url();
        match &self.place {
            Place::Mongo { .. } => Ok(Value::from(
                mongo::ops::count(&url, check, Default::default()).await?,
            )),
            _ => Ok(super::query(&self.ctx, &url, check, &[])
                .await?
                .first()
                .and_then(|r| r.values().next().cloned())
                .unwrap_or(Value::Null)),
        }
    }

    fn drop_now(&mut self) -> HostResult<()> {
        if !self.live {
            return Ok(());
        }
        self.live = false;
        let name = self.name.clone();
        let fut = async {
            match &self.place {
                Place::File { .. } => Ok(()),
                Place::Server {
                    engine: Engine::Postgres,
                    server,
                } => {
                    let admin = postgres::admin_connect(server).await?;
                    postgres::drop_database(&admin, &name).await
                }
                Place::Server { server, .. } => mysql::drop_database(server, &name).await,
                Place::Mongo { url, timeout } => {
                    let c = mongo::conn::connect(url, *timeout).await?;
                    c.db.drop().await.map_err(|e| {
                        mongo::conn::map_err(e, "dropping the scratch database", &c.shown)
                    })
                }
            }
        };
        let res = match &self.place {
            // Removing the folder now (not when the TempDir goes) to see the error.
            Place::File { dir } => std::fs::remove_dir_all(dir.path())
                .map_err(|e| HostError::io("removing the scratch SQLite database", &e)),
            _ => self.ctx.handle.block_on(async {
                tokio::time::timeout(Duration::from_secs(60), fut)
                    .await
                    .unwrap_or_else(|_| {
                        Err(HostError::network(
                            "timed out dropping the scratch database",
                        ))
                    })
            }),
        };
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

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn scratch_name() -> String {
    let stamp = chrono::Local::now().format("%Y%m%d%H%M%S");
    let r: u32 = rand::random();
    format!("mtn_restore_test_{stamp}_{r:08x}")
}

/// A deadline shared by the restore and the checks.
struct Deadline(Option<Instant>);

impl Deadline {
    fn left(&self, what: &str) -> HostResult<Duration> {
        let Some(d) = self.0 else {
            return Ok(Duration::from_secs(u64::MAX / 4));
        };
        let left = d.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(what));
        }
        Ok(left)
    }

    /// Run `fut` on the runtime within what is left of the deadline.
    fn run<T>(
        &self,
        ctx: &Ctx,
        what: &str,
        fut: impl std::future::Future<Output = HostResult<T>>,
    ) -> HostResult<T> {
        let limit = self.left(what)?;
        ctx.block_on(async move {
            tokio::time::timeout(limit, fut)
                .await
                .unwrap_or_else(|_| Err(timed_out(what)))
        })
    }
}

fn timed_out(what: &str) -> HostError {
    HostError::verification(format!("restore_test timed out {what}"))
}

pub fn run(
    nctx: &NativeCallContext,
    ctx: &Ctx,
    dump: &str,
    db: &Db,
    checks: Dynamic,
    opts: RestoreTestOptions,
) -> HostResult<RestoreTestReport> {
    let started = Instant::now();
    opts.check_for(db.engine)?;
    let dump_path = PathBuf::from(dump);
    if !dump_path.exists() {
        return Err(HostError::not_found(format!(
            "restore_test: dump {dump} does not exist"
        )));
    }
    let checks = Checks::from(checks)?;
    let name = opts.database.clone().unwrap_or_else(scratch_name);
    let deadline = Deadline(opts.timeout.map(|t| Instant::now() + t));
    let mut scratch = Scratch::create(ctx, db, &name, &opts)?;
    if scratch.live {
        tracing::info!(target: "mtn::db", database = %name, "restore test: scratch database created");
    }

    let restore_started = Instant::now();
    let restore = deadline
        .run(ctx, "while restoring", scratch.restore(&dump_path, &opts))
        .map_err(|e| e.context("restore_test: restoring into the scratch database"))?;
    let restore_ms = restore_started.elapsed().as_millis() as u64;
    if ctx.dry_run {
        // A dry run proves the server (and, for MongoDB, the dump) but creates nothing.
        return Ok(RestoreTestReport {
            ok: true,
            checks: Vec::new(),
            database: name,
            restore,
            restore_ms,
            duration_ms: started.elapsed().as_millis() as u64,
            dropped: false,
            dry_run: true,
        });
    }

    let scratch_url = scratch.url();
    let results = match checks {
        Checks::Map(list) => {
            let mut results = Vec::new();
            for (check, expected) in list {
                let got = deadline.run(ctx, "in a check", scratch.evaluate(&check));
                let (actual, error) = match got {
                    Ok(v) => (v, None),
                    Err(e) if matches!(e.kind, ErrorKind::Cancelled | ErrorKind::Timeout) => {
                        return Err(e)
                    }
                    Err(e) => (Value::Null, Some(crate::redact::redact(&e.message))),
                };
                let ok = error.is_none() && matches(&expected, &actual);
                results.push(CheckResult {
                    check,
                    expected,
                    actual,
                    ok,
                    error,
                });
            }
            results
        }
        Checks::Closure(f) => vec![run_closure(nctx, &f, &scratch_url)?],
    };
    let ok = results.iter().all(|r| r.ok);
    scratch
        .drop_now()
        .map_err(|e| e.context(format!("restore_test: dropping scratch database {name}")))?;
    let duration_ms = started.elapsed().as_millis() as u64;
    if ok {
        record_success(ctx, dump, &db.url, duration_ms)?;
    } else {
        tracing::warn!(target: "mtn::db", database = %name, "restore test: a check failed");
    }
    Ok(RestoreTestReport {
        ok,
        checks: results,
        database: name,
        restore,
        restore_ms,
        duration_ms,
        dropped: true,
        dry_run: false,
    })
}

/// A closure check is given the scratch URL; returning `false` or throwing fails it.
fn run_closure(nctx: &NativeCallContext, f: &FnPtr, url: &str) -> HostResult<CheckResult> {
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

enum Checks {
    /// Check → expected value; a check is SQL, or a collection name for MongoDB.
    Map(Vec<(String, Value)>),
    Closure(FnPtr),
}

impl Checks {
    fn from(d: Dynamic) -> HostResult<Checks> {
        if d.is_fnptr() {
            return Ok(Checks::Closure(d.cast::<FnPtr>()));
        }
        if d.is_unit() {
            return Ok(Checks::Map(Vec::new()));
        }
        if !d.is_map() {
            return Err(HostError::invalid(format!(
                "restore_test: checks must be a map (SQL, or a MongoDB collection → expected value) or a closure |url| ..., got {}",
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
                        "restore_test: check {k:?} expects a value, a comparison like \">0\", or #{{ min: N, max: M }}"
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

fn record_success(ctx: &Ctx, dump: &str, url: &str, duration_ms: u64) -> HostResult<()> {
    let dir: &Path = &ctx.state_dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| HostError::io(format!("creating state directory {}", dir.display()), &e))?;
    let doc = serde_json::json!({
        "timestamp": chrono::Utc::now().timestamp(),
        "dump": dump,
        "url": crate::redact::redact(url),
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

    #[test]
    fn ranges() {
        assert!(matches(&json!({"min": 10}), &json!(10)));
        assert!(!matches(&json!({"min": 10}), &json!(9)));
        assert!(matches(&json!({"min": 1, "max": 3}), &json!("2")));
        assert!(!matches(&json!({"max": 3}), &json!(4)));
        assert!(!matches(&json!({"min": 1}), &json!(null)));
    }
}
