//! The scheduler: one timer task per job, the overlap policy, and running a job (timeout,
//! retries with backoff, history, metrics, on_failure webhook).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Local};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::Overlap;
use crate::ctx::{Ctx, StopReason};
use crate::daemon::history::{Entry, History};
use crate::daemon::jobs::{Compiled, JobSpec, Settings};
use crate::daemon::metrics::Metrics;
use crate::engine::runner::{execute, supervise, Status, GRACE};
use crate::sync::{lock, read};

/// At most this many runs wait behind a running one with `overlap = "queue"`.
const MAX_QUEUED: u32 = 16;

/// What a run's history entry says about the last run, kept in memory for /status.
#[derive(Clone, serde::Serialize)]
pub struct LastRun {
    pub status: String,
    pub start: DateTime<Local>,
    pub end: DateTime<Local>,
    pub error: Option<String>,
}

#[derive(Default)]
pub struct JobState {
    pub running: Option<Ctx>,
    /// The last run id given out (run ids count up per job, across restarts via the history).
    pub runs: u64,
    pub queued: u32,
    pub next_fire: Option<DateTime<Local>>,
    pub last: Option<LastRun>,
    pub last_success: Option<DateTime<Local>>,
    /// The current compile error (the previous good version keeps running), if any.
    pub reload_error: Option<String>,
}

pub struct Job {
    pub spec: JobSpec,
    /// The current good version; swapped whole on reload, so a run keeps the one it took.
    pub script: RwLock<Option<Arc<Compiled>>>,
    /// Shared with the job's next incarnation after a config reload, so overlap rules and the
    /// last result carry over.
    pub state: Arc<Mutex<JobState>>,
    pub ticker: Mutex<Option<JoinHandle<()>>>,
}

impl Job {
    pub fn compiled(&self) -> Option<Arc<Compiled>> {
        read(&self.script).clone()
    }
}

pub struct Daemon {
    pub handle: Handle,
    pub config_path: PathBuf,
    /// `--state-dir` / `MTN_STATE_DIR`, kept so a config reload resolves the state dir the same way.
    pub state_flag: Option<PathBuf>,
    pub settings: RwLock<Settings>,
    pub jobs: RwLock<BTreeMap<String, Arc<Job>>>,
    pub history: History,
    pub metrics: Metrics,
    /// Cancelled on SIGTERM: no new runs start.
    pub shutdown: CancellationToken,
    pub runs: TaskTracker,
    pub config_error: Mutex<Option<String>>,
    pub started: DateTime<Local>,
    pub http: reqwest::Client,
    /// `[fleet]`: the lock database deciding which host runs a `once` job's slot.
    pub fleet: Option<Arc<crate::daemon::fleet::Fleet>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fired {
    Started,
    Queued,
    Replacing,
    Skipped,
    ShuttingDown,
}

impl Daemon {
    pub fn job(&self, name: &str) -> Option<Arc<Job>> {
        read(&self.jobs).get(name).cloned()
    }

    /// Start the timer task of a job (replacing an older one).
    pub fn start_ticker(self: &Arc<Self>, job: &Arc<Job>) {
        let d = self.clone();
        let j = job.clone();
        let handle = self.handle.spawn(async move { d.tick_loop(j).await });
        if let Some(old) = lock(&job.ticker).replace(handle) {
            old.abort();
        }
    }

    async fn tick_loop(self: Arc<Self>, job: Arc<Job>) {
        if !job.spec.cfg.is_enabled() {
            return;
        }
        let mut after = Local::now();
        loop {
            let Some(next) = job.spec.next_after(after) else {
                tracing::warn!(target: "mtn::daemon", "job {}: schedule has no future fire time", job.spec.name());
                return;
            };
            lock(&job.state).next_fire = Some(next);
            let wait = (next - Local::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.shutdown.cancelled() => return,
            }
            // Never fire before the scheduled instant (timers may wake a hair early).
            let early = (next - Local::now()).to_std().unwrap_or_default();
            if !early.is_zero() {
                tokio::time::sleep(early).await;
            }
            after = next;
            if let Some(j) = job.spec.jitter.filter(|j| !j.is_zero()) {
                let ms = rand::random_range(0..j.as_millis().max(1) as u64);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                    _ = self.shutdown.cancelled() => return,
                }
            }
            self.fire(&job, "schedule", Some(next));
        }
    }

