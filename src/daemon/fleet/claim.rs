//! The claim protocol (see the module comment of `fleet`).
//!
//! In one transaction on the host's lock session: `INSERT ... ON CONFLICT DO NOTHING` of (job,
//! slot, takeover), then `pg_try_advisory_lock(NS, job key)` (a session lock: it outlives the
//! transaction and dies with the connection).
//!
//! One session per host holds all of its locks ([`LockSession`]): claims and releases take
//! turns on it (each is a few loopback round trips), so a host that runs 100 `once` jobs in the
//! same second opens one connection, not 100 — a connection per running job ran a 3-host fleet
//! of 100 jobs into PostgreSQL's `max_connections` and cost ~0.8 s per claim (benches/fleet.sh).
//! When the host dies, its session and every lock in it go together. The row, not any host's clock, decides who runs a
//! slot: hosts whose clocks disagree still compute the same slot (a fire time of the schedule)
//! and only one insert succeeds; the lock taken after it only tells whether the job is still
//! running another slot elsewhere. Other sessions see the row only after
//! COMMIT, when the lock is already held, so "a visible unfinished claim whose lock is gone"
//! means the run died. Finishing sets `finished_at` before unlocking, for the same reason.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Local};

use super::{held_sql, job_key, pg_err, Fleet, NS, POOLER};
use crate::host::db::postgres::conn::PgClient;

/// What a claim attempt found.
pub enum Claimed {
    /// This host runs the slot; hold the claim until the run ends.
    Won(Claim),
    /// Another host claimed the slot (its id).
    Taken(String),
    /// The slot is ours to skip: the job is still running on another host (its id, if known).
    Busy(Option<String>),
}

/// The session that holds this host's advisory locks, one statement sequence at a time.
#[derive(Default)]
pub struct LockSession {
    client: tokio::sync::Mutex<Option<Arc<PgClient>>>,
    /// Keys this session holds. Advisory locks are re-entrant within a session, so the server
    /// would grant a second run of a job this host is running; this set says "busy" instead.
    held: std::sync::Mutex<HashSet<i32>>,
}

impl LockSession {
    fn holds(&self, key: i32) -> bool {
        crate::sync::lock(&self.held).contains(&key)
    }

    fn set_held(&self, key: i32, held: bool) {
        let mut h = crate::sync::lock(&self.held);
        if held {
            h.insert(key);
        } else {
            h.remove(&key);
        }
    }

    /// Release `key` on `conn` (if it is still this host's session). Called with the session's
    /// turn taken, so the statement never lands inside another claim's transaction.
    async fn unlock(&self, conn: &PgClient, key: i32) -> Result<(), tokio_postgres::Error> {
        conn.execute(&format!("SELECT pg_advisory_unlock({NS}, $1)"), &[&key])
            .await?;
        self.set_held(key, false);
        Ok(())
    }
}

/// A won claim: the host's lock session holds the job's advisory lock until [`Claim::finish`].
pub struct Claim {
    conn: Option<Arc<PgClient>>,
    session: Arc<LockSession>,
    pub job: String,
    pub slot: DateTime<Local>,
    pub takeover: i16,
    key: i32,
}

/// An unfinished claim whose lock is gone, found (and marked) by this host.
pub struct Abandoned {
    pub job: String,
    pub slot: DateTime<Local>,
    pub takeover: i16,
    pub host: String,
    pub started_at: DateTime<Local>,
}

enum Step {
    Won,
    Taken(String),
    Busy(Option<String>),
}

