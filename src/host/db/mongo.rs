//! MongoDB: native dump/restore in mongodump's layout, stats, compact, cleanup.
//! `dump_db`, `restore_db` and `restore_test` in `db/mod.rs` hand `mongodb://` URLs to the
//! three entry points below; the `mongo_*` functions are registered here.

use rhai::{Dynamic, Map, NativeCallContext};

use crate::engine::ctx::Ctx;
use crate::engine::registry::Registrar;
use crate::host::error::{HostError, HostResult};

pub fn register(_r: &mut Registrar) {}

/// `dump_db("mongodb://...", opts)`.
pub fn dump_db(_ctx: &Ctx, _url: &str, _opts: &Map) -> HostResult<Dynamic> {
    Err(HostError::other(
        "dump_db: MongoDB support is not built yet",
    ))
}

/// `restore_db(dump, "mongodb://...", opts)`.
pub fn restore_db(_ctx: &Ctx, _dump: &str, _url: &str, _opts: &Map) -> HostResult<Dynamic> {
    Err(HostError::other(
        "restore_db: MongoDB support is not built yet",
    ))
}

/// `restore_test(dump, "mongodb://...", checks, opts)`; `checks` is a map or a closure.
pub fn restore_test(
    _nctx: &NativeCallContext,
    _ctx: &Ctx,
    _dump: &str,
    _url: &str,
    _checks: Dynamic,
    _opts: &Map,
) -> HostResult<Dynamic> {
    Err(HostError::other(
        "restore_test: MongoDB support is not built yet",
    ))
}
