//! Failure streaks that outlive a run: "alert after 3 failures in a row, send one recovery notice".
//!
//! Each key is one small JSON file under `<state_dir>/track/`, written atomically, so a crash or
//! two jobs tracking different keys never corrupt each other. The state dir belongs to mtn (set
//! by the operator, not the script) and key names are encoded to a single file name, so these
//! writes stay inside it without going through the script's write policy.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{HostError, HostResult};
use crate::host::registry::Registrar;
use crate::host_fn;

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Streak {
    /// Failures in a row, 0 after a success.
    pub failures: i64,
    /// An alert was raised for the current streak (so its end is a recovery).
    pub alerted: bool,
    /// When the current streak of failures began (RFC 3339).
    pub since: Option<String>,
    /// When the last success was recorded.
    pub last_ok: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackOptions {
    /// Failures in a row before `alert` is true (default 3).
    pub after: i64,
    /// Once down, raise `alert` again every N further failures (default 0: alert once).
    pub repeat: i64,
}

impl Default for TrackOptions {
    fn default() -> Self {
        TrackOptions {
            after: 3,
            repeat: 0,
        }
    }
}

#[derive(Debug, Serialize, PartialEq)]
pub struct TrackReport {
    pub key: String,
    pub ok: bool,
    /// Failures in a row, this one included (0 when `ok`).
    pub failures: i64,
    /// Send the alert now: the streak just reached `after` (or a `repeat` interval).
    pub alert: bool,
    /// The streak is at or past `after` and an alert was raised for it.
    pub down: bool,
    /// Send the recovery notice now: first success after an alerted streak.
    pub recovered: bool,
    /// When the current (or just ended) failure streak began.
    pub since: Option<String>,
    pub dry_run: bool,
}

/// Apply one observation to a streak. Pure, so the rules are testable on their own.
pub fn step(prev: &Streak, ok: bool, o: &TrackOptions, now: &str) -> (Streak, bool, bool) {
    if ok {
        let recovered = prev.alerted;
        let next = Streak {
            failures: 0,
            alerted: false,
            since: None,
            last_ok: Some(now.to_string()),
        };
        return (next, false, recovered);
    }
    let failures = prev.failures.saturating_add(1);
    let after = o.after.max(1);
    let alert = failures == after
        || (o.repeat > 0 && failures > after && (failures - after) % o.repeat == 0);
    let next = Streak {
        failures,
        alerted: prev.alerted || failures >= after,
        since: prev.since.clone().or_else(|| Some(now.to_string())),
        last_ok: prev.last_ok.clone(),
    };
    (next, alert, false)
}

/// File name for a key: safe characters kept, anything else %-encoded, so two keys never share
/// a file and a key can never name a path outside the folder.
fn file_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 5);
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && !out.is_empty()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(".json");
    out
}

fn validate_key(key: &str) -> HostResult<()> {
    if key.trim().is_empty() {
        return Err(HostError::invalid(
            "empty state key: name what you track, e.g. \"web-health\"",
        ));
    }
    if key.len() > 200 {
        return Err(HostError::invalid(format!(
            "state key too long ({} bytes, at most 200)",
            key.len()
        )));
    }
    Ok(())
}

pub fn path_for(state_dir: &Path, key: &str) -> PathBuf {
    state_dir.join("track").join(file_name(key))
}

pub fn load(state_dir: &Path, key: &str) -> HostResult<Streak> {
    let path = path_for(state_dir, key);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            HostError::new(
                crate::error::ErrorKind::Io,
                format!(
                    "state file {} is corrupt ({e}); delete it to start the streak afresh",
                    path.display()
                ),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Streak::default()),
        Err(e) => Err(HostError::io(format!("reading {}", path.display()), &e)),
    }
}

pub fn save(state_dir: &Path, key: &str, s: &Streak) -> HostResult<()> {
    let path = path_for(state_dir, key);
    if let Some(dir) = path.parent() {
        crate::atomic::create_private_dirs(dir)
            .map_err(|e| HostError::io(format!("creating {}", dir.display()), &e))?;
    }
    let data = serde_json::to_vec_pretty(s)
        .map_err(|e| HostError::other(format!("encoding state: {e}")))?;
    crate::atomic::write_atomic(&path, &data)
        .map_err(|e| HostError::io(format!("writing {}", path.display()), &e))
}

