//! MongoDB: native dump/restore in mongodump's layout, stats, compact, cleanup.
//! `dump_db`, `restore_db` and `restore_test` in `db/mod.rs` hand `mongodb://` URLs to the
//! three entry points below; the `mongo_*` functions are registered here.
//!
//! Submodules: `conn` (URLs, errors), `convert` (Rhai ↔ BSON), `dump`, `archive` (tar.gz
//! assembly), `restore`, `ops` (stats, count, find, delete, compact, command).

pub mod archive;
pub mod conn;
pub mod convert;
pub mod dump;
pub mod ops;
pub mod restore;

use std::time::{Duration, Instant};

use mongodb::bson::Document;
use rhai::{Dynamic, FnPtr, Map, NativeCallContext};
use serde::Serialize;

use crate::engine::ctx::Ctx;
use crate::engine::registry::Registrar;
use crate::host::binding::{call, call_dyn, opts, to_dynamic, RhaiResult};
use crate::host::error::{HostError, HostResult};

use convert::dynamic_to_doc;

/// Take a BSON-valued option (a filter, a sort) out of an options map before serde decoding.
fn take_doc(map: &mut Map, key: &str, function: &str) -> HostResult<Option<Document>> {
    match map.remove(key) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(v) => dynamic_to_doc(&v, &format!("{function}: option `{key}`")).map(Some),
    }
}

/// `dump_db("mongodb://...", opts)`.
pub fn dump_db(ctx: &Ctx, url: &str, opts_map: &Map) -> HostResult<Dynamic> {
    let mut m = opts_map.clone();
    let query = take_doc(&mut m, "query", "dump_db")?;
    let mut o: dump::DumpOptions = opts("dump_db", &m)?;
    o.query = query;
    to_dynamic(&dump::dump(ctx, url, o)?)
}

