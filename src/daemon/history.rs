//! Run history: one JSON object per line in `<state_dir>/history/<job>.jsonl`.
//!
//! Bounded three ways, checked on every append: more than `limit` entries (default 500), a file
//! over [`MAX_FILE_BYTES`] (4 MiB), or a first entry older than `max_age` (default 90 days) makes
//! it rewritten (atomically: temporary file + rename) keeping the newest entries that are within
//! the age and fill at most half the count and half the size. So a job's history file never
//! exceeds 4 MiB + one entry, and one entry is bounded too: its log tail is 40 lines of at most
//! [`MAX_LINE_CHARS`] characters and its error at most [`MAX_ERROR_CHARS`].
//! It survives restarts and drives `catch_up` and the run ids.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Local};
use serde::{Deserialize, Serialize};

/// One run (one attempt) of a job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub job: String,
    /// The job's run id (`[nightly#42]` in the log; `mtn history --tail 42`).
    #[serde(default)]
    pub run: u64,
    /// Why it ran: schedule, manual, catch_up, retry, queued.
    pub trigger: String,
    /// The schedule time this run was for (absent for manual runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<DateTime<Local>>,
    pub start: DateTime<Local>,
    pub end: DateTime<Local>,
    pub status: String,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Content hash of the script version that ran.
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub log_tail: Vec<String>,
    /// The host that ran it (with `[fleet]`; the shared history's host column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Entry {
    pub fn duration_secs(&self) -> f64 {
        (self.end - self.start).num_milliseconds() as f64 / 1000.0
    }
}

/// A job's history file is rewritten when it grows past this.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Longest log-tail line kept in an entry (longer lines are cut, marked with `…`).
pub const MAX_LINE_CHARS: usize = 2000;
/// Longest error text kept in an entry.
pub const MAX_ERROR_CHARS: usize = 16_000;
/// Default age after which entries are dropped at the next rewrite.
pub const DEFAULT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(90 * 86_400);

pub struct History {
    dir: PathBuf,
    limit: usize,
    max_age: std::time::Duration,
    lock: Mutex<()>,
}

impl History {
    pub fn new(state_dir: &Path, limit: usize) -> History {
        History {
            dir: state_dir.join("history"),
            limit: limit.max(2),
            max_age: DEFAULT_MAX_AGE,
            lock: Mutex::new(()),
        }
    }

    pub fn with_max_age(mut self, max_age: std::time::Duration) -> History {
        self.max_age = max_age;
        self
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn max_age(&self) -> std::time::Duration {
        self.max_age
    }

    fn file(&self, job: &str) -> PathBuf {
        self.dir.join(format!("{job}.jsonl"))
    }

    /// Append an entry; rewrite the file when it grew past a bound (see the module comment).
    pub fn append(&self, entry: &Entry) -> std::io::Result<()> {
        let _guard = crate::sync::lock(&self.lock);
        crate::atomic::create_private_dirs(&self.dir)?;
        let path = self.file(&entry.job);
        let mut entry = entry.clone();
        for l in &mut entry.log_tail {
            cut(l, MAX_LINE_CHARS);
        }
        if let Some(e) = &mut entry.error {
            cut(e, MAX_ERROR_CHARS);
        }
        let mut line = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
        line.push('\n');
        // One write of a whole line with O_APPEND: a crash leaves whole lines or nothing.
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        f.write_all(line.as_bytes())?;
        let size = f.metadata()?.len();
        drop(f);
        let entries = read_file(&path);
        let oldest = Local::now()
            - chrono::Duration::from_std(self.max_age).unwrap_or(chrono::Duration::MAX);
        let too_old = entries.first().is_some_and(|e| e.start < oldest);
        if entries.len() > self.limit || size > MAX_FILE_BYTES || too_old {
            let mut lines: Vec<String> = Vec::new();
            let mut bytes = 0u64;
            for e in entries.iter().rev() {
                if e.start < oldest || lines.len() >= self.limit / 2 {
                    break;
                }
                let Ok(l) = serde_json::to_string(e) else {
                    continue;
                };
                bytes += l.len() as u64 + 1;
                // Always keep the newest entry (it carries the run id counter).
                if bytes > MAX_FILE_BYTES / 2 && !lines.is_empty() {
                    break;
                }
                lines.push(l);
            }
            lines.reverse();
            let mut text = lines.join("\n");
            text.push('\n');
            crate::atomic::write_atomic(&path, text.as_bytes())?;
        }
        Ok(())
    }

    /// Entries of one job, oldest first.
    pub fn job(&self, job: &str) -> Vec<Entry> {
        read_file(&self.file(job))
    }

    /// The newest entry of a job.
    pub fn last(&self, job: &str) -> Option<Entry> {
        self.job(job).pop()
    }

    /// Entries of every job, oldest first.
    pub fn all(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "jsonl") {
                    out.extend(read_file(&p));
                }
            }
        }
        out.sort_by_key(|e| e.start);
        out
    }
}

fn cut(s: &mut String, max: usize) {
    if s.chars().count() > max {
        *s = s.chars().take(max).collect::<String>() + "…";
    }
}

/// Read a history file, skipping lines that do not parse (a torn last line after a crash).
fn read_file(path: &Path) -> Vec<Entry> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(job: &str, i: u32) -> Entry {
        let t = Local::now();
        Entry {
            job: job.into(),
            run: i as u64,
            trigger: "schedule".into(),
            scheduled: Some(t),
            start: t,
            end: t,
            status: "ok".into(),
            attempt: i,
            error: None,
            version: "v".into(),
            log_tail: vec![],
            host: None,
        }
    }

    #[test]
    fn history_is_bounded_and_keeps_newest() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path(), 10);
        for i in 0..25 {
            h.append(&entry("a", i)).unwrap();
        }
        let all = h.job("a");
        assert!(all.len() <= 10, "{} entries", all.len());
        assert_eq!(all.last().unwrap().attempt, 24);
        assert!(h.job("b").is_empty());
    }

    #[test]
    fn history_is_bounded_by_size_and_age() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path(), 100_000);
        let mut e = entry("a", 0);
        e.log_tail = vec!["x".repeat(10_000); 40];
        for i in 0..200 {
            e.run = i;
            h.append(&e).unwrap();
        }
        let size = std::fs::metadata(dir.path().join("history/a.jsonl"))
            .unwrap()
            .len();
        assert!(size <= MAX_FILE_BYTES + 100_000, "{size} bytes");
        let all = h.job("a");
        assert_eq!(all.last().unwrap().run, 199);
        assert!(all[0].log_tail[0].chars().count() <= MAX_LINE_CHARS + 1);

        let h = History::new(dir.path(), 100).with_max_age(std::time::Duration::from_secs(3600));
        let mut old = entry("b", 0);
        old.start = Local::now() - chrono::Duration::hours(5);
        h.append(&old).unwrap();
        h.append(&entry("b", 1)).unwrap();
        let b = h.job("b");
        assert_eq!(b.len(), 1, "the 5-hour-old entry is dropped");
        assert_eq!(b[0].attempt, 1);
    }

    #[test]
    fn history_skips_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path(), 10);
        h.append(&entry("a", 1)).unwrap();
        let p = dir.path().join("history/a.jsonl");
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"job\":\"a\",\"tri").unwrap();
        assert_eq!(h.job("a").len(), 1);
    }
}