    /// A job is due (by schedule, catch-up or trigger): start it, or apply its overlap policy.
    pub fn fire(
        self: &Arc<Self>,
        job: &Arc<Job>,
        trigger: &'static str,
        scheduled: Option<DateTime<Local>>,
    ) -> Fired {
        self.fire_slot(job, trigger, scheduled, 0)
    }

    /// [`Daemon::fire`] for a fleet takeover too: a `once` job's slot is claimed first
    /// (`takeover` 1: the one re-run of a slot whose host died).
    pub fn fire_slot(
        self: &Arc<Self>,
        job: &Arc<Job>,
        trigger: &'static str,
        scheduled: Option<DateTime<Local>>,
        takeover: i16,
    ) -> Fired {
        if self.shutdown.is_cancelled() {
            return Fired::ShuttingDown;
        }
        let name = job.spec.name().to_string();
        {
            let mut st = lock(&job.state);
            if let Some(ctx) = &st.running {
                let outcome = match job.spec.overlap {
                    Overlap::Skip => {
                        self.metrics.skipped(&name);
                        Fired::Skipped
                    }
                    Overlap::Queue if st.queued < MAX_QUEUED => {
                        st.queued += 1;
                        Fired::Queued
                    }
                    Overlap::Queue => {
                        self.metrics.skipped(&name);
                        Fired::Skipped
                    }
                    Overlap::Replace => {
                        ctx.stop(StopReason::Interrupted);
                        st.queued = 1;
                        Fired::Replacing
                    }
                };
                tracing::info!(target: "mtn::daemon", "job {name}: previous run still going ({:?}): {outcome:?}", job.spec.overlap);
                return outcome;
            }
            // Reserve the slot now so a second fire sees it busy.
            st.running = Some(self.placeholder_ctx(job));
        }
        let d = self.clone();
        let j = job.clone();
        match scheduled.filter(|_| job.spec.fleet == Some(crate::daemon::fleet::FleetMode::Once)) {
            // A manual trigger has no slot: it runs here, unclaimed (docs/fleet.md).
            Some(slot) => self.runs.spawn_on(
                async move { d.run_claimed(j, trigger, slot, takeover).await },
                &self.handle,
            ),
            None => self.runs.spawn_on(
                async move { d.run_job(j, trigger, scheduled).await },
                &self.handle,
            ),
        };
        Fired::Started
    }

    fn placeholder_ctx(&self, job: &Job) -> Ctx {
        let settings = read(&self.settings).clone();
        Arc::new(job.spec.run_ctx(self.handle.clone(), &settings))
    }

    /// Run a job with its retries, then any queued runs.
    async fn run_job(
        self: Arc<Self>,
        job: Arc<Job>,
        mut trigger: &'static str,
        mut scheduled: Option<DateTime<Local>>,
    ) {
        loop {
            self.attempts(&job, trigger, scheduled, None).await;
            let mut st = lock(&job.state);
            if st.queued > 0 && !self.shutdown.is_cancelled() {
                st.queued -= 1;
                st.running = Some(self.placeholder_ctx(&job));
                trigger = "queued";
                scheduled = None;
                continue;
            }
            st.running = None;
            st.queued = 0;
            return;
        }
    }

