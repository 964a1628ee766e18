//! `container_logs(name, opts)`: `docker logs` with `since`/`tail`, filtered by a substring or a
//! `/regex/`, returning the matching lines and counts (the guides' `logs | grep ERROR`).

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::api::{self, api_error};
use crate::error::{HostError, HostResult};

const DEFAULT_MAX_LINES: usize = 1000;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogsOptions {
    /// Only lines newer than this: a duration ("1h"), seconds since the epoch (e.g. the `next_since`
    /// of the previous scan), or an RFC 3339 time.
    pub since: Option<serde_json::Value>,
    /// Only the last N lines of the log (before matching).
    pub tail: Option<u64>,
    /// Read stdout (default true).
    pub stdout: Option<bool>,
    /// Read stderr (default true).
    pub stderr: Option<bool>,
    /// Keep only lines containing this text, or matching `/regex/` (`/regex/i` ignores case).
    /// Also accepted as `"match"` (a reserved word in Rhai, so it must be quoted there).
    #[serde(alias = "match")]
    pub pattern: Option<String>,
    /// Lines returned at most (default 1000); `matched` still counts them all.
    pub max_lines: Option<usize>,
    /// Prefix each line with the engine's timestamp.
    pub timestamps: bool,
}

#[derive(Debug, Serialize)]
pub struct LogsReport {
    pub container: String,
    /// Matching lines (all lines without `match`), oldest first, redacted.
    pub lines: Vec<String>,
    /// Lines read.
    pub total: u64,
    /// Lines that matched.
    pub matched: u64,
    pub stdout_matched: u64,
    pub stderr_matched: u64,
    /// True when more lines matched than `max_lines` kept (the newest are kept).
    pub truncated: bool,
    /// Seconds since the epoch when the read began: pass it as `since` next time.
    pub next_since: i64,
}

enum Matcher {
    All,
    Text(String),
    Regex(regex::Regex),
}

impl Matcher {
    fn new(p: Option<&str>) -> HostResult<Matcher> {
        let Some(p) = p.filter(|p| !p.is_empty()) else {
            return Ok(Matcher::All);
        };
        let re = if let Some(body) = p.strip_prefix('/').and_then(|r| r.strip_suffix("/i")) {
            Some(format!("(?i){body}"))
        } else {
            p.strip_prefix('/')
                .and_then(|r| r.strip_suffix('/'))
                .filter(|b| !b.is_empty())
                .map(str::to_string)
        };
        match re {
            Some(r) => regex::Regex::new(&r)
                .map(Matcher::Regex)
                .map_err(|e| HostError::invalid(format!("match {p}: {e}"))),
            None => Ok(Matcher::Text(p.to_string())),
        }
    }

    fn hit(&self, line: &str) -> bool {
        match self {
            Matcher::All => true,
            Matcher::Text(t) => line.contains(t.as_str()),
            Matcher::Regex(r) => r.is_match(line),
        }
    }
}

/// `since` as seconds since the epoch.
fn since_epoch(v: &serde_json::Value, now: i64) -> HostResult<i64> {
    match v {
        serde_json::Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as i64)
            .ok_or_else(|| HostError::invalid(format!("since {n} is not a time"))),
        serde_json::Value::String(s) => {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return Ok(t.timestamp());
            }
            let d = crate::units::parse_duration(s)?;
            Ok(now - d.as_secs() as i64)
        }
        other => Err(HostError::invalid(format!(
            "since must be a duration, epoch seconds or an RFC 3339 time, got {other}"
        ))),
    }
}

pub async fn container_logs(name: &str, o: LogsOptions) -> HostResult<LogsReport> {
    let docker = api::client().await?;
    api::inspect(&docker, name).await?;
    let matcher = Matcher::new(o.pattern.as_deref())?;
    let now = chrono::Utc::now().timestamp();
    let mut b = LogsOptionsBuilder::default()
        .stdout(o.stdout.unwrap_or(true))
        .stderr(o.stderr.unwrap_or(true))
        .timestamps(o.timestamps)
        .follow(false);
    if let Some(s) = &o.since {
        b = b.since(since_epoch(s, now)? as i32);
    }
    if let Some(t) = o.tail {
        b = b.tail(&t.to_string());
    }
    let max = o.max_lines.unwrap_or(DEFAULT_MAX_LINES);
    let mut report = LogsReport {
        container: name.to_string(),
        lines: Vec::new(),
        total: 0,
        matched: 0,
        stdout_matched: 0,
        stderr_matched: 0,
        truncated: false,
        next_since: now,
    };
    let mut lines = std::collections::VecDeque::new();
    let mut stream = docker.logs(name, Some(b.build()));
    // A frame may hold several lines, or (tty containers) a partial one: keep the rest per stream.
    let mut partial: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut take = |idx: usize, line: &[u8], report: &mut LogsReport| {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        report.total += 1;
        if matcher.hit(text) {
            report.matched += 1;
            if idx == 1 {
                report.stderr_matched += 1;
            } else {
                report.stdout_matched += 1;
            }
            lines.push_back(crate::redact::redact(text));
            if lines.len() > max {
                lines.pop_front();
                report.truncated = true;
            }
        }
    };
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|e| api_error(e, &format!("reading the logs of {name}")))?;
        let (idx, bytes) = match frame {
            LogOutput::StdErr { message } => (1, message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => (0, message),
            LogOutput::StdIn { .. } => continue,
        };
        partial[idx].extend_from_slice(&bytes);
        while let Some(pos) = partial[idx].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial[idx].drain(..=pos).collect();
            take(idx, &line[..line.len() - 1], &mut report);
        }
    }
    for (idx, rest) in partial.iter().enumerate() {
        if !rest.is_empty() {
            take(idx, rest, &mut report);
        }
    }
    report.lines = lines.into_iter().collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers() {
        assert!(Matcher::new(Some("ERROR")).unwrap().hit("x ERROR y"));
        assert!(!Matcher::new(Some("ERROR")).unwrap().hit("x error y"));
        assert!(Matcher::new(Some("/took [0-9]{4,}ms/"))
            .unwrap()
            .hit("took 2300ms"));
        assert!(!Matcher::new(Some("/took [0-9]{4,}ms/"))
            .unwrap()
            .hit("took 12ms"));
        assert!(Matcher::new(Some("/error/i")).unwrap().hit("ERROR"));
        assert!(Matcher::new(Some("/(/")).is_err());
        // A lone slash is text.
        assert!(Matcher::new(Some("/")).unwrap().hit("a/b"));
    }

    #[test]
    fn since_forms() {
        assert_eq!(since_epoch(&serde_json::json!(100), 1000).unwrap(), 100);
        assert_eq!(since_epoch(&serde_json::json!("10s"), 1000).unwrap(), 990);
        assert_eq!(
            since_epoch(&serde_json::json!("1970-01-01T00:01:00Z"), 1000).unwrap(),
            60
        );
        assert!(since_epoch(&serde_json::json!(-1), 1000).is_err());
    }
}