pub fn track(
    state_dir: &Path,
    key: &str,
    ok: bool,
    o: &TrackOptions,
    dry_run: bool,
) -> HostResult<TrackReport> {
    validate_key(key)?;
    if o.after < 1 || o.repeat < 0 {
        return Err(HostError::invalid(
            "`after` must be at least 1 and `repeat` at least 0",
        ));
    }
    let prev = load(state_dir, key)?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (next, alert, recovered) = step(&prev, ok, o, &now);
    if !dry_run {
        save(state_dir, key, &next)?;
    }
    Ok(TrackReport {
        key: key.to_string(),
        ok,
        failures: next.failures,
        alert,
        down: next.alerted,
        recovered,
        since: if ok { prev.since } else { next.since },
        dry_run,
    })
}

pub fn register(r: &mut Registrar) {
    r.category("state");
    let doc = (
        "Record a check outcome under `key` (persisted in the state directory): `#{ failures, alert, down, recovered, since }`.\n\n`alert` is true once, on the 3rd failure in a row; `recovered` is true once, on the first success after an alert. A dry run reads the state but does not save it.\n\n```rhai\nlet r = http_check(\"https://example.com/health\");\nlet t = track(\"example-health\", r.ok);\nif t.alert { log(\"error\", `down since ${t.since}: ${r.error}`); }\nif t.recovered { log(\"back up\"); }\n```",
        "Record a check outcome with options: `after` (failures in a row before alerting, default 3), `repeat` (alert again every N further failures, default 0 = once).\n\n```rhai\nlet t = track(\"db-port\", tcp_check(\"127.0.0.1\", 5432).ok, #{ after: 2, repeat: 12 });\n```",
    );
    host_fn!(r, "track", doc, |ctx, key: &str, ok: bool; opts: TrackOptions| -> "Map" {
        track(&ctx.state_dir, key, ok, &opts, ctx.dry_run)
    });
    // Recording and reading are different calls under one name: two definitions.
    host_fn!(r, "consecutive_failures", "Record an outcome under `key` and return the number of failures in a row (0 after a success). Shares its state with `track`.\n\n```rhai\nif consecutive_failures(\"backup-upload\", true) >= 3 { warn(\"3 failures in a row\"); }\n```", |ctx, key: &str, ok: bool| -> "i64" {
        track(&ctx.state_dir, key, ok, &TrackOptions::default(), ctx.dry_run).map(|r| r.failures)
    });
    host_fn!(r, "consecutive_failures", "The current number of failures in a row recorded under `key`, without recording anything.\n\n```rhai\nlet n = consecutive_failures(\"backup-upload\");\n```", |ctx, key: &str| -> "i64" {
        validate_key(key)?;
        load(&ctx.state_dir, key).map(|s| s.failures)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_once_then_recover_once() {
        let o = TrackOptions::default();
        let mut s = Streak::default();
        let mut seen = Vec::new();
        for ok in [false, false, false, false, true, true, false] {
            let (next, alert, recovered) = step(&s, ok, &o, "t");
            seen.push((next.failures, alert, recovered));
            s = next;
        }
        assert_eq!(
            seen,
            vec![
                (1, false, false),
                (2, false, false),
                (3, true, false),
                (4, false, false),
                (0, false, true),
                (0, false, false),
                (1, false, false)
            ]
        );
    }

    #[test]
    fn repeat_and_short_outage() {
        let o = TrackOptions {
            after: 2,
            repeat: 3,
        };
        let mut s = Streak::default();
        let mut alerts = Vec::new();
        for _ in 0..8 {
            let (next, alert, _) = step(&s, false, &o, "t");
            if alert {
                alerts.push(next.failures);
            }
            s = next;
        }
        assert_eq!(alerts, vec![2, 5, 8]);
        // A failure that never reached the threshold ends without a recovery notice.
        let (s1, _, _) = step(&Streak::default(), false, &o, "t");
        let (_, _, recovered) = step(&s1, true, &o, "t");
        assert!(!recovered);
    }

    #[test]
    fn persisted_and_key_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let o = TrackOptions::default();
        for _ in 0..2 {
            track(dir.path(), "../web/health", false, &o, false).unwrap();
        }
        let r = track(dir.path(), "../web/health", false, &o, false).unwrap();
        assert!(r.alert && r.down && r.failures == 3);
        assert!(path_for(dir.path(), "../web/health").starts_with(dir.path().join("track")));
        assert_eq!(file_name("../a b"), "%2E.%2Fa%20b.json");
        // Dry run reads but does not save.
        let d = track(dir.path(), "../web/health", true, &o, true).unwrap();
        assert!(d.recovered);
        assert_eq!(load(dir.path(), "../web/health").unwrap().failures, 3);
    }
}
