//! Download over SFTP: up to `IN_FLIGHT` reads outstanding, written in order into the caller's
//! temporary file (rewound when a retry starts over), hashed on the way; the expected sha256 is
//! the `.sha256` sidecar beside the file.

use std::collections::VecDeque;
use std::io::{Seek, Write};
use std::sync::Arc;

use futures::stream::FuturesOrdered;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use sha2::{Digest, Sha256};

use super::conn::{connect, sftp_err, Backoff, Session};
use super::ops::{parent_and_name, read_sidecar};
use super::{Remote, CHUNK, IN_FLIGHT};
use crate::atomic::AtomicFile;
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};

/// What a download found: the object's size and the sha256 its sidecar records.
pub struct Fetched {
    pub size: u64,
    pub expected: Option<String>,
    pub got: u64,
    pub sha256: String,
}

/// Stream `key` into `out` (rewound on each retry); with no `out`, only the size and sidecar.
pub async fn download(
    remote: &Remote,
    key: &str,
    mut out: Option<&mut AtomicFile>,
    ctx: &RunCtx,
) -> HostResult<Fetched> {
    let path = Remote::path_of(key);
    // The retry loop of conn::with_retry, written out: each attempt borrows `out` again.
    let mut backoff = Backoff::new(remote);
    loop {
        ctx.check_cancelled()?;
        let res = match connect(remote).await {
            Ok(s) => {
                let r = download_once(&s, &path, out.as_deref_mut(), ctx).await;
                s.close().await;
                r
            }
            Err(e) => Err(e),
        };
        match res {
            Ok(v) => return Ok(v),
            Err(e) => backoff.after(e).await?,
        }
    }
}

async fn download_once(
    s: &Session,
    path: &str,
    out: Option<&mut AtomicFile>,
    ctx: &RunCtx,
) -> HostResult<Fetched> {
    let attrs = s
        .sftp
        .stat(path)
        .await
        .map_err(|e| sftp_err(&format!("download of {path}"), e))?
        .attrs;
    if attrs.is_dir() {
        return Err(HostError::invalid(format!(
            "{path} is a folder on the server; give the URL of one file"
        )));
    }
    let size = attrs.size.unwrap_or(0);
    let expected = read_sidecar(s, path).await?;
    let Some(out) = out else {
        return Ok(Fetched {
            size,
            expected,
            got: 0,
            sha256: String::new(),
        });
    };
    let io = |e: std::io::Error| HostError::io(format!("writing {}", out_name(path)), &e);
    out.file().set_len(0).map_err(io)?;
    out.file().rewind().map_err(io)?;
    let handle: Arc<str> = Arc::from(
        s.sftp
            .open(path, OpenFlags::READ, FileAttributes::empty())
            .await
            .map_err(|e| sftp_err(&format!("opening {path}"), e))?
            .handle,
    );
    let mut hasher = Sha256::new();
    let mut got = 0u64;
    let mut next = 0u64;
    let mut pending: FuturesOrdered<_> = FuturesOrdered::new();
    let mut asked: VecDeque<(u64, u32)> = VecDeque::new();
    let result: HostResult<()> = async {
        loop {
            // Ask past the size we saw: a file that grew is read to its real end.
            while pending.len() < IN_FLIGHT && (next < size || pending.is_empty()) {
                let sftp = s.sftp.clone();
                let h = handle.clone();
                let (at, len) = (next, CHUNK as u32);
                pending.push_back(async move { sftp.read(&*h, at, len).await });
                asked.push_back((at, len));
                next += CHUNK as u64;
            }
            let Some(r) = s.reply(&mut pending).await else {
                break;
            };
            let (at, len) = asked.pop_front().unwrap_or((got, CHUNK as u32));
            ctx.check_cancelled()?;
            let data = match r {
                Ok(d) => d.data,
                Err(russh_sftp::client::error::Error::Status(st))
                    if st.status_code == StatusCode::Eof =>
                {
                    Vec::new()
                }
                Err(e) => return Err(sftp_err(&format!("reading {path}"), e)),
            };
            if data.is_empty() {
                if at >= got {
                    break;
                }
                continue;
            }
            write_chunk(out, &mut hasher, &mut got, &data).map_err(io)?;
            // A short answer in the middle: fetch the rest of this chunk before the next one.
            let mut filled = data.len() as u64;
            while filled < len as u64 {
                let more = match s
                    .sftp
                    .read(&*handle, at + filled, (len as u64 - filled) as u32)
                    .await
                {
                    Ok(d) if !d.data.is_empty() => d.data,
                    Ok(_) => break,
                    Err(russh_sftp::client::error::Error::Status(st))
                        if st.status_code == StatusCode::Eof =>
                    {
                        break
                    }
                    Err(e) => return Err(sftp_err(&format!("reading {path}"), e)),
                };
                filled += more.len() as u64;
                write_chunk(out, &mut hasher, &mut got, &more).map_err(io)?;
            }
            if filled < len as u64 {
                break;
            }
        }
        Ok(())
    }
    .await;
    let _ = s.sftp.close(&*handle).await;
    result?;
    Ok(Fetched {
        size,
        expected,
        got,
        sha256: hex::encode(hasher.finalize()),
    })
}

fn out_name(path: &str) -> String {
    parent_and_name(path).1
}

fn write_chunk(
    out: &mut AtomicFile,
    h: &mut Sha256,
    got: &mut u64,
    data: &[u8],
) -> std::io::Result<()> {
    h.update(data);
    *got += data.len() as u64;
    out.write_all(data)
}
