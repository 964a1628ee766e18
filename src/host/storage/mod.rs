//! Off-site copies: upload, download, list_remote, delete_remote and retention.
//!
//! A URL picks the backend: `s3://bucket/prefix/` (AWS S3 and every S3-compatible store),
//! `az://container/prefix/` (Azure Blob Storage), `gs://bucket/prefix/` (Google Cloud Storage),
//! `sftp://user@host[:port]/path/` (any SSH server) or `file:///path/` (mounted disks, NFS);
//! plain paths are local folders. The cores are plain
//! async functions in the submodules; this file holds only the Rhai bindings.

pub mod cloud;
pub mod download;
pub mod encrypt;
pub mod newest;
pub mod profile;
pub mod remote;
pub mod restic;
pub mod retention;
pub mod sftp;
pub mod target;
pub mod upload;

use std::path::Path;

use rhai::{Array, Dynamic, Map};
use serde::de::DeserializeOwned;

use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::binding::opts;
use crate::host::registry::Registrar;
use crate::host_fn;
use target::{ConnOptions, Target, CONN_KEYS};

/// Split the connection options from a function's own options and decode both.
fn split<T: DeserializeOwned>(map: &Map) -> HostResult<(ConnOptions, T)> {
    let mut own = map.clone();
    let mut conn = Map::new();
    for k in CONN_KEYS {
        if let Some(v) = own.remove(*k) {
            conn.insert((*k).into(), v);
        }
    }
    let c: ConnOptions = opts(&conn)?;
    let t: T = opts(&own).map_err(|mut e| {
        if e.message.contains("allowed options:") {
            e.message = e
                .message
                .replace("allowed options: none", "allowed options:");
            e.message.push_str(&format!(", {}", CONN_KEYS.join(", ")));
        }
        e
    })?;
    Ok((c, t))
}

fn open(ctx: &RunCtx, url: &str, conn: &ConnOptions) -> HostResult<Target> {
    let t = target::parse(url, conn)?;
    if let Some(h) = &t.host {
        ctx.policy.check_host(h)?;
    }
    Ok(t)
}

fn do_upload(ctx: &RunCtx, local: &str, url: &str, map: &Map) -> HostResult<upload::UploadReport> {
    let (conn, o): (_, upload::UploadOptions) = split(map)?;
    let t = open(ctx, url, &conn)?;
    ctx.block_on(upload::upload(Path::new(local), &t, &o, ctx))
}

fn do_download(
    ctx: &RunCtx,
    url: &str,
    local: &str,
    map: &Map,
) -> HostResult<download::DownloadReport> {
    let (conn, o): (_, download::DownloadOptions) = split(map)?;
    let t = open(ctx, url, &conn)?;
    ctx.block_on(download::download(&t, Path::new(local), &o, ctx))
}

fn do_list(ctx: &RunCtx, url: &str, map: &Map) -> HostResult<Vec<remote::RemoteObject>> {
    let (conn, o): (_, remote::ListOptions) = split(map)?;
    let t = open(ctx, url, &conn)?;
    ctx.block_on(remote::list(&t, &o, ctx))
}

fn do_newest(ctx: &RunCtx, url: &str, map: &Map) -> HostResult<newest::Newest> {
    let (conn, o): (_, newest::NewestOptions) = split(map)?;
    let t = open(ctx, url, &conn)?;
    ctx.block_on(newest::newest(&t, &o, ctx))
}

/// Object URLs from a string, an array of strings, or maps with a `url` (list_remote's output).
fn urls_of(v: &Dynamic) -> HostResult<Vec<String>> {
    let one = |d: &Dynamic| -> HostResult<String> {
        if let Some(s) = d.read_lock::<rhai::ImmutableString>() {
            return Ok(s.to_string());
        }
        if let Some(m) = d.read_lock::<Map>() {
            if let Some(u) = m.get("url").and_then(|u| {
                u.read_lock::<rhai::ImmutableString>()
                    .map(|s| s.to_string())
            }) {
                return Ok(u);
            }
        }
        Err(HostError::invalid(format!(
            "expected an object URL (string) or a map with `url`, got {}",
            d.type_name()
        )))
    };
    if let Some(arr) = v.read_lock::<Array>() {
        return arr.iter().map(one).collect();
    }
    Ok(vec![one(v)?])
}

fn do_delete(ctx: &RunCtx, what: &Dynamic, map: &Map) -> HostResult<remote::DeleteReport> {
    let (conn, ()): (_, ()) = (opts::<ConnOptions>(map)?, ());
    let targets = urls_of(what)?
        .iter()
        .map(|u| open(ctx, u, &conn))
        .collect::<HostResult<Vec<_>>>()?;
    ctx.block_on(remote::delete(&targets, ctx))
}

fn do_retention(
    ctx: &RunCtx,
    url: &str,
    policy: &Map,
    map: &Map,
) -> HostResult<remote::RetentionReport> {
    let pol: retention::Policy = opts(policy).map_err(|e| e.context("in the policy map"))?;
    let (conn, o): (_, remote::RetentionOptions) = split(map)?;
    let t = open(ctx, url, &conn)?;
    ctx.block_on(remote::retention(&t, &pol, &o, ctx))
}

const UPLOAD_DOC: &str = r#"Upload a file, or every file of a folder, to `s3://`, `az://`, `gs://`, `sftp://` or `file://` targets.

A target ending in `/` is a prefix: the file keeps its name under it. Large files go up in
parts (memory stays flat), a sha256 is stored in the object's metadata (`x-amz-meta-sha256`;
a `.sha256` sidecar on file:// targets), and the object is checked afterwards (size and
checksum). Failed uploads leave nothing under the final key. Returns
`#{ url, bytes, sha256, duration_ms, dry_run, encrypted, files }`.

