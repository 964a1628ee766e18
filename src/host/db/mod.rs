//! Databases: `dump_db` and `restore_db` dispatch on the URL scheme (postgres://, mysql:// /
//! mariadb://, sqlite://, mongodb://), plus the restore drill, queries and maintenance.

pub mod backend;
pub mod batches;
pub mod dump_file;
pub mod export_sink;
pub mod in_container;
pub mod mongo;
pub mod mysql;
pub mod options;
pub mod password;
pub mod postgres;
pub mod restore_target;
pub mod restore_test;
pub mod server_dump;
pub mod sqlite;
pub mod tools;
pub mod url;

use rhai::{Array, Dynamic, Map, NativeCallContext};
use serde_json::Value;

pub use self::backend::{query, Db};
use self::options::*;
use crate::ctx::Ctx;
use crate::error::HostResult;
use crate::host::binding::{self, dynamic_to_json, to_dynamic};
use crate::host::registry::Registrar;
use crate::host_fn;

/// Every database function goes through here: the backend is chosen once from the URL (secret
/// registered, password resolved, `password_file` taken out of the options), and an
/// authentication failure says where the password was looked for.
fn with_db(
    ctx: &Ctx,
    url: &str,
    map: &Map,
    f: impl FnOnce(&Db, &Map) -> HostResult<Dynamic>,
) -> HostResult<Dynamic> {
    let (map, password_file) = backend::take_password_file(map)?;
    // `postgres://user@container:NAME/db`: the container's address, and the container.
    let (url, container) = crate::host::container::db::resolve(ctx, url)?;
    let mut db = Db::open(&url, password_file.as_deref())?;
    db.container = container;
    f(&db, &map).map_err(|e| db.explain(e))
}

fn params_json(params: &Array) -> HostResult<Vec<Value>> {
    params.iter().map(dynamic_to_json).collect()
}

fn db_query(ctx: &Ctx, url: &str, sql: &str, params: &Array) -> HostResult<Dynamic> {
    with_db(ctx, url, &Map::new(), |db, _| {
        to_dynamic(&db.query(ctx, sql, &params_json(params)?)?)
    })
}

fn db_exec(ctx: &Ctx, url: &str, sql: &str, params: &Array) -> HostResult<Dynamic> {
    with_db(ctx, url, &Map::new(), |db, _| {
        Ok(Dynamic::from_int(
            db.exec(ctx, sql, &params_json(params)?)? as i64
        ))
    })
}

const DUMP_DOC: &str = r#"Back up a database to a compressed, checksummed file; the URL scheme picks the engine.

`postgres://` runs the system `pg_dump`, `mysql://`/`mariadb://` runs `mariadb-dump --single-transaction`,
`sqlite://path` copies with SQLite's online backup API, `mongodb://` dumps natively. Output streams through
parallel gzip (or multi-threaded zstd, `compress: "zstd"`, named `.zst`) into `<final>.tmp`, is fsynced and renamed, and gets a `.sha256` sidecar. The password goes to
the tools through their environment or a private defaults file, never their command line.
A server in a container is named `postgres://user@container:NAME/db` (also `mysql://`, `mariadb://`,
`mongodb://`): the dump then comes from the container's own pg_dump or mariadb-dump/mysqldump, run through
the Docker exec API, through the same write path (docs/containers.md).
Options: `to` (file or folder; default `./backups/<db>_<YYYY-mm-dd_HHMMSS>.sql.gz`), `format`
(plain | custom | directory, PostgreSQL), `compress` ("gzip", "gzip:9", "zstd", "zstd:19", "none"; MongoDB:
"gzip" per .bson file, "zstd" for a `.tar.zst` archive at level 1 unless "zstd:N" or `level` says otherwise), `tables`, `exclude_tables`,
`schema_only`, `data_only`, `jobs` (directory format), `min_size` (bytes or "10MB"), `max_shrink` (fail when
smaller than this fraction of the previous dump in the folder), `threads`.
Returns `#{ path, bytes, raw_bytes, sha256, duration_ms, dry_run, format }`.

```rhai
let r = dump_db("sqlite://examples/app.db", #{ to: "backups/", max_shrink: 0.5 });
log(`wrote ${r.path} (${r.bytes} bytes)`);
```"#;

