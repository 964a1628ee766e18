//! `snapshot_dir`: `restic backup` of a folder, then `forget` with the retention policy map that
//! `retention` takes, translated to restic's flags, and the same safety floors: the plan is asked
//! of restic first (`forget --dry-run --json`), checked against the floors, and then exactly the
//! planned snapshot ids are forgotten and pruned, so the plan checked is the plan applied.

use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::run::{RepoOptions, Restic};
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::storage::retention::{self, Policy};

/// `check`: `true` (structure only) or a share of the data to read back (`"5%"`, `"1G"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CheckOpt {
    Structure(bool),
    ReadData(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotOptions {
    /// Tags recorded on the snapshot (`--tag`).
    pub tags: Vec<String>,
    /// Patterns left out (`--exclude`, restic's syntax).
    pub exclude: Vec<String>,
    /// Create the repository when there is none (`restic init`).
    pub init: bool,
    /// Run `restic check` afterwards.
    pub check: Option<CheckOpt>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotReport {
    pub repo: String,
    pub source: String,
    /// The new snapshot's short id; `()` on a dry run.
    pub snapshot_id: Option<String>,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs_new: u64,
    /// Bytes added to the repository (after deduplication and compression).
    pub bytes_added: u64,
    /// Bytes of the files read.
    pub bytes_processed: u64,
    /// Short ids of the snapshots forgotten (or that would be, on a dry run), newest first.
    pub forgotten: Vec<String>,
    /// Short ids of the snapshots of this folder the policy keeps.
    pub kept: Vec<String>,
    pub pruned: bool,
    pub checked: bool,
    pub initialized: bool,
    /// restic's complaints about files it could not read (the snapshot exists without them).
    pub warnings: Vec<String>,
    pub dry_run: bool,
    pub duration_ms: u64,
}

/// restic's backup summary line (`--json`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Summary {
    message_type: String,
    files_new: u64,
    files_changed: u64,
    files_unmodified: u64,
    dirs_new: u64,
    data_added: u64,
    total_bytes_processed: u64,
    snapshot_id: Option<String>,
}

pub async fn snapshot_dir(
    ctx: &RunCtx,
    src: &Path,
    restic: &Restic,
    repo_opts: &RepoOptions,
    policy: Option<&Policy>,
    o: &SnapshotOptions,
) -> HostResult<SnapshotReport> {
    let started = Instant::now();
    if let Some(p) = policy {
        retention::validate(p)?;
    }
    let source = std::fs::canonicalize(src)
        .map_err(|e| HostError::io(format!("source folder {}", src.display()), &e))?;
    if !source.is_dir() {
        return Err(HostError::invalid(format!(
            "{} is not a folder",
            source.display()
        )));
    }
    let mut report = SnapshotReport {
        repo: crate::redact::redact(&restic.repo),
        source: source.display().to_string(),
        snapshot_id: None,
        files_new: 0,
        files_changed: 0,
        files_unmodified: 0,
        dirs_new: 0,
        bytes_added: 0,
        bytes_processed: 0,
        forgotten: Vec::new(),
        kept: Vec::new(),
        pruned: false,
        checked: false,
        initialized: false,
        warnings: Vec::new(),
        dry_run: ctx.dry_run,
        duration_ms: 0,
    };

    let mut a = args(&["backup", "--json", "--quiet"]);
    if ctx.dry_run {
        a.push("--dry-run".into());
    }
    for t in &o.tags {
        a.extend(["--tag".into(), t.clone()]);
    }
    for x in &o.exclude {
        a.extend(["--exclude".into(), x.clone()]);
    }
    if let Some(h) = &repo_opts.host {
        a.extend(["--host".into(), h.clone()]);
    }
    a.push(source.display().to_string());
    // The backup itself proves the repository exists and the password opens it (every restic
    // start derives the key, ~0.3 s: no separate check first). Exit 3: the snapshot was made,
    // but some files could not be read.
    ctx.check_cancelled()?;
    let out = match restic.run(&a, &[3]).await {
        Err(e) if e.kind == crate::error::ErrorKind::NotFound && o.init => {
            report.initialized = true;
            if ctx.dry_run {
                tracing::info!(target: "mtn::restic", "would create the restic repository {}", report.repo);
                report.duration_ms = started.elapsed().as_millis() as u64;
                return Ok(report);
            }
            if let Some(dir) = &restic.local {
                std::fs::create_dir_all(dir)
                    .map_err(|e| HostError::io(format!("creating {}", dir.display()), &e))?;
            }
            restic.run(&args(&["init"]), &[]).await?;
            tracing::info!(target: "mtn::restic", "created the restic repository {}", report.repo);
            restic.run(&a, &[3]).await?
        }
        other => other?,
    };
    let summary = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Summary>(l).ok())
        .find(|s| s.message_type == "summary")
        .ok_or_else(|| {
            HostError::other(format!(
                "restic backup of {} printed no summary: {}",
                report.source, out.stderr
            ))
        })?;
    if out.code == 3 {
        report.warnings = out.stderr.lines().map(str::to_string).collect();
        tracing::warn!(target: "mtn::restic", "restic could not read some files of {}: {}", report.source, out.stderr);
    }
    report.files_new = summary.files_new;
    report.files_changed = summary.files_changed;
    report.files_unmodified = summary.files_unmodified;
    report.dirs_new = summary.dirs_new;
    report.bytes_added = summary.data_added;
    report.bytes_processed = summary.total_bytes_processed;
    // A dry run prints an id for a snapshot it did not save.
    report.snapshot_id = summary.snapshot_id.filter(|_| !ctx.dry_run);

    if let Some(p) = policy {
        ctx.check_cancelled()?;
        let plan = forget_plan(restic, repo_opts, &source, p).await?;
        report.kept = plan.keep.iter().map(|s| s.short_id.clone()).collect();
        report.forgotten = plan.remove.iter().map(|s| s.short_id.clone()).collect();
        for s in &plan.remove {
            crate::host::deletion::announce(
                ctx,
                &format!(
                    "restic snapshot {} ({}) from {}",
                    s.short_id, s.time, report.repo
                ),
                None,
            );
        }
        if !ctx.dry_run && !plan.remove.is_empty() {
            let mut f = args(&["forget"]);
            f.extend(plan.remove.iter().map(|s| s.id.clone()));
            restic.run(&f, &[]).await?;
            ctx.check_cancelled()?;
            restic.run(&args(&["prune"]), &[]).await?;
            report.pruned = true;
        }
    }

    if let (Some(c), false) = (&o.check, ctx.dry_run) {
        ctx.check_cancelled()?;
        let mut a = args(&["check"]);
        match c {
            CheckOpt::Structure(false) => a.clear(),
            CheckOpt::Structure(true) => {}
            CheckOpt::ReadData(share) => a.push(format!("--read-data-subset={share}")),
        }
        if !a.is_empty() {
            restic.run(&a, &[]).await?;
            report.checked = true;
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[derive(Debug, Deserialize)]
struct Snap {
    id: String,
    short_id: String,
    time: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct Group {
    keep: Option<Vec<Snap>>,
    remove: Option<Vec<Snap>>,
}

struct ForgetPlan {
    keep: Vec<Snap>,
    remove: Vec<Snap>,
}

/// Counts as restic flags: mtn's -1 ("unlimited") becomes a count no repository reaches, because
/// restic before 0.16 reads -1 as "keep none" and would forget every snapshot.
fn count_flag(v: i64) -> String {
    if v < 0 { i32::MAX as i64 } else { v }.to_string()
}

/// The policy map as `restic forget` flags. The safety floor `keep_newest` becomes a
/// `--keep-last` (restic keeps what any rule keeps); the other two floors are checked on the plan.
pub fn policy_flags(p: &Policy) -> Vec<String> {
    let mut out = Vec::new();
    let floor = p.keep_newest.unwrap_or(1) as i64;
    for (key, v) in p.counts() {
        let v = match (key, v) {
            ("keep_last", Some(l)) if l >= 0 && l < floor => Some(floor),
            ("keep_last", None) if floor > 0 => Some(floor),
            _ => v,
        };
        if let Some(v) = v.filter(|v| *v != 0) {
            out.extend([flag(key), count_flag(v)]);
        }
    }
    for (key, w) in p.windows() {
        if let Some(d) = w.filter(|d| !d.is_zero()) {
            out.extend([flag(key), d.to_string()]);
        }
    }
    out
}

/// `keep_within_daily` → `--keep-within-daily`: restic's flags are the policy keys.
fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

async fn forget_plan(
    restic: &Restic,
    repo_opts: &RepoOptions,
    source: &Path,
    p: &Policy,
) -> HostResult<ForgetPlan> {
    let mut a = args(&["forget", "--dry-run", "--json", "--group-by", "host,paths"]);
    a.extend(["--path".into(), source.display().to_string()]);
    if let Some(h) = &repo_opts.host {
        a.extend(["--host".into(), h.clone()]);
    }
    a.extend(policy_flags(p));
    let out = restic.run(&a, &[]).await?;
    let groups: Vec<Group> = serde_json::from_str(out.stdout.trim()).map_err(|e| {
        HostError::other(format!(
            "restic forget --json printed something unexpected ({e}): {}",
            out.stdout.chars().take(300).collect::<String>()
        ))
    })?;
    let mut plan = ForgetPlan {
        keep: Vec::new(),
        remove: Vec::new(),
    };
    let now = Utc::now();
    for g in groups {
        let keep = g.keep.unwrap_or_default();
        let remove = g.remove.unwrap_or_default();
        let total = keep.len() + remove.len();
        let pct = p.max_delete_percent.unwrap_or(50.0);
        if total > 0 && remove.len() as f64 * 100.0 / total as f64 > pct {
            return Err(HostError::refused(format!(
                "forgetting snapshots of {} in {} refused: the policy would forget {} of {total} (more than max_delete_percent {pct}); nothing was forgotten",
                source.display(),
                crate::redact::redact(&restic.repo),
                remove.len()
            )));
        }
        if let Some(fresh) = p.require_fresh {
            let newest = keep.iter().chain(&remove).map(|s| s.time).max();
            let stale = newest.is_none_or(|t| (now - t).to_std().unwrap_or_default() > fresh);
            if stale {
                return Err(HostError::refused(format!(
                    "forgetting snapshots of {} refused: the newest snapshot ({}) is older than require_fresh {}; nothing was forgotten",
                    source.display(),
                    newest.map_or("none".to_string(), |t| t.to_rfc3339()),
                    humantime::format_duration(fresh)
                )));
            }
        }
        plan.keep.extend(keep);
        plan.remove.extend(remove);
    }
    plan.keep.sort_by_key(|s| std::cmp::Reverse(s.time));
    plan.remove.sort_by_key(|s| std::cmp::Reverse(s.time));
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::storage::retention::CalendarDuration;

    #[test]
    fn policy_becomes_restic_flags() {
        let p = Policy {
            keep_daily: Some(7),
            keep_monthly: Some(-1),
            keep_within: Some(CalendarDuration::parse("1y6m").unwrap()),
            ..Default::default()
        };
        assert_eq!(
            policy_flags(&p).join(" "),
            "--keep-last 1 --keep-daily 7 --keep-monthly 2147483647 --keep-within 1y6m"
        );
        let p = Policy {
            keep_last: Some(2),
            keep_newest: Some(5),
            ..Default::default()
        };
        assert_eq!(policy_flags(&p).join(" "), "--keep-last 5");
        let p = Policy {
            keep_weekly: Some(4),
            keep_newest: Some(0),
            ..Default::default()
        };
        assert_eq!(policy_flags(&p).join(" "), "--keep-weekly 4");
    }
}
