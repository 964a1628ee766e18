//! The batched delete loop of `delete_rows_older_than`, the same for every SQL engine: each
//! engine opens its connection for the rows to delete ([`OlderThan`]) and says how to count
//! them and how to delete one batch of them. Each batch is its own short statement, with a pause
//! between batches, so no long lock is held.

use std::time::{Duration, Instant};

use super::options::{DeleteOptions, DeleteReport};
use crate::ctx::RunCtx;
use crate::error::HostResult;

/// The rows `delete_rows_older_than` deletes: those of `table` whose `column` is older than
/// `age`.
pub struct OlderThan<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub age: Duration,
}

impl OlderThan<'_> {
    /// How errors name the rows: `table.column`.
    pub fn what(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }
}

/// What an engine provides to the loop.
pub(super) trait BatchDelete {
    /// Rows that match the age condition now.
    async fn count(&mut self) -> HostResult<u64>;
    /// Delete at most `limit` matching rows; returns how many went.
    async fn delete_batch(&mut self, limit: u64) -> HostResult<u64>;
    /// Close the connection politely once the loop is done (whatever its outcome).
    async fn close(&mut self) {}
}

/// Count (dry run: only count), then delete batch by batch until fewer than a batch match or
/// `max_batches` is reached; the report's `matching` is what is left.
pub(super) async fn run(
    ctx: &RunCtx,
    rows: &OlderThan<'_>,
    opts: &DeleteOptions,
    engine: &mut impl BatchDelete,
) -> HostResult<DeleteReport> {
    let report = batches(ctx, rows.table, opts, engine).await;
    engine.close().await;
    report
}

async fn batches(
    ctx: &RunCtx,
    table: &str,
    opts: &DeleteOptions,
    engine: &mut impl BatchDelete,
) -> HostResult<DeleteReport> {
    let started = Instant::now();
    let matching = engine.count().await?;
    if ctx.dry_run {
        return Ok(DeleteReport {
            table: table.into(),
            deleted: 0,
            batches: 0,
            matching,
            duration_ms: started.elapsed().as_millis() as u64,
            dry_run: true,
        });
    }
    let batch = opts.batch();
    let (mut deleted, mut batches) = (0u64, 0u64);
    loop {
        ctx.check_cancelled()?;
        let n = engine
            .delete_batch(batch)
            .await
            .map_err(|e| e.context(format!("deleting from {table} (after {deleted} rows)")))?;
        deleted += n;
        if n > 0 {
            batches += 1;
        }
        tracing::debug!(target: "mtn::db", table, batch = batches, rows = n, "deleted batch");
        if n < batch || opts.max_batches.is_some_and(|m| batches >= m) {
            break;
        }
        tokio::time::sleep(opts.pause()).await;
    }
    Ok(DeleteReport {
        table: table.into(),
        deleted,
        batches,
        matching: engine.count().await?,
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: false,
    })
}
