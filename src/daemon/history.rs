//! Run history: one JSON object per line in `<state_dir>/history/<job>.jsonl`.
//!
//! Bounded: when a job's file holds more than `limit` entries it is rewritten (atomically, via a
//! temporary file and rename) keeping the newest `limit / 2`, so appends stay cheap and the file
//! never grows past `limit` lines. It survives restarts and drives `catch_up`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Local};
use serde::{Deserialize, Serialize};

/// One run (one attempt) of a job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub job: String,
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
}

impl Entry {
    pub fn duration_secs(&self) -> f64 {
        (self.end - self.start).num_milliseconds() as f64 / 1000.0
    }
}

pub struct History {
    dir: PathBuf,
    limit: usize,
    lock: Mutex<()>,
}

impl History {
    pub fn new(state_dir: &Path, limit: usize) -> History {
        History {
            dir: state_dir.join("history"),
            limit: limit.max(2),
            lock: Mutex::new(()),
        }
    }

    fn file(&self, job: &str) -> PathBuf {
        self.dir.join(format!("{job}.jsonl"))
    }

    /// Append an entry; rewrite the file when it grew past the limit.
    pub fn append(&self, entry: &Entry) -> std::io::Result<()> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        std::fs::create_dir_all(&self.dir)?;
        let path = self.file(&entry.job);
        let mut line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
        line.push('\n');
        // One write of a whole line with O_APPEND: a crash leaves whole lines or nothing.
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        f.write_all(line.as_bytes())?;
        drop(f);
        let entries = read_file(&path);
        if entries.len() > self.limit {
            let keep = &entries[entries.len() - self.limit / 2..];
            let mut text = String::new();
            for e in keep {
                if let Ok(l) = serde_json::to_string(e) {
                    text.push_str(&l);
                    text.push('\n');
                }
            }
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
            trigger: "schedule".into(),
            scheduled: Some(t),
            start: t,
            end: t,
            status: "ok".into(),
            attempt: i,
            error: None,
            version: "v".into(),
            log_tail: vec![],
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
