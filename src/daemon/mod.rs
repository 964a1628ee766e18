//! `mtn daemon`: cron schedules, hot reload, run history, metrics; and the client commands
//! `mtn jobs`, `mtn history`, `mtn trigger` that read the history or talk to a running daemon.

pub mod access;
pub mod alerts;
pub mod cron;
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

use crate::cli::{Command, DaemonPaths};
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
            paths,
            check,
            listen,
            log_format,
            verbose,
            quiet,
        } => {
            let verbosity = if quiet { -1 } else { verbose.min(3) as i8 };
            if check {
                return crate::commands::check::config_only(
                    &paths.config,
                    paths.state_dir.as_deref(),
                );
            }
            run(&paths, listen, log_format, verbosity)
        }
        Command::Jobs { paths, json, next } => jobs_command(&paths, json, next),
        Command::History {
            job,
            paths,
            limit,
            json,
            failed,
            since,
            tail,
            local,
        } => {
            let filter = HistoryFilter {
                job,
                limit,
                failed,
                since,
                local,
            };
            match tail {
                Some(run) => history_tail(&paths, filter.job.as_deref(), &run, json),
                None => history_command(&paths, &filter, json),
            }
        }
        Command::Trigger { job, paths } => trigger_command(&paths, &job),
        _ => exit::USAGE,
    }
}

fn usage(msg: &str) -> i32 {
    eprintln!("error: {}", crate::redact::redact(msg));
    exit::USAGE
}

