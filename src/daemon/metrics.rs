//! Counters and gauges behind `/metrics`, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Local};

use crate::sync::lock;

/// Upper bounds (seconds) of the run duration histogram.
const DURATION_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 10800.0,
];

#[derive(Default, Clone)]
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    runs: BTreeMap<(String, String), u64>,
    skipped: BTreeMap<String, u64>,
    durations: BTreeMap<String, Histogram>,
    last_success: BTreeMap<String, f64>,
    last_run: BTreeMap<String, f64>,
    running: BTreeMap<String, u64>,
    lateness: BTreeMap<String, f64>,
    reload_errors: BTreeMap<String, u64>,
    reloads: BTreeMap<String, u64>,
    config_reload_errors: u64,
}

#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Per-job values computed at scrape time.
pub struct JobGauges {
    pub name: String,
    pub next_fire: Option<DateTime<Local>>,
    pub broken: bool,
}

impl Metrics {
    pub fn run(&self, job: &str, status: &str, secs: f64, end: DateTime<Local>) {
        let mut m = lock(&self.inner);
        *m.runs.entry((job.into(), status.into())).or_default() += 1;
        let h = m.durations.entry(job.into()).or_default();
        if h.buckets.is_empty() {
            h.buckets = vec![0; DURATION_BUCKETS.len()];
        }
        for (i, b) in DURATION_BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
        let ts = end.timestamp_millis() as f64 / 1000.0;
        m.last_run.insert(job.into(), ts);
        if status == "ok" || status == "warning" {
            m.last_success.insert(job.into(), ts);
        }
    }
    pub fn seed_last_success(&self, job: &str, at: DateTime<Local>) {
        lock(&self.inner)
            .last_success
            .insert(job.into(), at.timestamp_millis() as f64 / 1000.0);
    }
    pub fn skipped(&self, job: &str) {
        *lock(&self.inner).skipped.entry(job.into()).or_default() += 1;
    }
    pub fn running(&self, job: &str, n: u64) {
        lock(&self.inner).running.insert(job.into(), n);
    }
    pub fn lateness(&self, job: &str, secs: f64) {
        lock(&self.inner).lateness.insert(job.into(), secs);
    }
    pub fn reload(&self, job: &str, ok: bool) {
        let mut m = lock(&self.inner);
        if ok {
            *m.reloads.entry(job.into()).or_default() += 1;
        } else {
            *m.reload_errors.entry(job.into()).or_default() += 1;
        }
    }
    pub fn config_reload_error(&self) {
        lock(&self.inner).config_reload_errors += 1;
    }

