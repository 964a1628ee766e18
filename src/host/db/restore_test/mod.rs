//! The restore drill as one call, the same for every engine: create a uniquely named scratch
//! database, restore the dump into it, evaluate the checks, and drop it again whatever happened
//! (check failure, error, timeout, cancellation). A failed check makes `ok` false (the script
//! decides whether to `fail`); a success is recorded in `<state_dir>/last_restore_test.json` for
//! the daemon's "last verified" metric.
//!
//! What differs per engine lives in `scratch.rs` (create, url, restore, evaluate one check,
//! drop); the driver [`run`] and the report are here, the check language in `checks.rs`.

mod checks;
mod scratch;

pub use checks::matches;
use checks::{run_closure, Checks};
use scratch::Scratch;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rhai::{Dynamic, NativeCallContext};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::url::Engine;
use super::Db;
use crate::ctx::Ctx;
use crate::error::{ErrorKind, HostError, HostResult};
use crate::host::binding::serde_duration;

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
            Some(why) => Err(HostError::invalid(format!("{why}, not for this engine"))),
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
        return Err(HostError::not_found(format!("dump {dump} does not exist")));
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
        .map_err(|e| e.context("restoring into the scratch database"))?;
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
        .map_err(|e| e.context(format!("dropping scratch database {name}")))?;
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
