//! `RunCtx`: everything a host function needs to know about the run it is part of.
//!
//! One `RunCtx` per script run. Host bindings capture an `Arc<RunCtx>` and use it to bridge
//! async I/O (`block_on`, raced against cancellation), to check dry-run and the safety policy,
//! and to record host-call events for the run summary.

pub mod monitor;

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rhai::Map;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorKind, HostError, HostResult};
use crate::http::HttpClients;
use crate::policy::Policy;

/// Why a run was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Timeout,
    Interrupted,
    Shutdown,
}

/// Limits applied to every engine; settable in config for people who really need more.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    // Rhai reads 0 as "no limit" for all of these; a limit of 0 written in a config is a
    // mistake, not a wish for none, so it is refused when the config is read.
    #[serde(deserialize_with = "at_least_one")]
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_expr_depth: usize,
    pub max_function_expr_depth: usize,
    #[serde(deserialize_with = "at_least_one")]
    pub max_string_size: usize,
    #[serde(deserialize_with = "at_least_one")]
    pub max_array_size: usize,
    #[serde(deserialize_with = "at_least_one")]
    pub max_map_size: usize,
    pub max_modules: usize,
    pub max_functions: usize,
    pub max_variables: usize,
    /// Heap bytes the whole process may hold while the script runs (checked between script
    /// operations; see src/alloc.rs).
    #[serde(deserialize_with = "at_least_one")]
    pub max_memory: usize,
}

fn at_least_one<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de> + PartialEq + From<u8>,
{
    let v = T::deserialize(d)?;
    if v == T::from(0u8) {
        return Err(serde::de::Error::custom(
            "must be at least 1 (0 would mean no limit at all)",
        ));
    }
    Ok(v)
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Generous for real procedures (loops over 100k files), small enough that a runaway
            // loop ends in seconds.
            max_operations: 50_000_000,
            max_call_levels: 64,
            max_expr_depth: 64,
            max_function_expr_depth: 32,
            max_string_size: 64 * 1024 * 1024,
            // Rhai counts every element of nested arrays and maps against these, so a listing of
            // 100k files (an array of 100k maps of 9 fields) needs room for ~1M entries.
            max_array_size: 10_000_000,
            max_map_size: 10_000_000,
            max_modules: 64,
            max_functions: 2_000,
            // A real procedure holds a few MB; 2 GiB leaves room for big query results and
            // listings while a runaway script stops long before the machine swaps.
            max_memory: 2 << 30,
            max_variables: 10_000,
        }
    }
}

/// A run as its script sees it (the `run` constant): a script can name its output by the
/// scheduled slot (not the start time, which jitter, retries and catch-up move) and tell a
/// retry from a first attempt.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// The job's name (daemon jobs, `mtn run --once NAME`); none for a plain `mtn run`.
    pub job: Option<String>,
    /// The schedule time this run is for; none for a manual trigger or a plain `mtn run`.
    pub slot: Option<chrono::DateTime<chrono::Local>>,
    /// 0 for the first attempt, 1, 2... for retries.
    pub attempt: u32,
    /// schedule, manual, catch_up, retry, queued (daemon); once or cli (`mtn run`).
    pub trigger: String,
    /// The daemon's run id (`[nightly#42]`); 0 outside the daemon.
    pub id: u64,
    /// `[fleet] host_id`, else the host name.
    pub host: String,
}

impl RunInfo {
    /// The Rhai map: unset values are `()`, the slot is RFC 3339 plus `slot_unix` seconds.
    pub fn to_map(&self) -> rhai::Map {
        use rhai::Dynamic;
        let mut m = rhai::Map::new();
        let opt = |v: Option<String>| v.map(Dynamic::from).unwrap_or(Dynamic::UNIT);
        m.insert("job".into(), opt(self.job.clone()));
        m.insert("slot".into(), opt(self.slot.map(|s| s.to_rfc3339())));
        m.insert(
            "slot_unix".into(),
            self.slot
                .map(|s| Dynamic::from(s.timestamp()))
                .unwrap_or(Dynamic::UNIT),
        );
        m.insert("attempt".into(), Dynamic::from(self.attempt as i64));
        m.insert("trigger".into(), Dynamic::from(self.trigger.clone()));
        m.insert("id".into(), Dynamic::from(self.id as i64));
        m.insert("host".into(), Dynamic::from(self.host.clone()));
        m
    }
}

pub struct RunCtx {
    pub handle: Handle,
    pub token: CancellationToken,
    stop_reason: AtomicU8,
    pub deadline: Option<Instant>,
    pub dry_run: bool,
    pub policy: Policy,
    pub limits: Limits,
    /// The script's path as the user gave it (for messages) and its folder.
    pub script: PathBuf,
    pub script_dir: PathBuf,
    pub stdlib_dir: Option<PathBuf>,
    /// Where persisted state lives (consecutive failures, last restore test).
    pub state_dir: PathBuf,
    /// `--set NAME=VALUE` values, exposed to scripts as `vars`.
    pub vars: Map,
    /// Job name when run by the daemon.
    pub job: Option<String>,
    /// What the script sees as `run`: job, slot, attempt, trigger, host (see [`RunInfo`]).
    pub run: RunInfo,
    /// The run's last log lines, kept for the daemon's run history (empty capacity: not kept).
    pub log_tail: LogTail,
    /// Dead-man's switch and failure alert of this run (see `ctx::monitor`, `engine::monitor`).
    pub monitor: monitor::Monitor,
    warned: AtomicBool,
    host_calls: AtomicU64,
    host_failures: AtomicU64,
    /// The run's HTTP clients (checks, requests, notifications), made on first use with the
    /// run's policy and dropped with the run.
    http: OnceLock<Arc<HttpClients>>,
    pub started: Instant,
}

