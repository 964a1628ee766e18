//! `mtn daemon`: cron schedules, hot reload, run history, metrics. The client commands that read
//! its history or talk to it (`mtn jobs`, `history`, `trigger`) live in `commands/`; nothing here
//! imports the CLI's commands.

pub mod access;
mod alerting;
pub mod alerts;
pub mod fleet;
pub mod history;
pub mod jobs;
pub mod metrics;
pub mod scheduler;
pub mod server;
pub mod watcher;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Local;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::DaemonPaths;
use crate::config::Config;
use crate::exit;
use crate::logging::LogFormat;
use crate::sync::{lock, read};
use history::History;
use jobs::Settings;
use scheduler::{Daemon, LastRun};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9860";
pub const DEFAULT_HISTORY_LIMIT: usize = 500;

/// `mtn daemon`: runs until SIGTERM or SIGINT.
pub fn run(
    paths: &DaemonPaths,
    listen: Option<String>,
    format: LogFormat,
    verbosity: i8,
) -> exit::Result {
    crate::logging::init(format, verbosity);
    let config_path = crate::policy::absolute(&paths.config);
    let cfg = Config::load_checked(&config_path)?;
    let listen = listen
        .or_else(|| cfg.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let state_flag = paths.state_dir.as_deref().map(crate::policy::absolute);
    let settings = Settings::from_config(&cfg, &config_path, state_flag.as_deref());
    ensure_writable(&settings.state_dir)?;
    let rt = exit::runtime()?;
    let code = rt.block_on(serve(config_path, state_flag, cfg, settings, listen));
    // Do not wait for abandoned blocking work (a host call that ignored cancellation).
    rt.shutdown_timeout(Duration::from_millis(200));
    code
}

/// The daemon refuses to start when it could not record its runs: months of runs without a
/// history (and an error on every run) are worse than a unit that fails at start.
fn ensure_writable(state_dir: &Path) -> Result<(), String> {
    let hint = "set `state_dir` in the config, --state-dir or MTN_STATE_DIR to a writable folder \
                (under systemd: StateDirectory=mtn)";
    crate::atomic::create_private_dirs(state_dir).map_err(|e| {
        format!(
            "cannot create the state dir {}: {e}; {hint}",
            state_dir.display()
        )
    })?;
    let probe = state_dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| {
        format!(
            "cannot write in the state dir {}: {e}; {hint}",
            state_dir.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

async fn serve(
    config_path: PathBuf,
    state_flag: Option<PathBuf>,
    cfg: Config,
    settings: Settings,
    listen: String,
) -> exit::Result {
    // First, so a SIGTERM during start-up (a supervisor stopping a slow start) is a clean stop,
    // not the default action's kill.
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => return Err("cannot install signal handlers".to_string().into()),
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => return Err(format!("cannot listen on {listen}: {e}").into()),
    };
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => return Err(format!("cannot listen on {listen}: {e}").into()),
    };
    let bound = local.to_string();
    let loopback = local.ip().is_loopback();
    if !loopback && !cfg.insecure_listen {
        return Err(exit::CommandError::usage(format!(
            "refusing to listen on {bound}: not a loopback address, and the daemon serves plain HTTP; \
             listen on 127.0.0.1 (the default) and reach it through a TLS proxy or an SSH tunnel, \
             or set `insecure_listen = true` to accept that (every endpoint but /healthz then needs the token)"
        )));
    }
    let fleet = match cfg
        .fleet
        .as_ref()
        .map(|f| fleet::Fleet::new(f, &settings.base))
    {
        None => None,
        Some(Ok(f)) => Some(Arc::new(f)),
        Some(Err(e)) => return Err(e.into()),
    };
    let token_file = cfg.token_file.as_ref().map(|f| settings.base.join(f));
    let access = match access::load_or_create(token_file.as_deref(), &settings.state_dir) {
        Ok(token) => access::Access::new(token, loopback),
        Err(e) => return Err(e.into()),
    };
    let d = Arc::new(Daemon {
        handle: tokio::runtime::Handle::current(),
        config_path: config_path.clone(),
        state_flag,
        history: History::new(
            &settings.state_dir,
            cfg.history_limit.unwrap_or(DEFAULT_HISTORY_LIMIT),
        )
        .with_max_age(
            cfg.history_max_age
                .as_deref()
                .and_then(|a| crate::units::parse_duration(a).ok())
                .unwrap_or(history::DEFAULT_MAX_AGE),
        ),
        settings: RwLock::new(settings.clone()),
        jobs: RwLock::new(BTreeMap::new()),
        metrics: Default::default(),
        shutdown: CancellationToken::new(),
        runs: TaskTracker::new(),
        config_error: Mutex::new(None),
        started: Local::now(),
        http: reqwest::Client::new(),
        fleet,
    });

    // Initial load: compile everything off the async threads.
    {
        let d2 = d.clone();
        let _ = tokio::task::spawn_blocking(move || d2.reload_config()).await;
    }
    let jobs: Vec<_> = read(&d.jobs).values().cloned().collect();
    for job in &jobs {
        // Last results survive restarts: seed /status and metrics from the history.
        let past = d.history.job(job.spec.name());
        // Skipped slots (fleet) have no run id: the counter is the highest one given out.
        lock(&job.state).runs = past.iter().map(|e| e.run).max().unwrap_or(0);
        if let Some(e) = past.iter().rev().find(|e| e.status != "skipped") {
            lock(&job.state).last = Some(LastRun {
                status: e.status.clone(),
                start: e.start,
                end: e.end,
                error: e.error.clone(),
            });
        }
        if let Some(ok) = past
            .iter()
            .rev()
            .find(|e| e.status == "ok" || e.status == "warning")
        {
            lock(&job.state).last_success = Some(ok.end);
            d.metrics.seed_last_success(job.spec.name(), ok.end);
        }
        d.catch_up(job);
        log_next_run(job);
    }

    let watcher = match watcher::Watcher::start() {
        Ok((w, rx)) => {
            let w = Arc::new(w);
            w.watch_files(d.watched_files());
            tokio::spawn(d.clone().watch_loop(w.clone(), rx));
            Some(w)
        }
        Err(e) => {
            tracing::error!(target: "mtn::daemon", "{e}; scripts will be reloaded on SIGHUP only");
            None
        }
    };

    if let Some(f) = &d.fleet {
        tracing::info!(target: "mtn::fleet", "fleet: this host is {:?}; slots of `once` jobs are claimed on {}", f.host, f.shown());
        tokio::spawn(d.clone().fleet_loop());
    }

    let server_token = CancellationToken::new();
    let server = {
        let t = server_token.clone();
        let app = server::router(d.clone(), access);
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { t.cancelled().await })
                .await
        })
    };
    let state_dir = read(&d.settings).state_dir.clone();
    write_daemon_file(&state_dir, &bound);
    tracing::info!(target: "mtn::daemon", "mtn daemon: {} job(s) from {}, listening on http://{bound}", jobs.len(), config_path.display());

    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                let d2 = d.clone();
                let w = watcher.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    d2.reload_all();
                    if let Some(w) = w { w.watch_files(d2.watched_files()); }
                }).await;
            }
        }
    }
    tracing::info!(target: "mtn::daemon", "stopping: no new runs will start");
    d.shutdown().await;
    server_token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    let _ = std::fs::remove_file(state_dir.join("daemon.json"));
    tracing::info!(target: "mtn::daemon", "stopped");
    Ok(exit::OK)
}

