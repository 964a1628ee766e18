//! MongoDB: native dump/restore in mongodump's layout, stats, compact, cleanup.
//! `dump_db` and `restore_db` in `db/mod.rs` hand `mongodb://` URLs to the two entry points
//! below (`restore_test` is engine-independent, in `db/restore_test.rs`); the `mongo_*`
//! functions are registered here.
//!
//! Submodules: `conn` (URLs, errors), `convert` (Rhai ↔ BSON), `dump`, `archive` (tar.gz
//! assembly), `restore`, `ops` (stats, count, find, delete, compact, command).

pub mod archive;
pub mod conn;
pub mod convert;
pub mod dump;
pub mod ops;
pub mod restore;

use mongodb::bson::Document;
use rhai::{Dynamic, Map};

use crate::engine::ctx::Ctx;
use crate::engine::registry::Registrar;
use crate::host::binding::{call, call_dyn, opts, to_dynamic, RhaiResult};
use crate::host::error::HostResult;

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

/// The URL with its password resolved like every database function's (`DB_PASSWORD`, ...).
fn resolved(url: &str) -> HostResult<String> {
    Ok(super::Db::open(url, None)?.url)
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
        move |url: &str| -> RhaiResult { call_dyn(&ctx, "mongo_stats", || ctx.block_on(ops::stats(&resolved(url)?)).map(Dynamic::from_map)) },
    );

    let ctx = r.ctx.clone();
    r.add(
        "mongo_count",
        &["url: &str", "collection: &str"],
        "i64",
        "Number of documents in a collection.\n\n```rhai\nlet n = mongo_count(\"mongodb://127.0.0.1:27017/app\", \"users\");\n```",
        move |url: &str, coll: &str| -> RhaiResult {
            call(&ctx, "mongo_count", || ctx.block_on(ops::count(&resolved(url)?, coll, Document::new())))
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
                ctx.block_on(ops::count(&resolved(url)?, coll, f))
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
                ctx.block_on(ops::find(&resolved(url)?, coll, f, ops::FindOptions::default()))
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
                ctx.block_on(ops::find(&resolved(url)?, coll, f, o)).map(Dynamic::from_array)
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
                ctx.block_on(ops::delete_many(&resolved(url)?, coll, f, false, ctx.dry_run))
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
                ctx.block_on(ops::delete_many(&resolved(url)?, coll, f, o.all, ctx.dry_run))
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
                ctx.block_on(ops::compact(&resolved(url)?, coll, false, ctx.dry_run)).map(Dynamic::from_map)
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
                ctx.block_on(ops::compact(&resolved(url)?, coll, o.force, ctx.dry_run)).map(Dynamic::from_map)
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
                        .block_on(ops::run_command(&resolved(url)?, d, true, ctx.dry_run))
                        .map(Dynamic::from_map);
                }
                let ordered = command
                    .read_lock::<Map>()
                    .map(|m| m.contains_key("$ordered"))
                    .unwrap_or(false);
                let d = doc_arg(&command, "mongo_command", "command")?;
                ctx.block_on(ops::run_command(&resolved(url)?, d, ordered, ctx.dry_run))
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
