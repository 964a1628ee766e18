//! When a log is due: logrotate's own conditions (`findNeedRotating` in logrotate.c) and its
//! state file, so a script run every hour rotates a `daily` log once a day.
//!
//! The state is one JSON file, `<state_dir>/rotate/state.json`: log path → local time of its
//! last rotation. As in logrotate, a log seen for the first time is recorded, not rotated: the
//! interval counts from that run. The file is read at the start of a call and merged back under
//! an exclusive lock at its end, so two jobs rotating different logs never lose each other's
//! entries.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, FixedOffset, Local, NaiveDate, Timelike};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, HostError, HostResult};

/// logrotate's time criteria. `None` = no interval: the call itself is the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hourly,
    Daily,
    /// logrotate `weekly` with its default weekday 0 (Sunday).
    Weekly,
    Monthly,
    Yearly,
}

impl Interval {
    pub fn name(self) -> &'static str {
        match self {
            Interval::Hourly => "hourly",
            Interval::Daily => "daily",
            Interval::Weekly => "weekly",
            Interval::Monthly => "monthly",
            Interval::Yearly => "yearly",
        }
    }
}

/// Everything `due` looks at besides the clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions {
    pub interval: Option<Interval>,
    pub force: bool,
    /// logrotate `size`: its own criterion (rotate when at least this big, whatever the time).
    pub size: Option<u64>,
    /// logrotate `minsize`: the interval has passed *and* the log is at least this big.
    pub min_size: Option<u64>,
    /// logrotate `maxsize`: bigger than this rotates even before the interval has passed.
    pub max_size: Option<u64>,
    pub notifempty: bool,
}

/// Is a log of `len` bytes due now? `Err` carries the reason it is not, for the report.
/// `last` is the previous rotation from the state file (`None`: first seen, which logrotate
/// records without rotating).
pub fn due(
    c: &Conditions,
    len: u64,
    last: Option<DateTime<FixedOffset>>,
    now: DateTime<Local>,
) -> Result<(), String> {
    let r = due_before_notifempty(c, len, last, now);
    // logrotate: "The notifempty flag overrides the normal criteria", -f included.
    if r.is_ok() && c.notifempty && len == 0 {
        return Err("empty (notifempty)".into());
    }
    r
}

fn due_before_notifempty(
    c: &Conditions,
    len: u64,
    last: Option<DateTime<FixedOffset>>,
    now: DateTime<Local>,
) -> Result<(), String> {
    if c.force {
        return Ok(());
    }
    if let Some(max) = c.max_size {
        if len > max {
            return Ok(());
        }
    }
    let Some(interval) = c.interval else {
        // No time criterion: `size` (or, as mtn always allowed, `min_size`) alone decides.
        for (label, lim) in [("size", c.size), ("min_size", c.min_size)] {
            if let Some(l) = lim {
                if len < l {
                    return Err(format!("{len} bytes, below {label} {l}"));
                }
            }
        }
        return Ok(());
    };
    let Some(last) = last else {
        return Err(format!(
            "first seen: {} rotation counts from now (as logrotate records a new log)",
            interval.name()
        ));
    };
    let last = last.with_timezone(&Local);
    // 25 hours allow for DST changes and moves between time zones (logrotate's margin).
    if (last - now).num_seconds() > 25 * 3600 {
        tracing::warn!(target: "mtn::rotate", "last rotated in the future ({last}): rotation forced");
        return Ok(());
    }
    let same_minute = (
        last.year(),
        last.month(),
        last.day(),
        last.hour(),
        last.minute(),
    ) == (now.year(), now.month(), now.day(), now.hour(), now.minute());
    if same_minute {
        return Err("already rotated (this minute)".into());
    }
    let ok = match interval {
        Interval::Hourly => (last.date_naive(), last.hour()) != (now.date_naive(), now.hour()),
        Interval::Daily => last.date_naive() != now.date_naive(),
        Interval::Weekly => {
            let days = days_elapsed(now.date_naive(), last.date_naive());
            days >= 7 || (days >= 1 && now.weekday().num_days_from_sunday() == 0)
        }
        Interval::Monthly => (last.year(), last.month()) != (now.year(), now.month()),
        Interval::Yearly => last.year() != now.year(),
    };
    if !ok {
        return Err(format!(
            "last rotated {}: not yet {}",
            last.format("%Y-%m-%d %H:%M"),
            interval.name()
        ));
    }
    if let Some(min) = c.min_size {
        if len < min {
            return Err(format!("{len} bytes, below min_size {min}"));
        }
    }
    Ok(())
}

/// Calendar days between two dates, the time of day ignored (logrotate's `daysElapsed`).
fn days_elapsed(now: NaiveDate, last: NaiveDate) -> i64 {
    (now - last).num_days()
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    /// Absolute log path → last rotation (RFC 3339, local offset).
    logs: BTreeMap<String, String>,
}

/// The rotation state of one call: what was read, and what this call changed.
pub struct State {
    path: PathBuf,
    read: BTreeMap<String, String>,
    changed: BTreeMap<String, String>,
}

