//! Fleet: several hosts (or pods) with the same config run each `once` job once per slot, decided
//! by the PostgreSQL the team already runs (docs/fleet.md).
//!
//! - `claim.rs`: the claim protocol. A claim is a row of `mtn_fleet_claims` (unique per job, slot
//!   and takeover) inserted in the same transaction that takes a session-level advisory lock for
//!   the job on a dedicated connection, which is held for the whole run: a host that dies closes
//!   its connection and its lock goes with it, so an unfinished claim whose lock is gone is a dead
//!   run — reported, and re-run once (takeover 1) when the job has `catch_up`.
//! - `shared.rs`: every run's history entry also goes to `mtn_fleet_history`, so `mtn history`,
//!   `/status` and the HTML page show the runs of every host.
//! - `once.rs`: `mtn run --once NAME --lock URL`, the same claim for cron and CronJob users.
//! - `config.rs`: `[fleet]` and each job's `fleet = "once" | "each"`.

pub mod claim;
pub mod once;
pub mod run;
pub mod shared;
pub mod status;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::daemon::history::Entry;
use crate::host::db::postgres::conn::{self, PgClient};
use crate::host::db::url::ServerUrl;
use crate::sync::lock;

pub use crate::config::fleet::{FleetConfig, FleetMode};
pub use claim::{Claim, Claimed};

