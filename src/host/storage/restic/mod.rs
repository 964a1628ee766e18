//! Versioned folder backups with restic (the Debian package `restic`): `snapshot_dir` and
//! `restore_snapshot`. mtn drives the restic binary rather than writing its repository format:
//! the repository stays readable by restic itself, which is what a restore at 3 a.m. needs.

pub mod restore;
pub mod run;
pub mod snapshot;

use std::path::Path;

use rhai::Map;

use crate::ctx::RunCtx;
use crate::error::HostResult;
use crate::host::binding::opts;
use crate::host::registry::Registrar;
use crate::host::storage::retention::Policy;
use crate::host_fn;
use run::{RepoOptions, Restic, REPO_KEYS};

/// Take the repository options and (for snapshot_dir) the policy map out of a function's options.
fn split(map: &Map) -> HostResult<(RepoOptions, Option<Policy>, Map)> {
    let mut own = map.clone();
    let mut repo = Map::new();
    for k in REPO_KEYS {
        if let Some(v) = own.remove(*k) {
            repo.insert((*k).into(), v);
        }
    }
    let policy = match own.remove("policy") {
        None => None,
        Some(p) => {
            let m = p.try_cast::<Map>().ok_or_else(|| {
                crate::error::HostError::invalid(
                    "option `policy` must be a map like retention's (#{ keep_daily: 7 })",
                )
            })?;
            // The same decoder and message as retention's policy map, so a typo reads the same.
            Some(opts::<Policy>(&m).map_err(|e| e.context("in the policy map"))?)
        }
    };
    Ok((opts(&repo)?, policy, own))
}

/// Decode a function's own options; an unknown key's message lists the shared keys too.
fn own_opts<T: serde::de::DeserializeOwned>(own: &Map) -> HostResult<T> {
    opts(own).map_err(|mut e| {
        if e.message.contains("allowed options:") {
            e.message = e
                .message
                .replace("allowed options: none", "allowed options:");
            e.message
                .push_str(&format!(", {}, policy", REPO_KEYS.join(", ")));
        }
        e
    })
}

fn do_snapshot(
    ctx: &RunCtx,
    src: &str,
    repo: &str,
    map: &Map,
) -> HostResult<snapshot::SnapshotReport> {
    let (ro, policy, own) = split(map)?;
    let o: snapshot::SnapshotOptions = own_opts(&own)?;
    let restic = Restic::open(ctx, repo, &ro)?;
    ctx.block_on(snapshot::snapshot_dir(
        ctx,
        Path::new(src),
        &restic,
        &ro,
        policy.as_ref(),
        &o,
    ))
}

fn do_restore(
    ctx: &RunCtx,
    repo: &str,
    target: &str,
    map: &Map,
) -> HostResult<restore::RestoreReport> {
    let (ro, policy, own) = split(map)?;
    if policy.is_some() {
        return Err(crate::error::HostError::invalid(
            "`policy` belongs to snapshot_dir",
        ));
    }
    let o: restore::RestoreOptions = own_opts(&own)?;
    let restic = Restic::open(ctx, repo, &ro)?;
    ctx.block_on(restore::restore_snapshot(
        ctx,
        &restic,
        Path::new(target),
        &ro,
        &o,
    ))
}

const SNAPSHOT_DOC: &str = r#"Back up a folder into a restic repository (a versioned, deduplicated snapshot), then forget old snapshots with a retention policy.

Needs the Debian package `restic` (kind `missing_tool` without it). `repo` is a local folder
(inside the allowed roots) or a repository as restic spells it (`sftp:user@host:/srv/restic`,
`s3:https://host/bucket/path`, `rest:https://...`). Options: `password` (use secret(); else
restic's RESTIC_PASSWORD/RESTIC_PASSWORD_FILE), `tags`, `host`, `exclude` (restic patterns),
`init` (create the repository when missing), `ssh_key` and `known_hosts` (sftp: repositories), `policy` (the same map as retention's:
`keep_last`, `keep_daily`, ..., `keep_within`, and the floors `keep_newest`,
`max_delete_percent`, `require_fresh`: the plan is refused past a floor), `check` (`true`, or a
share of the data to read: `"5%"`). Returns `#{ repo, source, snapshot_id, files_new,
files_changed, files_unmodified, dirs_new, bytes_added, bytes_processed, forgotten, kept,
pruned, checked, initialized, warnings, dry_run, duration_ms }`.

```rhai
let r = snapshot_dir("uploads", "/srv/restic/app", #{
    password: secret("RESTIC_PASSWORD"), tags: ["uploads"], init: true,
    policy: #{ keep_daily: 7, keep_weekly: 4, keep_monthly: 12 }, check: true });
log(`snapshot ${r.snapshot_id}: ${r.files_new} new files, ${r.bytes_added} bytes added, forgot ${r.forgotten.len()}`);
```"#;

const RESTORE_DOC: &str = r#"Restore a restic snapshot (default the newest), or some files of it, into a folder.

Files land under `target` with their full original path (`/srv/app/uploads/a.png` →
`target/srv/app/uploads/a.png`) and are verified after writing (`restic restore --verify`).
Options: `snapshot` (id, default "latest"), `path` (with "latest": the newest snapshot of this
source folder), `include` (paths inside the snapshot), `host`, `password`. Returns
`#{ repo, snapshot, target, include, dry_run, duration_ms }`.

```rhai
restore_snapshot("/srv/restic/app", "restore/", #{ password: secret("RESTIC_PASSWORD"),
                 include: ["/srv/app/uploads/logo.png"] });
```"#;

pub fn register(r: &mut Registrar) {
    r.category("storage");
    host_fn!(r, "snapshot_dir", SNAPSHOT_DOC, |ctx, src: &str, repo: &str; opts| -> "Map" {
        do_snapshot(&ctx, src, repo, &opts)
    });
    host_fn!(r, "restore_snapshot", RESTORE_DOC, |ctx, repo: &str, target: &str; opts| -> "Map" {
        do_restore(&ctx, repo, target, &opts)
    });
}
