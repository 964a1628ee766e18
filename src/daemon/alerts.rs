//! Alerts on transitions: a job's `on_failure` target hears when the job starts failing, once
//! when it recovers, and (with `notify_every`) again while it keeps failing — not on every
//! failed run. The state is one small JSON file per job, `<state_dir>/alerts/<job>.json`,
//! written atomically, so a restart neither repeats an alert nor forgets a recovery is due.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Local};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    /// The job's last finished run (after retries) failed.
    pub failing: bool,
    /// When the current failure streak began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Local>>,
    /// Failed runs in the current streak.
    #[serde(default)]
    pub failures: u32,
    /// When an alert about this streak was last delivered (None: not yet, e.g. the target was down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerted: Option<DateTime<Local>>,
}

/// What to tell the `on_failure` target after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    /// The job started failing (or an earlier alert of this streak was never delivered).
    Failed,
    /// Still failing and `notify_every` has passed since the last alert.
    StillFailing,
    /// The first good run after an alerted failure.
    Recovered,
}

impl Alert {
    /// The `event` field of the webhook body.
    pub fn event(self) -> &'static str {
        match self {
            Alert::Failed => "job_failed",
            Alert::StillFailing => "job_still_failing",
            Alert::Recovered => "job_recovered",
        }
    }
}

impl AlertState {
    /// Record a run's outcome (`failed`: failed or timed out after its retries) and say which
    /// alert, if any, is due. `delivered` must be called when the alert went out.
    pub fn record(
        &mut self,
        failed: bool,
        at: DateTime<Local>,
        every: Option<Duration>,
    ) -> Option<Alert> {
        if !failed {
            let was_alerted = self.failing && self.alerted.is_some();
            *self = AlertState::default();
            return was_alerted.then_some(Alert::Recovered);
        }
        if !self.failing {
            self.failing = true;
            self.since = Some(at);
            self.failures = 0;
            self.alerted = None;
        }
        self.failures = self.failures.saturating_add(1);
        match (self.alerted, every) {
            (None, _) => Some(Alert::Failed),
            (Some(last), Some(every))
                if (at - last).to_std().unwrap_or_default() >= every && !every.is_zero() =>
            {
                Some(Alert::StillFailing)
            }
            _ => None,
        }
    }

    pub fn delivered(&mut self, alert: Alert, at: DateTime<Local>) {
        if alert != Alert::Recovered {
            self.alerted = Some(at);
        }
    }
}

fn path(state_dir: &Path, job: &str) -> PathBuf {
    state_dir.join("alerts").join(format!("{job}.json"))
}

/// The saved state (default when there is none or it does not parse).
pub fn load(state_dir: &Path, job: &str) -> AlertState {
    std::fs::read(path(state_dir, job))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn save(state_dir: &Path, job: &str, s: &AlertState) -> std::io::Result<()> {
    let p = path(state_dir, job);
    if let Some(dir) = p.parent() {
        crate::atomic::create_private_dirs(dir)?;
    }
    let body = serde_json::to_vec(s).map_err(std::io::Error::other)?;
    crate::atomic::write_atomic(&p, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(mins: i64) -> DateTime<Local> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Local)
            + chrono::Duration::minutes(mins)
    }

    #[test]
    fn alerts_only_on_transitions() {
        let mut s = AlertState::default();
        assert_eq!(s.record(false, t(0), None), None);
        assert_eq!(s.record(true, t(1), None), Some(Alert::Failed));
        s.delivered(Alert::Failed, t(1));
        for i in 2..10 {
            assert_eq!(s.record(true, t(i), None), None, "run {i}");
        }
        assert_eq!(s.failures, 9);
        assert_eq!(s.record(false, t(11), None), Some(Alert::Recovered));
        assert_eq!(s.record(false, t(12), None), None);
        assert_eq!(s, AlertState::default());
    }

    #[test]
    fn notify_every_repeats_and_undelivered_alerts_retry() {
        let every = Some(Duration::from_secs(6 * 3600));
        let mut s = AlertState::default();
        assert_eq!(s.record(true, t(0), every), Some(Alert::Failed));
        // The target was down: the next failure tries again.
        assert_eq!(s.record(true, t(5), every), Some(Alert::Failed));
        s.delivered(Alert::Failed, t(5));
        assert_eq!(s.record(true, t(60), every), None);
        assert_eq!(
            s.record(true, t(5 + 6 * 60), every),
            Some(Alert::StillFailing)
        );
        s.delivered(Alert::StillFailing, t(5 + 6 * 60));
        assert_eq!(s.record(true, t(6 * 60 + 30), every), None);
        // A failure never alerted recovers silently.
        let mut q = AlertState::default();
        q.record(true, t(0), None);
        assert_eq!(q.record(false, t(1), None), None);
    }

    #[test]
    fn state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = AlertState::default();
        s.record(true, t(0), None);
        s.delivered(Alert::Failed, t(0));
        save(dir.path(), "nightly", &s).unwrap();
        let mut back = load(dir.path(), "nightly");
        assert_eq!(back, s);
        assert_eq!(back.record(true, t(1), None), None);
    }
}