impl Fleet {
    /// Claim (job, slot, takeover). Every failure to reach the database is an error: no run
    /// starts without a claim.
    pub async fn claim(
        &self,
        job: &str,
        slot: DateTime<Local>,
        takeover: i16,
    ) -> Result<Claimed, String> {
        let started = Instant::now();
        let mut turn = self.locks.client.lock().await;
        let c = match turn.as_ref().filter(|c| !c.is_closed()) {
            Some(c) => c.clone(),
            None => {
                // An idle pooled connection becomes the session (see `finish`), else a new one.
                let r = self.conn().await;
                match r {
                    Ok(c) => {
                        // A new session holds nothing: the old one's locks died with it (and
                        // the runs that held them were stopped by their watchers).
                        crate::sync::lock(&self.locks.held).clear();
                        let c = Arc::new(c);
                        *turn = Some(c.clone());
                        c
                    }
                    Err(e) => {
                        self.metrics.errors.fetch_add(1, Ordering::SeqCst);
                        return Err(e);
                    }
                }
            }
        };
        let key = job_key(job);
        let step = self.claim_on(&c, job, slot, takeover, key).await;
        if step.is_err() {
            // Whatever the failed claim left (an open BEGIN, a lock taken before the error)
            // must not outlive it. A closed session is replaced; its locks went with it, and
            // the runs holding them are stopped by their watchers.
            let _ = c.batch_execute("ROLLBACK").await;
            if !self.locks.holds(key) {
                let _ = c
                    .execute(&format!("SELECT pg_advisory_unlock({NS}, $1)"), &[&key])
                    .await;
            }
            if c.is_closed() {
                *turn = None;
            }
        }
        drop(turn);
        match step {
            Ok(Step::Won) => {
                self.locks.set_held(key, true);
                let us = started.elapsed().as_micros() as u64;
                self.metrics.claim_us.fetch_add(us, Ordering::SeqCst);
                self.metrics.claims.fetch_add(1, Ordering::SeqCst);
                self.metrics.won.fetch_add(1, Ordering::SeqCst);
                Ok(Claimed::Won(Claim {
                    conn: Some(c),
                    session: self.locks.clone(),
                    job: job.to_string(),
                    slot,
                    takeover,
                    key,
                }))
            }
            Ok(Step::Taken(h)) => {
                self.metrics.lost.fetch_add(1, Ordering::SeqCst);
                Ok(Claimed::Taken(h))
            }
            Ok(Step::Busy(h)) => {
                self.metrics.busy.fetch_add(1, Ordering::SeqCst);
                Ok(Claimed::Busy(h))
            }
            Err(e) => {
                if c.is_closed() {
                    self.set_up(Some(e.clone()));
                }
                self.metrics.errors.fetch_add(1, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    async fn claim_on(
        &self,
        c: &PgClient,
        job: &str,
        slot: DateTime<Local>,
        takeover: i16,
        key: i32,
    ) -> Result<Step, String> {
        let q = |e: tokio_postgres::Error| {
            format!("claiming {job} {}: {}", slot.to_rfc3339(), pg_err(&e))
        };
        c.batch_execute("BEGIN").await.map_err(q)?;
        // The INSERT decides: hosts racing for one slot queue on its unique key and only the
        // first gets a row. Only then the lock: taken by another host, it means that host is
        // running another slot of the job (it inserted that slot's row).
        let inserted = c
            .query_opt(
                "INSERT INTO mtn_fleet_claims (job, slot, takeover, host, pid, lock_key) \
                 VALUES ($1, $2, $3, $4, pg_backend_pid(), $5) ON CONFLICT DO NOTHING RETURNING 1",
                &[&job, &slot, &takeover, &self.host, &key],
            )
            .await
            .map_err(q)?
            .is_some();
        if !inserted {
            let host = self.claimer(c, job, slot, takeover).await.map_err(q)?;
            c.batch_execute("ROLLBACK").await.map_err(q)?;
            return Ok(Step::Taken(host.unwrap_or_else(|| "another host".into())));
        }
        // This host already running the job (an earlier slot) is "busy" like any other host.
        let locked: bool = !self.locks.holds(key)
            && c.query_one(&format!("SELECT pg_try_advisory_lock({NS}, $1)"), &[&key])
                .await
                .map_err(q)?
                .get(0);
        // A takeover waits for the job's lock instead of being recorded as skipped.
        if !locked && takeover > 0 {
            c.batch_execute("ROLLBACK").await.map_err(q)?;
            return Ok(Step::Busy(None));
        }
        if !locked {
            // Claimed, but the job still runs on another host (an earlier slot): this slot is
            // skipped, once, for the whole fleet.
            let holder: Option<String> = c
                .query_opt(
                    &format!(
                        "SELECT c.host FROM mtn_fleet_claims c JOIN pg_locks l ON l.pid = c.pid \
                         AND l.locktype = 'advisory' AND l.granted AND l.classid = {NS}::oid \
                         AND l.objid = c.lock_key::oid AND l.objsubid = 2 \
                         WHERE c.job = $1 AND c.finished_at IS NULL LIMIT 1"
                    ),
                    &[&job],
                )
                .await
                .map_err(q)?
                .map(|r| r.get(0));
            let outcome = format!(
                "skipped: previous run still going on {}",
                holder.as_deref().unwrap_or("another host")
            );
            c.execute(
                "UPDATE mtn_fleet_claims SET finished_at = now(), outcome = $4 \
                 WHERE job = $1 AND slot = $2 AND takeover = $3",
                &[&job, &slot, &takeover, &outcome],
            )
            .await
            .map_err(q)?;
            c.batch_execute("COMMIT").await.map_err(q)?;
            return Ok(Step::Busy(holder));
        }
        c.batch_execute("COMMIT").await.map_err(q)?;
        // The lock must be held by the session the next statement runs in (see POOLER).
        let held: bool = c
            .query_one(&held_sql(NS, "$1"), &[&key])
            .await
            .map_err(q)?
            .get(0);
        if !held {
            let _ = c
                .execute(
                    "UPDATE mtn_fleet_claims SET finished_at = now(), outcome = 'refused: no session lock' \
                     WHERE job = $1 AND slot = $2 AND takeover = $3",
                    &[&job, &slot, &takeover],
                )
                .await;
            return Err(POOLER.to_string());
        }
        Ok(Step::Won)
    }

    async fn claimer(
        &self,
        c: &PgClient,
        job: &str,
        slot: DateTime<Local>,
        takeover: i16,
    ) -> Result<Option<String>, tokio_postgres::Error> {
        Ok(c.query_opt(
            "SELECT host FROM mtn_fleet_claims WHERE job = $1 AND slot = $2 AND takeover = $3",
            &[&job, &slot, &takeover],
        )
        .await?
        .map(|r| r.get(0)))
    }

    /// Find the unfinished claims of `jobs` whose lock is gone, and mark them finished
    /// (`abandoned`). The UPDATE makes exactly one host the finder of each: it reports it and
    /// decides about the re-run.
    pub async fn abandoned(&self, jobs: &[String]) -> Result<Vec<Abandoned>, String> {
        let c = self.conn().await?;
        let outcome = format!("abandoned (found by {})", self.host);
        let rows = c
            .query(
                &format!(
                    "UPDATE mtn_fleet_claims c SET finished_at = now(), outcome = $2 \
                     WHERE c.finished_at IS NULL AND c.job = ANY($1) AND NOT EXISTS ( \
                       SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted \
                       AND l.pid = c.pid AND l.classid = {NS}::oid AND l.objid = c.lock_key::oid \
                       AND l.objsubid = 2) \
                     RETURNING c.job, c.slot, c.takeover, c.host, c.started_at"
                ),
                &[&jobs, &outcome],
            )
            .await
            .map_err(|e| format!("looking for dead runs: {}", pg_err(&e)));
        let rows = match rows {
            Ok(r) => r,
            Err(e) => {
                if c.is_closed() {
                    self.set_up(Some(e.clone()));
                }
                return Err(e);
            }
        };
        self.put(c);
        let found: Vec<Abandoned> = rows
            .iter()
            .map(|r| Abandoned {
                job: r.get(0),
                slot: r.get(1),
                takeover: r.get(2),
                host: r.get(3),
                started_at: r.get(4),
            })
            .collect();
        self.metrics
            .abandoned
            .fetch_add(found.len() as u64, Ordering::SeqCst);
        Ok(found)
    }

    /// The newest slot claimed for a job by any host (for catch-up).
    pub async fn newest_slot(&self, job: &str) -> Result<Option<DateTime<Local>>, String> {
        let c = self.conn().await?;
        let r = c
            .query_one(
                "SELECT max(slot) FROM mtn_fleet_claims WHERE job = $1",
                &[&job],
            )
            .await
            .map_err(|e| pg_err(&e))?;
        self.put(c);
        Ok(r.get(0))
    }
}

impl Claim {
    /// The connection holding the lock, for a watcher that stops the run when it is lost.
    pub fn lock_conn(&self) -> Option<std::sync::Weak<PgClient>> {
        self.conn.as_ref().map(Arc::downgrade)
    }

    /// Record the outcome, then release the lock (in that order: see the module comment).
    pub async fn finish(mut self, fleet: &Fleet, outcome: &str) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let started = Instant::now();
        let update = "UPDATE mtn_fleet_claims SET finished_at = now(), outcome = $4 \
                      WHERE job = $1 AND slot = $2 AND takeover = $3 AND finished_at IS NULL";
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&self.job, &self.slot, &self.takeover, &outcome];
        let done = {
            let mut turn = self.session.client.lock().await;
            let r = async {
                conn.execute(update, &params).await?;
                self.session.unlock(&conn, self.key).await
            }
            .await;
            // Holding no lock, the session leaves its place (and goes back to the pool below):
            // a host at rest keeps one connection, and the next claim or the shared history
            // reuses it.
            if r.is_ok()
                && crate::sync::lock(&self.session.held).is_empty()
                && turn.as_ref().is_some_and(|s| Arc::ptr_eq(s, &conn))
            {
                *turn = None;
            }
            r
        };
        match done {
            Ok(()) => {
                // Only a session that left its place is ours alone.
                if let Ok(c) = Arc::try_unwrap(conn) {
                    fleet.put(c);
                }
                let us = started.elapsed().as_micros() as u64;
                fleet.metrics.claim_us.fetch_add(us, Ordering::SeqCst);
            }
            Err(e) => {
                // The session failed: its locks are gone with it (the next claim opens a new
                // one). Record the outcome through another connection so the run is not
                // reported as dead (unless someone already did).
                drop(conn);
                let again = async {
                    let c = fleet.conn().await?;
                    c.execute(update, &params).await.map_err(|e| pg_err(&e))?;
                    fleet.put(c);
                    Ok::<_, String>(())
                };
                let retried = tokio::time::timeout(Duration::from_secs(10), again).await;
                if !matches!(retried, Ok(Ok(()))) {
                    tracing::error!(target: "mtn::fleet", job = %self.job, "job {}: cannot record the end of slot {} on the fleet database ({}); another host will report it as abandoned", self.job, self.slot.to_rfc3339(), pg_err(&e));
                }
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Not finished (a panic, an early return): release the lock in the background, and the
        // claim will be found abandoned — never held forever. Without a runtime (the process is
        // ending) the session and its locks end with it.
        if let Some(conn) = self.conn.take() {
            tracing::warn!(target: "mtn::fleet", "job {}: claim of slot {} dropped without an outcome", self.job, self.slot.to_rfc3339());
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let session = self.session.clone();
                let key = self.key;
                rt.spawn(async move {
                    let _turn = session.client.lock().await;
                    let _ = session.unlock(&conn, key).await;
                });
            }
        }
    }
}