const RESTORE_DOC: &str = r#"Restore a dump made by `dump_db` into the database named by the URL.

Plain SQL dumps (gzip, zstd or uncompressed, told by the first bytes) are streamed into `psql`/`mariadb`; custom and directory archives go through
`pg_restore`; SQLite dumps are copied in with the backup API. Refuses a non-empty target unless `clean: true`
(drop and recreate it); `create: true` creates a missing target. For a `…@container:NAME` URL the
container's own psql/pg_restore or mariadb/mysql read the dump (docs/containers.md).
Options: `create`, `clean`, `jobs`, `no_owner`.
Returns `#{ database, format, dump_bytes, duration_ms, dry_run }`.

```rhai
restore_db("backups/app.db.gz", "sqlite:///tmp/app-copy.db", #{ create: true, clean: true });
```"#;

const RESTORE_TEST_DOC: &str = r#"Prove a dump restores: scratch database, restore, checks, always dropped afterwards.

The same for every engine. Creates a uniquely named scratch database on the server of `url` (a private
temporary file for SQLite), restores the dump, runs the checks, and drops the scratch database whatever
happens (failure, timeout, cancellation). `checks` is a map of check → expected value, or a closure given
the scratch database URL that returns false to fail. A check is SQL (the first column of the first row is
compared) or, for MongoDB, a collection name (its document count is compared); the expected value is a
value, a comparison string like ">0" or ">= 100", or `#{ min, max }`. A failed check makes `ok` false;
the script decides whether to `fail`. The time of the last success goes to
`<state_dir>/last_restore_test.json`. Options: `timeout`, `database` (scratch name); PostgreSQL `jobs`,
`no_owner`; MongoDB `collections`, `exclude_collections`, `from_db`.
Returns `#{ ok, checks, database, restore, restore_ms, duration_ms, dropped, dry_run }`.

```rhai
let dump = dump_db("sqlite://examples/app.db", #{ to: "backups/" }).path;
let t = restore_test(dump, "sqlite://examples/app.db", #{ "SELECT count(*) FROM customers": ">0" });
if !t.ok { fail(`restore test failed: ${t.checks}`); }
```"#;

