//! `mtn daemon`: cron schedules, hot reload, run history, metrics; and the client commands
//! `mtn jobs`, `mtn history`, `mtn trigger` that read the history or talk to a running daemon.

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

use crate::cli::Command;
use crate::commands::exit;
use crate::config::Config;
use crate::logging::LogFormat;
use history::History;
use jobs::{JobSpec, Settings};
use scheduler::{lock, read, Daemon, LastRun};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9860";
const DEFAULT_HISTORY_LIMIT: usize = 500;

/// `mtn daemon`, `jobs`, `history`, `trigger`.
pub fn command(cmd: Command) -> i32 {
    match cmd {
        Command::Daemon {
            config,
            listen,
            log_format,
            verbose,
        } => run(&config, listen, log_format, verbose),
        Command::Jobs { config, json } => jobs_command(&config, json),
        Command::History {
            job,
            config,
            limit,
            json,
        } => history_command(&config, job.as_deref(), limit, json),
        Command::Trigger { job, config } => trigger_command(&config, &job),
        _ => exit::USAGE,
    }
}

fn usage(msg: &str) -> i32 {
    eprintln!("error: {}", crate::redact::redact(msg));
    exit::USAGE
}

fn run(config_path: &Path, listen: Option<String>, format: LogFormat, verbose: u8) -> i32 {
    crate::logging::init(format, verbose.min(3) as i8);
    let config_path = crate::policy::absolute(config_path);
    let cfg = match Config::load_checked(&config_path) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let listen = listen
        .or_else(|| cfg.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let rt = match crate::commands::runtime() {
        Ok(rt) => rt,
        Err(e) => return usage(&format!("cannot start the I/O runtime: {e}")),
    };
    let code = rt.block_on(serve(config_path, cfg, listen));
    // Do not wait for abandoned blocking work (a host call that ignored cancellation).
    rt.shutdown_timeout(Duration::from_millis(200));
    code
}

async fn serve(config_path: PathBuf, cfg: Config, listen: String) -> i32 {
    let settings = Settings::from_config(&cfg, &config_path);
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => return usage(&format!("cannot listen on {listen}: {e}")),
    };
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(listen.clone());
    let d = Arc::new(Daemon {
        handle: tokio::runtime::Handle::current(),
        config_path: config_path.clone(),
        history: History::new(
            &settings.state_dir,
            cfg.history_limit.unwrap_or(DEFAULT_HISTORY_LIMIT),
        ),
        settings: RwLock::new(settings.clone()),
        jobs: RwLock::new(BTreeMap::new()),
        metrics: Default::default(),
        shutdown: CancellationToken::new(),
        runs: TaskTracker::new(),
        config_error: Mutex::new(None),
        started: Local::now(),
        http: reqwest::Client::new(),
    });

    // Initial load: compile everything off the async threads.
    {
        let d2 = d.clone();
        let _ = tokio::task::spawn_blocking(move || d2.reload_config()).await;
    }
    let jobs: Vec<_> = read(&d.jobs).values().cloned().collect();
    for job in &jobs {
        // Last results survive restarts: seed /status and metrics from the history.
        if let Some(e) = d.history.last(job.spec.name()) {
            lock(&job.state).last = Some(LastRun {
                status: e.status.clone(),
                start: e.start,
                end: e.end,
                error: e.error.clone(),
            });
        }
        if let Some(ok) = d
            .history
            .job(job.spec.name())
            .iter()
            .rev()
            .find(|e| e.status == "ok" || e.status == "warning")
        {
            lock(&job.state).last_success = Some(ok.end);
            d.metrics.seed_last_success(job.spec.name(), ok.end);
        }
        d.catch_up(job);
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

    let server_token = CancellationToken::new();
    let server = {
        let t = server_token.clone();
        let app = server::router(d.clone());
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { t.cancelled().await })
                .await
        })
    };
    let state_dir = read(&d.settings).state_dir.clone();
    write_daemon_file(&state_dir, &bound);
    tracing::info!(target: "mtn::daemon", "mtn daemon: {} job(s) from {}, listening on http://{bound}", jobs.len(), config_path.display());

    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => return usage("cannot install signal handlers"),
    };
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
    exit::OK
}

/// Where the running daemon listens, for `mtn jobs` and `mtn trigger` (a `--listen` override
/// is not in the config file).
fn write_daemon_file(state_dir: &Path, listen: &str) {
    let body = serde_json::json!({"pid": std::process::id(), "listen": listen});
    let _ = std::fs::create_dir_all(state_dir);
    if let Err(e) =
        crate::atomic::write_atomic(&state_dir.join("daemon.json"), body.to_string().as_bytes())
    {
        tracing::warn!(target: "mtn::daemon", "cannot write {}: {e}", state_dir.join("daemon.json").display());
    }
}

struct ClientCtx {
    cfg: Config,
    settings: Settings,
    addr: String,
}

fn client_ctx(config: &Path) -> Result<ClientCtx, String> {
    let config = crate::policy::absolute(config);
    let cfg = Config::load_checked(&config)?;
    let settings = Settings::from_config(&cfg, &config);
    let from_file = std::fs::read_to_string(settings.state_dir.join("daemon.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("listen").and_then(|l| l.as_str()).map(String::from));
    let addr = from_file
        .or_else(|| cfg.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    Ok(ClientCtx {
        cfg,
        settings,
        addr,
    })
}

fn client_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))
}