/// At start, each job's next run, so an operator sees at once what the daemon will do and when.
fn log_next_run(job: &scheduler::Job) {
    let name = job.spec.name();
    if !job.spec.cfg.is_enabled() {
        tracing::info!(target: "mtn::daemon", job = name, "job {name}: disabled");
        return;
    }
    match job.spec.next_after(Local::now()) {
        Some(t) => {
            tracing::info!(target: "mtn::daemon", job = name, next_run = %t.to_rfc3339(), "job {name}: next run {} ({})", t.format("%Y-%m-%d %H:%M:%S %:z"), job.spec.cfg.schedule)
        }
        None => {
            tracing::warn!(target: "mtn::daemon", job = name, "job {name}: schedule {:?} has no future fire time", job.spec.cfg.schedule)
        }
    }
}

/// Where the running daemon listens, for `mtn jobs` and `mtn trigger` (a `--listen` override
/// is not in the config file).
fn write_daemon_file(state_dir: &Path, listen: &str) {
    let body = serde_json::json!({"pid": std::process::id(), "listen": listen});
    let _ = crate::atomic::create_private_dirs(state_dir);
    if let Err(e) =
        crate::atomic::write_atomic(&state_dir.join("daemon.json"), body.to_string().as_bytes())
    {
        tracing::warn!(target: "mtn::daemon", "cannot write {}: {e}", state_dir.join("daemon.json").display());
    }
}
