//! `retention`: one restic-style GFS planner for a local folder and a remote prefix alike.
//!
//! [`plan`] is a pure function of (backups with their times, policy, now): listing and deleting
//! live around it, so a local folder and an S3 prefix holding the same names get the same plan.
//! Safety floors on top of restic's rules: the newest N are never deleted, a plan deleting more
//! than `max_delete_percent` is refused, and so is any plan when the newest backup is older than
//! `require_fresh` (backups are failing; the old ones are all that is left).

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{HostError, HostResult};

mod calendar;
pub use calendar::CalendarDuration;

/// The keep rules and the safety floors. Counts: a number, or -1 for "unlimited".
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub keep_last: Option<i64>,
    pub keep_hourly: Option<i64>,
    pub keep_daily: Option<i64>,
    pub keep_weekly: Option<i64>,
    pub keep_monthly: Option<i64>,
    pub keep_yearly: Option<i64>,
    /// Keep everything strictly newer than (newest − this), in restic's `1y6m7d3h` syntax.
    pub keep_within: Option<CalendarDuration>,
    /// Keep the newest backup of each hour/day/... inside the window (restic's `--keep-within-*`).
    pub keep_within_hourly: Option<CalendarDuration>,
    pub keep_within_daily: Option<CalendarDuration>,
    pub keep_within_weekly: Option<CalendarDuration>,
    pub keep_within_monthly: Option<CalendarDuration>,
    pub keep_within_yearly: Option<CalendarDuration>,
    /// Never delete the newest N backups (default 1).
    pub keep_newest: Option<usize>,
    /// Refuse a plan that deletes more than this percentage of the backups (default 50).
    pub max_delete_percent: Option<f64>,
    /// Refuse when the newest backup is older than this ("2d").
    #[serde(with = "crate::host::binding::serde_duration::option")]
    pub require_fresh: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub name: String,
    pub time: NaiveDateTime,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Kept {
    pub name: String,
    pub time: String,
    /// Every rule that keeps it ("keep_daily 2026-03-01", "keep_newest (safety floor)").
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Deleted {
    pub name: String,
    pub time: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Plan {
    /// Newest first.
    pub kept: Vec<Kept>,
    /// Newest first; when `refused` is set these are what would have been deleted.
    pub deleted: Vec<Deleted>,
    pub refused: Option<String>,
}

/// A bucket of a backup: its position for keep_last (every backup is its own bucket), its
/// hour, day, ISO week, month or year for the others.
type BucketFn = fn(&NaiveDateTime, usize) -> String;

const BUCKETS: [(&str, BucketFn); 6] = [
    ("last", |_, nr| format!("#{nr}")),
    ("hourly", |t, _| t.format("%Y-%m-%d %Hh").to_string()),
    ("daily", |t, _| t.format("%Y-%m-%d").to_string()),
    ("weekly", |t, _| t.format("%G-W%V").to_string()),
    ("monthly", |t, _| t.format("%Y-%m").to_string()),
    ("yearly", |t, _| t.format("%Y").to_string()),
];

/// One bucket rule: a count (`keep_daily: 7`) or a window (`keep_within_daily: "1m"`).
struct Rule {
    key: String,
    bucket: BucketFn,
    limit: Limit,
    /// The bucket of the last backup this rule kept.
    last: Option<String>,
    /// Every bucket this rule kept a backup of.
    kept: HashSet<String>,
}

enum Limit {
    /// Backups left to keep; -1 = unlimited.
    Count(i64),
    Within(CalendarDuration, Option<NaiveDateTime>),
}

impl Policy {
    /// The count rules by key, in [`BUCKETS`] order (keep_last, keep_hourly, ..., keep_yearly).
    pub fn counts(&self) -> [(&'static str, Option<i64>); 6] {
        [
            ("keep_last", self.keep_last),
            ("keep_hourly", self.keep_hourly),
            ("keep_daily", self.keep_daily),
            ("keep_weekly", self.keep_weekly),
            ("keep_monthly", self.keep_monthly),
            ("keep_yearly", self.keep_yearly),
        ]
    }

    /// The window rules by key: keep_within, then keep_within_hourly ... _yearly ([`BUCKETS`]
    /// order, keep_within standing where "last" stands).
    pub fn windows(&self) -> [(&'static str, Option<CalendarDuration>); 6] {
        [
            ("keep_within", self.keep_within),
            ("keep_within_hourly", self.keep_within_hourly),
            ("keep_within_daily", self.keep_within_daily),
            ("keep_within_weekly", self.keep_within_weekly),
            ("keep_within_monthly", self.keep_within_monthly),
            ("keep_within_yearly", self.keep_within_yearly),
        ]
    }
}

fn rules(p: &Policy, latest: Option<NaiveDateTime>) -> Vec<Rule> {
    let counts = p.counts();
    // keep_within is not a bucket rule (it is applied on its own in `plan`).
    let windows = p
        .windows()
        .map(|(k, w)| (k, w.filter(|_| k != "keep_within")));
    let mut out = Vec::new();
    for (i, (name, bucket)) in BUCKETS.into_iter().enumerate() {
        if let Some(c) = counts[i].1.filter(|c| *c != 0) {
            out.push(Rule {
                key: format!("keep_{name}"),
                bucket,
                limit: Limit::Count(c),
                last: None,
                kept: HashSet::new(),
            });
        }
    }
    for (i, (name, bucket)) in BUCKETS.into_iter().enumerate() {
        if let Some(d) = windows[i].1.filter(|d| !d.is_zero()) {
            out.push(Rule {
                key: format!("keep_within_{name}"),
                bucket,
                limit: Limit::Within(d, latest.and_then(|l| d.before(l))),
                last: None,
                kept: HashSet::new(),
            });
        }
    }
    out
}

fn fmt_time(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn fmt_dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Inside a window that starts after `cut` (`None`: the window reaches before the calendar).
fn inside(t: &NaiveDateTime, cut: Option<NaiveDateTime>) -> bool {
    cut.is_none_or(|c| *t > c)
}

/// Check a policy before listing anything.
pub fn validate(p: &Policy) -> HostResult<()> {
    let counts = p.counts();
    for (name, c) in counts {
        if let Some(c) = c {
            if c < -1 {
                return Err(HostError::invalid(format!(
                    "{name} = {c}: use a count, or -1 for unlimited"
                )));
            }
        }
    }
    if counts.iter().all(|(_, c)| c.unwrap_or(0) == 0)
        && p.windows()
            .iter()
            .all(|(_, w)| w.is_none_or(|w| w.is_zero()))
    {
        return Err(HostError::invalid(
            "the policy has no keep rule (keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within, keep_within_hourly/daily/weekly/monthly/yearly); refusing to plan a deletion of everything",
        ));
    }
    if let Some(pct) = p.max_delete_percent {
        if !(0.0..=100.0).contains(&pct) {
            return Err(HostError::invalid(format!(
                "max_delete_percent = {pct}: use a percentage between 0 and 100"
            )));
        }
    }
    Ok(())
}

/// The plan: which backups to keep (and by which rules) and which to delete (and why).
///
/// restic's `ApplyPolicy` (≥ 0.16), rule for rule: newest first, a count rule keeps the first
/// backup of each new bucket until its count is used up, and also keeps the oldest backup
/// while counts are left (so a young repository keeps its first backup); windows are measured
/// from the newest backup that is not in the future and keep what is strictly newer than
/// (newest − window). Then the safety floors.
pub fn plan(backups: &[Backup], p: &Policy, now: NaiveDateTime) -> HostResult<Plan> {
    validate(p)?;
    // A backup dated in the future (a host with a wrong clock, or a file named to game the
    // rules: `db_2099-01-01.sql.gz`) must not take a keep slot nor count as fresh, or real
    // backups would be deleted to make room for it. It is kept, outside the rules, and said so.
    // A small allowance covers clocks a little apart.
    let skew = now + chrono::Duration::minutes(FUTURE_SKEW_MINUTES);
    let (future, present): (Vec<&Backup>, Vec<&Backup>) =
        backups.iter().partition(|b| b.time > skew);
    let present: Vec<Backup> = present.into_iter().cloned().collect();
    let mut out = plan_present(&present, p, now)?;
    let mut ahead: Vec<Kept> = future
        .iter()
        .map(|b| {
            tracing::warn!(target: "mtn::retention", "{} is dated {} (in the future): kept, and not counted by any keep rule", b.name, fmt_time(&b.time));
            Kept {
                name: b.name.clone(),
                time: fmt_time(&b.time),
                reasons: vec![format!(
                    "dated in the future (more than {FUTURE_SKEW_MINUTES} min ahead): kept, not counted by any rule nor by require_fresh; check the clock of the host that wrote it"
                )],
            }
        })
        .collect();
    ahead.sort_by(|a, b| b.time.cmp(&a.time));
    ahead.append(&mut out.kept);
    out.kept = ahead;
    Ok(out)
}

/// Clock difference tolerated before a backup counts as dated in the future.
const FUTURE_SKEW_MINUTES: i64 = 5;

/// [`plan`] on backups that are not in the future.
fn plan_present(backups: &[Backup], p: &Policy, now: NaiveDateTime) -> HostResult<Plan> {
    let mut sorted: Vec<&Backup> = backups.iter().collect();
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.name.cmp(&a.name)));
    let n = sorted.len();
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); n];

    let newest_n = p.keep_newest.unwrap_or(1);
    for r in reasons.iter_mut().take(newest_n) {
        r.push(format!("keep_newest {newest_n} (safety floor)"));
    }
    // restic measures windows from the newest backup that is not in the future.
    let latest = sorted.iter().map(|b| b.time).find(|t| *t <= now);
    let within = p
        .keep_within
        .filter(|d| !d.is_zero())
        .map(|d| (d, latest.and_then(|l| d.before(l))));
    let mut rules = rules(p, latest);
    for (nr, b) in sorted.iter().enumerate() {
        if let Some((d, cut)) = within {
            if inside(&b.time, cut) {
                reasons[nr].push(format!("keep_within {d}"));
            }
        }
        let oldest = nr + 1 == n;
        for rule in rules.iter_mut() {
            let open = match rule.limit {
                Limit::Count(c) => c != 0,
                Limit::Within(_, cut) => inside(&b.time, cut),
            };
            if !open {
                continue;
            }
            let key = (rule.bucket)(&b.time, nr);
            let repeat = rule.last.as_ref() == Some(&key);
            if repeat && !oldest {
                continue;
            }
            let label = match rule.limit {
                Limit::Count(c) if rule.key == "keep_last" => format!("keep_last {c}"),
                Limit::Count(_) => format!("{} {key}", rule.key),
                Limit::Within(d, _) => format!("{} {d} {key}", rule.key),
            };
            reasons[nr].push(if repeat {
                format!("{label} (the oldest backup, kept while the rule has room left)")
            } else {
                label
            });
            if let Limit::Count(c) = &mut rule.limit {
                if *c > 0 {
                    *c -= 1;
                }
            }
            rule.kept.insert(key.clone());
            rule.last = Some(key);
        }
    }

    let mut kept = Vec::new();
    let mut deleted = Vec::new();
    for (nr, b) in sorted.iter().enumerate() {
        if !reasons[nr].is_empty() {
            kept.push(Kept {
                name: b.name.clone(),
                time: fmt_time(&b.time),
                reasons: std::mem::take(&mut reasons[nr]),
            });
            continue;
        }
        let mut why = Vec::new();
        if let Some((d, _)) = within {
            why.push(format!("not within keep_within {d} of the newest"));
        }
        for rule in &rules {
            let key = (rule.bucket)(&b.time, nr);
            why.push(match rule.limit {
                Limit::Count(_) if rule.key == "keep_last" => {
                    format!("beyond keep_last {}", p.keep_last.unwrap_or(0))
                }
                Limit::Within(d, cut) if !inside(&b.time, cut) => {
                    format!("{}: older than {d} before the newest", rule.key)
                }
                _ if rule.kept.contains(&key) => {
                    format!("{}: {key} is kept by a newer backup", rule.key)
                }
                _ => format!("{}: all {} kept", rule.key, count_of(p, &rule.key)),
            });
        }
        deleted.push(Deleted {
            name: b.name.clone(),
            time: fmt_time(&b.time),
            reason: why.join("; "),
        });
    }

    let refused = floors(p, &sorted, deleted.len(), now);
    Ok(Plan {
        kept,
        deleted,
        refused,
    })
}

fn count_of(p: &Policy, key: &str) -> i64 {
    match key {
        "keep_hourly" => p.keep_hourly,
        "keep_daily" => p.keep_daily,
        "keep_weekly" => p.keep_weekly,
        "keep_monthly" => p.keep_monthly,
        "keep_yearly" => p.keep_yearly,
        _ => None,
    }
    .unwrap_or(0)
}

/// The safety floors on top of restic's rules: a reason to refuse the whole plan, if any.
fn floors(p: &Policy, sorted: &[&Backup], deleting: usize, now: NaiveDateTime) -> Option<String> {
    let n = sorted.len();
    if let Some(fresh) = p.require_fresh {
        let limit = chrono::Duration::from_std(fresh)
            .ok()
            .and_then(|d| now.checked_sub_signed(d));
        match (sorted.first(), limit) {
            (None, _) => {
                return Some(format!(
                    "no backups found, but require_fresh {} asks for a recent one",
                    fmt_dur(fresh)
                ))
            }
            (Some(newest), Some(limit)) if newest.time < limit => {
                return Some(format!(
                    "the newest backup {} is from {}, older than require_fresh {}: backups seem to be failing, so the old ones are kept",
                    newest.name,
                    fmt_time(&newest.time),
                    fmt_dur(fresh)
                ))
            }
            _ => {}
        }
    }
    let pct = p.max_delete_percent.unwrap_or(50.0);
    if n > 0 && (deleting as f64) * 100.0 > pct * n as f64 {
        return Some(format!(
            "the plan deletes {deleting} of {n} backups ({:.0}%), more than max_delete_percent {pct}",
            deleting as f64 * 100.0 / n as f64
        ));
    }
    None
}

fn name_regexes() -> &'static [Regex; 4] {
    static RE: OnceLock<[Regex; 4]> = OnceLock::new();
    RE.get_or_init(|| {
        let r = |s: &str| Regex::new(s).expect("static regex");
        [
            r(r"(?:^|\D)(\d{4})-(\d{2})-(\d{2})[_T ](\d{2})[:\-]?(\d{2})[:\-]?(\d{2})(?:\D|$)"),
            r(r"(?:^|\D)(\d{4})(\d{2})(\d{2})[_T\-]?(\d{2})(\d{2})(\d{2})(?:\D|$)"),
            r(r"(?:^|\D)(\d{4})-(\d{2})-(\d{2})(?:\D|$)"),
            r(r"(?:^|\D)(\d{4})(\d{2})(\d{2})(?:\D|$)"),
        ]
    })
}

