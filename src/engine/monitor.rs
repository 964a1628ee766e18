//! Run monitoring: a dead-man's switch (healthchecks.io protocol) and one alert per failed run.
//!
//! Monitoring belongs to the run, not to a library call inside it: whatever ends the run (the
//! last statement, an error in a later step, `--timeout`, SIGTERM, a panic), the code that ran
//! it calls [`finish`] once with the run's exit code, so the dead-man's switch and the alert
//! always say what the exit code says.
//!
//! Targets come from `mtn run --ping/--notify`, a daemon job's `ping`/`notify` keys, or the
//! script itself (`monitor(#{ ping, notify })`, which `backup::run` calls).
//!
//! Signals (healthchecks.io): `<url>/start` when the run starts (or when the script names the
//! URL); `<url>` (success) when it ends with exit 0 — including a run with warnings when
//! `--fail-on-warning` is off; `<url>/fail` with the redacted error and the last log lines as
//! the body for every other exit code (1, 3 with `--fail-on-warning`, 124, 130, a panic), plus
//! exactly one notification to the notify target. A signal that cannot be delivered is retried
//! (by `ping`) and then logged as a warning; it never changes the exit code.
//!
//! This file sends the final signal; the targets and what was sent live with the run context
//! (`ctx::monitor`), and `/start` with the functions (`host::notify::monitor::start`), because
//! the script's `monitor()` sends it too.

use std::time::Duration;

use rhai::Dynamic;

use crate::ctx::RunCtx;
use crate::engine::runner::Status;
use crate::http::HttpClients;

/// How a run ended, for the final signal.
pub struct RunEnd<'a> {
    pub status: Status,
    pub code: i32,
    /// The rendered (redacted) error, when the run failed.
    pub error: Option<&'a str>,
}

/// Upper bound on the final signals: a dead monitoring endpoint must not hold the exit forever.
const FINISH_LIMIT: Duration = Duration::from_secs(60);

/// What the run is called in signals: the daemon job's name, else the script path.
fn run_name(ctx: &RunCtx) -> String {
    match &ctx.job {
        Some(j) => format!("job {j}"),
        None => ctx.script.display().to_string(),
    }
}

/// The final signal of the run: success ping for exit 0; otherwise `/fail` with the error and
/// log tail, and one notification. Called once per run; later calls do nothing.
pub async fn finish(ctx: &RunCtx, end: &RunEnd<'_>) {
    let Some((ping, notify)) = ctx.monitor.take_finish() else {
        return;
    };
    if ping.is_none() && notify.is_none() {
        return;
    }
    let work = async {
        let clients = HttpClients::new(); // the operator's URLs: see start()
        let failed = end.code != 0;
        if let Some(url) = &ping {
            let (status, body): (Dynamic, Option<String>) = if failed {
                ("fail".into(), Some(failure_text(ctx, end)))
            } else {
                ("success".into(), Some(success_text(ctx, end)))
            };
            match crate::host::notify::ping(ctx, &clients, url, status, body).await {
                Ok(_) => {
                    tracing::debug!(target: "mtn::monitor", "{} ping sent", if failed { "fail" } else { "success" })
                }
                Err(e) => {
                    tracing::warn!(target: "mtn::monitor", "final ping not delivered (exit code unchanged): {}", e.message)
                }
            }
        }
        if let (true, Some(target)) = (failed, &notify) {
            let opts = crate::host::notify::NotifyOptions {
                title: Some(format!(
                    "mtn: {} {} on {}",
                    run_name(ctx),
                    end.status.as_str(),
                    crate::host::core::hostname()
                )),
                level: Some("error".into()),
                ..Default::default()
            };
            let message = failure_text(ctx, end);
            match crate::host::notify::notify(ctx, &clients, target, &message, opts).await {
                Ok(_) => tracing::info!(target: "mtn::monitor", "failure notification sent"),
                Err(e) => {
                    tracing::warn!(target: "mtn::monitor", "failure notification not delivered (exit code unchanged): {}", e.message)
                }
            }
        }
    };
    if tokio::time::timeout(FINISH_LIMIT, work).await.is_err() {
        tracing::warn!(target: "mtn::monitor", "final monitoring signals took over {}s; given up (exit code unchanged)", FINISH_LIMIT.as_secs());
    }
}

fn success_text(ctx: &RunCtx, end: &RunEnd<'_>) -> String {
    format!(
        "{} {} on {} (exit {})",
        run_name(ctx),
        end.status.as_str(),
        crate::host::core::hostname(),
        end.code
    )
}

/// The body of `/fail` and of the alert: what failed, the error, the last log lines (redacted).
fn failure_text(ctx: &RunCtx, end: &RunEnd<'_>) -> String {
    let mut text = format!(
        "{} {} on {} (exit {})",
        run_name(ctx),
        end.status.as_str(),
        crate::host::core::hostname(),
        end.code
    );
    if let Some(e) = end.error {
        text.push_str("\n\n");
        text.push_str(e.trim_end());
    }
    let tail = ctx.log_tail.lines();
    if !tail.is_empty() {
        text.push_str("\n\nlast log lines:\n");
        text.push_str(&tail.join("\n"));
    }
    crate::redact::redact(&text)
}
