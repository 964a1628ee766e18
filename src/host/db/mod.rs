//! Databases: `dump_db` and `restore_db` dispatch on the URL scheme.

pub mod mongo;

use rhai::{Dynamic, Map, NativeCallContext};

use crate::engine::registry::Registrar;
use crate::host::binding::call_dyn;
use crate::host::error::HostError;

// TEMPORARY (mongo branch): until the db helper's dispatcher lands, dump_db / restore_db /
// restore_test are registered here for mongodb:// URLs only, so MongoDB support can be tested
// end to end. The lead replaces this block with the real dispatcher when merging.
fn mongo_only(url: &str, function: &str) -> Result<(), HostError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("mongodb://") || lower.starts_with("mongodb+srv://") {
        Ok(())
    } else {
        Err(HostError::invalid(format!(
            "{function}: only mongodb:// URLs are wired on this branch"
        )))
    }
}

pub fn register(r: &mut Registrar) {
    r.category("db");
    let ctx = r.ctx.clone();
    r.add(
        "dump_db",
        &["url: &str", "options: Map"],
        "Map",
        "Dump a database (temporary MongoDB-only wiring).\n\n```rhai\ndump_db(\"mongodb://127.0.0.1:27017/app\", #{ to: \"backups\" });\n```",
        move |url: &str, o: Map| {
            call_dyn(&ctx, "dump_db", || {
                mongo_only(url, "dump_db")?;
                mongo::dump_db(&ctx, url, &o)
            })
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "dump_db",
        &["url: &str"],
        "Map",
        "Dump a database with default options (temporary MongoDB-only wiring).\n\n```rhai\ndump_db(\"mongodb://127.0.0.1:27017/app\");\n```",
        move |url: &str| {
            call_dyn(&ctx, "dump_db", || {
                mongo_only(url, "dump_db")?;
                mongo::dump_db(&ctx, url, &Map::new())
            })
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "restore_db",
        &["dump: &str", "url: &str", "options: Map"],
        "Map",
        "Restore a dump (temporary MongoDB-only wiring).\n\n```rhai\nrestore_db(\"backups/app.tar.gz\", \"mongodb://127.0.0.1:27017/app\", #{ drop: true });\n```",
        move |dump: &str, url: &str, o: Map| {
            call_dyn(&ctx, "restore_db", || {
                mongo_only(url, "restore_db")?;
                mongo::restore_db(&ctx, dump, url, &o)
            })
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "restore_test",
        &["dump: &str", "url: &str", "checks: ?", "options: Map"],
        "Map",
        "Restore into a scratch database, run checks, drop it (temporary MongoDB-only wiring).\n\n```rhai\nrestore_test(\"backups/app.tar.gz\", \"mongodb://127.0.0.1:27017/app\", #{ users: #{ min: 1 } }, #{});\n```",
        move |nctx: NativeCallContext, dump: &str, url: &str, checks: Dynamic, o: Map| {
            call_dyn(&ctx, "restore_test", || {
                mongo_only(url, "restore_test")?;
                mongo::restore_test(&nctx, &ctx, dump, url, checks, &o)
            })
        },
    );
    mongo::register(r);
}
