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

use crate::ctx::Ctx;
use crate::error::HostResult;
use crate::host::binding::{opts, to_dynamic};
use crate::host::registry::Registrar;
use crate::host_fn;

use convert::dynamic_to_doc;

/// Take a BSON-valued option (a filter, a sort) out of an options map before serde decoding.
fn take_doc(map: &mut Map, key: &str) -> HostResult<Option<Document>> {
    match map.remove(key) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(v) => dynamic_to_doc(&v, &format!("option `{key}`")).map(Some),
    }
}

/// `dump_db("mongodb://...", opts)`.
pub fn dump_db(ctx: &Ctx, url: &str, opts_map: &Map) -> HostResult<Dynamic> {
    let mut m = opts_map.clone();
    let query = take_doc(&mut m, "query")?;
    let mut o: dump::DumpOptions = opts(&m)?;
    o.query = query;
    to_dynamic(&dump::dump(ctx, url, o)?)
}

/// `restore_db(dump, "mongodb://...", opts)`.
pub fn restore_db(ctx: &Ctx, dump: &str, url: &str, opts_map: &Map) -> HostResult<Dynamic> {
    let o: restore::RestoreOptions = opts(opts_map)?;
    to_dynamic(&restore::restore(ctx, dump, url, o)?)
}

/// The URL with its password resolved like every database function's (`DB_PASSWORD`, ...), and
/// `mongodb://user@container:NAME/db` pointed at the container's address.
fn resolved(ctx: &Ctx, url: &str) -> HostResult<String> {
    let (url, _) = crate::host::container::db::resolve(ctx, url)?;
    Ok(super::Db::open(&url, None)?.url)
}

fn doc_arg(v: &Dynamic, what: &str) -> HostResult<Document> {
    dynamic_to_doc(v, what)
}