/// The time written in a backup's name: `_YYYY-mm-dd_HHMMSS`, `_YYYYmmdd_HHMMSS`,
/// `_YYYY-mm-dd`, `-YYYYmmdd` (the most precise form found wins).
pub fn time_from_name(name: &str) -> Option<NaiveDateTime> {
    for re in name_regexes() {
        for c in re.captures_iter(name) {
            let num = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<u32>().ok());
            let (y, mo, d) = (num(1)?, num(2)?, num(3)?);
            let date = NaiveDate::from_ymd_opt(y as i32, mo, d);
            let t = if c.len() > 4 {
                date.and_then(|d| d.and_hms_opt(num(4)?, num(5)?, num(6)?))
            } else {
                date.and_then(|d| d.and_hms_opt(0, 0, 0))
            };
            if t.is_some() {
                return t;
            }
        }
    }
    None
}

/// Where a backup's time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeFrom {
    /// The name, else the modification time.
    #[default]
    Auto,
    /// The name only: a backup without a time in its name is ignored (never deleted).
    Name,
    Mtime,
}

/// One candidate as a listing sees it (a file, a folder, or a group of objects).
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub mtime: NaiveDateTime,
}

/// Match entries by pattern and give each its time. Returns (backups, ignored names).
/// Checksum sidecars, temporary files and hidden names are never backups.
pub fn select(
    entries: &[Entry],
    pattern: &globset::GlobMatcher,
    from: TimeFrom,
) -> (Vec<Backup>, Vec<String>) {
    let mut backups = Vec::new();
    let mut ignored = Vec::new();
    for e in entries {
        if e.name.ends_with(".sha256") || e.name.ends_with(".tmp") || e.name.starts_with('.') {
            continue;
        }
        if !pattern.is_match(&e.name) {
            continue;
        }
        let time = match from {
            TimeFrom::Auto => Some(time_from_name(&e.name).unwrap_or(e.mtime)),
            TimeFrom::Name => time_from_name(&e.name),
            TimeFrom::Mtime => Some(e.mtime),
        };
        match time {
            Some(time) => backups.push(Backup {
                name: e.name.clone(),
                time,
            }),
            None => ignored.push(e.name.clone()),
        }
    }
    (backups, ignored)
}

/// Group object keys under a prefix into backups: a key directly under the prefix is one
/// backup, a folder (`prefix/name/...`) is one backup made of all its objects.
/// Returns name → (keys, newest modification).
pub fn group_keys(
    prefix: &str,
    objects: &[(String, NaiveDateTime)],
) -> BTreeMap<String, (Vec<String>, NaiveDateTime)> {
    let mut groups: BTreeMap<String, (Vec<String>, NaiveDateTime)> = BTreeMap::new();
    for (key, mtime) in objects {
        let rel = key.strip_prefix(prefix).unwrap_or(key);
        let name = rel.split('/').next().unwrap_or(rel).to_string();
        if name.is_empty() {
            continue;
        }
        let g = groups.entry(name).or_insert_with(|| (Vec::new(), *mtime));
        g.0.push(key.clone());
        if *mtime > g.1 {
            g.1 = *mtime;
        }
    }
    groups
}

#[cfg(test)]
mod restic_tests;
#[cfg(test)]
mod tests;
