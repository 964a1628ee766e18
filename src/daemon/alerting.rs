//! Delivering a job's alerts: the `on_failure` webhook (JSON) or email (`smtp://`), when the
//! job's alert state (see `alerts`) says one is due.

use std::time::Duration;

use chrono::Local;

use crate::daemon::alerts::{self, Alert, AlertState};
use crate::daemon::history::Entry;
use crate::daemon::scheduler::{Daemon, Job};

impl Daemon {
    /// Record the outcome in the job's alert state and send the alert that is due, if any.
    pub(super) async fn alert(
        &self,
        job: &Job,
        entry: &Entry,
        failed: bool,
        state_dir: &std::path::Path,
    ) {
        let name = job.spec.name();
        let mut st = alerts::load(state_dir, name);
        let due = st.record(failed, entry.end, job.spec.notify_every);
        match (due, job.spec.cfg.on_failure.as_deref()) {
            (Some(alert), Some(url)) if self.notify(url, entry, alert, &st).await => {
                st.delivered(alert, Local::now());
            }
            (Some(_), Some(_)) => {} // not delivered: tried again on the next failed run
            (None, Some(_)) if failed => {
                tracing::info!(target: "mtn::daemon", job = name, "job {name}: still failing ({} runs since {}); already alerted", st.failures, st.since.map(|t| t.to_rfc3339()).unwrap_or_default())
            }
            _ => {}
        }
        if let Err(e) = alerts::save(state_dir, name, &st) {
            tracing::error!(target: "mtn::daemon", job = name, "job {name}: cannot save the alert state in {}: {e}", state_dir.display());
        }
    }

    /// Tell `url` about an alert; true when it was delivered.
    async fn notify(&self, url: &str, entry: &Entry, alert: Alert, st: &AlertState) -> bool {
        if url.starts_with("smtp://") || url.starts_with("smtps://") {
            return self.email_alert(url, entry, alert, st).await;
        }
        let body = serde_json::json!({
            "event": alert.event(),
            "job": entry.job,
            "status": entry.status,
            "error": entry.error,
            "start": entry.start,
            "end": entry.end,
            "attempt": entry.attempt,
            "failing_since": st.since,
            "failed_runs": st.failures,
            "host": crate::host::core::hostname(),
            "log_tail": entry.log_tail,
        });
        let shown = crate::redact::register_url(url);
        let res = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let job = &entry.job;
        match res {
            Ok(r) if r.status().is_success() => {
                tracing::info!(target: "mtn::daemon", job = %job, "job {job}: {} sent to {shown}", alert.event());
                true
            }
            Ok(r) => {
                tracing::warn!(target: "mtn::daemon", job = %job, "job {job}: on_failure webhook {shown} answered {} to {}", r.status(), alert.event());
                false
            }
            Err(e) => {
                tracing::warn!(target: "mtn::daemon", job = %job, "job {job}: on_failure webhook {shown} failed: {}", crate::redact::redact(&e.to_string()));
                false
            }
        }
    }

    /// `on_failure = "smtp://..."`: the same email `notify()` sends from a script.
    async fn email_alert(&self, url: &str, entry: &Entry, alert: Alert, st: &AlertState) -> bool {
        let ctx = crate::ctx::RunCtx::new(
            self.handle.clone(),
            std::path::PathBuf::from(&entry.job),
            crate::policy::Policy::with_roots(vec![]),
        );
        let host = crate::host::core::hostname();
        let (title, level) = match alert {
            Alert::Failed => (format!("mtn job {} failed", entry.job), "error"),
            Alert::StillFailing => (
                format!("mtn job {} still failing ({} runs)", entry.job, st.failures),
                "error",
            ),
            Alert::Recovered => (format!("mtn job {} recovered", entry.job), "info"),
        };
        let mut message = format!("mtn job {} on {host} ended {}", entry.job, entry.status);
        if let Some(since) = st.since {
            message.push_str(&format!(
                "\nfailing since {} ({} failed runs)",
                since.to_rfc3339(),
                st.failures
            ));
        }
        if let Some(e) = &entry.error {
            message.push_str(&format!("\n\n{e}"));
        }
        if !entry.log_tail.is_empty() {
            message.push_str(&format!(
                "\n\nlast log lines:\n{}",
                entry.log_tail.join("\n")
            ));
        }
        let opts = crate::host::notify::NotifyOptions {
            title: Some(title),
            level: Some(level.into()),
            ..Default::default()
        };
        let clients = crate::http::HttpClients::new();
        let shown = crate::redact::register_url(url);
        let job = &entry.job;
        match crate::host::notify::notify(&ctx, &clients, url, &message, opts).await {
            Ok(_) => {
                tracing::info!(target: "mtn::daemon", job = %job, "job {job}: {} mailed via {shown}", alert.event());
                true
            }
            Err(e) => {
                tracing::warn!(target: "mtn::daemon", job = %job, "job {job}: on_failure email via {shown} failed: {}", crate::redact::redact(&e.message));
                false
            }
        }
    }
}