    /// The whole exposition. `jobs` lists the configured jobs so every series exists from start.
    pub fn render(
        &self,
        jobs: &[JobGauges],
        state_dir: &Path,
        config_broken: bool,
        started: DateTime<Local>,
    ) -> String {
        let m = lock(&self.inner);
        let mut o = String::new();
        let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();

        header(
            &mut o,
            "mtn_job_runs_total",
            "counter",
            "Runs (attempts) finished, by job and status.",
        );
        for job in &names {
            for status in ["ok", "warning", "failed", "timeout", "interrupted"] {
                let n = m
                    .runs
                    .get(&(job.to_string(), status.to_string()))
                    .copied()
                    .unwrap_or(0);
                let _ = writeln!(
                    o,
                    "mtn_job_runs_total{{job=\"{}\",status=\"{status}\"}} {n}",
                    esc(job)
                );
            }
        }
        header(
            &mut o,
            "mtn_job_skipped_total",
            "counter",
            "Fire times skipped because the previous run was still going.",
        );
        for job in &names {
            let _ = writeln!(
                o,
                "mtn_job_skipped_total{{job=\"{}\"}} {}",
                esc(job),
                m.skipped.get(*job).copied().unwrap_or(0)
            );
        }
        header(
            &mut o,
            "mtn_job_duration_seconds",
            "histogram",
            "Run duration.",
        );
        for job in &names {
            let h = m.durations.get(*job).cloned().unwrap_or_default();
            for (i, b) in DURATION_BUCKETS.iter().enumerate() {
                let n = h.buckets.get(i).copied().unwrap_or(0);
                let _ = writeln!(
                    o,
                    "mtn_job_duration_seconds_bucket{{job=\"{}\",le=\"{b}\"}} {n}",
                    esc(job)
                );
            }
            let _ = writeln!(
                o,
                "mtn_job_duration_seconds_bucket{{job=\"{}\",le=\"+Inf\"}} {}",
                esc(job),
                h.count
            );
            let _ = writeln!(
                o,
                "mtn_job_duration_seconds_sum{{job=\"{}\"}} {}",
                esc(job),
                h.sum
            );
            let _ = writeln!(
                o,
                "mtn_job_duration_seconds_count{{job=\"{}\"}} {}",
                esc(job),
                h.count
            );
        }
        header(
            &mut o,
            "mtn_job_last_success_timestamp_seconds",
            "gauge",
            "End of the last successful run (Unix time; 0 if none).",
        );
        for job in &names {
            let _ = writeln!(
                o,
                "mtn_job_last_success_timestamp_seconds{{job=\"{}\"}} {}",
                esc(job),
                m.last_success.get(*job).copied().unwrap_or(0.0)
            );
        }
        header(
            &mut o,
            "mtn_job_last_run_timestamp_seconds",
            "gauge",
            "End of the last run whatever its status (Unix time; 0 if none).",
        );
        for job in &names {
            let _ = writeln!(
                o,
                "mtn_job_last_run_timestamp_seconds{{job=\"{}\"}} {}",
                esc(job),
                m.last_run.get(*job).copied().unwrap_or(0.0)
            );
        }
        header(
            &mut o,
            "mtn_job_next_run_timestamp_seconds",
            "gauge",
            "Next scheduled fire time (Unix time).",
        );
        for j in jobs {
            if let Some(n) = j.next_fire {
                let _ = writeln!(
                    o,
                    "mtn_job_next_run_timestamp_seconds{{job=\"{}\"}} {}",
                    esc(&j.name),
                    n.timestamp()
                );
            }
        }
        header(
            &mut o,
            "mtn_job_running",
            "gauge",
            "1 while a run of the job is in progress.",
        );
        for job in &names {
            let _ = writeln!(
                o,
                "mtn_job_running{{job=\"{}\"}} {}",
                esc(job),
                m.running.get(*job).copied().unwrap_or(0)
            );
        }
        header(
            &mut o,
            "mtn_job_schedule_lateness_seconds",
            "gauge",
            "How late the last scheduled run started after its fire time.",
        );
        for job in &names {
            if let Some(l) = m.lateness.get(*job) {
                let _ = writeln!(
                    o,
                    "mtn_job_schedule_lateness_seconds{{job=\"{}\"}} {l}",
                    esc(job)
                );
            }
        }
        header(
            &mut o,
            "mtn_script_reloads_total",
            "counter",
            "Successful recompiles of a job's script after a change.",
        );
        for job in &names {
            let _ = writeln!(
                o,
                "mtn_script_reloads_total{{job=\"{}\"}} {}",
                esc(job),
                m.reloads.get(*job).copied().unwrap_or(0)
            );
        }
        header(
            &mut o,
            "mtn_script_reload_errors_total",
            "counter",
            "Recompiles that failed (the previous version kept running).",
        );
        for job in &names {
            let _ = writeln!(
                o,
                "mtn_script_reload_errors_total{{job=\"{}\"}} {}",
                esc(job),
                m.reload_errors.get(*job).copied().unwrap_or(0)
            );
        }
        header(
            &mut o,
            "mtn_script_broken",
            "gauge",
            "1 while the job's script on disk does not compile.",
        );
        for j in jobs {
            let _ = writeln!(
                o,
                "mtn_script_broken{{job=\"{}\"}} {}",
                esc(&j.name),
                u8::from(j.broken)
            );
        }
        header(
            &mut o,
            "mtn_config_reload_errors_total",
            "counter",
            "Config reloads that failed (the previous config kept).",
        );
        let _ = writeln!(
            o,
            "mtn_config_reload_errors_total {}",
            m.config_reload_errors
        );
        header(
            &mut o,
            "mtn_config_broken",
            "gauge",
            "1 while mtn.toml on disk is invalid.",
        );
        let _ = writeln!(o, "mtn_config_broken {}", u8::from(config_broken));
        if let Some(ts) = last_restore_test(state_dir) {
            header(
                &mut o,
                "mtn_last_restore_test_timestamp_seconds",
                "gauge",
                "When the last restore test succeeded (from last_restore_test.json).",
            );
            let _ = writeln!(o, "mtn_last_restore_test_timestamp_seconds {ts}");
        }
        header(
            &mut o,
            "mtn_daemon_start_time_seconds",
            "gauge",
            "When the daemon started (Unix time).",
        );
        let _ = writeln!(o, "mtn_daemon_start_time_seconds {}", started.timestamp());
        header(&mut o, "mtn_build_info", "gauge", "mtn version.");
        let _ = writeln!(
            o,
            "mtn_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        o
    }
}

fn header(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} {kind}");
}

/// Escape a label value (backslash, quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `timestamp` from `<state_dir>/last_restore_test.json`: Unix seconds, or an RFC 3339 string.
pub fn last_restore_test(state_dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(state_dir.join("last_restore_test.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let ts = v.get("timestamp")?;
    if let Some(n) = ts.as_f64() {
        return Some(n);
    }
    let s = ts.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_test_timestamp_accepts_number_and_rfc3339() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(last_restore_test(dir.path()), None);
        std::fs::write(
            dir.path().join("last_restore_test.json"),
            r#"{"timestamp": 1700000000}"#,
        )
        .unwrap();
        assert_eq!(last_restore_test(dir.path()), Some(1_700_000_000.0));
        std::fs::write(
            dir.path().join("last_restore_test.json"),
            r#"{"timestamp": "2023-11-14T22:13:20Z"}"#,
        )
        .unwrap();
        assert_eq!(last_restore_test(dir.path()), Some(1_700_000_000.0));
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(esc("a\"b\\c"), "a\\\"b\\\\c");
    }
}