fn jobs_command(config: &Path, json: bool) -> i32 {
    let c = match client_ctx(config) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let rt = match client_runtime() {
        Ok(rt) => rt,
        Err(e) => return usage(&e),
    };
    let live: Option<serde_json::Value> = rt.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("http://{}/status", c.addr))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .ok()?;
        let bytes = r.bytes().await.ok()?;
        serde_json::from_slice(&bytes).ok()
    });
    // Not running: the same view from the config and the persisted history.
    let (jobs, source) = match live.as_ref().and_then(|v| v.get("jobs")).cloned() {
        Some(j) => (j, format!("daemon at {}", c.addr)),
        None => {
            let history = History::new(&c.settings.state_dir, DEFAULT_HISTORY_LIMIT);
            let list: Vec<serde_json::Value> = c
                .cfg
                .jobs
                .iter()
                .map(|jc| {
                    let next = JobSpec::new(jc, &c.settings)
                        .ok()
                        .filter(|_| jc.is_enabled())
                        .and_then(|s| s.next_after(Local::now()));
                    let last = history.last(&jc.name).map(|e| {
                        serde_json::json!({"status": e.status, "start": e.start, "end": e.end, "error": e.error})
                    });
                    serde_json::json!({"name": jc.name, "schedule": jc.schedule, "enabled": jc.is_enabled(),
                        "next_run": next, "running": false, "last": last, "reload_error": null})
                })
                .collect();
            (
                serde_json::Value::Array(list),
                "daemon not running; from config and history".to_string(),
            )
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&jobs).unwrap_or_default()
        );
        return exit::OK;
    }
    println!(
        "{:<20} {:<16} {:<20} {:<10} {:<20} NOTE",
        "JOB", "SCHEDULE", "NEXT RUN", "LAST", "LAST END"
    );
    for j in jobs.as_array().into_iter().flatten() {
        let s =
            |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).unwrap_or("").to_string();
        let short = |t: String| {
            chrono::DateTime::parse_from_rfc3339(&t)
                .map(|t| {
                    t.with_timezone(&Local)
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_else(|_| if t.is_empty() { "-".into() } else { t })
        };
        let last = j.get("last");
        let mut note = String::new();
        if j.get("running").and_then(|v| v.as_bool()) == Some(true) {
            note.push_str("running ");
        }
        if j.get("reload_error").is_some_and(|v| !v.is_null()) {
            note.push_str("script broken (previous version kept) ");
        }
        if let Some(e) = last.and_then(|l| l.get("error")).and_then(|e| e.as_str()) {
            note.push_str(e.lines().next().unwrap_or(""));
        }
        println!(
            "{:<20} {:<16} {:<20} {:<10} {:<20} {}",
            s(j.get("name")),
            s(j.get("schedule")),
            short(s(j.get("next_run"))),
            last.map(|l| s(l.get("status")))
                .unwrap_or_else(|| "never".into()),
            short(last.map(|l| s(l.get("end"))).unwrap_or_default()),
            note.trim()
        );
    }
    eprintln!("({source})");
    exit::OK
}

fn history_command(config: &Path, job: Option<&str>, limit: usize, json: bool) -> i32 {
    let c = match client_ctx(config) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let history = History::new(&c.settings.state_dir, DEFAULT_HISTORY_LIMIT);
    let mut entries = match job {
        Some(name) => {
            let e = history.job(name);
            if e.is_empty() && !c.cfg.jobs.iter().any(|j| j.name == name) {
                let known: Vec<&str> = c.cfg.jobs.iter().map(|j| j.name.as_str()).collect();
                return usage(&format!(
                    "no job named {name:?} (jobs: {})",
                    known.join(", ")
                ));
            }
            e
        }
        None => history.all(),
    };
    let skip = entries.len().saturating_sub(limit);
    entries.drain(..skip);
    if json {
        for e in &entries {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        }
        return exit::OK;
    }
    println!(
        "{:<20} {:<20} {:<12} {:>9} {:<10} ERROR",
        "START", "JOB", "STATUS", "SECONDS", "TRIGGER"
    );
    for e in &entries {
        let err = e
            .error
            .as_deref()
            .and_then(|t| t.lines().next())
            .unwrap_or("");
        println!(
            "{:<20} {:<20} {:<12} {:>9.3} {:<10} {}",
            e.start.format("%Y-%m-%d %H:%M:%S"),
            e.job,
            e.status,
            e.duration_secs(),
            e.trigger,
            err
        );
    }
    exit::OK
}

fn trigger_command(config: &Path, job: &str) -> i32 {
    let c = match client_ctx(config) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let rt = match client_runtime() {
        Ok(rt) => rt,
        Err(e) => return usage(&e),
    };
    let url = format!("http://{}/trigger/{job}", c.addr);
    let res = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        let code = r.status();
        let bytes = r.bytes().await?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        Ok::<_, reqwest::Error>((code, body))
    });
    match res {
        Ok((code, body)) if code.is_success() => {
            let result = body
                .get("result")
                .and_then(|v| v.as_str())
                .unwrap_or("started");
            println!("job {job}: {result}");
            exit::OK
        }
        Ok((_, body)) => {
            let msg = body
                .get("error")
                .and_then(|v| v.as_str())
                .unwrap_or("refused");
            eprintln!("error: {msg}");
            exit::FAILED
        }
        Err(e) => usage(&format!(
            "cannot reach the daemon at {} (is `mtn daemon` running?): {e}",
            c.addr
        )),
    }
}
