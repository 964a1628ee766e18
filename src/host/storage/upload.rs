//! `upload`: stream a file (or every file of a folder) to a target, then verify it there.
//!
//! The sha256 is computed first, because S3 takes user metadata only when an upload starts;
//! it travels as `x-amz-meta-sha256`. The file is then read once more in parts (multipart above
//! one part size), hashed again on the way so a file that changes mid-upload is caught, and the
//! object is checked afterwards with a HEAD (size and stored sha256). On `file://` targets the
//! checksum goes into a `sha256sum` sidecar and the written file itself is re-hashed.
//! A failed upload is aborted: no object appears under the final key. SFTP targets write to a
//! temporary name, rename, and store a `.sha256` sidecar beside the file (sftp/ops.rs).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use object_store::{
    Attribute, Attributes, GetOptions, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
    WriteMultipart,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::encrypt::{self, EncryptOptions};
use super::target::{Backend, Target};
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};

pub const SHA256_META: &str = "sha256";
const DEFAULT_PART: u64 = 8 * 1024 * 1024;
/// S3 allows at most 10 000 parts; stay below so a huge file grows its parts instead.
const MAX_PARTS: u64 = 9_000;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadOptions {
    /// Encrypt with age for these recipients before uploading.
    pub encrypt: Option<EncryptOptions>,
    /// Multipart part size in bytes (default 8 MiB; grows for files above ~70 GiB).
    pub part_size: Option<u64>,
    /// Parts in flight at once (default 4). Memory ≈ (concurrency + 1) × part size.
    pub concurrency: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileUpload {
    pub url: String,
    pub local: String,
    pub bytes: u64,
    pub sha256: Option<String>,
    pub multipart: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct UploadReport {
    pub url: String,
    pub bytes: u64,
    /// sha256 of the uploaded object (of the ciphertext when encrypted); `()` for a folder.
    pub sha256: Option<String>,
    pub duration_ms: u64,
    pub dry_run: bool,
    pub encrypted: bool,
    /// Every object written (one for a file).
    pub files: Vec<FileUpload>,
}

pub async fn upload(
    local: &Path,
    target: &Target,
    opts: &UploadOptions,
    ctx: &RunCtx,
) -> HostResult<UploadReport> {
    let started = Instant::now();
    if let Some(enc) = &opts.encrypt {
        encrypt::validate(enc)?;
    }
    if let Some(p) = opts.part_size {
        if p < 5 * 1024 * 1024 {
            return Err(HostError::invalid(format!(
                "part_size {p} is below S3's minimum of 5 MiB (5242880)"
            )));
        }
    }
    let meta = std::fs::metadata(local)
        .map_err(|e| HostError::io(format!("cannot read {}", local.display()), &e))?;
    let suffix = if opts.encrypt.is_some() { ".age" } else { "" };
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| HostError::invalid(format!("{} has no file name", local.display())))?;

    let (jobs, url) = if meta.is_dir() {
        let base = if target.is_prefix() {
            format!("{}{name}/", target.key)
        } else {
            format!("{}/", target.key)
        };
        let mut files = Vec::new();
        walk(local, local, &mut files)?;
        let jobs: Vec<(PathBuf, String)> = files
            .into_iter()
            .map(|(abs, rel)| {
                let key = format!("{base}{rel}{suffix}");
                (abs, key)
            })
            .collect();
        (jobs, target.url_of(&base))
    } else {
        let key = if target.is_prefix() {
            format!("{}{name}{suffix}", target.key)
        } else {
            target.key.clone()
        };
        let url = target.url_of(&key);
        (vec![(local.to_path_buf(), key)], url)
    };

    let mut files = Vec::with_capacity(jobs.len());
    for (src, key) in jobs {
        ctx.check_cancelled()?;
        files.push(upload_file(&src, &key, target, opts, ctx).await?);
    }
    let bytes = files.iter().map(|f| f.bytes).sum();
    let sha256 = if meta.is_dir() {
        None
    } else {
        files.first().and_then(|f| f.sha256.clone())
    };
    Ok(UploadReport {
        url,
        bytes,
        sha256,
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: ctx.dry_run,
        encrypted: opts.encrypt.is_some(),
        files,
    })
}

/// Regular files under `dir`, sorted, as (absolute path, '/'-joined relative path).
fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) -> HostResult<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| HostError::io(format!("reading folder {}", dir.display()), &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| HostError::io(format!("reading folder {}", dir.display()), &e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let ft = e
            .file_type()
            .map_err(|err| HostError::io(path.display(), &err))?;
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if ft.is_file() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().to_string())
                .collect::<Vec<_>>()
                .join("/");
            out.push((path, rel));
        }
        // Symlinks and special files are not followed: a backup folder should not reach out.
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> HostResult<T> + Send + 'static,
) -> HostResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HostError::other(format!("background task failed: {e}")))?
}

