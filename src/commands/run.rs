//! `mtn run FILE`: run a script once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Map};

use crate::cli::{Common, RunArgs};
use crate::config::Config;
use crate::ctx::monitor::{MonitorOptions, TAIL_LINES};
use crate::ctx::{LogTail, RunCtx, StopReason};
use crate::engine::check::Checker;
use crate::engine::monitor::{self, RunEnd};
use crate::engine::resolver::find_stdlib;
use crate::engine::runner::{execute_with, supervise, Status};
use crate::exit;
use crate::logging::LogFormat;
use crate::policy::Policy;

fn usage_error(msg: &str) -> exit::Result {
    Err(exit::CommandError::usage(msg))
}

/// `NAME=VALUE` → (name, typed value): integers, floats and booleans become numbers and bools.
pub fn parse_set(item: &str) -> Result<(String, Dynamic), String> {
    let (name, value) = item
        .split_once('=')
        .ok_or_else(|| format!("--set {item:?}: expected NAME=VALUE"))?;
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(format!(
            "--set {item:?}: NAME must be letters, digits and _"
        ));
    }
    Ok((name.to_string(), typed_value(value)))
}

pub fn typed_value(value: &str) -> Dynamic {
    if let Ok(i) = value.parse::<i64>() {
        Dynamic::from(i)
    } else if let Ok(f) = value.parse::<f64>() {
        Dynamic::from(f)
    } else if value == "true" || value == "false" {
        Dynamic::from(value == "true")
    } else {
        Dynamic::from(value.to_string())
    }
}

pub fn verbosity(common: &Common) -> i8 {
    if common.quiet {
        -1
    } else {
        common.verbose.min(3) as i8
    }
}