/// `restore_db(dump, "mongodb://...", opts)`.
pub fn restore_db(ctx: &Ctx, dump: &str, url: &str, opts_map: &Map) -> HostResult<Dynamic> {
    let o: restore::RestoreOptions = opts("restore_db", opts_map)?;
    to_dynamic(&restore::restore(ctx, dump, url, o)?)
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RestoreTestOptions {
    collections: Vec<String>,
    exclude_collections: Vec<String>,
    from_db: Option<String>,
    /// Scratch database name (default `<db>_restore_test_<unix>_<random>`).
    database: Option<String>,
    #[serde(with = "crate::host::binding::serde_duration::option")]
    timeout: Option<Duration>,
}

#[derive(Debug, Serialize)]
struct CheckResult {
    name: String,
    ok: bool,
    expected: String,
    actual: String,
}

#[derive(Debug, Serialize)]
struct RestoreTestReport {
    ok: bool,
    database: String,
    restore: restore::RestoreReport,
    checks: Vec<CheckResult>,
    dropped: bool,
    duration_ms: u64,
}

/// `restore_test(dump, "mongodb://...", checks, opts)`; `checks` is a map or a closure.
pub fn restore_test(
    nctx: &NativeCallContext,
    ctx: &Ctx,
    dump: &str,
    url: &str,
    checks: Dynamic,
    opts_map: &Map,
) -> HostResult<Dynamic> {
    let started = Instant::now();
    let o: RestoreTestOptions = opts("restore_test", opts_map)?;
    let shown = conn::register_secret(url);
    let base = ctx.block_on(async {
        conn::connect(url, o.timeout)
            .await
            .map(|c| c.db.name().to_string())
    })?;
    let scratch = o.database.clone().unwrap_or_else(|| {
        let tag: u32 = rand::random();
        let mut prefix = base.clone();
        prefix.truncate(24);
        format!(
            "{prefix}_restore_test_{}_{tag:08x}",
            chrono::Utc::now().timestamp()
        )
    });
    if scratch == base {
        return Err(HostError::invalid(format!(
            "restore_test: the scratch database must differ from {base}, the URL's database"
        )));
    }
    let scratch_url = conn::with_database(url, &scratch)?;
    let ropts = restore::RestoreOptions {
        collections: o.collections.clone(),
        exclude_collections: o.exclude_collections.clone(),
        from_db: o.from_db.clone(),
        timeout: o.timeout,
        ..Default::default()
    };

    // The scratch database must not already exist: it is dropped afterwards.
    let pre = ctx.block_on(async {
        let c = conn::connect(&scratch_url, o.timeout).await?;
        let names = c
            .client
            .list_database_names()
            .await
            .map_err(|e| conn::map_err(e, "listing databases", &shown))?;
        Ok(names.contains(&scratch))
    })?;
    if pre {
        return Err(HostError::refused(format!(
            "restore_test: scratch database {scratch} already exists; refusing to restore into (and then drop) it"
        )));
    }

    let outcome = run_restore_test(nctx, ctx, dump, &scratch_url, &scratch, &checks, ropts);
    // Always drop the scratch database, also when the restore or a check failed or the run is
    // being cancelled (so not through ctx.block_on, which refuses once cancelled).
    let dropped = drop_scratch(ctx, &scratch_url, o.timeout);
    let (report, results) = outcome?;
    if let Err(e) = &dropped {
        return Err(HostError::server(format!(
            "restore_test: the restore passed but dropping scratch database {scratch} failed: {}",
            e.message
        )));
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: expected {}, got {}", c.name, c.expected, c.actual))
        .collect();
    if !failed.is_empty() {
        return Err(HostError::verification(format!(
            "restore_test: {} check(s) failed after restoring {dump}: {}",
            failed.len(),
            failed.join("; ")
        )));
    }
    to_dynamic(&RestoreTestReport {
        ok: true,
        database: scratch,
        restore: report,
        checks: results,
        dropped: true,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

fn run_restore_test(
    nctx: &NativeCallContext,
    ctx: &Ctx,
    dump: &str,
    scratch_url: &str,
    scratch: &str,
    checks: &Dynamic,
    ropts: restore::RestoreOptions,
) -> HostResult<(restore::RestoreReport, Vec<CheckResult>)> {
    if ctx.dry_run {
        // A dry run reads and validates the dump but creates no scratch database.
        let report = restore::restore(ctx, dump, scratch_url, ropts)?;
        return Ok((report, Vec::new()));
    }
    let report = restore::restore(ctx, dump, scratch_url, ropts)?;
    let mut results = Vec::new();
    if let Some(f) = checks.read_lock::<FnPtr>().map(|f| f.clone()) {
        let r: Result<Dynamic, _> = f.call_within_context(nctx, (scratch_url.to_string(),));
        match r {
            Ok(v) => {
                let ok = v.as_bool().unwrap_or(true);
                results.push(CheckResult {
                    name: "closure".into(),
                    ok,
                    expected: "true".into(),
                    actual: v.to_string(),
                });
            }
            Err(e) => {
                return Err(HostError::verification(format!(
                    "restore_test: the check closure failed on {scratch}: {e}"
                )))
            }
        }
    } else if let Some(map) = checks.read_lock::<Map>().map(|m| m.clone()) {
        for (coll, want) in map {
            let n = ctx.block_on(ops::count(scratch_url, &coll, Document::new()))?;
            let (ok, expected) = if let Ok(exact) = want.as_int() {
                (n == exact, exact.to_string())
            } else if let Some(range) = want.read_lock::<Map>() {
                let min = range.get("min").and_then(|v| v.as_int().ok());
                let max = range.get("max").and_then(|v| v.as_int().ok());
                if min.is_none() && max.is_none() {
                    return Err(HostError::invalid(format!(
                        "restore_test: check for {coll} must be a count or #{{ min: N, max: M }}"
                    )));
                }
                (
                    min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m),
                    format!(
                        "between {} and {}",
                        min.map_or("-".into(), |m| m.to_string()),
                        max.map_or("-".into(), |m| m.to_string())
                    ),
                )
            } else {
                return Err(HostError::invalid(format!(
                    "restore_test: check for {coll} must be a count or #{{ min: N, max: M }}, got {}",
                    want.type_name()
                )));
            };
            results.push(CheckResult {
                name: coll.to_string(),
                ok,
                expected,
                actual: n.to_string(),
            });
        }
    } else if !checks.is_unit() {
        return Err(HostError::invalid(format!(
            "restore_test: checks must be a map (collection → count) or a closure |url| ..., got {}",
            checks.type_name()
        )));
    }
    Ok((report, results))
}

fn drop_scratch(ctx: &Ctx, scratch_url: &str, timeout: Option<Duration>) -> HostResult<()> {
    if ctx.dry_run {
        return Ok(());
    }
    let url = scratch_url.to_string();
    ctx.handle.block_on(async move {
        let fut = async {
            let c = conn::connect(&url, timeout).await?;
            c.db.drop()
                .await
                .map_err(|e| conn::map_err(e, "dropping the scratch database", &c.shown))
        };
        tokio::time::timeout(Duration::from_secs(30), fut)
            .await
            .unwrap_or_else(|_| {
                Err(HostError::network(
                    "dropping the scratch database timed out",
                ))
            })
    })
}

fn doc_arg(v: &Dynamic, function: &str, what: &str) -> HostResult<Document> {
    dynamic_to_doc(v, &format!("{function}: {what}"))
}

pub fn register(r: &mut Registrar) {
    r.category("mongodb");

    let ctx = r.ctx.clone();
    r.add(
        "mongo_stats",
        &["url: &str"],
        "Map",
        "Database statistics (dbStats) plus, per collection, document count and sizes.\n\nReturns dbStats' fields (`collections`, `objects`, `dataSize`, `storageSize`, `indexSize`, ...), `database`, and `collections_detail`: an array of `#{ name, count, size, storage_size, total_index_size, avg_obj_size, index_sizes }` (bytes).\n\n```rhai\nlet s = mongo_stats(\"mongodb://127.0.0.1:27017/app\");\nfor c in s.collections_detail { log(`${c.name}: ${c.count} docs, ${c.storage_size} bytes`); }\n```",
        move |url: &str| -> RhaiResult { call_dyn(&ctx, "mongo_stats", || ctx.block_on(ops::stats(url)).map(Dynamic::from_map)) },
    );

    let ctx = r.ctx.clone();
    r.add(
        "mongo_count",
        &["url: &str", "collection: &str"],
        "i64",
        "Number of documents in a collection.\n\n```rhai\nlet n = mongo_count(\"mongodb://127.0.0.1:27017/app\", \"users\");\n```",
        move |url: &str, coll: &str| -> RhaiResult {
            call(&ctx, "mongo_count", || ctx.block_on(ops::count(url, coll, Document::new())))
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "mongo_count",
        &["url: &str", "collection: &str", "filter: Map"],
        "i64",
        "Number of documents matching a filter (see docs/mongodb.md for how Rhai values map to BSON).\n\n```rhai\nlet n = mongo_count(\"mongodb://127.0.0.1:27017/app\", \"orders\", #{ status: \"open\", total: #{ \"$gt\": 100 } });\n```",
        move |url: &str, coll: &str, filter: Dynamic| -> RhaiResult {
            call(&ctx, "mongo_count", || {
                let f = doc_arg(&filter, "mongo_count", "filter")?;
                ctx.block_on(ops::count(url, coll, f))
            })
        },
    );

    let find_doc = "Documents of a collection as maps, at most `limit` (default 100, max 100000).\n\nOptions: `limit`, `skip`, `sort` (a map, or `#{\"$ordered\": [[\"a\", 1], [\"b\", -1]]}` for a compound sort), `projection`. Types without a Rhai equivalent come back as Extended JSON maps (`#{\"$oid\": ...}`, `#{\"$date\": ...}`, `#{\"$numberDecimal\": ...}`), so a document read and written back keeps every type.";
    let ctx = r.ctx.clone();
    r.add(
        "mongo_find",
        &["url: &str", "collection: &str", "filter: Map"],
        "Array",
        &format!("{find_doc}\n\n```rhai\nlet users = mongo_find(\"mongodb://127.0.0.1:27017/app\", \"users\", #{{ active: true }});\n```"),
        move |url: &str, coll: &str, filter: Dynamic| -> RhaiResult {
            call(&ctx, "mongo_find", || {
                let f = doc_arg(&filter, "mongo_find", "filter")?;
                ctx.block_on(ops::find(url, coll, f, ops::FindOptions::default()))
                    .map(Dynamic::from_array)
            })
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "mongo_find",
        &["url: &str", "collection: &str", "filter: Map", "options: Map"],
        "Array",
        &format!("{find_doc}\n\n```rhai\nlet last = mongo_find(\"mongodb://127.0.0.1:27017/app\", \"orders\", #{{}}, #{{ sort: #{{ created: -1 }}, limit: 10 }});\n```"),
        move |url: &str, coll: &str, filter: Dynamic, options: Map| -> RhaiResult {
            call(&ctx, "mongo_find", || {
                let f = doc_arg(&filter, "mongo_find", "filter")?;
                let mut m = options.clone();
                let sort = take_doc(&mut m, "sort", "mongo_find")?;
                let projection = take_doc(&mut m, "projection", "mongo_find")?;
                let mut o: ops::FindOptions = opts("mongo_find", &m)?;
                o.sort = sort;
                o.projection = projection;
                ctx.block_on(ops::find(url, coll, f, o)).map(Dynamic::from_array)
            })
        },
    );

    let delete_doc = "Delete every document matching a filter; returns `#{ collection, deleted, dry_run }`.\n\nWith `--dry-run` nothing is deleted and `deleted` is the number of documents that would be. An empty filter is refused unless the options say `#{ all: true }`.";
    let ctx = r.ctx.clone();
    r.add(
        "mongo_delete_many",
        &["url: &str", "collection: &str", "filter: Map"],
        "Map",
        &format!("{delete_doc}\n\n```rhai\nlet r = mongo_delete_many(\"mongodb://127.0.0.1:27017/app\", \"sessions\", #{{ expires: #{{ \"$lt\": now() }} }});\nlog(`removed ${{r.deleted}} sessions`);\n```"),
        move |url: &str, coll: &str, filter: Dynamic| -> RhaiResult {
            call(&ctx, "mongo_delete_many", || {
                let f = doc_arg(&filter, "mongo_delete_many", "filter")?;
                ctx.block_on(ops::delete_many(url, coll, f, false, ctx.dry_run))
            })
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "mongo_delete_many",
        &["url: &str", "collection: &str", "filter: Map", "options: Map"],
        "Map",
        &format!("{delete_doc} Options: `all` (allow an empty filter).\n\n```rhai\nmongo_delete_many(\"mongodb://127.0.0.1:27017/app\", \"scratch\", #{{}}, #{{ all: true }});\n```"),
        move |url: &str, coll: &str, filter: Dynamic, options: Map| -> RhaiResult {
            call(&ctx, "mongo_delete_many", || {
                #[derive(serde::Deserialize, Default)]
                #[serde(deny_unknown_fields, default)]
                struct O {
                    all: bool,
                }
                let o: O = opts("mongo_delete_many", &options)?;
                let f = doc_arg(&filter, "mongo_delete_many", "filter")?;
                ctx.block_on(ops::delete_many(url, coll, f, o.all, ctx.dry_run))
            })
        },
    );

    let compact_doc = "Run `compact` on a collection to return free space to the OS; returns the server's reply plus `collection` and `dry_run`.\n\nSkipped (after checking the collection exists) with `--dry-run`. On a replica-set primary MongoDB needs `#{ force: true }`.";
    let ctx = r.ctx.clone();
    r.add(
        "mongo_compact",
        &["url: &str", "collection: &str"],
        "Map",
        &format!("{compact_doc}\n\n```rhai\nmongo_compact(\"mongodb://127.0.0.1:27017/app\", \"events\");\n```"),
        move |url: &str, coll: &str| -> RhaiResult {
            call_dyn(&ctx, "mongo_compact", || {
                ctx.block_on(ops::compact(url, coll, false, ctx.dry_run)).map(Dynamic::from_map)
            })
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "mongo_compact",
        &["url: &str", "collection: &str", "options: Map"],
        "Map",
        &format!("{compact_doc} Options: `force`.\n\n```rhai\nmongo_compact(\"mongodb://127.0.0.1:27017/app\", \"events\", #{{ force: true }});\n```"),
        move |url: &str, coll: &str, options: Map| -> RhaiResult {
            call_dyn(&ctx, "mongo_compact", || {
                #[derive(serde::Deserialize, Default)]
                #[serde(deny_unknown_fields, default)]
                struct O {
                    force: bool,
                }
                let o: O = opts("mongo_compact", &options)?;
                ctx.block_on(ops::compact(url, coll, o.force, ctx.dry_run)).map(Dynamic::from_map)
            })
        },
    );

    let cmd_doc = "Run any database command; returns the server's reply as a map (numbers as plain Rhai numbers; documents in a cursor's `firstBatch` keep their exact types).\n\nRhai maps sort their keys, so the command name is moved to the front when it is a known command; otherwise write `#{\"$ordered\": [[\"cmd\", 1], [\"arg\", 2]]}` or pass the name as a string for a command without arguments. With `--dry-run`, only read-only commands run; others return `#{ command, dry_run: true, skipped: true }`.";
    let ctx = r.ctx.clone();
    r.add(
        "mongo_command",
        &["url: &str", "command: Map"],
        "Map",
        &format!("{cmd_doc}\n\n```rhai\nlet r = mongo_command(\"mongodb://127.0.0.1:27017/app\", #{{ collStats: \"users\", scale: 1024 }});\n```"),
        move |url: &str, command: Dynamic| -> RhaiResult {
            call_dyn(&ctx, "mongo_command", || {
                if command.is_string() {
                    let name = command.clone().into_string().unwrap_or_default();
                    let mut d = Document::new();
                    d.insert(name, 1);
                    return ctx
                        .block_on(ops::run_command(url, d, true, ctx.dry_run))
                        .map(Dynamic::from_map);
                }
                let ordered = command
                    .read_lock::<Map>()
                    .map(|m| m.contains_key("$ordered"))
                    .unwrap_or(false);
                let d = doc_arg(&command, "mongo_command", "command")?;
                ctx.block_on(ops::run_command(url, d, ordered, ctx.dry_run))
                    .map(Dynamic::from_map)
            })
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_doc_reads_filters() {
        let mut m = Map::new();
        let mut q = Map::new();
        q.insert("a".into(), Dynamic::from_int(1));
        m.insert("query".into(), Dynamic::from_map(q));
        let d = take_doc(&mut m, "query", "dump_db").unwrap().unwrap();
        assert_eq!(d.get_i32("a").unwrap(), 1);
        assert!(m.is_empty());
    }
}
