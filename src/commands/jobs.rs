//! `mtn jobs`: each job's schedule, next run and last result, from the running daemon or, when
//! it is not running, from the config and the history it left.

use std::time::Duration;

use chrono::Local;

use super::client::{client_ctx, client_runtime};
use crate::cli::DaemonPaths;
use crate::daemon::history::History;
use crate::daemon::jobs::JobSpec;
use crate::exit;

pub fn run(paths: &DaemonPaths, json: bool) -> exit::Result {
    let c = client_ctx(paths)?;
    let rt = client_runtime()?;
    let live: Option<serde_json::Value> = rt.block_on(async {
        // The token is needed only when the daemon listens beyond loopback; send it if readable.
        let token = c.token().unwrap_or_default();
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
            let history = History::new(&c.settings.state_dir, crate::daemon::DEFAULT_HISTORY_LIMIT);
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
        return Ok(exit::OK);
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
    Ok(exit::OK)
}
