//! One log line per file or object a deleting function removes — or, in a dry run, would remove —
//! so an operator reading a run's log sees exactly what went without opening the report. Every
//! deleting function (`delete_older_than`, `remove_file`, `retention`, `delete_remote`, rotation)
//! announces through here, so the wording is the same everywhere and a dry run always says "would".

use crate::ctx::RunCtx;
use crate::units::human;

/// `deleted ./backups/app-2026-10-01.sql.gz (82.3 MB)` or `would delete ...` in a dry run.
pub fn announce(ctx: &RunCtx, what: &str, bytes: Option<u64>) {
    let size = bytes
        .map(|b| format!(" ({})", human(b)))
        .unwrap_or_default();
    if ctx.dry_run {
        tracing::info!(target: "mtn::delete", "would delete {what}{size}");
    } else {
        tracing::info!(target: "mtn::delete", "deleted {what}{size}");
    }
}

/// An emptied folder removed after its files went.
pub fn announce_dir(ctx: &RunCtx, dir: &str) {
    if ctx.dry_run {
        tracing::info!(target: "mtn::delete", "would remove empty folder {dir}");
    } else {
        tracing::info!(target: "mtn::delete", "removed empty folder {dir}");
    }
}