async fn upload_file(
    src: &Path,
    key: &str,
    target: &Target,
    opts: &UploadOptions,
    ctx: &RunCtx,
) -> HostResult<FileUpload> {
    let url = target.url_of(key);
    if let Some(local_dest) = target.local_path(key) {
        ctx.policy.check_write(&local_dest)?;
    }
    if ctx.dry_run {
        let size = std::fs::metadata(src)
            .map_err(|e| HostError::io(src.display(), &e))?
            .len();
        return Ok(FileUpload {
            url,
            local: src.display().to_string(),
            bytes: size,
            sha256: None,
            multipart: false,
        });
    }

    if let Some(remote) = &target.sftp {
        return upload_sftp(src, key, url, remote, opts, ctx).await;
    }
    let path = target.path(key)?;

    // The encrypted copy lives as long as this function: dropping it removes it.
    let mut _ciphertext = None;
    let (source, size, sha) = match &opts.encrypt {
        Some(enc) => {
            let (src, enc) = (src.to_path_buf(), enc.clone());
            let (tmp, n, sha) = blocking(move || encrypt::encrypt_to_temp(&src, &enc)).await?;
            let p = tmp.path().to_path_buf();
            _ciphertext = Some(tmp);
            (p, n, sha)
        }
        None => {
            let s = src.to_path_buf();
            let (n, sha) = blocking(move || {
                crate::atomic::sha256_file(&s)
                    .map_err(|e| HostError::io(format!("reading {}", s.display()), &e))
            })
            .await?;
            (src.to_path_buf(), n, sha)
        }
    };

    let mut part = opts.part_size.unwrap_or(DEFAULT_PART);
    if size / part >= MAX_PARTS {
        part = size.div_ceil(MAX_PARTS);
    }
    let multipart = size > part;
    let mut attrs = Attributes::new();
    if target.backend.keeps_metadata() {
        attrs.insert(Attribute::Metadata(SHA256_META.into()), sha.clone().into());
    }

    let sent_sha = if multipart {
        put_multipart(&source, &path, key, target, attrs, part as usize, opts, ctx).await?
    } else {
        let s = source.clone();
        let data = blocking(move || {
            std::fs::read(&s).map_err(|e| HostError::io(format!("reading {}", s.display()), &e))
        })
        .await?;
        let sent = hex::encode(Sha256::digest(&data));
        if sent != sha {
            return Err(changed(src));
        }
        let put = PutOptions {
            attributes: attrs,
            ..Default::default()
        };
        target
            .store
            .put_opts(&path, PutPayload::from(Bytes::from(data)), put)
            .await
            .map_err(|e| target.error("upload to", key, e))?;
        sent
    };
    if sent_sha != sha {
        // The data is already there under the final key; remove it rather than keep a lie.
        let _ = target.store.delete(&path).await;
        return Err(changed(src));
    }

    verify(target, key, size, &sha).await?;
    if let Some(dest) = target.local_path(key) {
        crate::atomic::write_sha256_sidecar(&dest, &sha)
            .map_err(|e| HostError::io(format!("writing the sidecar of {}", dest.display()), &e))?;
    }
    Ok(FileUpload {
        url,
        local: src.display().to_string(),
        bytes: size,
        sha256: Some(sha),
        multipart,
    })
}

/// SFTP: the sha256 is computed while sending (the sidecar is written after the data, so it
/// need not be known first); a file that changed during the upload is removed again.
async fn upload_sftp(
    src: &Path,
    key: &str,
    url: String,
    remote: &super::sftp::Remote,
    opts: &UploadOptions,
    ctx: &RunCtx,
) -> HostResult<FileUpload> {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| (m.len(), m.modified().ok()))
            .ok()
    };
    let before = stamp(src);
    let (bytes, sha) = match &opts.encrypt {
        Some(enc) => {
            let (s, enc) = (src.to_path_buf(), enc.clone());
            let (tmp, _, sha) = blocking(move || encrypt::encrypt_to_temp(&s, &enc)).await?;
            let (n, sent) = super::sftp::ops::upload(remote, key, tmp.path(), ctx).await?;
            if sent != sha {
                super::sftp::ops::delete(remote, &[key.to_string(), format!("{key}.sha256")], ctx)
                    .await?;
                return Err(changed(src));
            }
            (n, sent)
        }
        None => super::sftp::ops::upload(remote, key, src, ctx).await?,
    };
    if opts.encrypt.is_none() && stamp(src) != before {
        super::sftp::ops::delete(remote, &[key.to_string(), format!("{key}.sha256")], ctx).await?;
        return Err(changed(src));
    }
    Ok(FileUpload {
        url,
        local: src.display().to_string(),
        bytes,
        sha256: Some(sha),
        multipart: false,
    })
}