fn run(paths: &DaemonPaths, listen: Option<String>, format: LogFormat, verbosity: i8) -> i32 {
    crate::logging::init(format, verbosity);
    let config_path = crate::policy::absolute(&paths.config);
    let cfg = match Config::load_checked(&config_path) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let listen = listen
        .or_else(|| cfg.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let state_flag = paths.state_dir.as_deref().map(crate::policy::absolute);
    let settings = Settings::from_config(&cfg, &config_path, state_flag.as_deref());
    if let Err(e) = ensure_writable(&settings.state_dir) {
        return usage(&e);
    }
    let rt = match crate::commands::runtime() {
        Ok(rt) => rt,
        Err(e) => return usage(&format!("cannot start the I/O runtime: {e}")),
    };
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
) -> i32 {
    // First, so a SIGTERM during start-up (a supervisor stopping a slow start) is a clean stop,
    // not the default action's kill.
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        _ => return usage("cannot install signal handlers"),
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => return usage(&format!("cannot listen on {listen}: {e}")),
    };
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => return usage(&format!("cannot listen on {listen}: {e}")),
    };
    let bound = local.to_string();
    let loopback = local.ip().is_loopback();
    if !loopback && !cfg.insecure_listen {
        return usage(&format!(
            "refusing to listen on {bound}: not a loopback address, and the daemon serves plain HTTP; \
             listen on 127.0.0.1 (the default) and reach it through a TLS proxy or an SSH tunnel, \
             or set `insecure_listen = true` to accept that (every endpoint but /healthz then needs the token)"
        ));
    }
    let fleet = match cfg
        .fleet
        .as_ref()
        .map(|f| fleet::Fleet::new(f, &settings.base))
    {
        None => None,
        Some(Ok(f)) => Some(Arc::new(f)),
        Some(Err(e)) => return usage(&e),
    };
    let token_file = cfg.token_file.as_ref().map(|f| settings.base.join(f));
    let access = match access::load_or_create(token_file.as_deref(), &settings.state_dir) {
        Ok(token) => access::Access::new(token, loopback),
        Err(e) => return usage(&e),
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
                .and_then(|a| crate::host::binding::parse_duration(a).ok())
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
    exit::OK
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

struct ClientCtx {
    cfg: Config,
    settings: Settings,
    addr: String,
}

fn client_ctx(paths: &DaemonPaths) -> Result<ClientCtx, String> {
    let config = crate::policy::absolute(&paths.config);
    let cfg = Config::load_checked(&config)?;
    let settings = Settings::from_config(&cfg, &config, paths.state_dir.as_deref());
    let from_file = std::fs::read_to_string(settings.state_dir.join("daemon.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("listen").and_then(|l| l.as_str()).map(String::from));
    let addr = from_file
        .or_else(|| cfg.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    // A daemon listening on every address is reached on this machine through loopback.
    let addr = match addr.strip_prefix("0.0.0.0:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => match addr.strip_prefix("[::]:") {
            Some(port) => format!("[::1]:{port}"),
            None => addr,
        },
    };
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

fn jobs_command(paths: &DaemonPaths, json: bool, next: Option<usize>) -> i32 {
    if let Some(n) = next {
        return crate::commands::check::next_fires(
            &paths.config,
            paths.state_dir.as_deref(),
            n,
            json,
        );
    }
    let c = match client_ctx(paths) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let rt = match client_runtime() {
        Ok(rt) => rt,
        Err(e) => return usage(&e),
    };
    let live: Option<serde_json::Value> = rt.block_on(async {
        // The token is needed only when the daemon listens beyond loopback; send it if readable.
        let token_file = c.cfg.token_file.as_ref().map(|f| c.settings.base.join(f));
        let token = access::read(&access::token_path(
            token_file.as_deref(),
            &c.settings.state_dir,
        ))
        .unwrap_or_default();
        let r = reqwest::Client::new()
            .get(format!("http://{}/status", c.addr))
            .bearer_auth(token)
            // Generous: a busy machine (a backup compressing on every core) answers slowly,
            // and "not running" would be the wrong answer.
            .timeout(Duration::from_secs(10))
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

/// What `mtn history` lists.
struct HistoryFilter {
    job: Option<String>,
    limit: usize,
    failed: bool,
    since: Option<String>,
    local: bool,
}

/// The entries of one job (checked to exist) or of all jobs, oldest first.
fn history_entries(c: &ClientCtx, job: Option<&str>) -> Result<Vec<history::Entry>, String> {
    let history = History::new(&c.settings.state_dir, DEFAULT_HISTORY_LIMIT);
    match job {
        Some(name) => {
            let e = history.job(name);
            if e.is_empty() && !c.cfg.jobs.iter().any(|j| j.name == name) {
                let known: Vec<&str> = c.cfg.jobs.iter().map(|j| j.name.as_str()).collect();
                return Err(format!(
                    "no job named {name:?} (jobs: {})",
                    known.join(", ")
                ));
            }
            Ok(e)
        }
        None => Ok(history.all()),
    }
}

fn history_command(paths: &DaemonPaths, f: &HistoryFilter, json: bool) -> i32 {
    let c = match client_ctx(paths) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let since = match f.since.as_deref().map(crate::host::binding::parse_duration) {
        None => None,
        Some(Ok(d)) => {
            Some(Local::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
        }
        Some(Err(e)) => return usage(&format!("--since: {}", e.message)),
    };
    let shared = c.cfg.fleet.as_ref().filter(|_| !f.local).map(|fc| {
        let q = fleet::shared::Query {
            job: f.job.as_deref(),
            since,
            failed: f.failed,
            limit: f.limit,
        };
        fleet::shared::fetch_blocking(fc, &c.settings.base, &q)
    });
    let mut entries = match shared {
        Some(Ok(e)) => e,
        other => {
            if let Some(Err(e)) = other {
                eprintln!("warning: {e}; showing this host's history only");
            }
            match history_entries(&c, f.job.as_deref()) {
                Ok(e) => e,
                Err(e) => return usage(&e),
            }
        }
    };
    entries.retain(|e| {
        (!f.failed || matches!(e.status.as_str(), "failed" | "timeout"))
            && since.is_none_or(|s| e.start >= s)
    });
    let skip = entries.len().saturating_sub(f.limit);
    entries.drain(..skip);
    if json {
        for e in &entries {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        }
        return exit::OK;
    }
    let hosts = entries.iter().any(|e| e.host.is_some());
    let host_col = |h: &str| {
        if hosts {
            format!("{h:<16} ")
        } else {
            String::new()
        }
    };
    println!(
        "{:<20} {}{:<24} {:<12} {:>9} {:<10} ERROR",
        "START",
        host_col("HOST"),
        "RUN",
        "STATUS",
        "SECONDS",
        "TRIGGER"
    );
    for e in &entries {
        let err = e
            .error
            .as_deref()
            .and_then(|t| t.lines().next())
            .unwrap_or("");
        println!(
            "{:<20} {}{:<24} {:<12} {:>9.3} {:<10} {}",
            e.start.format("%Y-%m-%d %H:%M:%S"),
            host_col(e.host.as_deref().unwrap_or("")),
            format!("{}#{}", e.job, e.run),
            e.status,
            e.duration_secs(),
            e.trigger,
            err
        );
    }
    exit::OK
}

/// `mtn history --tail RUN`: one run in full, with its error and log tail.
fn history_tail(paths: &DaemonPaths, job: Option<&str>, run: &str, json: bool) -> i32 {
    let c = match client_ctx(paths) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let (job, id) = match run.split_once('#') {
        Some((j, n)) => (Some(j), n),
        None => (job, run),
    };
    let Ok(id) = id.parse::<u64>() else {
        return usage(&format!(
            "--tail {run:?}: expected a run id like 42 (with JOB) or nightly#42"
        ));
    };
    let entries = match history_entries(&c, job) {
        Ok(e) => e,
        Err(e) => return usage(&e),
    };
    let found: Vec<&history::Entry> = entries.iter().filter(|e| e.run == id).collect();
    let e = match found.as_slice() {
        [e] => *e,
        [] => {
            return usage(&format!(
                "no run {run} in the history (it may have been rotated out)"
            ))
        }
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|e| format!("{}#{}", e.job, e.run))
                .collect();
            return usage(&format!(
                "run id {id} exists for several jobs ({}); name one",
                names.join(", ")
            ));
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(e).unwrap_or_default());
        return exit::OK;
    }
    println!(
        "run {}#{}: {} ({} trigger, attempt {})",
        e.job, e.run, e.status, e.trigger, e.attempt
    );
    println!(
        "started {}, ended {} ({:.3}s), script version {}",
        e.start.to_rfc3339(),
        e.end.to_rfc3339(),
        e.duration_secs(),
        if e.version.is_empty() {
            "-"
        } else {
            &e.version
        }
    );
    if let Some(err) = &e.error {
        println!("\n{}", err.trim_end());
    }
    if e.log_tail.is_empty() {
        println!("\n(no log lines)");
    } else {
        println!("\nlast {} log line(s):", e.log_tail.len());
        for l in &e.log_tail {
            println!("  {l}");
        }
    }
    exit::OK
}

fn trigger_command(paths: &DaemonPaths, job: &str) -> i32 {
    let c = match client_ctx(paths) {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    let rt = match client_runtime() {
        Ok(rt) => rt,
        Err(e) => return usage(&e),
    };
    let url = format!("http://{}/trigger/{job}", c.addr);
    let token_file = c.cfg.token_file.as_ref().map(|f| c.settings.base.join(f));
    let token = match access::read(&access::token_path(
        token_file.as_deref(),
        &c.settings.state_dir,
    )) {
        Ok(t) => t,
        Err(e) => {
            return usage(&format!(
                "{e}; is the daemon running with this config and state dir?"
            ))
        }
    };
    let res = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(&url)
            .bearer_auth(&token)
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
