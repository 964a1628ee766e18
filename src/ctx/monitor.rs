//! The run's monitoring targets and what has been sent, held by the run context (see
//! `engine::monitor` for the final signal and `host::notify::monitor` for `/start`).

use std::sync::Mutex;

use serde::Deserialize;

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

/// Lines of the log kept for the `/fail` body and the alert when the run does not keep more.
pub const TAIL_LINES: usize = 40;

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
    pub fn take_start(&self) -> Option<String> {
        let mut st = crate::sync::lock(&self.state);
        let ping = st.ping.clone()?;
        if st.finished || st.started.as_deref() == Some(ping.as_str()) {
            return None;
        }
        st.started = Some(ping.clone());
        Some(ping)
    }

    /// The targets for the final signal, once per run.
    pub fn take_finish(&self) -> Option<(Option<String>, Option<String>)> {
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
