//! SFTP listings in the shapes list_remote and retention use for every backend.

use chrono::{DateTime, Local, NaiveDateTime, Utc};

use super::conn::with_retry;
use super::ops::{list_on, read_sidecar_of};
use super::Remote;
use crate::ctx::RunCtx;
use crate::error::HostResult;
use crate::host::storage::remote::RemoteObject;
use crate::host::storage::target::Target;

fn utc(mtime: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(mtime as i64, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// list_remote: files under the prefix (sidecars and temporary names left out), with the
/// sidecar's sha256 when `checksums` is set (read over the same connection).
pub async fn list(
    target: &Target,
    remote: &Remote,
    checksums: bool,
    ctx: &RunCtx,
) -> HostResult<Vec<RemoteObject>> {
    let prefix = target.key.clone();
    with_retry(remote, ctx, |s| {
        let prefix = prefix.clone();
        async move {
            let r: HostResult<Vec<RemoteObject>> = async {
                let mut out = Vec::new();
                for f in list_on(&s, &prefix, ctx).await? {
                    if f.key.ends_with(".sha256") {
                        continue;
                    }
                    let sha256 = if checksums {
                        read_sidecar_of(&s, &f.key).await?
                    } else {
                        None
                    };
                    out.push(RemoteObject {
                        url: target.url_of(&f.key),
                        modified: utc(f.mtime).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        key: f.key,
                        size: f.size,
                        sha256,
                    });
                }
                Ok(out)
            }
            .await;
            s.close().await;
            r
        }
    })
    .await
}

/// retention: every file under the folder prefix with its modification time (local time, as
/// the other backends give it), sidecars included so they are deleted with their backup.
pub async fn list_times(
    remote: &Remote,
    prefix: &str,
    ctx: &RunCtx,
) -> HostResult<Vec<(String, NaiveDateTime)>> {
    let files = super::ops::list(remote, prefix, ctx).await?;
    Ok(files
        .into_iter()
        .map(|f| (f.key, utc(f.mtime).with_timezone(&Local).naive_local()))
        .collect())
}