impl State {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("rotate").join("state.json")
    }

    pub fn load(state_dir: &Path) -> HostResult<State> {
        let path = Self::path(state_dir);
        let read = read_file(&path)?.logs;
        Ok(State {
            path,
            read,
            changed: BTreeMap::new(),
        })
    }

    pub fn last(&self, log: &Path) -> Option<DateTime<FixedOffset>> {
        let key = log.display().to_string();
        let v = self.changed.get(&key).or_else(|| self.read.get(&key))?;
        DateTime::parse_from_rfc3339(v).ok()
    }

    pub fn set(&mut self, log: &Path, when: DateTime<Local>) {
        self.changed.insert(
            log.display().to_string(),
            when.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        );
    }

    /// Merge this call's entries into the file as it is now (another job may have written it
    /// since it was read), under an exclusive lock.
    pub fn save(&self) -> HostResult<()> {
        if self.changed.is_empty() {
            return Ok(());
        }
        let err = |what: &str, p: &Path, e: io::Error| {
            HostError::io(format!("{what} {}", p.display()), &e)
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        crate::atomic::create_private_dirs(dir).map_err(|e| err("creating", dir, e))?;
        let lock_path = dir.join("state.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| err("opening", &lock_path, e))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor we own; released when `lock` is closed.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(err("locking", &lock_path, io::Error::last_os_error()));
        }
        let mut now = read_file(&self.path)?;
        now.logs.extend(self.changed.clone());
        let data = serde_json::to_vec_pretty(&now)
            .map_err(|e| HostError::other(format!("encoding rotation state: {e}")))?;
        crate::atomic::write_atomic(&self.path, &data).map_err(|e| err("writing", &self.path, e))
    }
}

fn read_file(path: &Path) -> HostResult<StateFile> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            HostError::new(
                ErrorKind::Io,
                format!(
                    "rotation state {} is corrupt ({e}); delete it (logs with daily/weekly/... are then recorded afresh)",
                    path.display()
                ),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(StateFile::default()),
        Err(e) => Err(HostError::io(format!("reading {}", path.display()), &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Local> {
        Local
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .earliest()
            .expect("valid local time")
    }

    fn c(interval: Interval) -> Conditions {
        Conditions {
            interval: Some(interval),
            ..Default::default()
        }
    }

    #[test]
    fn daily_once_a_day_whatever_the_hour() {
        let last = at(2026, 11, 28, 23, 50).fixed_offset();
        assert!(due(&c(Interval::Daily), 5, Some(last), at(2026, 11, 28, 23, 59)).is_err());
        // Ten minutes later, but another date: due (logrotate compares dates, not 24 h).
        assert!(due(&c(Interval::Daily), 5, Some(last), at(2026, 11, 29, 0, 0)).is_ok());
        // First seen: recorded, not rotated.
        assert!(due(&c(Interval::Daily), 5, None, at(2026, 11, 29, 0, 0)).is_err());
    }

    #[test]
    fn weekly_on_sunday_or_after_seven_days() {
        // 2026-11-29 is a Sunday.
        let sat = at(2026, 11, 28, 12, 0).fixed_offset();
        assert!(due(&c(Interval::Weekly), 5, Some(sat), at(2026, 11, 29, 1, 0)).is_ok());
        let mon = at(2026, 11, 23, 12, 0).fixed_offset();
        assert!(due(&c(Interval::Weekly), 5, Some(mon), at(2026, 11, 28, 12, 0)).is_err());
        assert!(due(&c(Interval::Weekly), 5, Some(mon), at(2026, 11, 30, 0, 1)).is_ok());
    }

    #[test]
    fn monthly_yearly_hourly() {
        let last = at(2026, 10, 31, 23, 0).fixed_offset();
        assert!(due(&c(Interval::Monthly), 5, Some(last), at(2026, 11, 1, 0, 0)).is_ok());
        assert!(due(
            &c(Interval::Monthly),
            5,
            Some(last),
            at(2026, 10, 31, 23, 30)
        )
        .is_err());
        assert!(due(&c(Interval::Yearly), 5, Some(last), at(2026, 12, 31, 0, 0)).is_err());
        assert!(due(
            &c(Interval::Hourly),
            5,
            Some(last),
            at(2026, 10, 31, 23, 59)
        )
        .is_err());
        assert!(due(&c(Interval::Hourly), 5, Some(last), at(2026, 11, 1, 0, 0)).is_ok());
    }

    #[test]
    fn sizes_as_logrotate() {
        let last = at(2026, 11, 28, 12, 0).fixed_offset();
        let now = at(2026, 11, 29, 12, 0);
        let mut k = c(Interval::Daily);
        k.min_size = Some(100);
        assert!(due(&k, 99, Some(last), now).is_err());
        assert!(due(&k, 100, Some(last), now).is_ok());
        // maxsize rotates within the interval.
        let mut k = c(Interval::Daily);
        k.max_size = Some(10);
        assert!(due(&k, 11, Some(now.fixed_offset()), now).is_ok());
        // size alone: no time criterion.
        let k = Conditions {
            size: Some(10),
            ..Default::default()
        };
        assert!(due(&k, 9, None, now).is_err());
        assert!(due(&k, 10, None, now).is_ok());
        // notifempty beats force.
        let k = Conditions {
            force: true,
            notifempty: true,
            ..Default::default()
        };
        assert!(due(&k, 0, None, now).is_err());
    }

    #[test]
    fn future_state_forces_rotation() {
        let now = at(2026, 11, 29, 12, 0);
        let future = at(2026, 12, 5, 12, 0).fixed_offset();
        assert!(due(&c(Interval::Monthly), 5, Some(future), now).is_ok());
    }

    #[test]
    fn state_round_trip_and_merge() {
        let d = std::env::temp_dir().join(format!("mtn-rot-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let now = at(2026, 11, 29, 12, 0);
        let mut a = State::load(&d).expect("load");
        let mut b = State::load(&d).expect("load");
        a.set(Path::new("/l/a.log"), now);
        b.set(Path::new("/l/b.log"), now);
        a.save().expect("save a");
        b.save().expect("save b");
        let c = State::load(&d).expect("load");
        assert_eq!(c.last(Path::new("/l/a.log")), Some(now.fixed_offset()));
        assert_eq!(c.last(Path::new("/l/b.log")), Some(now.fixed_offset()));
        let _ = std::fs::remove_dir_all(&d);
    }
}