/// `classid` of mtn's advisory locks (`pg_try_advisory_lock(NS, job key)`): "mtn" in ASCII, so
/// an operator reading pg_locks can tell mtn's locks from the application's.
pub const NS: i32 = 0x006d_746e;
/// Idle connections kept for the next claim; with the one a run holds, a daemon at rest has at
/// most this many connections to the lock database.
const MAX_IDLE: usize = 1;
/// Shared-history records kept while the database is unreachable, written when it returns.
const MAX_PENDING: usize = 1000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mtn_fleet_claims (
    job         text        NOT NULL,
    slot        timestamptz NOT NULL,
    -- 0: the slot's run; 1: its one re-run after the claiming host died (never more).
    takeover    smallint    NOT NULL DEFAULT 0 CHECK (takeover IN (0, 1)),
    host        text        NOT NULL,
    -- The claiming session: its advisory lock (NS, lock_key) says the run is alive.
    pid         integer     NOT NULL,
    lock_key    integer     NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text,
    PRIMARY KEY (job, slot, takeover)
);
CREATE INDEX IF NOT EXISTS mtn_fleet_claims_open ON mtn_fleet_claims (job) WHERE finished_at IS NULL;
CREATE TABLE IF NOT EXISTS mtn_fleet_history (
    id       bigserial   PRIMARY KEY,
    host     text        NOT NULL,
    job      text        NOT NULL,
    run      bigint      NOT NULL,
    trigger  text        NOT NULL,
    slot     timestamptz,
    start_at timestamptz NOT NULL,
    end_at   timestamptz NOT NULL,
    status   text        NOT NULL,
    attempt  integer     NOT NULL,
    error    text,
    version  text        NOT NULL DEFAULT '',
    log_tail jsonb       NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS mtn_fleet_history_start ON mtn_fleet_history (start_at);
CREATE INDEX IF NOT EXISTS mtn_fleet_history_job ON mtn_fleet_history (job, start_at);
";

/// The advisory lock key of a job: the same on every host and every version of mtn.
pub fn job_key(job: &str) -> i32 {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(job.as_bytes());
    i32::from_be_bytes([h[0], h[1], h[2], h[3]]) & 0x7fff_ffff
}

/// The lock database and this host's side of the fleet.
pub struct Fleet {
    /// `[fleet]` as the daemon started with it (a reload does not change it).
    pub cfg: FleetConfig,
    pub host: String,
    pub check_every: Duration,
    url: ServerUrl,
    /// The lock URL as the operator wrote it, without its password (messages).
    shown: String,
    /// Where the password came from (for authentication errors).
    hint: String,
    idle: Mutex<Vec<PgClient>>,
    /// The one session holding this host's advisory locks (see `claim`).
    pub(crate) locks: std::sync::Arc<claim::LockSession>,
    schema_ready: AtomicBool,
    /// The last connection error while the database is unreachable (None: reachable).
    down: Mutex<Option<String>>,
    pending: Mutex<VecDeque<Entry>>,
    pub metrics: FleetMetrics,
}

/// Counters behind the `mtn_fleet_*` metrics.
#[derive(Default)]
pub struct FleetMetrics {
    pub won: AtomicU64,
    pub lost: AtomicU64,
    pub busy: AtomicU64,
    pub errors: AtomicU64,
    pub abandoned: AtomicU64,
    pub db_up: AtomicBool,
    /// Sum and count of claim round trips, in microseconds.
    pub claim_us: AtomicU64,
    pub claims: AtomicU64,
}

impl Fleet {
    /// Resolve the lock URL (password by the usual conventions, registered as a secret). No
    /// connection yet: the daemon starts even when the database is down, and claims wait for it.
    pub fn new(cfg: &FleetConfig, base: &std::path::Path) -> Result<Fleet, String> {
        let pw_file = cfg
            .password_file
            .as_ref()
            .map(|p| base.join(p).to_string_lossy().into_owned());
        let db = crate::host::db::backend::Db::open(&cfg.lock, pw_file.as_deref())
            .map_err(|e| format!("[fleet] lock: {}", e.message))?;
        let mut url = match (db.engine, db.server) {
            (crate::host::db::url::Engine::Postgres, Some(s)) => s,
            _ => return Err("[fleet] lock: the lock database must be PostgreSQL".into()),
        };
        let shown = url.without_password();
        // An operator reading pg_stat_activity sees which host holds which connection.
        if url.query_param("application_name").is_none() {
            let name: String = format!("mtn fleet {}", cfg.host())
                .chars()
                .take(63)
                .collect();
            url.url
                .query_pairs_mut()
                .append_pair("application_name", &name);
        }
        Ok(Fleet {
            cfg: cfg.clone(),
            host: cfg.host(),
            check_every: cfg.check_every(),
            url,
            shown,
            hint: db.lookup.hint(),
            idle: Mutex::new(Vec::new()),
            locks: Default::default(),
            schema_ready: AtomicBool::new(false),
            down: Mutex::new(None),
            pending: Mutex::new(VecDeque::new()),
            metrics: FleetMetrics::default(),
        })
    }

    /// The lock database as shown in messages (no password).
    pub fn shown(&self) -> String {
        self.shown.clone()
    }

    /// A connection: an idle one, or a new one (the tables created on the first).
    pub async fn conn(&self) -> Result<PgClient, String> {
        loop {
            let c = lock(&self.idle).pop();
            match c {
                Some(c) if !c.is_closed() => return Ok(c),
                Some(_) => continue,
                None => break,
            }
        }
        let r = self.connect().await;
        self.set_up(r.as_ref().err().cloned());
        r
    }

    pub(crate) async fn connect(&self) -> Result<PgClient, String> {
        let c = conn::connect(&self.url).await.map_err(|e| {
            let mut m = e.message;
            if e.kind == crate::error::ErrorKind::Auth {
                m.push_str(&format!(" ({})", self.hint));
            }
            m
        })?;
        if !self.schema_ready.load(Ordering::SeqCst) {
            // Hosts starting together would race on CREATE TABLE IF NOT EXISTS (a unique
            // violation in pg_type): one at a time.
            let sql = format!("BEGIN; SELECT pg_advisory_xact_lock({NS}, 0); {SCHEMA} COMMIT;");
            c.batch_execute(&sql)
                .await
                .map_err(|e| format!("creating the fleet tables: {}", pg_err(&e)))?;
            self.schema_ready.store(true, Ordering::SeqCst);
        }
        session_state_kept(&c).await?;
        Ok(c)
    }

    /// Give a connection back for the next claim (closed ones and extras are dropped).
    pub fn put(&self, c: PgClient) {
        let mut idle = lock(&self.idle);
        if !c.is_closed() && idle.len() < MAX_IDLE {
            idle.push(c);
        }
    }

    /// Record whether the database answered; log only the transitions, so an outage is one
    /// clear error and its end one line, not a line per second.
    pub fn set_up(&self, err: Option<String>) {
        let mut down = lock(&self.down);
        match (&*down, err) {
            (None, Some(e)) => {
                tracing::error!(target: "mtn::fleet", "fleet lock database {} unreachable: {e}; no `once` job starts until it answers (mtn_fleet_db_up 0)", self.shown());
                *down = Some(e);
            }
            (Some(_), Some(e)) => *down = Some(e),
            (Some(_), None) => {
                tracing::info!(target: "mtn::fleet", "fleet lock database {} reachable again; runs resume", self.shown());
                *down = None;
            }
            (None, None) => {}
        }
        self.metrics.db_up.store(down.is_none(), Ordering::SeqCst);
    }

    /// The current outage, if any.
    pub fn down(&self) -> Option<String> {
        lock(&self.down).clone()
    }

    /// The `mtn_fleet_*` metrics, appended to /metrics.
    pub fn render_metrics(&self, o: &mut String) {
        use std::fmt::Write;
        let m = &self.metrics;
        let g = |a: &AtomicU64| a.load(Ordering::SeqCst);
        let _ = writeln!(o, "# HELP mtn_fleet_db_up Whether the fleet lock database answered the last request (1) or not (0).\n# TYPE mtn_fleet_db_up gauge\nmtn_fleet_db_up {}", u8::from(m.db_up.load(Ordering::SeqCst)));
        let _ = writeln!(o, "# HELP mtn_fleet_claims_total Slots this host tried to claim, by result (won: ran it; lost: another host had it; busy: the job was still running on another host; error: the lock database failed, nothing ran).\n# TYPE mtn_fleet_claims_total counter");
        for (r, v) in [
            ("won", &m.won),
            ("lost", &m.lost),
            ("busy", &m.busy),
            ("error", &m.errors),
        ] {
            let _ = writeln!(o, "mtn_fleet_claims_total{{result=\"{r}\"}} {}", g(v));
        }
        let _ = writeln!(o, "# HELP mtn_fleet_abandoned_runs_total Runs of another (or this) host found dead by this host: claimed, never finished, lock gone.\n# TYPE mtn_fleet_abandoned_runs_total counter\nmtn_fleet_abandoned_runs_total {}", g(&m.abandoned));
        let _ = writeln!(o, "# HELP mtn_fleet_claim_seconds Time spent claiming slots this host won and releasing them: the fleet's overhead per run.\n# TYPE mtn_fleet_claim_seconds summary\nmtn_fleet_claim_seconds_sum {}\nmtn_fleet_claim_seconds_count {}", g(&m.claim_us) as f64 / 1e6, g(&m.claims));
        let _ = writeln!(o, "# HELP mtn_fleet_info This host's id in the fleet.\n# TYPE mtn_fleet_info gauge\nmtn_fleet_info{{host=\"{}\"}} 1", self.host.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"));
    }
}

/// Advisory locks only work through a connection that keeps one server session: PgBouncer in
/// transaction or statement mode hands each statement to any server connection, so a lock
/// taken by one statement is not held by the session the next one runs in, and it stays
/// behind on a pooled connection instead of dying with mtn's. Check it: take a probe lock
/// and look for it from the next statement.
async fn session_state_kept(c: &PgClient) -> Result<(), String> {
    let probe: i32 = rand::random_range(1..i32::MAX);
    let sql = |e: tokio_postgres::Error| format!("checking session locks: {}", pg_err(&e));
    c.execute(
        &format!("SELECT pg_try_advisory_lock({}, $1)", NS + 1),
        &[&probe],
    )
    .await
    .map_err(sql)?;
    let held: bool = c
        .query_one(&held_sql(NS + 1, "$1"), &[&probe])
        .await
        .map_err(sql)?
        .get(0);
    let _ = c
        .execute(
            &format!("SELECT pg_advisory_unlock({}, $1)", NS + 1),
            &[&probe],
        )
        .await;
    if held {
        Ok(())
    } else {
        Err(POOLER.to_string())
    }
}

pub const POOLER: &str = "the lock database does not keep a session between statements (an advisory lock taken by one statement is not held by the next): is this PgBouncer (or another pooler) in transaction or statement mode? Session locks need a direct connection or a session-mode pool; see docs/fleet.md";

/// SQL: is the advisory lock (ns, key) held by this session?
pub fn held_sql(ns: i32, key: &str) -> String {
    format!(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND pid = pg_backend_pid() AND classid = {ns}::oid AND objid = ({key}::int4)::oid AND objsubid = 2)"
    )
}

/// A PostgreSQL error as one line (server message and SQLSTATE, or the I/O cause).
pub fn pg_err(e: &tokio_postgres::Error) -> String {
    conn::query_error(e).message
}

#[cfg(test)]
mod tests {
    #[test]
    fn job_keys_are_stable_and_non_negative() {
        assert_eq!(super::job_key("nightly"), super::job_key("nightly"));
        assert_ne!(super::job_key("nightly"), super::job_key("hourly"));
        assert!(super::job_key("x") >= 0);
    }
}
