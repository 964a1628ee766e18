//! `mtn check PATH...`: compile scripts without running them, and check daemon configs.
//!
//! A path may be a script, a config (`.toml`, or any file whose content is a TOML table) or a
//! folder (every `.rhai` and `.toml` file under it, hidden folders skipped). A config check
//! reports unknown keys (with the closest known key), bad cron lines and time zones, missing
//! scripts and each job's script problems, all with file:line:col, and prints each job's next
//! fire times. `mtn daemon --check` runs the config part and exits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Local};

use crate::cli::Common;
use crate::config::{job_key_location, Config};
use crate::ctx::RunCtx;
use crate::daemon::jobs::{JobSpec, Settings};
use crate::engine::check::Checker;
use crate::engine::resolver::find_stdlib;
use crate::exit;
use crate::policy::Policy;

/// Fire times printed per job by a config check.
const NEXT_SHOWN: usize = 3;

pub fn run(files: Vec<PathBuf>, common: Common) -> exit::Result {
    let rt = exit::runtime()?;
    let mut targets = Vec::new();
    let mut problems = 0usize;
    for path in &files {
        if path.is_dir() {
            let before = targets.len();
            collect(path, &mut targets);
            if targets.len() == before {
                eprintln!(
                    "error: {}: no .rhai or .toml files in this folder",
                    path.display()
                );
                problems += 1;
            }
        } else {
            targets.push(path.clone());
        }
    }
    for file in &targets {
        let found = if is_config(file) {
            check_config(&rt, file, None, common.quiet)
        } else {
            check_script(&rt, file, &common, common.quiet)
        };
        problems += found;
    }
    summary(problems)
}

/// `mtn daemon --check`: the config check alone.
pub fn config_only(config: &Path, state_flag: Option<&Path>) -> exit::Result {
    let rt = exit::runtime()?;
    summary(check_config(&rt, config, state_flag, false))
}

/// `mtn jobs --next N`: each job's next N fire times from the config (no daemon needed).
pub fn next_fires(config: &Path, state_flag: Option<&Path>, n: usize, json: bool) -> exit::Result {
    let path = crate::policy::absolute(config);
    let cfg = Config::load_checked(&path)?;
    let settings = Settings::from_config(&cfg, &path, state_flag);
    let mut all = serde_json::Map::new();
    for jc in &cfg.jobs {
        let times = match JobSpec::new(jc, &settings) {
            Ok(spec) if jc.is_enabled() => upcoming(&spec, n),
            _ => Vec::new(),
        };
        if json {
            all.insert(jc.name.clone(), serde_json::json!(times));
        } else {
            println!("{}  {}{}", jc.name, jc.schedule, tz_note(jc));
            if !jc.is_enabled() {
                println!("  disabled");
            }
            if let Ok(spec) = JobSpec::new(jc, &settings) {
                for t in &times {
                    println!("  {}", in_job_tz(&spec, *t));
                }
            }
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::Value::Object(all)).unwrap_or_default()
        );
    }
    Ok(exit::OK)
}

fn summary(problems: usize) -> exit::Result {
    if problems > 0 {
        eprintln!(
            "{problems} problem{} found",
            if problems == 1 { "" } else { "s" }
        );
        Ok(exit::FAILED)
    } else {
        Ok(exit::OK)
    }
}

/// Every `.rhai` and `.toml` file under `dir`, sorted; hidden folders (`.mtn`, `.git`) skipped.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let hidden = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rhai" || x == "toml") {
            out.push(p);
        }
    }
}

/// A config by its extension, or (for other names) by its content parsing as a TOML table.
/// A Rhai script never does (`let x = 1;` is not TOML), so content sniffing is safe.
fn is_config(path: &Path) -> bool {
    match path.extension().and_then(|x| x.to_str()) {
        Some("toml") => true,
        Some("rhai") => false,
        _ => std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .is_some_and(|t| !t.is_empty()),
    }
}