fn changed(src: &Path) -> HostError {
    HostError::verification(format!(
        "{} changed while it was being uploaded (its sha256 differs between two reads); nothing was kept",
        src.display()
    ))
}

/// Read up to `len` bytes (fewer only at the end of the file).
fn read_part(file: &mut File, len: usize) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::zeroed(len);
    let filled = fill(file, &mut buf)?;
    buf.truncate(filled);
    Ok(buf.freeze())
}

/// Read until `buf` is full or the file ends: the number of bytes read (fewer only at the end).
/// Every uploader's chunking (object stores' parts, SFTP's write requests) reads through this.
pub(super) fn fill(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[allow(clippy::too_many_arguments)]
async fn put_multipart(
    source: &Path,
    path: &object_store::path::Path,
    key: &str,
    target: &Target,
    attrs: Attributes,
    part: usize,
    opts: &UploadOptions,
    ctx: &RunCtx,
) -> HostResult<String> {
    let concurrency = opts.concurrency.unwrap_or(4).max(1);
    let file = File::open(source)
        .map_err(|e| HostError::io(format!("opening {}", source.display()), &e))?;
    let mpu = target
        .store
        .put_multipart_opts(
            path,
            PutMultipartOptions {
                attributes: attrs,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| target.error("upload to", key, e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(mpu, part);
    let total = file.metadata().map(|m| m.len()).ok();
    let progress = crate::progress::Progress::start(&format!("uploading {key}"), total);
    let mut state = Some((file, Sha256::new()));
    let result: HostResult<()> = async {
        loop {
            ctx.check_cancelled()?;
            writer
                .wait_for_capacity(concurrency)
                .await
                .map_err(|e| target.error("upload to", key, e))?;
            let (mut file, mut hasher) = state
                .take()
                .ok_or_else(|| HostError::other("reader lost"))?;
            let src = source.to_path_buf();
            let (file, hasher, chunk) = blocking(move || {
                let chunk = read_part(&mut file, part)
                    .map_err(|e| HostError::io(format!("reading {}", src.display()), &e))?;
                hasher.update(&chunk);
                Ok((file, hasher, chunk))
            })
            .await?;
            let done = chunk.len() < part;
            progress.inc(chunk.len() as u64);
            if !chunk.is_empty() {
                writer.put(chunk);
            }
            state = Some((file, hasher));
            if done {
                return Ok(());
            }
        }
    }
    .await;
    match result {
        Ok(()) => {
            writer
                .finish()
                .await
                .map_err(|e| target.error("upload to", key, e))?;
            let (_, hasher) = state.ok_or_else(|| HostError::other("reader lost"))?;
            Ok(hex::encode(hasher.finalize()))
        }
        Err(e) => {
            // Best effort, bounded: when the server is gone the abort cannot reach it either,
            // and S3 never shows an unfinished multipart upload as an object.
            let _ = tokio::time::timeout(Duration::from_secs(10), writer.abort()).await;
            Err(e)
        }
    }
}

/// HEAD the object: it must have the size we sent and (on S3, Azure, GCS) the sha256 we stored.
/// On a local target the written file is hashed again, which checks the bytes themselves.
pub async fn verify(target: &Target, key: &str, size: u64, sha: &str) -> HostResult<()> {
    let path = target.path(key)?;
    let head = target
        .store
        .get_opts(
            &path,
            GetOptions {
                head: true,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| target.error("verifying", key, e))?;
    if head.meta.size != size {
        return Err(HostError::verification(format!(
            "{} has {} bytes on the server, {size} were sent (a size mismatch)",
            target.url_of(key),
            head.meta.size
        )));
    }
    match target.backend {
        Backend::S3 | Backend::Azure | Backend::Gcs => {
            let stored = head
                .attributes
                .get(&Attribute::Metadata(SHA256_META.into()))
                .map(|v| v.to_string());
            if stored.as_deref() != Some(sha) {
                return Err(HostError::verification(format!(
                    "{} does not carry the expected sha256 {sha} (server has {:?}): the store dropped its metadata",
                    target.url_of(key),
                    stored
                )));
            }
        }
        // Checked by sftp/ops.rs (size on the server, sidecar read back) before this.
        Backend::Sftp => {}
        Backend::File => {
            let dest = target
                .local_path(key)
                .ok_or_else(|| HostError::other("no local path"))?;
            let d = dest.clone();
            let (_, got) = blocking(move || {
                crate::atomic::sha256_file(&d)
                    .map_err(|e| HostError::io(format!("re-reading {}", d.display()), &e))
            })
            .await?;
            if got != sha {
                return Err(HostError::verification(format!(
                    "{} reads back with sha256 {got}, expected {sha}",
                    dest.display()
                )));
            }
        }
    }
    Ok(())
}
