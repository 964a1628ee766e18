//! The daemon's side of the fleet: claim a `once` job's slot before running it, skip it when
//! another host has it, stop it when its lock is lost, find and re-run dead hosts' runs, and
//! send every run to the shared history.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local};
use tokio_util::sync::CancellationToken;

use super::{Claimed, FleetMode};
use crate::ctx::StopReason;
use crate::daemon::history::Entry;
use crate::daemon::jobs::Settings;
use crate::daemon::scheduler::{Daemon, Job};
use crate::sync::{lock, read};

/// How long a takeover waits for the job's lock (the job running on another host).
const TAKEOVER_WAIT: Duration = Duration::from_secs(3600);

impl Daemon {
    /// Claim the slot, run the job's attempts under the claim, record the outcome. The job's
    /// `running` placeholder was set by `fire`; it is cleared here.
    pub(crate) async fn run_claimed(
        self: Arc<Self>,
        job: Arc<Job>,
        trigger: &'static str,
        slot: DateTime<Local>,
        takeover: i16,
    ) {
        let Some(fleet) = self.fleet.clone() else {
            return;
        };
        let name = job.spec.name().to_string();
        let waited_until = tokio::time::Instant::now() + TAKEOVER_WAIT;
        let claimed = loop {
            let r = fleet.claim(&name, slot, takeover).await;
            // A takeover waits for the run going on elsewhere instead of giving up the slot.
            if takeover > 0
                && matches!(r, Ok(Claimed::Busy(_)))
                && tokio::time::Instant::now() < waited_until
            {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => continue,
                    _ = self.shutdown.cancelled() => break r,
                }
            }
            break r;
        };
        match claimed {
            Ok(Claimed::Won(claim)) => {
                let lost = CancellationToken::new();
                let watcher = self.handle.spawn(watch_lock(
                    claim.lock_conn(),
                    lost.clone(),
                    job.clone(),
                    fleet.shown(),
                ));
                let status = self.attempts(&job, trigger, Some(slot), Some(&lost)).await;
                watcher.abort();
                let outcome = if lost.is_cancelled() {
                    "interrupted: lock lost".to_string()
                } else {
                    status.as_str().to_string()
                };
                claim.finish(&fleet, &outcome).await;
            }
            Ok(Claimed::Taken(host)) => {
                self.record_skip(&job, trigger, slot, &format!("skipped: claimed by {host}"))
            }
            Ok(Claimed::Busy(host)) => self.record_skip(
                &job,
                trigger,
                slot,
                &format!(
                    "skipped: previous run still going on {}",
                    host.as_deref().unwrap_or("another host")
                ),
            ),
            Err(e) => {
                tracing::error!(target: "mtn::fleet", job = %name, "job {name}: slot {} not run: it could not be claimed on the fleet database {} ({e}); no run starts without a claim", slot.to_rfc3339(), fleet.shown());
                self.record_skip(&job, trigger, slot, &format!("skipped: no claim: {e}"));
            }
        }
        let mut st = lock(&job.state);
        st.running = None;
        st.queued = 0;
    }

    /// A slot this host did not run: a history entry (status `skipped`, run id 0) and the
    /// skipped counter; the job's last result stays the last real run.
    fn record_skip(&self, job: &Job, trigger: &str, slot: DateTime<Local>, why: &str) {
        let name = job.spec.name();
        tracing::debug!(target: "mtn::fleet", job = name, "job {name}: slot {}: {why}", slot.to_rfc3339());
        self.metrics.skipped(name);
        let now = Local::now();
        let entry = Entry {
            job: name.to_string(),
            run: 0,
            trigger: trigger.to_string(),
            scheduled: Some(slot),
            start: now,
            end: now,
            status: "skipped".into(),
            attempt: 0,
            error: Some(why.to_string()),
            version: String::new(),
            log_tail: vec![],
            host: self.fleet.as_ref().map(|f| f.host.clone()),
        };
        if let Err(e) = self.history.append(&entry) {
            tracing::error!(target: "mtn::daemon", "job {name}: cannot write run history: {e}");
        }
    }

    /// Send a finished run to the shared history (written in the background).
    pub(crate) fn share(&self, entry: &Entry) {
        let Some(fleet) = self.fleet.clone() else {
            return;
        };
        fleet.record(entry.clone());
        let (limit, age) = (self.history.limit(), self.history.max_age());
        self.handle.spawn(async move {
            if let Err(e) = fleet.flush(limit, age).await {
                tracing::warn!(target: "mtn::fleet", "shared history not written yet (kept, retried): {e}");
            }
        });
    }

    /// A config reload cannot switch the lock database under running claims: `[fleet]` keeps
    /// what the daemon started with (a restart applies a change).
    pub(crate) fn pin_fleet(&self, settings: &mut Settings) {
        let started = self.fleet.as_ref().map(|f| f.cfg.clone());
        if settings.fleet != started {
            tracing::warn!(target: "mtn::fleet", "[fleet] changed in the config: restart the daemon to apply it (keeping the settings it started with)");
            settings.host_id = started
                .as_ref()
                .map(|f| f.host())
                .unwrap_or_else(crate::host::core::hostname);
            settings.fleet = started;
        }
    }

    /// Catch-up of a `once` job: a fire time after the fleet's newest claim that has passed
    /// runs once now (the claim makes it once for the fleet, not once per host).
    pub(crate) async fn fleet_catch_up(self: Arc<Self>, job: Arc<Job>) {
        let Some(fleet) = self.fleet.clone() else {
            return;
        };
        let name = job.spec.name();
        match fleet.newest_slot(name).await {
            Ok(Some(newest)) => {
                if let Some(missed) = job.spec.next_after(newest).filter(|m| *m < Local::now()) {
                    tracing::info!(target: "mtn::fleet", "job {name}: the fleet missed its run of {}; catching up", missed.to_rfc3339());
                    self.fire(&job, "catch_up", Some(missed));
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(target: "mtn::fleet", "job {name}: catch-up not checked: fleet database {}: {e}", fleet.shown())
            }
        }
    }

    /// Every `check_every`: find runs whose host died (report them; re-run once with
    /// `catch_up`), and write shared history entries that waited for the database.
    pub(crate) async fn fleet_loop(self: Arc<Self>) {
        let Some(fleet) = self.fleet.clone() else {
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(fleet.check_every) => {}
                _ = self.shutdown.cancelled() => return,
            }
            let jobs: Vec<Arc<Job>> = read(&self.jobs)
                .values()
                .filter(|j| j.spec.fleet == Some(FleetMode::Once))
                .cloned()
                .collect();
            let names: Vec<String> = jobs.iter().map(|j| j.spec.name().to_string()).collect();
            if !names.is_empty() {
                match fleet.abandoned(&names).await {
                    Ok(found) => {
                        for a in found {
                            if let Some(job) = jobs.iter().find(|j| j.spec.name() == a.job) {
                                self.abandoned(job, a);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(target: "mtn::fleet", "dead-run check failed: {e}")
                    }
                }
            }
            let (limit, age) = (self.history.limit(), self.history.max_age());
            let _ = fleet.flush(limit, age).await;
        }
    }

    /// A dead host's run, found by this host: report it (log, metric, shared history) and
    /// re-run the slot once if the job catches up.
    fn abandoned(self: &Arc<Self>, job: &Arc<Job>, a: super::claim::Abandoned) {
        let Some(fleet) = self.fleet.clone() else {
            return;
        };
        let name = &a.job;
        let rerun = job.spec.cfg.catch_up && a.takeover == 0;
        let what = format!(
            "the run of slot {} on {} (started {}) never finished: {}'s lock on the fleet database is gone (the host died or lost its connection){}",
            a.slot.to_rfc3339(),
            a.host,
            a.started_at.to_rfc3339(),
            a.host,
            if rerun {
                "; re-running it once here (catch_up)"
            } else if a.takeover > 0 {
                "; it was already a re-run: a slot is re-run at most once"
            } else {
                "; not re-run (the job has no catch_up)"
            }
        );
        tracing::error!(target: "mtn::fleet", job = %name, "job {name}: {what}");
        let now = Local::now();
        fleet.record(Entry {
            job: name.clone(),
            run: 0,
            trigger: if a.takeover > 0 {
                "catch_up"
            } else {
                "schedule"
            }
            .into(),
            scheduled: Some(a.slot),
            start: a.started_at,
            end: now,
            status: "abandoned".into(),
            attempt: 0,
            error: Some(format!("{what} (found by {})", fleet.host)),
            version: String::new(),
            log_tail: vec![],
            host: Some(a.host.clone()),
        });
        if !rerun {
            return;
        }
        // This host may be running the job right now (overlap): wait for it, then re-run.
        let d = self.clone();
        let j = job.clone();
        self.handle.spawn(async move {
            let until = tokio::time::Instant::now() + TAKEOVER_WAIT;
            loop {
                let fired = d.fire_slot(&j, "catch_up", Some(a.slot), 1);
                if fired != crate::daemon::scheduler::Fired::Skipped
                    || tokio::time::Instant::now() > until
                {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = d.shutdown.cancelled() => return,
                }
            }
        });
    }
}

/// While a claimed run goes on, watch the connection holding its lock: when it is lost (the
/// database restarted, the network failed) another host may find the claim dead and re-run
/// the slot, so this run is stopped rather than risk running the slot twice at once.
async fn watch_lock(
    conn: Option<std::sync::Weak<crate::host::db::postgres::conn::PgClient>>,
    lost: CancellationToken,
    job: Arc<Job>,
    shown: String,
) {
    let Some(conn) = conn else {
        return;
    };
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let closed = match conn.upgrade() {
            Some(c) => c.is_closed(),
            None => return,
        };
        if closed {
            let name = job.spec.name();
            tracing::error!(target: "mtn::fleet", job = name, "job {name}: lost the connection holding its fleet lock on {shown}; stopping the run so the slot cannot run twice");
            lost.cancel();
            if let Some(ctx) = &lock(&job.state).running {
                ctx.stop(StopReason::Interrupted);
            }
            return;
        }
    }
}
