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

use crate::host::error::{HostError, HostResult};

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
    /// Keep everything younger than this, measured from the newest backup (as restic does).
    #[serde(with = "crate::host::binding::serde_duration::option")]
    pub keep_within: Option<Duration>,
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

type BucketFn = fn(&NaiveDateTime) -> String;

fn bucket_rules(p: &Policy) -> Vec<(&'static str, i64, BucketFn)> {
    let all: [(&'static str, Option<i64>, BucketFn); 5] = [
        ("keep_hourly", p.keep_hourly, |t| {
            t.format("%Y-%m-%d %Hh").to_string()
        }),
        ("keep_daily", p.keep_daily, |t| {
            t.format("%Y-%m-%d").to_string()
        }),
        ("keep_weekly", p.keep_weekly, |t| {
            t.format("%G-W%V").to_string()
        }),
        ("keep_monthly", p.keep_monthly, |t| {
            t.format("%Y-%m").to_string()
        }),
        ("keep_yearly", p.keep_yearly, |t| t.format("%Y").to_string()),
    ];
    all.into_iter()
        .filter_map(|(n, c, f)| c.filter(|c| *c != 0).map(|c| (n, c, f)))
        .collect()
}

fn fmt_time(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn fmt_dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Check a policy before listing anything.
pub fn validate(p: &Policy) -> HostResult<()> {
    let counts = [
        ("keep_last", p.keep_last),
        ("keep_hourly", p.keep_hourly),
        ("keep_daily", p.keep_daily),
        ("keep_weekly", p.keep_weekly),
        ("keep_monthly", p.keep_monthly),
        ("keep_yearly", p.keep_yearly),
    ];
    for (name, c) in counts {
        if let Some(c) = c {
            if c < -1 {
                return Err(HostError::invalid(format!(
                    "retention: {name} = {c}: use a count, or -1 for unlimited"
                )));
            }
        }
    }
    if counts.iter().all(|(_, c)| c.unwrap_or(0) == 0) && p.keep_within.is_none() {
        return Err(HostError::invalid(
            "retention: the policy has no keep rule (keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within); refusing to plan a deletion of everything",
        ));
    }
    if let Some(pct) = p.max_delete_percent {
        if !(0.0..=100.0).contains(&pct) {
            return Err(HostError::invalid(format!(
                "retention: max_delete_percent = {pct}: use a percentage between 0 and 100"
            )));
        }
    }
    Ok(())
}

/// The plan: which backups to keep (and by which rules) and which to delete (and why).
pub fn plan(backups: &[Backup], p: &Policy, now: NaiveDateTime) -> HostResult<Plan> {
    validate(p)?;
    let mut sorted: Vec<&Backup> = backups.iter().collect();
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.name.cmp(&a.name)));
    let n = sorted.len();
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); n];

    let newest_n = p.keep_newest.unwrap_or(1);
    for r in reasons.iter_mut().take(newest_n) {
        r.push(format!("keep_newest {newest_n} (safety floor)"));
    }
    let last = p.keep_last.unwrap_or(0);
    if last != 0 {
        let upto = if last < 0 { n } else { last as usize };
        for r in reasons.iter_mut().take(upto) {
            r.push(format!("keep_last {last}"));
        }
    }
    let rules = bucket_rules(p);
    let mut kept_buckets: Vec<HashSet<String>> = vec![HashSet::new(); rules.len()];
    for (ri, (name, count, bucket)) in rules.iter().enumerate() {
        let mut left = *count;
        let mut prev: Option<String> = None;
        for (i, b) in sorted.iter().enumerate() {
            if left == 0 {
                break;
            }
            let key = bucket(&b.time);
            if prev.as_ref() != Some(&key) {
                reasons[i].push(format!("{name} {key}"));
                kept_buckets[ri].insert(key.clone());
                prev = Some(key);
                left -= 1;
            }
        }
    }
    let cutoff = match (p.keep_within, sorted.first()) {
        (Some(d), Some(newest)) => chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| newest.time.checked_sub_signed(d)),
        _ => None,
    };
    if let (Some(d), Some(cut)) = (p.keep_within, cutoff) {
        for (i, b) in sorted.iter().enumerate() {
            if b.time >= cut {
                reasons[i].push(format!("keep_within {}", fmt_dur(d)));
            }
        }
    } else if let (Some(d), None, Some(_)) = (p.keep_within, cutoff, sorted.first()) {
        // A window reaching before the calendar's start keeps everything.
        for r in reasons.iter_mut() {
            r.push(format!("keep_within {}", fmt_dur(d)));
        }
    }

    let mut kept = Vec::new();
    let mut deleted = Vec::new();
    for (i, b) in sorted.iter().enumerate() {
        if !reasons[i].is_empty() {
            kept.push(Kept {
                name: b.name.clone(),
                time: fmt_time(&b.time),
                reasons: std::mem::take(&mut reasons[i]),
            });
            continue;
        }
        let mut why = Vec::new();
        if last > 0 {
            why.push(format!("beyond keep_last {last}"));
        }
        for (ri, (name, count, bucket)) in rules.iter().enumerate() {
            let key = bucket(&b.time);
            if kept_buckets[ri].contains(&key) {
                why.push(format!("{name}: {key} is kept by a newer backup"));
            } else {
                why.push(format!("{name}: all {count} kept"));
            }
        }
        if let Some(d) = p.keep_within {
            why.push(format!(
                "older than keep_within {} before the newest",
                fmt_dur(d)
            ));
        }
        deleted.push(Deleted {
            name: b.name.clone(),
            time: fmt_time(&b.time),
            reason: why.join("; "),
        });
    }

    let mut refused = None;
    if let Some(fresh) = p.require_fresh {
        let limit = chrono::Duration::from_std(fresh)
            .ok()
            .and_then(|d| now.checked_sub_signed(d));
        match (sorted.first(), limit) {
            (None, _) => {
                refused = Some(format!(
                    "no backups found, but require_fresh {} asks for a recent one",
                    fmt_dur(fresh)
                ))
            }
            (Some(newest), Some(limit)) if newest.time < limit => {
                refused = Some(format!(
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
    if refused.is_none() && n > 0 && (deleted.len() as f64) * 100.0 > pct * n as f64 {
        refused = Some(format!(
            "the plan deletes {} of {n} backups ({:.0}%), more than max_delete_percent {pct}",
            deleted.len(),
            deleted.len() as f64 * 100.0 / n as f64
        ));
    }
    Ok(Plan {
        kept,
        deleted,
        refused,
    })
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
mod tests;
