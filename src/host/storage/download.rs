//! `download`: stream an object to `<final>.tmp`, verify it, rename it into place.
//!
//! The expected sha256 comes from the object's metadata (S3, written by `upload`) or from the
//! `.sha256` sidecar (file:// and sftp:// targets). An object without one (uploaded by another tool) is
//! checked by size only, and the report says so. Nothing partial ever has the final name.

use crate::units::human;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::StreamExt;
use object_store::{Attribute, GetOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::encrypt::{self, DecryptOptions};
use super::target::{Backend, Target};
use super::upload::SHA256_META;
use crate::atomic::AtomicFile;
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownloadOptions {
    /// Decrypt an age-encrypted object with this identity file after verifying it.
    pub decrypt: Option<DecryptOptions>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DownloadReport {
    pub url: String,
    pub path: String,
    /// Bytes written to `path` (the plaintext when decrypting).
    pub bytes: u64,
    /// sha256 of the object as stored.
    pub sha256: String,
    /// "sha256" when checked against the stored checksum, "size" when the object had none.
    pub verified: String,
    pub decrypted: bool,
    pub duration_ms: u64,
    pub dry_run: bool,
}

pub async fn download(
    target: &Target,
    local: &Path,
    opts: &DownloadOptions,
    ctx: &RunCtx,
) -> HostResult<DownloadReport> {
    let started = Instant::now();
    if target.is_prefix() {
        return Err(HostError::invalid(format!(
            "{} names a folder; give the URL of one object (list_remote() shows them)",
            target.url()
        )));
    }
    let key = target.key.clone();
    let name = key.rsplit('/').next().unwrap_or(&key).to_string();
    let dest: PathBuf = if local.is_dir() || local.to_string_lossy().ends_with('/') {
        let n = if opts.decrypt.is_some() {
            name.strip_suffix(".age").unwrap_or(&name).to_string()
        } else {
            name.clone()
        };
        local.join(n)
    } else {
        local.to_path_buf()
    };
    let dest = ctx.policy.check_write(&dest)?;
    if let Some(parent) = dest.parent() {
        if !parent.is_dir() {
            ctx.policy.check_write(parent)?;
            if !ctx.dry_run {
                std::fs::create_dir_all(parent)
                    .map_err(|e| HostError::io(format!("creating {}", parent.display()), &e))?;
            }
        }
    }
    let url = target.url();

    if let Some(remote) = &target.sftp {
        let head_only = ctx.dry_run;
        if head_only {
            let f = super::sftp::download::download(remote, &key, None, ctx).await?;
            return Ok(dry_report(url, &dest, f.size, f.expected, opts, started));
        }
        let mut out = create_out(&dest)?;
        let f = super::sftp::download::download(remote, &key, Some(&mut out), ctx).await?;
        let got = Got {
            size: f.size,
            expected: f.expected,
            bytes: f.got,
            sha: f.sha256,
        };
        return finish(out, got, &dest, url, opts, started);
    }

    let path = target.path(&key)?;
    let get = GetOptions {
        head: ctx.dry_run,
        ..Default::default()
    };
    let res = target
        .store
        .get_opts(&path, get)
        .await
        .map_err(|e| target.error("download of", &key, e))?;
    let size = res.meta.size;
    let expected = match target.backend {
        Backend::S3 | Backend::Azure | Backend::Gcs => res
            .attributes
            .get(&Attribute::Metadata(SHA256_META.into()))
            .map(|v| v.to_string()),
        Backend::File => target.local_path(&key).and_then(|p| read_sidecar(&p)),
        Backend::Sftp => None,
    };
    if ctx.dry_run {
        return Ok(dry_report(url, &dest, size, expected, opts, started));
    }

    // With decryption the verified ciphertext goes to a temporary file of its own that is never
    // committed (dropped, it is removed); the plaintext gets a second one.
    let mut out = create_out(&dest)?;
    let mut hasher = Sha256::new();
    let mut got = 0u64;
    let progress = crate::progress::Progress::start(&format!("downloading {key}"), Some(size));
    let mut stream = res.into_stream();
    while let Some(chunk) = stream.next().await {
        ctx.check_cancelled()?;
        let chunk = chunk.map_err(|e| target.error("download of", &key, e))?;
        hasher.update(&chunk);
        got += chunk.len() as u64;
        progress.inc(chunk.len() as u64);
        out.write_all(&chunk)
            .map_err(|e| HostError::io(format!("writing {}", out.tmp_path().display()), &e))?;
    }
    let got = Got {
        size,
        expected,
        bytes: got,
        sha: hex::encode(hasher.finalize()),
    };
    finish(out, got, &dest, url, opts, started)
}

fn create_out(dest: &Path) -> HostResult<AtomicFile> {
    AtomicFile::create(dest)
        .map_err(|e| HostError::io(format!("creating a file next to {}", dest.display()), &e))
}

fn dry_report(
    url: String,
    dest: &Path,
    size: u64,
    expected: Option<String>,
    opts: &DownloadOptions,
    started: Instant,
) -> DownloadReport {
    DownloadReport {
        url,
        path: dest.display().to_string(),
        bytes: size,
        sha256: expected.clone().unwrap_or_default(),
        verified: if expected.is_some() { "sha256" } else { "size" }.into(),
        decrypted: opts.decrypt.is_some(),
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: true,
    }
}

/// What was streamed into the temporary file, and what the store said to expect.
struct Got {
    size: u64,
    expected: Option<String>,
    bytes: u64,
    sha: String,
}

/// Check size and checksum, decrypt when asked, and commit under the final name.
fn finish(
    mut out: AtomicFile,
    g: Got,
    dest: &Path,
    url: String,
    opts: &DownloadOptions,
    started: Instant,
) -> HostResult<DownloadReport> {
    let Got {
        size,
        expected,
        bytes: got,
        sha,
    } = g;
    if got != size {
        return Err(HostError::verification(format!(
            "{url} ended after {} of {} ({got} of {size} bytes); {} was not written",
            human(got),
            human(size),
            dest.display()
        )));
    }
    if let Some(exp) = &expected {
        if exp != &sha {
            return Err(HostError::verification(format!(
                "{url} has sha256 {sha} but its stored checksum is {exp}; {} was not written",
                dest.display()
            )));
        }
    }

    let (bytes, decrypted) = match &opts.decrypt {
        Some(dec) => {
            let cipher = out.tmp_path().to_path_buf();
            out.flush()
                .map_err(|e| HostError::io(format!("writing {}", cipher.display()), &e))?;
            let mut plain = create_out(dest)?;
            let n = encrypt::decrypt_into(&cipher, &mut plain, dec)?;
            drop(out);
            plain
                .commit()
                .map_err(|e| HostError::io(format!("renaming into {}", dest.display()), &e))?;
            (n, true)
        }
        None => {
            out.commit()
                .map_err(|e| HostError::io(format!("renaming into {}", dest.display()), &e))?;
            (got, false)
        }
    };
    Ok(DownloadReport {
        url,
        path: dest.display().to_string(),
        bytes,
        sha256: sha,
        verified: if expected.is_some() { "sha256" } else { "size" }.into(),
        decrypted,
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: false,
    })
}

/// The hex digest in `<file>.sha256`, if there is a well-formed one.
pub fn read_sidecar(file: &Path) -> Option<String> {
    let mut name = file.file_name()?.to_os_string();
    name.push(".sha256");
    let text = std::fs::read_to_string(file.with_file_name(name)).ok()?;
    let hex = text.split_whitespace().next()?.to_ascii_lowercase();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}
