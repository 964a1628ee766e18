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

use std::sync::Mutex;
use std::time::Duration;

use rhai::Dynamic;
use serde::Deserialize;

use crate::engine::ctx::RunCtx;
use crate::engine::runner::Status;
use crate::host::check::http::HttpClients;

/// `monitor(#{ ping, notify })`, and the same keys on the command line and in a job table.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorOptions {
    /// healthchecks.io-style check URL: `/start`, success, `/fail` are derived from it.
    pub ping: Option<String>,
    /// Notify target (webhook URL or smtp:// URL) told once when the run fails.
    pub notify: Option<String>,
}

/// The run's monitoring state.
#[derive(Debug, Default)]
pub struct Monitor {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    ping: Option<String>,
    notify: Option<String>,
    /// The ping URL a `/start` was sent to (so a script naming the same URL again sends none).
    started: Option<String>,
    finished: bool,
}

/// How a run ended, for the final signal.
pub struct RunEnd<'a> {
    pub status: Status,
    pub code: i32,
    /// The rendered (redacted) error, when the run failed.
    pub error: Option<&'a str>,
}

/// Lines of the log kept for the `/fail` body and the alert when the run does not keep more.
pub const TAIL_LINES: usize = 40;

/// Upper bound on the final signals: a dead monitoring endpoint must not hold the exit forever.
const FINISH_LIMIT: Duration = Duration::from_secs(60);

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl Monitor {
    /// Set the targets; an empty or missing value keeps what is set already, so
    /// `backup::run(#{ ping: "" })` does not switch off a `--ping` given on the command line.
    /// A URL that cannot work is an error here, when it is set, not at the end of the run.
    pub fn set(&self, o: MonitorOptions) -> Result<(), String> {
        let ping = non_empty(o.ping);
        let notify = non_empty(o.notify);
        if let Some(p) = &ping {
            check_url("ping", p, &["http", "https"])?;
        }
        if let Some(n) = &notify {
            check_url("notify", n, &["http", "https", "smtp", "smtps"])?;
        }
        let mut st = crate::sync::lock(&self.state);
        if ping.is_some() {
            st.ping = ping;
        }
        if notify.is_some() {
            st.notify = notify;
        }
        Ok(())
    }

    pub fn is_set(&self) -> bool {
        let st = crate::sync::lock(&self.state);
        st.ping.is_some() || st.notify.is_some()
    }

    /// The ping URL whose `/start` is still to be sent (marking it sent).
    fn take_start(&self) -> Option<String> {
        let mut st = crate::sync::lock(&self.state);
        let ping = st.ping.clone()?;
        if st.finished || st.started.as_deref() == Some(ping.as_str()) {
            return None;
        }
        st.started = Some(ping.clone());
        Some(ping)
    }

    /// The targets for the final signal, once per run.
    fn take_finish(&self) -> Option<(Option<String>, Option<String>)> {
        let mut st = crate::sync::lock(&self.state);
        if st.finished {
            return None;
        }
        st.finished = true;
        Some((st.ping.clone(), st.notify.clone()))
    }
}

fn check_url(what: &str, url: &str, schemes: &[&str]) -> Result<(), String> {
    let shown = crate::redact::register_url(url);
    let parsed =
        url::Url::parse(url).map_err(|e| format!("{what}: {shown:?} is not a URL: {e}"))?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(format!(
            "{what}: {shown:?}: use a {} URL",
            schemes.join(":// or ") + "://"
        ));
    }
    Ok(())
}

/// What the run is called in signals: the daemon job's name, else the script path.
fn run_name(ctx: &RunCtx) -> String {
    match &ctx.job {
        Some(j) => format!("job {j}"),
        None => ctx.script.display().to_string(),
    }
}

/// Send `/start` if a ping URL is set and its start has not been sent. Never fails the run.
pub async fn start(ctx: &RunCtx) {
    let Some(url) = ctx.monitor.take_start() else {
        return;
    };
    // Not the run's own clients (`ctx.http()`): the operator chose these URLs, not the script,
    // so the script's host allow-list does not apply to their redirects.
    let clients = HttpClients::new();
    if let Err(e) = crate::host::notify::ping(ctx, &clients, &url, "start".into(), None).await {
        tracing::warn!(target: "mtn::monitor", "start ping not delivered (the run goes on): {}", e.message);
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
