//! The shared history: every run's entry also goes to `mtn_fleet_history`, so any host shows
//! the whole fleet's runs with a host column. Entries wait in memory (at most `MAX_PENDING`)
//! while the database is unreachable and are written when it returns; the local history file
//! stays the record of this host either way.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Local};

use super::{pg_err, Fleet, MAX_PENDING};
use crate::daemon::history::{Entry, MAX_ERROR_CHARS, MAX_LINE_CHARS};
use crate::sync::lock;

/// What to list from the shared history.
#[derive(Default)]
pub struct Query<'a> {
    pub job: Option<&'a str>,
    pub since: Option<DateTime<Local>>,
    pub failed: bool,
    pub limit: usize,
}

static WRITTEN: AtomicU64 = AtomicU64::new(0);
/// Old entries are pruned after every this many writes.
const PRUNE_EVERY: u64 = 100;

impl Fleet {
    /// Queue a run's entry for the shared history (written by [`Fleet::flush`]).
    pub fn record(&self, mut e: Entry) {
        e.host.get_or_insert_with(|| self.host.clone());
        let mut p = lock(&self.pending);
        if p.len() >= MAX_PENDING {
            p.pop_front();
        }
        p.push_back(e);
    }

    /// Write the queued entries; those that could not be written stay queued.
    pub async fn flush(
        &self,
        history_limit: usize,
        max_age: std::time::Duration,
    ) -> Result<(), String> {
        if lock(&self.pending).is_empty() {
            return Ok(());
        }
        let c = self.conn().await?;
        loop {
            let Some(e) = lock(&self.pending).pop_front() else {
                break;
            };
            let tail = serde_json::Value::from(
                e.log_tail
                    .iter()
                    .map(|l| cut(l, MAX_LINE_CHARS))
                    .collect::<Vec<_>>(),
            );
            let r = c
                .execute(
                    "INSERT INTO mtn_fleet_history (host, job, run, trigger, slot, start_at, end_at, status, attempt, error, version, log_tail) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    &[
                        &e.host.clone().unwrap_or_default(),
                        &e.job,
                        &(e.run as i64),
                        &e.trigger,
                        &e.scheduled,
                        &e.start,
                        &e.end,
                        &e.status,
                        &(e.attempt as i32),
                        &e.error.as_deref().map(|t| cut(t, MAX_ERROR_CHARS)),
                        &e.version,
                        &tail,
                    ],
                )
                .await;
            if let Err(err) = r {
                lock(&self.pending).push_front(e);
                let msg = format!("writing the shared history: {}", pg_err(&err));
                if c.is_closed() {
                    self.set_up(Some(msg.clone()));
                }
                return Err(msg);
            }
            if WRITTEN.fetch_add(1, Ordering::SeqCst) % PRUNE_EVERY == PRUNE_EVERY - 1 {
                let _ = c
                    .execute(
                        "DELETE FROM mtn_fleet_history WHERE end_at < now() - make_interval(secs => $1)",
                        &[&max_age.as_secs_f64()],
                    )
                    .await;
                let _ = c
                    .execute(
                        "DELETE FROM mtn_fleet_history WHERE job = $1 AND id <= \
                         (SELECT id FROM mtn_fleet_history WHERE job = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)",
                        &[&e.job, &(history_limit as i64)],
                    )
                    .await;
            }
        }
        self.put(c);
        Ok(())
    }

    /// Runs of every host, oldest first (the newest `limit`).
    pub async fn runs(&self, q: &Query<'_>) -> Result<Vec<Entry>, String> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT host, job, run, trigger, slot, start_at, end_at, status, attempt, error, version, log_tail \
                 FROM mtn_fleet_history \
                 WHERE ($1::text IS NULL OR job = $1) AND ($2::timestamptz IS NULL OR start_at >= $2) \
                 AND (NOT $3 OR status IN ('failed', 'timeout', 'abandoned')) \
                 ORDER BY start_at DESC, id DESC LIMIT $4",
                &[&q.job, &q.since, &q.failed, &(q.limit as i64)],
            )
            .await
            .map_err(|e| format!("reading the shared history: {}", pg_err(&e)))?;
        self.put(c);
        let mut out: Vec<Entry> = rows
            .iter()
            .map(|r| {
                let tail: serde_json::Value = r.get(11);
                Entry {
                    host: Some(r.get(0)),
                    job: r.get(1),
                    run: r.get::<_, i64>(2).max(0) as u64,
                    trigger: r.get(3),
                    scheduled: r.get(4),
                    start: r.get(5),
                    end: r.get(6),
                    status: r.get(7),
                    attempt: r.get::<_, i32>(8).max(0) as u32,
                    error: r.get(9),
                    version: r.get(10),
                    log_tail: serde_json::from_value(tail).unwrap_or_default(),
                }
            })
            .collect();
        out.reverse();
        Ok(out)
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() > max {
        s.chars().take(max).collect::<String>() + "…"
    } else {
        s.to_string()
    }
}

/// `mtn history` with `[fleet]`: the shared history, read without a daemon.
pub fn fetch_blocking(
    cfg: &super::FleetConfig,
    base: &std::path::Path,
    q: &Query<'_>,
) -> Result<Vec<Entry>, String> {
    let fleet = Fleet::new(cfg, base)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
    rt.block_on(fleet.runs(q))
        .map_err(|e| format!("fleet database {}: {e}", fleet.shown()))
}