pub fn register(r: &mut Registrar) {
    r.category("mongodb");

    host_fn!(r, "mongo_stats", "Database statistics (dbStats) plus, per collection, document count and sizes.\n\nReturns dbStats' fields (`collections`, `objects`, `dataSize`, `storageSize`, `indexSize`, ...), `database`, and `collections_detail`: an array of `#{ name, count, size, storage_size, total_index_size, avg_obj_size, index_sizes }` (bytes).\n\n```rhai\nlet s = mongo_stats(\"mongodb://127.0.0.1:27017/app\");\nfor c in s.collections_detail { log(`${c.name}: ${c.count} docs, ${c.storage_size} bytes`); }\n```", |ctx, url: &str| -> dyn "Map" {
        ctx.block_on(ops::stats(&resolved(&ctx, url)?)).map(Dynamic::from_map)
    });

    // The filter is a positional document, not an options map: two definitions.
    host_fn!(r, "mongo_count", "Number of documents in a collection.\n\n```rhai\nlet n = mongo_count(\"mongodb://127.0.0.1:27017/app\", \"users\");\n```", |ctx, url: &str, collection: &str| -> "i64" {
        ctx.block_on(ops::count(&resolved(&ctx, url)?, collection, Document::new()))
    });
    host_fn!(r, "mongo_count", "Number of documents matching a filter (see docs/mongodb.md for how Rhai values map to BSON).\n\n```rhai\nlet n = mongo_count(\"mongodb://127.0.0.1:27017/app\", \"orders\", #{ status: \"open\", total: #{ \"$gt\": 100 } });\n```", |ctx, url: &str, collection: &str, filter: Dynamic| -> "i64" {
        let f = doc_arg(&filter, "filter")?;
        ctx.block_on(ops::count(&resolved(&ctx, url)?, collection, f))
    });

    let find_doc = "Documents of a collection as maps, at most `limit` (default 100, max 100000).\n\nOptions: `limit`, `skip`, `sort` (a map, or `#{\"$ordered\": [[\"a\", 1], [\"b\", -1]]}` for a compound sort), `projection`. Types without a Rhai equivalent come back as Extended JSON maps (`#{\"$oid\": ...}`, `#{\"$date\": ...}`, `#{\"$numberDecimal\": ...}`), so a document read and written back keeps every type.";
    let doc = (
        &format!("{find_doc}\n\n```rhai\nlet users = mongo_find(\"mongodb://127.0.0.1:27017/app\", \"users\", #{{ active: true }});\n```"),
        &format!("{find_doc}\n\n```rhai\nlet last = mongo_find(\"mongodb://127.0.0.1:27017/app\", \"orders\", #{{}}, #{{ sort: #{{ created: -1 }}, limit: 10 }});\n```"),
    );
    host_fn!(r, "mongo_find", doc, |ctx, url: &str, collection: &str, filter: Dynamic; options| -> dyn "Array" {
        let f = doc_arg(&filter, "filter")?;
        let mut m = options.clone();
        let sort = take_doc(&mut m, "sort")?;
        let projection = take_doc(&mut m, "projection")?;
        let mut o: ops::FindOptions = opts(&m)?;
        o.sort = sort;
        o.projection = projection;
        ctx.block_on(ops::find(&resolved(&ctx, url)?, collection, f, o)).map(Dynamic::from_array)
    });

    let delete_doc = "Delete every document matching a filter; returns `#{ collection, deleted, dry_run }`.\n\nWith `--dry-run` nothing is deleted and `deleted` is the number of documents that would be. An empty filter is refused unless the options say `#{ all: true }`.";
    let doc = (
        &format!("{delete_doc}\n\n```rhai\nlet r = mongo_delete_many(\"mongodb://127.0.0.1:27017/app\", \"sessions\", #{{ expires: #{{ \"$lt\": now() }} }});\nlog(`removed ${{r.deleted}} sessions`);\n```"),
        &format!("{delete_doc} Options: `all` (allow an empty filter).\n\n```rhai\nmongo_delete_many(\"mongodb://127.0.0.1:27017/app\", \"scratch\", #{{}}, #{{ all: true }});\n```"),
    );
    host_fn!(r, "mongo_delete_many", doc, |ctx, url: &str, collection: &str, filter: Dynamic; options: DeleteManyOptions| -> "Map" {
        let f = doc_arg(&filter, "filter")?;
        ctx.block_on(ops::delete_many(&resolved(&ctx, url)?, collection, f, options.all, ctx.dry_run))
    });

    let compact_doc = "Run `compact` on a collection to return free space to the OS; returns the server's reply plus `collection` and `dry_run`.\n\nSkipped (after checking the collection exists) with `--dry-run`. On a replica-set primary MongoDB needs `#{ force: true }`.";
    let doc = (
        &format!("{compact_doc}\n\n```rhai\nmongo_compact(\"mongodb://127.0.0.1:27017/app\", \"events\");\n```"),
        &format!("{compact_doc} Options: `force`.\n\n```rhai\nmongo_compact(\"mongodb://127.0.0.1:27017/app\", \"events\", #{{ force: true }});\n```"),
    );
    host_fn!(r, "mongo_compact", doc, |ctx, url: &str, collection: &str; options: CompactOptions| -> dyn "Map" {
        ctx.block_on(ops::compact(&resolved(&ctx, url)?, collection, options.force, ctx.dry_run)).map(Dynamic::from_map)
    });

    let cmd_doc = "Run any database command; returns the server's reply as a map (numbers as plain Rhai numbers; documents in a cursor's `firstBatch` keep their exact types).\n\nRhai maps sort their keys, so the command name is moved to the front when it is a known command; otherwise write `#{\"$ordered\": [[\"cmd\", 1], [\"arg\", 2]]}` or pass the name as a string for a command without arguments. With `--dry-run`, only read-only commands run; others return `#{ command, dry_run: true, skipped: true }`.";
    host_fn!(r, "mongo_command", &format!("{cmd_doc}\n\n```rhai\nlet r = mongo_command(\"mongodb://127.0.0.1:27017/app\", #{{ collStats: \"users\", scale: 1024 }});\n```"), |ctx, url: &str, command: Dynamic| -> dyn "Map" {
        if command.is_string() {
            let name = command.clone().into_string().unwrap_or_default();
            let mut d = Document::new();
            d.insert(name, 1);
            return ctx
                .block_on(ops::run_command(&resolved(&ctx, url)?, d, true, ctx.dry_run))
                .map(Dynamic::from_map);
        }
        let ordered = command
            .read_lock::<Map>()
            .map(|m| m.contains_key("$ordered"))
            .unwrap_or(false);
        let d = doc_arg(&command, "command")?;
        ctx.block_on(ops::run_command(&resolved(&ctx, url)?, d, ordered, ctx.dry_run))
            .map(Dynamic::from_map)
    });
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct DeleteManyOptions {
    all: bool,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct CompactOptions {
    force: bool,
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
        let d = take_doc(&mut m, "query").unwrap().unwrap();
        assert_eq!(d.get_i32("a").unwrap(), 1);
        assert!(m.is_empty());
    }
}