fn check_script(rt: &tokio::runtime::Runtime, file: &Path, common: &Common, quiet: bool) -> usize {
    let mut ctx = RunCtx::new(
        rt.handle().clone(),
        file.to_path_buf(),
        Policy::with_roots(vec![]),
    );
    ctx.stdlib_dir = find_stdlib(common.stdlib.clone());
    let ctx = Arc::new(ctx);
    let engine = crate::engine::build(ctx.clone());
    let mut checker = Checker::new(&engine, &ctx);
    checker.check_script(file);
    for p in &checker.problems {
        eprint!("{p}");
    }
    if checker.problems.is_empty() && !quiet {
        println!("ok: {}", file.display());
    }
    checker.problems.len()
}

/// Check one config; print problems on stderr and the jobs' next fire times on stdout.
/// Returns the number of problems.
fn check_config(
    rt: &tokio::runtime::Runtime,
    file: &Path,
    state_flag: Option<&Path>,
    quiet: bool,
) -> usize {
    let path = crate::policy::absolute(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read config {}: {e}", file.display());
            return 1;
        }
    };
    let cfg = match Config::parse(&text, file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}", crate::redact::redact(&e));
            return 1;
        }
    };
    let mut problems: Vec<String> = cfg
        .problems(&text, file)
        .into_iter()
        .map(|p| format!("error: {p}\n"))
        .collect();
    let settings = Settings::from_config(&cfg, &path, state_flag);
    let mut report = Vec::new();
    for (i, jc) in cfg.jobs.iter().enumerate() {
        let Ok(spec) = JobSpec::new(jc, &settings) else {
            continue; // already reported by problems()
        };
        if !spec.script.is_file() {
            let (l, c) = job_key_location(&text, i, "script");
            problems.push(format!(
                "error: invalid config {}:{l}:{c}: job {:?}: script {} does not exist\n",
                file.display(),
                jc.name,
                spec.script.display()
            ));
            continue;
        }
        let ctx = Arc::new(spec.run_ctx(rt.handle().clone(), &settings));
        let engine = crate::engine::build(ctx.clone());
        let mut checker = Checker::new(&engine, &ctx);
        checker.check_script(&spec.script);
        let script_ok = checker.problems.is_empty();
        problems.extend(checker.problems);
        let next = if jc.is_enabled() {
            upcoming(&spec, NEXT_SHOWN)
                .iter()
                .map(|t| in_job_tz(&spec, *t))
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            "disabled".into()
        };
        report.push(format!(
            "  job {}: {}{}, script {} {}\n    next: {next}\n",
            jc.name,
            jc.schedule,
            tz_note(jc),
            spec.script.display(),
            if script_ok { "ok" } else { "has problems" },
        ));
    }
    for p in &problems {
        eprint!("{}", crate::redact::redact(p));
    }
    if !quiet {
        let verdict = if problems.is_empty() {
            "ok"
        } else {
            "problems"
        };
        println!(
            "{verdict}: {} ({} job{})",
            file.display(),
            cfg.jobs.len(),
            if cfg.jobs.len() == 1 { "" } else { "s" }
        );
        for r in report {
            print!("{r}");
        }
    }
    problems.len()
}

/// The next `n` fire times of a job from now, in local time.
fn upcoming(spec: &JobSpec, n: usize) -> Vec<DateTime<Local>> {
    let mut out = Vec::new();
    let mut after = Local::now();
    while out.len() < n {
        let Some(t) = spec.next_after(after) else {
            break;
        };
        out.push(t);
        after = t;
    }
    out
}

/// A fire time as the job's schedule sees it (its time zone), e.g. `Mon 2026-03-30 02:30:00 +02:00`.
fn in_job_tz(spec: &JobSpec, t: DateTime<Local>) -> String {
    const FMT: &str = "%a %Y-%m-%d %H:%M:%S %:z";
    match spec.tz {
        crate::cron::JobTz::Named(tz) => t.with_timezone(&tz).format(FMT).to_string(),
        crate::cron::JobTz::Local => t.format(FMT).to_string(),
    }
}

fn tz_note(jc: &crate::config::JobConfig) -> String {
    jc.timezone
        .as_deref()
        .map(|t| format!(" ({t})"))
        .unwrap_or_default()
}