impl RunCtx {
    /// The run's HTTP clients: one connection pool per (redirect, CA) setting, redirects checked
    /// against the run's host allow-list.
    pub fn http(&self) -> Arc<HttpClients> {
        self.http
            .get_or_init(|| HttpClients::with_policy(self.policy.clone()))
            .clone()
    }

    pub fn new(handle: Handle, script: PathBuf, policy: Policy) -> Self {
        let script_dir = script
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            })
            .unwrap_or_else(|| PathBuf::from("."));
        RunCtx {
            handle,
            token: CancellationToken::new(),
            stop_reason: AtomicU8::new(0),
            deadline: None,
            dry_run: false,
            policy,
            limits: Limits::default(),
            script,
            script_dir,
            stdlib_dir: None,
            state_dir: PathBuf::from(".mtn"),
            vars: Map::new(),
            job: None,
            run: RunInfo::default(),
            log_tail: LogTail::new(0),
            monitor: Default::default(),
            warned: AtomicBool::new(false),
            host_calls: AtomicU64::new(0),
            host_failures: AtomicU64::new(0),
            http: OnceLock::new(),
            started: Instant::now(),
        }
    }

    /// Stop the run: the script ends at its next operation and host I/O in flight is abandoned.
    pub fn stop(&self, reason: StopReason) {
        let code = match reason {
            StopReason::Timeout => 1,
            StopReason::Interrupted => 2,
            StopReason::Shutdown => 3,
        };
        let _ = self
            .stop_reason
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
        self.token.cancel();
    }

    pub fn stop_reason(&self) -> Option<StopReason> {
        match self.stop_reason.load(Ordering::SeqCst) {
            1 => Some(StopReason::Timeout),
            2 => Some(StopReason::Interrupted),
            3 => Some(StopReason::Shutdown),
            _ => None,
        }
    }

    fn stopped_error(&self) -> HostError {
        match self.stop_reason() {
            Some(StopReason::Timeout) => HostError::new(ErrorKind::Timeout, "run timed out"),
            Some(StopReason::Interrupted) => HostError::new(ErrorKind::Cancelled, "interrupted"),
            Some(StopReason::Shutdown) | None => {
                HostError::new(ErrorKind::Cancelled, "cancelled (shutting down)")
            }
        }
    }

    /// Fail fast if the run is already stopped.
    pub fn check_cancelled(&self) -> HostResult<()> {
        if self.token.is_cancelled() {
            Err(self.stopped_error())
        } else {
            Ok(())
        }
    }

    /// Run a future to completion from the script's (blocking) thread, racing it against the
    /// run's cancellation token. When the token fires, the future is dropped, which closes its
    /// sockets and kills child processes spawned with `kill_on_drop`.
    pub fn block_on<T, F>(&self, fut: F) -> HostResult<T>
    where
        F: Future<Output = HostResult<T>>,
    {
        self.check_cancelled()?;
        let token = self.token.clone();
        let res = self
            .handle
            .block_on(RUN_TOKEN.scope(token.clone(), async move {
                tokio::select! {
                    biased;
                    _ = token.cancelled() => None,
                    r = fut => Some(r),
                }
            }));
        match res {
            Some(r) => r,
            None => Err(self.stopped_error()),
        }
    }

    /// A sleep that ends early (with an error) when the run is cancelled.
    pub fn sleep(&self, d: Duration) -> HostResult<()> {
        self.block_on(async move {
            tokio::time::sleep(d).await;
            Ok(())
        })
    }

    /// Time left before the deadline, if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    pub fn set_warned(&self) {
        self.warned.store(true, Ordering::SeqCst);
    }
    pub fn warned(&self) -> bool {
        self.warned.load(Ordering::SeqCst)
    }
    pub fn count_call(&self, ok: bool) {
        self.host_calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.host_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub fn host_calls(&self) -> (u64, u64) {
        (
            self.host_calls.load(Ordering::Relaxed),
            self.host_failures.load(Ordering::Relaxed),
        )
    }
}

pub type Ctx = Arc<RunCtx>;

tokio::task_local! {
    /// The token of the run whose host call is being awaited (set by [`RunCtx::block_on`]), so a
    /// connection opened inside can tell, when it is dropped, that the run was stopped while it
    /// was in use (PostgreSQL then gets a cancel request for the abandoned statement).
    pub static RUN_TOKEN: CancellationToken;
}

/// The current run's token, if the caller runs inside [`RunCtx::block_on`].
pub fn run_token() -> Option<CancellationToken> {
    RUN_TOKEN.try_with(|t| t.clone()).ok()
}

/// A bounded buffer of a run's most recent log lines (already redacted).
#[derive(Debug, Default)]
pub struct LogTail {
    capacity: usize,
    lines: Mutex<VecDeque<String>>,
}

impl LogTail {
    pub fn new(capacity: usize) -> Self {
        LogTail {
            capacity,
            lines: Mutex::new(VecDeque::new()),
        }
    }

    pub fn push(&self, level: &str, message: &str) {
        if self.capacity == 0 {
            return;
        }
        let mut lines = crate::sync::lock(&self.lines);
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(format!("{level}: {message}"));
    }

    pub fn lines(&self) -> Vec<String> {
        let lines = crate::sync::lock(&self.lines);
        lines.iter().cloned().collect()
    }
}
