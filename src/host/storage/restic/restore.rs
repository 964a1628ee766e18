//! `restore_snapshot`: `restic restore --verify` of a snapshot (or some files of it) into a
//! folder inside the allowed roots.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::run::{RepoOptions, Restic};
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreOptions {
    /// Snapshot id (short or long), default "latest".
    pub snapshot: Option<String>,
    /// With "latest": the newest snapshot of this source folder (as it was backed up).
    pub path: Option<String>,
    /// Only these files or folders, as paths inside the snapshot (`/srv/app/uploads/a.png`).
    pub include: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub repo: String,
    pub snapshot: String,
    /// Files land under `target` with their full original path.
    pub target: String,
    pub include: Vec<String>,
    pub dry_run: bool,
    pub duration_ms: u64,
}

pub async fn restore_snapshot(
    ctx: &RunCtx,
    restic: &Restic,
    target: &Path,
    repo_opts: &RepoOptions,
    o: &RestoreOptions,
) -> HostResult<RestoreReport> {
    let started = Instant::now();
    let target = ctx.policy.check_write(target)?;
    let snapshot = o.snapshot.clone().unwrap_or_else(|| "latest".into());
    if snapshot.starts_with('-') {
        return Err(HostError::invalid(format!(
            "{snapshot:?} is not a snapshot id"
        )));
    }
    let mut report = RestoreReport {
        repo: crate::redact::redact(&restic.repo),
        snapshot: snapshot.clone(),
        target: target.display().to_string(),
        include: o.include.clone(),
        dry_run: ctx.dry_run,
        duration_ms: 0,
    };
    let mut a: Vec<String> = vec!["restore".into(), snapshot, "--verify".into()];
    a.extend(["--target".into(), report.target.clone()]);
    for i in &o.include {
        a.extend(["--include".into(), i.clone()]);
    }
    if let Some(h) = &repo_opts.host {
        a.extend(["--host".into(), h.clone()]);
    }
    if let Some(p) = &o.path {
        a.extend(["--path".into(), p.clone()]);
    }
    if ctx.dry_run {
        // restic before 0.17 has no restore --dry-run: prove the repository opens, write nothing.
        restic
            .run(&["cat".to_string(), "config".to_string()], &[])
            .await?;
        tracing::info!(target: "mtn::restic", "would restore {} of {} into {}", report.snapshot, report.repo, report.target);
    } else {
        std::fs::create_dir_all(&target)
            .map_err(|e| HostError::io(format!("creating {}", target.display()), &e))?;
        restic.run(&a, &[]).await?;
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}
