//! The daemon's HTTP endpoints: `/healthz`, `/metrics`, `/status`, `/` (HTML) and
//! `POST /trigger/{job}` (used by `mtn trigger`). Who may call them: see [`super::access`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Local};
use serde::Serialize;

use crate::daemon::metrics::JobGauges;
use crate::daemon::scheduler::{Daemon, LastRun};
use crate::sync::{lock, read};

#[derive(Serialize)]
pub struct JobStatus {
    pub name: String,
    pub schedule: String,
    pub timezone: Option<String>,
    pub script: String,
    pub enabled: bool,
    pub overlap: crate::config::Overlap,
    pub next_run: Option<DateTime<Local>>,
    pub running: bool,
    pub queued: u32,
    pub version: Option<String>,
    pub loaded_at: Option<DateTime<Local>>,
    pub reload_error: Option<String>,
    pub last: Option<LastRun>,
    pub last_success: Option<DateTime<Local>>,
}

#[derive(Serialize)]
pub struct Status {
    pub version: &'static str,
    pub started_at: DateTime<Local>,
    pub config: String,
    pub config_error: Option<String>,
    pub shutting_down: bool,
    pub jobs: Vec<JobStatus>,
    /// With `[fleet]`: the newest runs of every host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<crate::daemon::fleet::status::FleetStatus>,
}

pub fn status(d: &Daemon) -> Status {
    let jobs = read(&d.jobs)
        .values()
        .map(|j| {
            let st = lock(&j.state);
            let c = j.compiled();
            JobStatus {
                name: j.spec.name().to_string(),
                schedule: j.spec.cfg.schedule.clone(),
                timezone: j.spec.cfg.timezone.clone(),
                script: j.spec.script.display().to_string(),
                enabled: j.spec.cfg.is_enabled(),
                overlap: j.spec.overlap,
                next_run: if j.spec.cfg.is_enabled() {
                    st.next_fire
                } else {
                    None
                },
                running: st.running.is_some(),
                queued: st.queued,
                version: c.as_ref().map(|c| c.hash.clone()),
                loaded_at: c.as_ref().map(|c| c.loaded_at),
                reload_error: st.reload_error.clone(),
                last: st.last.clone(),
                last_success: st.last_success,
            }
        })
        .collect();
    Status {
        version: env!("CARGO_PKG_VERSION"),
        started_at: d.started,
        config: d.config_path.display().to_string(),
        config_error: lock(&d.config_error).clone(),
        shutting_down: d.shutdown.is_cancelled(),
        jobs,
        fleet: None,
    }
}

/// [`status`] with the fleet's runs (read from the lock database).
pub async fn full_status(d: &Daemon) -> Status {
    let mut s = status(d);
    if let Some(f) = &d.fleet {
        s.fleet = Some(crate::daemon::fleet::status::status(f).await);
    }
    s
}

pub fn router(d: Arc<Daemon>, access: Arc<crate::daemon::access::Access>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/status", get(status_json))
        .route("/trigger/{job}", post(trigger))
        .layer(axum::middleware::from_fn_with_state(
            access,
            crate::daemon::access::guard,
        ))
        .with_state(d)
}

async fn status_json(State(d): State<Arc<Daemon>>) -> Json<Status> {
    Json(full_status(&d).await)
}

async fn metrics(State(d): State<Arc<Daemon>>) -> Response {
    let gauges: Vec<JobGauges> = read(&d.jobs)
        .values()
        .map(|j| {
            let st = lock(&j.state);
            JobGauges {
                name: j.spec.name().to_string(),
                next_fire: st.next_fire,
                broken: st.reload_error.is_some(),
            }
        })
        .collect();
    let state_dir = read(&d.settings).state_dir.clone();
    let broken = lock(&d.config_error).is_some();
    let mut body = d.metrics.render(&gauges, &state_dir, broken, d.started);
    if let Some(f) = &d.fleet {
        f.render_metrics(&mut body);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn trigger(State(d): State<Arc<Daemon>>, Path(job): Path<String>) -> Response {
    let Some(j) = d.job(&job) else {
        let known: Vec<String> = read(&d.jobs).keys().cloned().collect();
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("no job named {job:?} (jobs: {})", known.join(", "))})),
        )
            .into_response();
    };
    let fired = d.fire(&j, "manual", None);
    let code = match fired {
        crate::daemon::scheduler::Fired::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::ACCEPTED,
    };
    (code, Json(serde_json::json!({"job": job, "result": fired}))).into_response()
}

fn h(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn time(t: Option<DateTime<Local>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "—".into())
}

/// A small page, rendered on the server (no scripts), refreshing itself every 10 s.
async fn page(State(d): State<Arc<Daemon>>) -> Html<String> {
    let s = full_status(&d).await;
    let mut rows = String::new();
    for j in &s.jobs {
        let (last, last_class) = match &j.last {
            Some(l) => (
                format!("{} at {}", l.status, time(Some(l.end))),
                l.status.as_str(),
            ),
            None => ("never ran".to_string(), "none"),
        };
        let state = if j.running {
            "running".to_string()
        } else if !j.enabled {
            "disabled".to_string()
        } else {
            "idle".to_string()
        };
        let mut errors = String::new();
        if let Some(e) = &j.reload_error {
            errors.push_str(&format!("<details open class=\"err\"><summary>script does not compile (previous version kept)</summary><pre>{}</pre></details>", h(e)));
        }
        if let Some(e) = j.last.as_ref().and_then(|l| l.error.as_ref()) {
            errors.push_str(&format!(
                "<details class=\"err\"><summary>last error</summary><pre>{}</pre></details>",
                h(e)
            ));
        }
        rows.push_str(&format!(
            "<tr class=\"job\" data-job=\"{name}\"><td>{name}</td><td><code>{sched}</code></td><td>{state}</td><td>{next}</td><td class=\"{last_class}\">{last}</td><td>{ver}</td><td>{errors}</td></tr>\n",
            name = h(&j.name),
            sched = h(&j.schedule),
            next = time(j.next_run),
            last = h(&last),
            ver = h(j.version.as_deref().unwrap_or("—")),
        ));
    }
    let fleet = s
        .fleet
        .as_ref()
        .map(|f| crate::daemon::fleet::status::html(f, h))
        .unwrap_or_default();
    let config_error = s
        .config_error
        .as_ref()
        .map(|e| {
            format!(
                "<p class=\"err\">config error (previous config kept): <pre>{}</pre></p>",
                h(e)
            )
        })
        .unwrap_or_default();
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mtn daemon</title>
<meta http-equiv="refresh" content="10">
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} td, th {{ padding: .3em .8em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }}
.ok {{ color: #080; }} .failed, .timeout, .err {{ color: #b00; }} .warning, .interrupted {{ color: #a60; }}
pre {{ white-space: pre-wrap; font-size: 12px; }}
</style></head><body>
<h1>mtn daemon</h1>
<p>version {version} · started {started} · config <code>{config}</code> · <a href="/status">/status</a> · <a href="/metrics">/metrics</a></p>
{config_error}
<table id="jobs"><thead><tr><th>job</th><th>schedule</th><th>state</th><th>next run</th><th>last run</th><th>version</th><th>errors</th></tr></thead>
<tbody>
{rows}</tbody></table>
{fleet}</body></html>
"#,
        version = s.version,
        started = time(Some(s.started_at)),
        config = h(&s.config),
    ))
}
