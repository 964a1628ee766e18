//! `mtn run FILE --once NAME --lock URL [--slot TIME]`: the fleet's claim for cron, CronJob and
//! systemd-timer users. Every host (or every Job a CronJob created twice) runs the same command;
//! the one that claims (NAME, slot) runs the script, the others print "skipped: claimed by
//! HOST" and exit 0.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local, TimeZone, Timelike};

use super::{Claim, Claimed, Fleet, FleetConfig};
use crate::cli::RunArgs;
use crate::config::Config;
use crate::ctx::{RunCtx, RunInfo, StopReason};
use crate::daemon::history::Entry;
use crate::engine::runner::Status;

pub struct Once {
    pub fleet: Arc<Fleet>,
    pub job: String,
    pub slot: DateTime<Local>,
}

/// Read the `--once` options before anything runs: `Ok(None)` without `--once`.
pub fn prepare(args: &RunArgs, cfg: Option<&(Config, PathBuf)>) -> Result<Option<Once>, String> {
    let Some(job) = args.once.clone() else {
        return Ok(None);
    };
    if job.is_empty()
        || !job
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "--once {job:?}: a name of letters, digits, '-', '_' and '.' (like a job name)"
        ));
    }
    let from_config = cfg.and_then(|(c, base)| c.fleet.clone().map(|f| (f, base.clone())));
    let (mut fc, base) = match (&args.lock, from_config) {
        (Some(lock), other) => {
            crate::config::fleet::check_lock_url(lock).map_err(|e| format!("--lock: {e}"))?;
            let host_id = other.and_then(|(f, _)| f.host_id);
            (
                FleetConfig {
                    lock: lock.clone(),
                    host_id,
                    ..Default::default()
                },
                PathBuf::from("."),
            )
        }
        (None, Some((f, base))) => (f, base),
        (None, None) => {
            return Err(
                "--once needs the lock database: --lock postgres://... or --config with a [fleet] table"
                    .into(),
            )
        }
    };
    if let Some(h) = &args.host_id {
        fc.host_id = Some(h.clone());
    }
    let slot = match &args.slot {
        Some(s) => parse_slot(s)?,
        None => minute(Local::now()),
    };
    let fleet = Fleet::new(&fc, &base)?;
    Ok(Some(Once {
        fleet: Arc::new(fleet),
        job,
        slot,
    }))
}

/// The start of the minute `t` is in.
fn minute(t: DateTime<Local>) -> DateTime<Local> {
    t.with_nanosecond(0)
        .and_then(|t| t.with_second(0))
        .unwrap_or(t)
}

/// `--slot`: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (or with `T`) in local time, or Unix seconds.
pub fn parse_slot(s: &str) -> Result<DateTime<Local>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Local));
    }
    if let Ok(secs) = s.parse::<i64>() {
        if let Some(t) = Local.timestamp_opt(secs, 0).single() {
            return Ok(t);
        }
    }
    for f in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = chrono::NaiveDateTime::parse_from_str(s, f) {
            // In a DST overlap the first pass, as cron fires; a gap time does not exist.
            if let Some(t) = Local.from_local_datetime(&n).earliest() {
                return Ok(t);
            }
        }
    }
    Err(format!(
        "--slot {s:?}: expected an RFC 3339 time (2026-11-29T02:00:00Z), `YYYY-MM-DD HH:MM` in local time, or Unix seconds"
    ))
}

impl Once {
    /// What the script sees as `run`.
    pub fn run_info(&self) -> RunInfo {
        RunInfo {
            job: Some(self.job.clone()),
            slot: Some(self.slot),
            attempt: 0,
            trigger: "once".into(),
            id: 0,
            host: self.fleet.host.clone(),
        }
    }

    pub async fn claim(&self) -> Result<Claimed, String> {
        self.fleet.claim(&self.job, self.slot, 0).await
    }

    /// Record the claim's outcome and the run in the shared history (bounded: the process is
    /// about to exit).
    pub async fn finish(&self, claim: Claim, run: &FinishedRun<'_>) {
        claim.finish(&self.fleet, run.status.as_str()).await;
        self.fleet.record(Entry {
            job: self.job.clone(),
            run: 0,
            trigger: "once".into(),
            scheduled: Some(self.slot),
            start: run.start,
            end: Local::now(),
            status: run.status.as_str().into(),
            attempt: 0,
            error: run.error.map(String::from),
            version: String::new(),
            log_tail: run.log_tail.clone(),
            host: Some(self.fleet.host.clone()),
        });
        let flushed = tokio::time::timeout(
            Duration::from_secs(10),
            self.fleet
                .flush(500, crate::daemon::history::DEFAULT_MAX_AGE),
        )
        .await;
        if !matches!(flushed, Ok(Ok(()))) {
            tracing::warn!(target: "mtn::fleet", "the run could not be written to the shared history on {}", self.fleet.shown());
        }
    }
}

/// What `finish` records of a run.
pub struct FinishedRun<'a> {
    pub status: Status,
    pub start: DateTime<Local>,
    pub error: Option<&'a str>,
    pub log_tail: Vec<String>,
}

/// Stop the run when the connection holding its lock is lost (see `run::watch_lock`).
pub async fn watch(
    claim_conn: Option<std::sync::Weak<crate::host::db::postgres::conn::PgClient>>,
    ctx: Arc<RunCtx>,
) {
    let Some(conn) = claim_conn else {
        return;
    };
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        match conn.upgrade() {
            Some(c) if c.is_closed() => {
                tracing::error!(target: "mtn::fleet", "lost the connection holding the fleet lock; stopping the run so the slot cannot run twice");
                ctx.stop(StopReason::Interrupted);
                return;
            }
            Some(_) => {}
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_parse_in_every_documented_form() {
        let t = parse_slot("2026-11-29T02:00:00Z").unwrap();
        assert_eq!(t.timestamp(), 1_795_917_600);
        assert_eq!(parse_slot("1795917600").unwrap(), t);
        let local = parse_slot("2026-11-29 02:00").unwrap();
        assert_eq!(local.minute(), 0);
        assert!(parse_slot("tomorrow").is_err());
        let m = minute(Local::now());
        assert_eq!((m.second(), m.nanosecond()), (0, 0));
    }
}
