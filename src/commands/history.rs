//! `mtn history`: past runs from this host's history or, with `[fleet]`, every host's.

use chrono::Local;

use super::client::{client_ctx, ClientCtx};
use crate::cli::DaemonPaths;
use crate::daemon::history::{self, History};
use crate::exit;

/// What `mtn history` lists.
pub struct Filter {
    pub job: Option<String>,
    pub limit: usize,
    pub failed: bool,
    pub since: Option<String>,
    pub local: bool,
}

/// The entries of one job (checked to exist) or of all jobs, oldest first.
fn entries_of(c: &ClientCtx, job: Option<&str>) -> Result<Vec<history::Entry>, String> {
    let history = History::new(&c.settings.state_dir, crate::daemon::DEFAULT_HISTORY_LIMIT);
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

pub fn list(paths: &DaemonPaths, f: &Filter, json: bool) -> exit::Result {
    let c = client_ctx(paths)?;
    let since = match f.since.as_deref().map(crate::units::parse_duration) {
        None => None,
        Some(Ok(d)) => {
            Some(Local::now() - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
        }
        Some(Err(e)) => return Err(format!("--since: {}", e.message).into()),
    };
    let shared = c.cfg.fleet.as_ref().filter(|_| !f.local).map(|fc| {
        let q = crate::daemon::fleet::shared::Query {
            job: f.job.as_deref(),
            since,
            failed: f.failed,
            limit: f.limit,
        };
        crate::daemon::fleet::shared::fetch_blocking(fc, &c.settings.base, &q)
    });
    let mut entries = match shared {
        Some(Ok(e)) => e,
        other => {
            if let Some(Err(e)) = other {
                eprintln!("warning: {e}; showing this host's history only");
            }
            entries_of(&c, f.job.as_deref())?
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
        return Ok(exit::OK);
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
    Ok(exit::OK)
}

/// `mtn history --tail RUN`: one run in full, with its error and log tail.
pub fn tail(paths: &DaemonPaths, job: Option<&str>, run: &str, json: bool) -> exit::Result {
    let c = client_ctx(paths)?;
    let (job, id) = match run.split_once('#') {
        Some((j, n)) => (Some(j), n),
        None => (job, run),
    };
    let Ok(id) = id.parse::<u64>() else {
        return Err(
            format!("--tail {run:?}: expected a run id like 42 (with JOB) or nightly#42").into(),
        );
    };
    let entries = entries_of(&c, job)?;
    let found: Vec<&history::Entry> = entries.iter().filter(|e| e.run == id).collect();
    let e = match found.as_slice() {
        [e] => *e,
        [] => {
            return Err(
                format!("no run {run} in the history (it may have been rotated out)").into(),
            )
        }
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|e| format!("{}#{}", e.job, e.run))
                .collect();
            return Err(format!(
                "run id {id} exists for several jobs ({}); name one",
                names.join(", ")
            )
            .into());
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(e).unwrap_or_default());
        return Ok(exit::OK);
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
    Ok(exit::OK)
}