/// Policy from config + flags + MTN_ALLOW_PATHS.
pub fn build_policy(cfg: Option<(&Config, PathBuf)>, args: &RunArgs) -> Policy {
    let (pcfg, base) = match cfg {
        Some((c, base)) => (c.policy.clone(), base),
        None => (Default::default(), PathBuf::from(".")),
    };
    let env_paths: Vec<PathBuf> = std::env::var("MTN_ALLOW_PATHS")
        .map(|v| {
            v.split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    let explicit =
        !pcfg.allow_paths.is_empty() || !args.allow_path.is_empty() || !env_paths.is_empty();
    let mut policy = Policy::new(&pcfg, &base);
    if explicit && pcfg.allow_paths.is_empty() {
        // Explicit roots replace the defaults (cwd + temp) rather than adding to them.
        policy = Policy::with_roots(vec![]);
        for e in &pcfg.allow_exec {
            policy.add_exec(e);
        }
    }
    for p in args.allow_path.iter().chain(env_paths.iter()) {
        policy.add_root(p);
    }
    for e in &args.allow_exec {
        policy.add_exec(e);
    }
    policy
}

pub fn run(args: RunArgs, common: Common) -> exit::Result {
    crate::logging::init(common.log_format, verbosity(&common));
    crate::progress::enable_if_terminal(
        common.log_format == crate::logging::LogFormat::Human,
        verbosity(&common) < 0,
    );
    let cfg = match &common.config {
        Some(p) => match Config::load(p) {
            Ok(c) => Some((c, Config::base_dir(p))),
            Err(e) => return usage_error(&e),
        },
        None => None,
    };
    if !args.file.is_file() {
        return usage_error(&format!(
            "cannot read script {}: no such file",
            args.file.display()
        ));
    }
    let mut vars = Map::new();
    for item in &args.set {
        match parse_set(item) {
            Ok((k, v)) => {
                vars.insert(k.into(), v);
            }
            Err(e) => return usage_error(&e),
        }
    }
    let timeout = match &args.timeout {
        Some(t) => match crate::units::parse_duration(t) {
            Ok(d) => Some(d),
            Err(e) => return usage_error(&format!("--timeout: {}", e.message)),
        },
        None => None,
    };
    let rt = exit::runtime()?;
    let once = match crate::daemon::fleet::once::prepare(&args, cfg.as_ref()) {
        Ok(o) => o,
        Err(e) => return usage_error(&e),
    };

    let policy = build_policy(cfg.as_ref().map(|(c, b)| (c, b.clone())), &args);
    let mut ctx = RunCtx::new(rt.handle().clone(), args.file.clone(), policy);
    ctx.dry_run = args.dry_run;
    ctx.vars = vars;
    ctx.deadline = timeout.map(|t| Instant::now() + t);
    if let Some((c, _)) = &cfg {
        ctx.limits = c.limits.clone();
    }
    if let Some(n) = args.max_operations {
        ctx.limits.max_operations = n;
    }
    ctx.state_dir = crate::config::state_dir(
        args.state_dir.as_deref(),
        cfg.as_ref().and_then(|(c, _)| c.state_dir.as_deref()),
        cfg.as_ref()
            .map(|(_, b)| b.as_path())
            .unwrap_or(Path::new(".")),
        crate::config::StateDefault::WorkingDir,
    );
    let stdlib = common.stdlib.clone().or_else(|| {
        cfg.as_ref()
            .and_then(|(c, b)| c.stdlib.as_ref().map(|s| b.join(s)))
    });
    ctx.stdlib_dir = find_stdlib(stdlib);
    ctx.log_tail = LogTail::new(TAIL_LINES);
    ctx.run = crate::ctx::RunInfo {
        trigger: "cli".into(),
        host: crate::host::core::hostname(),
        ..Default::default()
    };
    if let Some(o) = &once {
        ctx.run = o.run_info();
    }
    if let Err(e) = ctx.monitor.set(MonitorOptions {
        ping: args.ping.clone(),
        notify: args.notify.clone(),
    }) {
        return usage_error(&format!("--{e}"));
    }
    let ctx = Arc::new(ctx);

    // Compile and check first: a syntax error, an unknown function or option key is reported
    // before anything runs (and before the first host call).
    let engine = crate::engine::build(ctx.clone());
    let ast = match crate::engine::compile(&engine, &ctx, &args.file) {
        Ok(ast) => ast,
        Err(e) => {
            let r = crate::engine::error::render(&e, &args.file);
            report_error(common.log_format, &r.text, &r.message);
            return Ok(end_before_start(&rt, &ctx, &r.text));
        }
    };
    let problems = {
        let mut checker = Checker::new(&engine, &ctx);
        checker.check_script(&args.file);
        checker.problems
    };
    if !problems.is_empty() {
        for p in &problems {
            report_error(common.log_format, p, first_line(p));
        }
        let n = problems.len();
        let text = format!(
            "{n} problem{} found in {}; nothing was run",
            if n == 1 { "" } else { "s" },
            args.file.display()
        );
        eprintln!("{text}");
        return Ok(end_before_start(&rt, &ctx, &problems.concat()));
    }

    // --once: claim the slot; another host having it is a normal, successful end.
    let claim = match &once {
        None => None,
        Some(o) => match rt.block_on(o.claim()) {
            Ok(crate::daemon::fleet::Claimed::Won(c)) => Some(c),
            Ok(crate::daemon::fleet::Claimed::Taken(host)) => {
                println!("skipped: claimed by {host}");
                return Ok(exit::OK);
            }
            Ok(crate::daemon::fleet::Claimed::Busy(host)) => {
                println!(
                    "skipped: previous run still going on {}",
                    host.as_deref().unwrap_or("another host")
                );
                return Ok(exit::OK);
            }
            Err(e) => {
                let text = format!(
                    "error: --once {}: slot {} not run: cannot claim it on {}: {e}\n",
                    o.job,
                    o.slot.to_rfc3339(),
                    o.fleet.shown()
                );
                eprint!("{}", crate::redact::redact(&text));
                return Ok(end_before_start(&rt, &ctx, &text));
            }
        },
    };
    let started_at = chrono::Local::now();
    let lock_conn = claim.as_ref().and_then(|c| c.lock_conn());

    if crate::logging::is_json() {
        tracing::info!(target: "mtn::run", event = "run_start", script = %args.file.display(), dry_run = args.dry_run);
    } else {
        tracing::debug!(target: "mtn::run", "run start: {}{}", args.file.display(), if args.dry_run { " [dry-run]" } else { "" });
    }
    let script_ctx = ctx.clone();
    let ended = rt.block_on(async move {
        // Watch SIGTERM before anything is announced: a signal right after `/start` must end
        // the run as interrupted (and `/fail`), not kill the process silently.
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        crate::host::notify::monitor::start(&script_ctx).await;
        if lock_conn.is_some() {
            tokio::spawn(crate::daemon::fleet::once::watch(
                lock_conn,
                script_ctx.clone(),
            ));
        }
        // Ctrl-C or SIGTERM stop the run as interrupted; supervise gives it the grace to unwind.
        let c = script_ctx.clone();
        tokio::spawn(async move {
            match term {
                Ok(mut term) => tokio::select! {
                    Ok(()) = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                },
                Err(e) => {
                    tracing::warn!("cannot watch SIGTERM: {e}");
                    if tokio::signal::ctrl_c().await.is_err() {
                        return;
                    }
                }
            }
            c.stop(StopReason::Interrupted);
        });
        let run_ctx = script_ctx.clone();
        supervise(&script_ctx, timeout, move || {
            execute_with(&engine, run_ctx, &ast)
        })
        .await
    });

    let status = ended.status;
    let error = ended.error.map(|r| (r.text, r.message));
    let code = status.exit_code(args.fail_on_warning);
    if let Some((text, message)) = &error {
        report_error(common.log_format, text, message);
    }
    let (calls, failures) = ctx.host_calls();
    let ms = ctx.started.elapsed().as_millis() as u64;
    let summary = format!(
        "run {}: {} in {} ms, {} host call{} ({} failed){}",
        status.as_str(),
        args.file.display(),
        ms,
        calls,
        if calls == 1 { "" } else { "s" },
        failures,
        if args.dry_run { " [dry-run]" } else { "" }
    );
    if !crate::logging::is_json() {
        tracing::info!(target: "mtn::run", "{summary}");
    } else {
        tracing::info!(
            target: "mtn::run",
            event = "run_end",
            status = status.as_str(),
            duration_ms = ms,
            host_calls = calls,
            host_failures = failures,
            dry_run = args.dry_run,
            "{summary}"
        );
    }
    // The one final monitoring signal, after the last statement and with the exit code.
    let error_text = error.as_ref().map(|(t, _)| t.clone());
    rt.block_on(monitor::finish(
        &ctx,
        &RunEnd {
            status,
            code,
            error: error_text.as_deref(),
        },
    ));
    if let (Some(o), Some(c)) = (&once, claim) {
        let run = crate::daemon::fleet::once::FinishedRun {
            status,
            start: started_at,
            error: error_text.as_deref(),
            log_tail: ctx.log_tail.lines(),
        };
        rt.block_on(o.finish(c, &run));
    }
    // Cancel requests for statements the run abandoned on a server must go out before the
    // process ends (they are quick; bounded anyway).
    rt.block_on(crate::host::db::postgres::conn::settle_cancels(
        Duration::from_secs(3),
    ));
    // Do not wait for abandoned blocking work (a host call that ignored cancellation).
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(code)
}

/// The run failed before its first statement (syntax error, failed check): exit 1, and a
/// `--ping`/`--notify` given on the command line hears about it.
fn end_before_start(rt: &tokio::runtime::Runtime, ctx: &RunCtx, error: &str) -> i32 {
    rt.block_on(monitor::finish(
        ctx,
        &RunEnd {
            status: Status::Failed,
            code: exit::FAILED,
            error: Some(error),
        },
    ));
    exit::FAILED
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or(text);
    line.strip_prefix("error: ").unwrap_or(line)
}

fn report_error(format: LogFormat, rendered: &str, message: &str) {
    match format {
        LogFormat::Human => eprint!("{}", crate::redact::redact(rendered)),
        LogFormat::Json => {
            let location = rendered
                .lines()
                .find_map(|l| l.trim_start().strip_prefix("--> "))
                .unwrap_or("")
                .to_string();
            tracing::error!(target: "mtn::run", event = "error", location = %location, rendered = %rendered, "{}", message);
        }
    }
}