    /// A run's attempts: the first, then retries with backoff while it fails. `stop` (a fleet
    /// run whose lock was lost) ends the retries too. Returns the last attempt's status.
    pub(crate) async fn attempts(
        self: &Arc<Self>,
        job: &Arc<Job>,
        mut trigger: &'static str,
        scheduled: Option<DateTime<Local>>,
        stop: Option<&CancellationToken>,
    ) -> Status {
        let retries = job.spec.cfg.retries;
        let mut attempt = 0;
        loop {
            let status = self.run_once(job, trigger, scheduled, attempt).await;
            let retryable = matches!(status, Status::Failed | Status::Timeout);
            let stopped = stop.is_some_and(|s| s.is_cancelled());
            if !retryable || attempt >= retries || self.shutdown.is_cancelled() || stopped {
                return status;
            }
            // Exponential backoff: delay, 2×delay, 4×delay... capped at an hour.
            let delay = job
                .spec
                .retry_delay
                .saturating_mul(1 << attempt.min(16))
                .min(Duration::from_secs(3600));
            tracing::info!(target: "mtn::daemon", "job {}: retry {} of {retries} in {:?}", job.spec.name(), attempt + 1, delay);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.cancelled() => return status,
            }
            attempt += 1;
            trigger = "retry";
        }
    }

    /// One attempt, with its own run id; everything it logs carries `[job#run]`.
    async fn run_once(
        self: &Arc<Self>,
        job: &Arc<Job>,
        trigger: &'static str,
        scheduled: Option<DateTime<Local>>,
        attempt: u32,
    ) -> Status {
        let run = {
            let mut st = lock(&job.state);
            st.runs += 1;
            st.runs
        };
        let span = crate::logging::run_span(job.spec.name(), run);
        self.run_attempt(job, trigger, scheduled, attempt, run)
            .instrument(span)
            .await
    }

    /// One attempt: fresh RunCtx, the current script version, timeout, history and metrics.
    async fn run_attempt(
        self: &Arc<Self>,
        job: &Arc<Job>,
        trigger: &'static str,
        scheduled: Option<DateTime<Local>>,
        attempt: u32,
        run: u64,
    ) -> Status {
        let name = job.spec.name().to_string();
        let settings = read(&self.settings).clone();
        let mut run_ctx = job.spec.run_ctx(self.handle.clone(), &settings);
        run_ctx.run = crate::ctx::RunInfo {
            job: Some(name.clone()),
            slot: scheduled,
            attempt,
            trigger: trigger.to_string(),
            id: run,
            host: settings.host_id.clone(),
        };
        let ctx: Ctx = Arc::new(run_ctx);
        let placeholder = {
            let mut st = lock(&job.state);
            st.running.replace(ctx.clone())
        };
        // A replace request may have hit the placeholder before the real run existed.
        if placeholder.is_some_and(|p| p.token.is_cancelled()) {
            ctx.stop(StopReason::Interrupted);
        }
        let start = Local::now();
        if let Some(s) = scheduled {
            self.metrics.lateness(
                &name,
                (start - s).num_microseconds().unwrap_or(0) as f64 / 1e6,
            );
        }
        let compiled = job.compiled();
        tracing::info!(target: "mtn::daemon", "job {name}: start ({trigger}{})", compiled.as_ref().map(|c| format!(", version {}", c.hash)).unwrap_or_default());
        self.metrics.running(&name, 1);

        let (status, error, version) = match compiled {
            None => (
                Status::Failed,
                Some(
                    lock(&job.state)
                        .reload_error
                        .clone()
                        .unwrap_or_else(|| "the script has never compiled".into()),
                ),
                String::new(),
            ),
            Some(c) => {
                crate::host::notify::monitor::start(&ctx).await;
                let (status, error) = self.execute(&ctx, &c, job.spec.timeout).await;
                (status, error, c.hash.clone())
            }
        };
        let end = Local::now();
        self.metrics.running(&name, 0);
        let entry = Entry {
            job: name.clone(),
            run,
            trigger: trigger.to_string(),
            scheduled,
            start,
            end,
            status: status.as_str().to_string(),
            attempt,
            error: error.clone(),
            version,
            log_tail: ctx.log_tail.lines(),
            host: self.fleet.as_ref().map(|f| f.host.clone()),
        };
        if let Err(e) = self.history.append(&entry) {
            tracing::error!(target: "mtn::daemon", "job {name}: cannot write run history: {e}");
        }
        self.share(&entry);
        self.metrics
            .run(&name, status.as_str(), entry.duration_secs(), end);
        {
            let mut st = lock(&job.state);
            st.last = Some(LastRun {
                status: entry.status.clone(),
                start,
                end,
                error: error.clone(),
            });
            if matches!(status, Status::Ok | Status::Warning) {
                st.last_success = Some(end);
            }
        }
        match &error {
            Some(e) if status == Status::Interrupted => {
                tracing::warn!(target: "mtn::daemon", "job {name}: {} after {:.3}s\n{e}", status.as_str(), entry.duration_secs())
            }
            Some(e) => {
                tracing::error!(target: "mtn::daemon", "job {name}: {} after {:.3}s\n{e}", status.as_str(), entry.duration_secs())
            }
            None => {
                tracing::info!(target: "mtn::daemon", "job {name}: {} in {:.3}s", status.as_str(), entry.duration_secs())
            }
        }
        let failed = matches!(status, Status::Failed | Status::Timeout);
        // The run's one final monitoring signal; an attempt that will be retried sends none.
        if !failed || attempt >= job.spec.cfg.retries || self.shutdown.is_cancelled() {
            let end = crate::engine::monitor::RunEnd {
                status,
                code: status.exit_code(false),
                error: error.as_deref(),
            };
            crate::engine::monitor::finish(&ctx, &end).await;
        }
        // A run that will be retried is not the job's outcome yet; a cancelled one is none.
        if (!failed || attempt >= job.spec.cfg.retries) && status != Status::Interrupted {
            self.alert(job, &entry, failed, &settings.state_dir).await;
        }
        status
    }

    /// Run the AST on a blocking thread, supervised as `mtn run` does (timeout, grace, panic).
    async fn execute(
        &self,
        ctx: &Ctx,
        compiled: &Arc<Compiled>,
        timeout: Option<Duration>,
    ) -> (Status, Option<String>) {
        let run_ctx = ctx.clone();
        let ast = compiled.ast.clone();
        // The script runs on a blocking thread: carry the run's span there.
        let span = tracing::Span::current();
        let ended = supervise(ctx, timeout, move || {
            span.in_scope(|| execute(run_ctx, &ast))
        })
        .await;
        (ended.status, ended.error.map(|r| r.text))
    }

    /// Catch-up (systemd Persistent=true): a job whose last recorded run is older than a fire
    /// time that has passed runs once now. A job with no history is not caught up.
    pub fn catch_up(self: &Arc<Self>, job: &Arc<Job>) {
        if !job.spec.cfg.catch_up || !job.spec.cfg.is_enabled() {
            return;
        }
        if job.spec.fleet == Some(crate::daemon::fleet::FleetMode::Once) {
            // The fleet's newest claim, not this host's history, says what was missed.
            let d = self.clone();
            let j = job.clone();
            self.handle.spawn(async move { d.fleet_catch_up(j).await });
            return;
        }
        let Some(last) = self.history.last(job.spec.name()) else {
            return;
        };
        let last_time = last.scheduled.unwrap_or(last.start).max(last.start);
        if let Some(missed) = job.spec.next_after(last_time) {
            if missed < Local::now() {
                tracing::info!(target: "mtn::daemon", "job {}: missed its run of {} while down; catching up", job.spec.name(), missed.to_rfc3339());
                self.fire(job, "catch_up", Some(missed));
            }
        }
    }

    /// SIGTERM: stop scheduling, let running jobs finish within the grace period, then cancel.
    pub async fn shutdown(self: &Arc<Self>) {
        self.shutdown.cancel();
        self.runs.close();
        let grace = read(&self.settings).shutdown_grace;
        let running = self.runs.len();
        if running > 0 {
            tracing::info!(target: "mtn::daemon", "shutting down: waiting up to {grace:?} for {running} running job(s)");
        }
        if tokio::time::timeout(grace, self.runs.wait()).await.is_err() {
            tracing::warn!(target: "mtn::daemon", "shutdown grace over: cancelling running jobs");
            for job in read(&self.jobs).values() {
                if let Some(ctx) = &lock(&job.state).running {
                    ctx.stop(StopReason::Shutdown);
                }
            }
            let _ = tokio::time::timeout(GRACE + Duration::from_secs(1), self.runs.wait()).await;
        }
    }
}
