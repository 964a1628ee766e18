//! The fleet view of `/status` and the HTML page: the newest runs of every host.

use std::time::Duration;

use serde::Serialize;

use super::shared::Query;
use super::Fleet;
use crate::daemon::history::Entry;

/// Runs shown in `/status` and on the page.
const SHOWN: usize = 30;

#[derive(Serialize)]
pub struct FleetStatus {
    /// This host's id.
    pub host: String,
    /// The lock database (no password).
    pub lock: String,
    /// Why the database could not be read, if it could not.
    pub error: Option<String>,
    /// The newest runs of every host, newest first (log tails left out).
    pub runs: Vec<Entry>,
}

pub async fn status(f: &Fleet) -> FleetStatus {
    let q = Query {
        limit: SHOWN,
        ..Default::default()
    };
    let (runs, error) = match tokio::time::timeout(Duration::from_secs(3), f.runs(&q)).await {
        Ok(Ok(mut r)) => {
            r.reverse();
            for e in &mut r {
                e.log_tail.clear();
            }
            (r, f.down())
        }
        Ok(Err(e)) => (vec![], Some(e)),
        Err(_) => (
            vec![],
            Some("the fleet database did not answer within 3 s".into()),
        ),
    };
    FleetStatus {
        host: f.host.clone(),
        lock: f.shown(),
        error,
        runs,
    }
}

/// The page's fleet table (values escaped by `h`).
pub fn html(s: &FleetStatus, h: impl Fn(&str) -> String) -> String {
    let mut rows = String::new();
    for e in &s.runs {
        rows.push_str(&format!(
            "<tr class=\"run\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{st}\">{st}</td><td>{}</td><td>{}</td></tr>\n",
            h(e.host.as_deref().unwrap_or("")),
            h(&e.job),
            e.scheduled
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_else(|| "—".into()),
            e.start.format("%Y-%m-%d %H:%M:%S"),
            h(&e.trigger),
            h(e.error.as_deref().and_then(|t| t.lines().next()).unwrap_or("")),
            st = h(&e.status),
        ));
    }
    let error = s
        .error
        .as_ref()
        .map(|e| format!("<p class=\"err\">fleet database: {}</p>", h(e)))
        .unwrap_or_default();
    format!(
        "<h2>Fleet</h2>\n<p>this host: <code>{}</code> · lock database <code>{}</code></p>\n{error}\
         <table id=\"fleet\"><thead><tr><th>host</th><th>job</th><th>slot</th><th>start</th><th>status</th><th>trigger</th><th>error</th></tr></thead>\n<tbody>\n{rows}</tbody></table>\n",
        h(&s.host),
        h(&s.lock)
    )
}