Options: `encrypt: #{ recipients: ["age1..."], tmp_dir }`, `part_size` (bytes, default 8 MiB),
`concurrency` (default 4), and the connection options `endpoint`, `region`, `path_style`,
`access_key_id`, `secret_access_key`, `session_token`, `retries`, `retry_timeout`,
`request_timeout` (credentials default to the AWS_* environment variables); Azure targets take
`account`, `account_key`, `sas_token`, `connection_string`, `use_emulator`, GCS targets
`service_account`, `service_account_key` (docs/storage.md).

```rhai
let r = upload("backups/db_2026-01-02_030000.sql.gz", "s3://offsite/db/",
               #{ endpoint: "http://127.0.0.1:8333" });
log(`sent ${r.bytes} bytes, sha256 ${r.sha256}`);
```"#;

const DOWNLOAD_DOC: &str = r#"Download an object to a local file (or into a local folder), verifying its checksum.

The data goes to `<file>.tmp` and is renamed only once its size and sha256 (from the object's
metadata or sidecar) match; an object without a stored sha256 is checked by size and
`verified` says "size". `decrypt: #{ identity_file }` decrypts an age-encrypted object.
Returns `#{ url, path, bytes, sha256, verified, decrypted, duration_ms, dry_run }`.

```rhai
let r = download("s3://offsite/db/db_2026-01-02_030000.sql.gz", "restore/",
                 #{ endpoint: "http://127.0.0.1:8333" });
```"#;

const LIST_DOC: &str = r#"List the objects under a prefix: an array of `#{ url, key, size, modified, sha256 }`.

`modified` is RFC 3339 (UTC). `sha256` is `()` unless `checksums: true` (one HEAD per object
on S3; the sidecar on file://).

```rhai
for o in list_remote("s3://offsite/db/", #{ endpoint: "http://127.0.0.1:8333" }) {
    log(`${o.key} ${o.size}`);
}
```"#;

const DELETE_DOC: &str = r#"Delete objects: one URL, an array of URLs, or list_remote's maps.

A missing object counts as deleted. file:// deletes go through the safety policy.
Returns `#{ deleted, count, dry_run }`.

```rhai
let old = list_remote("s3://offsite/tmp/", #{ endpoint: "http://127.0.0.1:8333" });
delete_remote(old, #{ endpoint: "http://127.0.0.1:8333" });
```"#;

const RETENTION_DOC: &str = r#"Apply a restic-style retention policy to a local folder or a remote prefix.

Policy: `keep_last`, `keep_hourly`, `keep_daily`, `keep_weekly`, `keep_monthly`,
`keep_yearly` (counts, -1 = unlimited; the oldest backup is kept while a count has room, as
restic does), `keep_within` and `keep_within_hourly/daily/weekly/monthly/yearly` (restic's
`"1y6m7d3h"` syntax, `m` = months, measured back from the newest backup), and the
safety floors `keep_newest` (default 1), `max_delete_percent` (default 50) and
`require_fresh` ("2d"). A plan past a floor is refused: nothing is deleted and the call fails.
Options: `pattern` (glob over names, default "*"), `time_from` ("auto": the name's
`_YYYY-mm-dd_HHMMSS` / `_YYYYmmdd_HHMMSS` / `-YYYYmmdd`, else mtime; "name"; "mtime"), and the
connection options. Returns `#{ target, total, kept: [#{name, time, reasons}],
deleted: [#{name, time, reason}], ignored, dry_run, duration_ms }`.

```rhai
let r = retention("./backups", #{ keep_daily: 7, keep_weekly: 4, keep_monthly: 6,
                                  require_fresh: "2d" }, #{ pattern: "db_*.sql.gz" });
log(`kept ${r.kept.len()}, deleted ${r.deleted.len()}`);
```"#;

pub fn register(r: &mut Registrar) {
    restic::register(r);
    r.category("storage");

    host_fn!(r, "upload", UPLOAD_DOC, |ctx, local: &str, target: &str; opts| -> "Map" {
        do_upload(&ctx, local, target, &opts)
    });
    host_fn!(r, "download", DOWNLOAD_DOC, |ctx, target: &str, local: &str; opts| -> "Map" {
        do_download(&ctx, target, local, &opts)
    });

    const NEWEST_DOC: &str = r#"The newest backup directly in a folder or under a remote prefix: `#{ url, key, size, modified, path }` (`path` is the local file for a folder on this machine, else `()`).

Checksum sidecars (`.sha256`), temporary (`.tmp`, `.part`) and hidden files and anything in sub-folders are not backups. Options: `pattern` (glob on the file name, default "*"), and the connection options of `list_remote`. No match is an error (kind `not_found`).

```rhai
let b = newest("./backups", #{ pattern: "db_*.sql.gz" });
log(`newest backup: ${b.path}, ${b.size} bytes, ${b.modified}`);
```"#;
    host_fn!(r, "newest", NEWEST_DOC, |ctx, location: &str; opts| -> "Map" {
        do_newest(&ctx, location, &opts)
    });
    host_fn!(r, "list_remote", LIST_DOC, |ctx, prefix: &str; opts| -> "Array" {
        do_list(&ctx, prefix, &opts)
    });
    host_fn!(r, "delete_remote", DELETE_DOC, |ctx, key_or_array: Dynamic; opts| -> "Map" {
        do_delete(&ctx, &key_or_array, &opts)
    });
    host_fn!(r, "retention", RETENTION_DOC, |ctx, target: &str, policy: Map; opts| -> "Map" {
        do_retention(&ctx, target, &policy, &opts)
    });
}