pub fn register(r: &mut Registrar) {
    r.category("db");
    host_fn!(r, "dump_db", DUMP_DOC, |ctx, url: &str; opts| -> dyn "Map" {
        with_db(&ctx, url, &opts, |db, o| db.dump(&ctx, o))
    });
    host_fn!(r, "restore_db", RESTORE_DOC, |ctx, dump: &str, url: &str; opts| -> dyn "Map" {
        with_db(&ctx, url, &opts, |db, o| db.restore(&ctx, dump, o))
    });
    host_fn!(r, "restore_test", RESTORE_TEST_DOC,
        |ctx, nctx: NativeCallContext, dump: &str, url: &str, checks: Dynamic; opts| -> dyn "Map" {
            with_db(&ctx, url, &opts, |db, o| {
                let o: restore_test::RestoreTestOptions = binding::opts(o)?;
                to_dynamic(&restore_test::run(&nctx, &ctx, dump, db, checks, o)?)
            })
        }
    );

    // `params` is positional, not an options map: two definitions each.
    let qdoc = "Run a query and return its rows as an array of maps with typed values.\n\nNumbers, strings, bools, `()` for NULL, timestamps as ISO strings, json as maps. Parameters are `$1, $2` (PostgreSQL) or `?` (MySQL, SQLite).\n\n```rhai\nlet rows = db_query(\"sqlite://examples/app.db\", \"SELECT count(*) AS n FROM orders WHERE status = ?\", [\"paid\"]);\nlog(rows[0].n);\n```";
    host_fn!(r, "db_query", qdoc, |ctx, url: &str, sql: &str| -> dyn "Array" {
        db_query(&ctx, url, sql, &Array::new())
    });
    host_fn!(r, "db_query", qdoc, |ctx, url: &str, sql: &str, params: Array| -> dyn "Array" {
        db_query(&ctx, url, sql, &params)
    });
    let edoc = "Run a statement (or several, without parameters) and return the number of rows affected.\n\nIn dry-run the statement is only prepared (checked), not run.\n\n```rhai\nlet n = db_exec(\"sqlite://examples/app.db\", \"UPDATE customers SET email = lower(email)\");\n```";
    host_fn!(r, "db_exec", edoc, |ctx, url: &str, sql: &str| -> dyn "i64" {
        db_exec(&ctx, url, sql, &Array::new())
    });
    host_fn!(r, "db_exec", edoc, |ctx, url: &str, sql: &str, params: Array| -> dyn "i64" {
        db_exec(&ctx, url, sql, &params)
    });

    let vdoc = "Reclaim space and refresh planner statistics: PostgreSQL VACUUM (ANALYZE), MySQL ANALYZE/OPTIMIZE TABLE, SQLite VACUUM + ANALYZE + integrity_check.\n\nOptions: `full` (VACUUM FULL / OPTIMIZE TABLE), `analyze` (default true), `tables` (default all). Returns `#{ database, size_before, size_after, tables, integrity, duration_ms, dry_run }`.\n\n```rhai\nlet v = vacuum(\"sqlite://examples/app.db\");\nlog(`${v.size_before} -> ${v.size_after} bytes`);\n```";
    host_fn!(r, "vacuum", vdoc, |ctx, url: &str; opts| -> dyn "Map" {
        with_db(&ctx, url, &opts, |db, o| to_dynamic(&db.vacuum(&ctx, binding::opts(o)?)?))
    });

    let sdoc = "Database health: size, connections, long-running queries, largest tables, dead tuples.\n\nOptions: `long_running` (threshold, default \"5m\"), `top` (tables listed, default 10). Returns `#{ engine, database, server_version, size_bytes, connections, max_connections, long_running, largest_tables, dead_tuples }`.\n\n```rhai\nlet s = db_stats(\"sqlite://examples/app.db\");\nlog(`${s.size_bytes} bytes`);\n```";
    host_fn!(r, "db_stats", sdoc, |ctx, url: &str; opts| -> dyn "Map" {
        with_db(&ctx, url, &opts, |db, o| to_dynamic(&db.stats(&ctx, binding::opts(o)?)?))
    });

    let ddoc = "Delete rows whose timestamp column is older than `age`, in batches so no long lock is held.\n\nEach batch (default 10,000 rows) is its own short statement, with a pause (default 100ms) between batches. Options: `batch`, `pause`, `max_batches`. In dry-run the matching rows are only counted. Returns `#{ table, deleted, batches, matching, duration_ms, dry_run }`.\n\n```rhai\nlet r = delete_rows_older_than(\"sqlite://examples/app.db\", \"audit_log\", \"created_at\", \"90d\");\nlog(`deleted ${r.deleted} rows in ${r.batches} batches`);\n```";
    host_fn!(r, "delete_rows_older_than", ddoc,
        |ctx, url: &str, table: &str, column: &str, age: Dynamic; opts| -> dyn "Map" {
            with_db(&ctx, url, &opts, |db, o| {
                let o: DeleteOptions = binding::opts(o)?;
                let age = crate::host::binding::age_arg(&age)?;
                to_dynamic(&db.delete_older(&ctx, table, column, age, o)?)
            })
        }
    );

    let xdoc = "Export a table to CSV (with header) or JSON lines, streamed (PostgreSQL uses COPY).\n\nGzipped when `to` ends in `.gz`, zstd when it ends in `.zst` (or as `compress` says: \"gzip:9\", \"zstd:19\", \"none\"); written atomically with a `.sha256` sidecar. Options: `format` (\"csv\" | \"jsonl\"), `compress`, `where` (an SQL condition: only matching rows, e.g. to archive old rows before deleting them). Returns `#{ path, rows, bytes, sha256, duration_ms, dry_run }`.\n\n```rhai\nexport_table(\"sqlite://examples/app.db\", \"customers\", \"backups/customers.csv\");\n```";
    host_fn!(r, "export_table", xdoc, |ctx, url: &str, table: &str, to: &str; opts| -> dyn "Map" {
        with_db(&ctx, url, &opts, |db, o| to_dynamic(&db.export(&ctx, table, to, binding::opts(o)?)?))
    });

    mongo::register(r);
}
