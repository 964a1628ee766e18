//! `list_remote`, `delete_remote`, and the listing/deleting half of `retention`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Local, NaiveDateTime, Utc};
use futures::TryStreamExt;
use object_store::{Attribute, GetOptions, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::download::read_sidecar;
use super::retention::{self, Entry, Plan, Policy, TimeFrom};
use super::target::{Backend, Target};
use super::upload::SHA256_META;
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListOptions {
    /// Also read each object's stored sha256 (one HEAD per object on S3).
    pub checksums: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemoteObject {
    pub url: String,
    pub key: String,
    pub size: u64,
    /// RFC 3339, UTC.
    pub modified: String,
    pub sha256: Option<String>,
}

fn utc_str(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn list_all(target: &Target, prefix: &str) -> HostResult<Vec<object_store::ObjectMeta>> {
    // object_store lists per path segment; a URL prefix like `daily/db_` is per character,
    // so list its folder and filter.
    let folder = match prefix.rfind('/') {
        Some(i) => &prefix[..i],
        None => "",
    };
    let p = if folder.is_empty() {
        None
    } else {
        Some(target.path(folder)?)
    };
    let mut out: Vec<object_store::ObjectMeta> = target
        .store
        .list(p.as_ref())
        .try_collect()
        .await
        .map_err(|e| target.error("listing", prefix, e))?;
    out.retain(|m| m.location.as_ref().starts_with(prefix));
    out.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(out)
}

pub async fn list(
    target: &Target,
    opts: &ListOptions,
    ctx: &RunCtx,
) -> HostResult<Vec<RemoteObject>> {
    if let Some(remote) = &target.sftp {
        return super::sftp::glue::list(target, remote, opts.checksums, ctx).await;
    }
    let prefix = target.key.clone();
    let listing = list_all(target, &prefix).await?;
    let mut out = Vec::with_capacity(listing.len());
    for m in listing {
        let key = m.location.to_string();
        if target.backend == Backend::File && key.ends_with(".sha256") {
            continue;
        }
        let sha256 = if !opts.checksums {
            None
        } else {
            match target.backend {
                Backend::File => target.local_path(&key).and_then(|p| read_sidecar(&p)),
                Backend::Sftp => None,
                Backend::S3 | Backend::Azure | Backend::Gcs => {
                    let head = target
                        .store
                        .get_opts(
                            &m.location,
                            GetOptions {
                                head: true,
                                ..Default::default()
                            },
                        )
                        .await
                        .map_err(|e| target.error("reading metadata of", &key, e))?;
                    head.attributes
                        .get(&Attribute::Metadata(SHA256_META.into()))
                        .map(|v| v.to_string())
                }
            }
        };
        out.push(RemoteObject {
            url: target.url_of(&key),
            key,
            size: m.size,
            modified: utc_str(&m.last_modified),
            sha256,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct DeleteReport {
    pub deleted: Vec<String>,
    pub count: usize,
    pub dry_run: bool,
}

/// Delete objects by URL. A missing object counts as deleted (the goal is its absence).
pub async fn delete(targets: &[Target], ctx: &RunCtx) -> HostResult<DeleteReport> {
    let mut deleted = Vec::new();
    for t in targets {
        ctx.check_cancelled()?;
        if t.is_prefix() {
            return Err(HostError::invalid(format!(
                "{} names a folder; give object URLs (list_remote() returns them)",
                t.url()
            )));
        }
        if let Some(p) = t.local_path(&t.key) {
            ctx.policy.check_write(&p)?;
        }
        if let Some(remote) = t.sftp.as_ref().filter(|_| !ctx.dry_run) {
            let both = [t.key.clone(), format!("{}.sha256", t.key)];
            super::sftp::ops::delete(remote, &both, ctx).await?;
        } else if !ctx.dry_run {
            match t.store.delete(&t.path(&t.key)?).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(t.error("deleting", &t.key, e)),
            }
            if let Some(p) = t.local_path(&t.key) {
                let mut side = p.into_os_string();
                side.push(".sha256");
                let _ = std::fs::remove_file(side);
            }
        }
        crate::host::deletion::announce(ctx, &t.url(), None);
        deleted.push(t.url());
    }
    Ok(DeleteReport {
        count: deleted.len(),
        deleted,
        dry_run: ctx.dry_run,
    })
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionOptions {
    /// Glob over backup names (default "*").
    pub pattern: Option<String>,
    /// "auto" (name, else mtime), "name" or "mtime".
    pub time_from: TimeFrom,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetentionReport {
    pub target: String,
    pub total: usize,
    pub kept: Vec<retention::Kept>,
    pub deleted: Vec<retention::Deleted>,
    /// Names matching the pattern whose time could not be read (never deleted).
    pub ignored: Vec<String>,
    pub dry_run: bool,
    pub duration_ms: u64,
}

/// What a listing found: backups by name, with what deleting each one means.
pub struct Found {
    pub entries: Vec<Entry>,
    /// name → local path or object keys
    pub what: std::collections::BTreeMap<String, Vec<String>>,
}

fn local_naive(t: std::time::SystemTime) -> NaiveDateTime {
    DateTime::<Local>::from(t).naive_local()
}

pub fn list_local_folder(dir: &Path) -> HostResult<Found> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| HostError::io(format!("cannot list {}", dir.display()), &e))?;
    let mut entries = Vec::new();
    let mut what = std::collections::BTreeMap::new();
    for e in rd {
        let e = e.map_err(|err| HostError::io(format!("listing {}", dir.display()), &err))?;
        let name = e.file_name().to_string_lossy().to_string();
        let meta = e
            .metadata()
            .map_err(|err| HostError::io(e.path().display(), &err))?;
        let mtime = meta
            .modified()
            .map(local_naive)
            .unwrap_or_else(|_| chrono::DateTime::UNIX_EPOCH.naive_utc());
        what.insert(name.clone(), vec![e.path().display().to_string()]);
        entries.push(Entry { name, mtime });
    }
    Ok(Found { entries, what })
}

fn folder_prefix(target: &Target) -> String {
    let mut prefix = target.key.clone();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    prefix
}

pub async fn list_remote_prefix(target: &Target) -> HostResult<Found> {
    let prefix = folder_prefix(target);
    let objects: Vec<(String, NaiveDateTime)> = list_all(target, &prefix)
        .await?
        .into_iter()
        .map(|m| {
            (
                m.location.to_string(),
                m.last_modified.with_timezone(&Local).naive_local(),
            )
        })
        .collect();
    Ok(found_of(&prefix, &objects))
}

/// An SFTP folder's backups, as [`list_remote_prefix`] gives an object store's.
async fn list_sftp_prefix(
    target: &Target,
    remote: &super::sftp::Remote,
    ctx: &RunCtx,
) -> HostResult<Found> {
    let prefix = folder_prefix(target);
    let objects = super::sftp::glue::list_times(remote, &prefix, ctx).await?;
    Ok(found_of(&prefix, &objects))
}

fn found_of(prefix: &str, objects: &[(String, NaiveDateTime)]) -> Found {
    let groups = retention::group_keys(prefix, objects);
    let mut entries = Vec::new();
    let mut what = std::collections::BTreeMap::new();
    for (name, (keys, mtime)) in groups {
        entries.push(Entry {
            name: name.clone(),
            mtime,
        });
        what.insert(name, keys);
    }
    Found { entries, what }
}

/// List, plan, and (unless dry-run or refused) delete.
pub async fn retention(
    target: &Target,
    policy: &Policy,
    opts: &RetentionOptions,
    ctx: &RunCtx,
) -> HostResult<RetentionReport> {
    let started = Instant::now();
    retention::validate(policy)?;
    let pattern = opts.pattern.clone().unwrap_or_else(|| "*".to_string());
    let matcher = globset::Glob::new(&pattern)
        .map_err(|e| HostError::invalid(format!("invalid pattern {pattern:?}: {e}")))?
        .compile_matcher();
    let local_dir: Option<PathBuf> = target.local_path(&target.key);
    let found = match &local_dir {
        Some(dir) => list_local_folder(dir)?,
        None => match &target.sftp {
            Some(remote) => list_sftp_prefix(target, remote, ctx).await?,
            None => list_remote_prefix(target).await?,
        },
    };
    let (backups, ignored) = retention::select(&found.entries, &matcher, opts.time_from);
    let now = Local::now().naive_local();
    let Plan {
        kept,
        deleted,
        refused,
    } = retention::plan(&backups, policy, now)?;
    if let Some(reason) = refused {
        return Err(HostError::refused(format!(
            "retention of {} refused: {reason}; nothing was deleted (planned: keep {}, delete {})",
            target.url(),
            kept.len(),
            deleted.len()
        )));
    }
    for d in &deleted {
        ctx.check_cancelled()?;
        let sidecar = format!("{}.sha256", d.name);
        let mut items: Vec<String> = found.what.get(&d.name).cloned().unwrap_or_default();
        if let Some(extra) = found.what.get(&sidecar) {
            items.extend(extra.iter().cloned());
        }
        match &local_dir {
            Some(_) => {
                for path in &items {
                    let path = ctx.policy.check_write(Path::new(path))?;
                    if ctx.dry_run {
                        continue;
                    }
                    let res = if path.is_dir() {
                        std::fs::remove_dir_all(&path)
                    } else {
                        std::fs::remove_file(&path)
                    };
                    res.map_err(|e| HostError::io(format!("deleting {}", path.display()), &e))?;
                }
                crate::host::deletion::announce(
                    ctx,
                    &format!("{} from {}", d.name, target.url()),
                    None,
                );
            }
            None => {
                if ctx.dry_run {
                    crate::host::deletion::announce(
                        ctx,
                        &format!("{} from {}", d.name, target.url()),
                        None,
                    );
                    continue;
                }
                if let Some(remote) = &target.sftp {
                    super::sftp::ops::delete(remote, &items, ctx).await?;
                    continue;
                }
                for key in &items {
                    match target.store.delete(&target.path(key)?).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(target.error("deleting", key, e)),
                    }
                }
                crate::host::deletion::announce(
                    ctx,
                    &format!("{} from {}", d.name, target.url()),
                    None,
                );
            }
        }
    }
    Ok(RetentionReport {
        target: target.url(),
        total: backups.len(),
        kept,
        deleted,
        ignored,
        dry_run: ctx.dry_run,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}
