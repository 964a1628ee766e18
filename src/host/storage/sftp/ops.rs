//! Upload, download, list and delete over SFTP, with the guarantees of the S3 path: a temporary
//! name until the data is complete and its size checked, a `.sha256` sidecar beside the object
//! (verified after writing and on download), flat memory (at most `WRITE_WINDOW` bytes of writes
//! or `IN_FLIGHT` × `CHUNK` of reads in flight), retries on a fresh connection, and the run's
//! cancellation checked per request.

use std::path::Path;
use std::sync::Arc;

use futures::stream::FuturesOrdered;
use russh_sftp::client::RawSftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::conn::{sftp_err, with_retry, Session};
use super::{Remote, CHUNK, MAX_WRITE, WRITE_WINDOW};
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::storage::upload::fill;

const POSIX_RENAME: &str = "posix-rename@openssh.com";
const FSYNC: &str = "fsync@openssh.com";
const LIMITS: &str = "limits@openssh.com";
/// Chunks read ahead of the sending: enough to keep the writes fed while a read waits.
const READ_AHEAD: usize = 16;

pub(super) fn parent_and_name(path: &str) -> (String, String) {
    match path.rfind('/') {
        Some(0) => ("/".into(), path[1..].to_string()),
        Some(i) => (path[..i].to_string(), path[i + 1..].to_string()),
        None => (".".into(), path.to_string()),
    }
}

/// The name an upload is written under until it is complete: hidden, unique, recognisable.
fn temp_name(path: &str) -> String {
    let (dir, name) = parent_and_name(path);
    let tag: u64 = rand::random();
    let sep = if dir.ends_with('/') { "" } else { "/" };
    format!("{dir}{sep}.{name}.mtn-{tag:016x}.tmp")
}

/// Is this a temporary name of an unfinished upload? (never listed, never a backup)
pub fn is_temp(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.starts_with('.') && base.ends_with(".tmp") && base.contains(".mtn-")
}

fn ssh_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Rename over an existing file: OpenSSH's posix-rename when offered (atomic replace), else
/// plain SFTP rename, which refuses an existing target: then remove it and rename again.
async fn rename_over(s: &Session, from: &str, to: &str) -> HostResult<()> {
    if s.has(POSIX_RENAME) {
        let mut data = Vec::new();
        ssh_string(&mut data, from);
        ssh_string(&mut data, to);
        return match s.sftp.extended(POSIX_RENAME, data).await {
            Ok(russh_sftp::protocol::Packet::Status(st)) if st.status_code == StatusCode::Ok => {
                Ok(())
            }
            Ok(russh_sftp::protocol::Packet::Status(st)) => Err(sftp_err(
                &format!("renaming {from} to {to}"),
                russh_sftp::client::error::Error::Status(st),
            )),
            Ok(_) => Err(HostError::server(format!(
                "renaming {from} to {to}: unexpected answer from the server"
            ))),
            Err(e) => Err(sftp_err(&format!("renaming {from} to {to}"), e)),
        };
    }
    if s.sftp.rename(from, to).await.is_ok() {
        return Ok(());
    }
    let _ = s.sftp.remove(to).await;
    s.sftp
        .rename(from, to)
        .await
        .map(|_| ())
        .map_err(|e| sftp_err(&format!("renaming {from} to {to}"), e))
}

/// `mkdir -p` of `dir` (existing folders are fine).
async fn make_dirs(s: &Session, dir: &str) -> HostResult<()> {
    if dir == "/" || dir == "." || dir.is_empty() {
        return Ok(());
    }
    if let Ok(a) = s.sftp.stat(dir).await {
        if a.attrs.is_dir() {
            return Ok(());
        }
    }
    let (parent, _) = parent_and_name(dir);
    Box::pin(make_dirs(s, &parent)).await?;
    match s.sftp.mkdir(dir, FileAttributes::empty()).await {
        Ok(_) => Ok(()),
        Err(e) => match s.sftp.stat(dir).await {
            Ok(a) if a.attrs.is_dir() => Ok(()),
            _ => Err(sftp_err(&format!("creating folder {dir}"), e)),
        },
    }
}

/// Create the temporary file an upload to `path` is written into: (its name, its handle).
/// EXCLUDE: never write into a file that is already there.
async fn create_temp(s: &Session, path: &str) -> HostResult<(String, String)> {
    let tmp = temp_name(path);
    let handle = s
        .sftp
        .open(
            &tmp,
            OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE,
            FileAttributes::empty(),
        )
        .await
        .map_err(|e| sftp_err(&format!("creating {tmp}"), e))?
        .handle;
    Ok((tmp, handle))
}

/// Write a small file through a temporary name.
async fn put_small(s: &Session, path: &str, data: &[u8]) -> HostResult<()> {
    let (tmp, h) = create_temp(s, path).await?;
    let w = s.sftp.write(h.as_str(), 0, data.to_vec()).await;
    let c = s.sftp.close(h.as_str()).await;
    w.and(c)
        .map_err(|e| sftp_err(&format!("writing {tmp}"), e))?;
    rename_over(s, &tmp, path).await
}

async fn get_small(s: &Session, path: &str, max: u32) -> HostResult<Option<Vec<u8>>> {
    let h = match s
        .sftp
        .open(path, OpenFlags::READ, FileAttributes::empty())
        .await
    {
        Ok(h) => h.handle,
        Err(russh_sftp::client::error::Error::Status(st))
            if st.status_code == StatusCode::NoSuchFile =>
        {
            return Ok(None)
        }
        Err(e) => return Err(sftp_err(&format!("opening {path}"), e)),
    };
    let r = s.sftp.read(h.as_str(), 0, max).await;
    let _ = s.sftp.close(h.as_str()).await;
    match r {
        Ok(d) => Ok(Some(d.data)),
        Err(russh_sftp::client::error::Error::Status(st)) if st.status_code == StatusCode::Eof => {
            Ok(Some(Vec::new()))
        }
        Err(e) => Err(sftp_err(&format!("reading {path}"), e)),
    }
}

/// The sha256 recorded in `<path>.sha256`, when there is a well-formed one.
pub(super) async fn read_sidecar(s: &Session, path: &str) -> HostResult<Option<String>> {
    let Some(data) = get_small(s, &format!("{path}.sha256"), 4096).await? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&data);
    let hex = text
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok((hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex))
}

/// The sidecar's sha256 of a key.
pub async fn read_sidecar_of(s: &Session, key: &str) -> HostResult<Option<String>> {
    read_sidecar(s, &Remote::path_of(key)).await
}

/// Upload `source` to `key`: returns (bytes, sha256 of what was sent).
pub async fn upload(
    remote: &Remote,
    key: &str,
    source: &Path,
    ctx: &RunCtx,
) -> HostResult<(u64, String)> {
    let path = Remote::path_of(key);
    with_retry(remote, ctx, |s| {
        let path = path.clone();
        async move {
            let r = upload_once(&s, &path, source, ctx).await;
            s.close().await;
            r
        }
    })
    .await
}

async fn upload_once(
    s: &Session,
    path: &str,
    source: &Path,
    ctx: &RunCtx,
) -> HostResult<(u64, String)> {
    let (dir, _) = parent_and_name(path);
    make_dirs(s, &dir).await?;
    let (tmp, handle) = create_temp(s, path).await?;
    // A file that fits in one flush interval gets only the final fsync (no second session).
    let big = std::fs::metadata(source).is_ok_and(|m| m.len() > FLUSH_EVERY);
    let mut flusher = if big {
        Flusher::open(s, &tmp).await
    } else {
        None
    };
    let res = send_file(s, &handle, flusher.as_mut(), source, &tmp, ctx).await;
    // After a failure the flusher is dropped instead (its flush aborted): the server may be gone.
    if let (Some(f), true) = (flusher, res.is_ok()) {
        f.close().await;
    }
    let res = match res {
        Ok(v) => finish_upload(s, &handle, &tmp, path, v).await,
        Err(e) => {
            let _ = s.sftp.close(handle.as_str()).await;
            Err(e)
        }
    };
    if res.is_err() {
        // Best effort: when the server is gone this cannot reach it either, and a leftover
        // `.NAME.mtn-*.tmp` is never listed nor taken for a backup.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.sftp.remove(&tmp)).await;
    }
    res
}

/// Bytes per write request: the server's announced maximum up to `MAX_WRITE`, else `CHUNK`.
async fn write_size(s: &Session) -> usize {
    if !s.has(LIMITS) {
        return CHUNK;
    }
    match s.sftp.limits().await {
        Ok(l) if l.max_write_len > 0 => (l.max_write_len as usize).min(MAX_WRITE),
        _ => CHUNK,
    }
}

/// The chunks of a file being read for sending (a read error ends them).
type Chunks = mpsc::Receiver<HostResult<Vec<u8>>>;
/// The sha256 (hex) of every chunk read, once the reading thread is done.
type Hashing = tokio::task::JoinHandle<String>;

/// Reads `source` in `size` pieces on a blocking thread and hashes them there, so the disk
/// reads and the sha256 overlap the sending instead of taking turns with it on the async task.
/// At most `READ_AHEAD` chunks wait in the channel (memory stays flat); when the receiver is
/// dropped (an error, a cancelled run) the thread stops at its next chunk. The handle gives the
/// sha256 of every chunk read, i.e. of what was sent when all of them were.
fn read_chunks(source: &Path, size: usize) -> HostResult<(Chunks, Hashing)> {
    let mut file = std::fs::File::open(source)
        .map_err(|e| HostError::io(format!("opening {}", source.display()), &e))?;
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let src = source.to_path_buf();
    let hashing = tokio::task::spawn_blocking(move || {
        let mut hasher = Sha256::new();
        loop {
            let mut buf = vec![0u8; size];
            let filled = match fill(&mut file, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.blocking_send(Err(HostError::io(
                        format!("reading {}", src.display()),
                        &e,
                    )));
                    break;
                }
            };
            buf.truncate(filled);
            hasher.update(&buf);
            if filled > 0 && tx.blocking_send(Ok(buf)).is_err() {
                break;
            }
            if filled < size {
                break;
            }
        }
        hex::encode(hasher.finalize())
    });
    Ok((rx, hashing))
}

/// Bytes written between two flushes of the temporary file while an upload runs.
const FLUSH_EVERY: u64 = 64 * 1024 * 1024;

/// Flushes an upload's temporary file to the server's disk while the upload runs, through a
/// second SFTP session of the same connection (sftp-server answers one session's requests in
/// order, so an fsync among the writes would stall them; on another session it runs beside
/// them). Without it the final fsync finds the whole file in the server's page cache and the
/// upload waits while the server writes it out: about 1 s per GiB on the test machine, the
/// difference between `sftp put` and `sftp put -f` (docs/benchmarks.md, SFTP).
struct Flusher {
    sftp: Arc<RawSftpSession>,
    handle: Arc<str>,
    flushed_at: u64,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl Flusher {
    /// Open `tmp` on a second session. Best effort: a server without fsync@openssh.com, or one
    /// that refuses another session (MaxSessions), just gets the one fsync at the end, as does
    /// a file smaller than `FLUSH_EVERY`.
    async fn open(s: &Session, tmp: &str) -> Option<Flusher> {
        if !s.has(FSYNC) {
            return None;
        }
        let sftp = s.open_session().await.ok()?;
        match sftp
            .open(tmp, OpenFlags::WRITE, FileAttributes::empty())
            .await
        {
            Ok(h) => Some(Flusher {
                sftp,
                handle: Arc::from(h.handle.as_str()),
                flushed_at: 0,
                running: None,
            }),
            Err(_) => {
                let _ = sftp.close_session();
                None
            }
        }
    }

    /// Start a flush once `FLUSH_EVERY` more bytes were sent and the previous flush is done.
    fn written(&mut self, offset: u64) {
        if offset - self.flushed_at < FLUSH_EVERY
            || self.running.as_ref().is_some_and(|t| !t.is_finished())
        {
            return;
        }
        self.flushed_at = offset;
        let (sftp, h) = (self.sftp.clone(), self.handle.clone());
        // Its result does not matter: the fsync after the last write is the one that counts.
        self.running = Some(tokio::spawn(async move {
            let _ = sftp.fsync(&*h).await;
        }));
    }

    /// Wait for the flush under way, then close the handle and the session.
    async fn close(mut self) {
        if let Some(t) = self.running.take() {
            let _ = t.await;
        }
        let _ = self.sftp.close(&*self.handle).await;
        let _ = self.sftp.close_session();
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        if let Some(t) = &self.running {
            t.abort();
        }
    }
}

async fn send_file(
    s: &Session,
    handle: &str,
    mut flusher: Option<&mut Flusher>,
    source: &Path,
    tmp: &str,
    ctx: &RunCtx,
) -> HostResult<(u64, String)> {
    let size = write_size(s).await;
    let in_flight = (WRITE_WINDOW / size).max(1);
    let (mut chunks, hashing) = read_chunks(source, size)?;
    let mut offset = 0u64;
    let mut pending = FuturesOrdered::new();
    let handle: Arc<str> = Arc::from(handle);
    loop {
        ctx.check_cancelled()?;
        let buf = match chunks.recv().await {
            Some(chunk) => chunk?,
            None => break,
        };
        let len = buf.len() as u64;
        let sftp: Arc<RawSftpSession> = s.sftp.clone();
        let h = handle.clone();
        let at = offset;
        pending.push_back(async move { sftp.write(&*h, at, buf).await });
        offset += len;
        while pending.len() >= in_flight {
            if let Some(r) = s.reply(&mut pending).await {
                r.map_err(|e| sftp_err(&format!("writing {tmp}"), e))?;
            }
        }
        if let Some(f) = flusher.as_deref_mut() {
            f.written(offset);
        }
    }
    while let Some(r) = s.reply(&mut pending).await {
        r.map_err(|e| sftp_err(&format!("writing {tmp}"), e))?;
    }
    let sha = hashing
        .await
        .map_err(|e| HostError::other(format!("hashing {}: {e}", source.display())))?;
    Ok((offset, sha))
}

async fn finish_upload(
    s: &Session,
    handle: &str,
    tmp: &str,
    path: &str,
    (size, sha): (u64, String),
) -> HostResult<(u64, String)> {
    if s.has(FSYNC) {
        let _ = s.sftp.fsync(handle).await;
    }
    s.sftp
        .close(handle)
        .await
        .map_err(|e| sftp_err(&format!("closing {tmp}"), e))?;
    let on_server = s
        .sftp
        .stat(tmp)
        .await
        .map_err(|e| sftp_err(&format!("checking {tmp}"), e))?
        .attrs
        .size
        .unwrap_or(u64::MAX);
    if on_server != size {
        return Err(HostError::verification(format!(
            "{tmp} has {on_server} bytes on the server, {size} were sent"
        )));
    }
    rename_over(s, tmp, path).await?;
    let side = format!("{path}.sha256");
    let name = parent_and_name(path).1;
    put_small(s, &side, format!("{sha}  {name}\n").as_bytes()).await?;
    match read_sidecar(s, path).await? {
        Some(back) if back == sha => Ok((size, sha)),
        other => Err(HostError::verification(format!(
            "the sidecar {side} reads back as {other:?}, expected {sha}"
        ))),
    }
}

/// One file under a prefix: key (as in the URL), size, modification time.
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub mtime: u32,
}

/// Every file whose key starts with `prefix` (recursively under its folder), temp names left out.
pub async fn list(remote: &Remote, prefix: &str, ctx: &RunCtx) -> HostResult<Vec<Listed>> {
    with_retry(remote, ctx, |s| async move {
        let r = list_on(&s, prefix, ctx).await;
        s.close().await;
        r
    })
    .await
}

pub async fn list_on(s: &Session, prefix: &str, ctx: &RunCtx) -> HostResult<Vec<Listed>> {
    let folder_key = match prefix.rfind('/') {
        Some(i) => &prefix[..=i],
        None => "",
    };
    let mut out = Vec::new();
    let mut todo = vec![folder_key.to_string()];
    while let Some(k) = todo.pop() {
        ctx.check_cancelled()?;
        // "" is the server's root (paths are absolute); "~/" maps to "" = the login folder.
        let dir = match Remote::path_of(&k) {
            d if d.is_empty() => ".".to_string(),
            d => d,
        };
        let h = match s.sftp.opendir(&dir).await {
            Ok(h) => h.handle,
            Err(russh_sftp::client::error::Error::Status(st))
                if st.status_code == StatusCode::NoSuchFile && k != folder_key =>
            {
                continue
            }
            Err(russh_sftp::client::error::Error::Status(st))
                if st.status_code == StatusCode::NoSuchFile =>
            {
                return Ok(Vec::new())
            }
            Err(e) => return Err(sftp_err(&format!("listing {dir}"), e)),
        };
        loop {
            match s.sftp.readdir(h.as_str()).await {
                Ok(name) => {
                    for f in name.files {
                        if f.filename == "." || f.filename == ".." {
                            continue;
                        }
                        let key = format!("{k}{}", f.filename);
                        if f.attrs.is_dir() {
                            if prefix.starts_with(&format!("{key}/")) || key.starts_with(prefix) {
                                todo.push(format!("{key}/"));
                            }
                        } else if f.attrs.is_regular() && key.starts_with(prefix) && !is_temp(&key)
                        {
                            out.push(Listed {
                                key,
                                size: f.attrs.size.unwrap_or(0),
                                mtime: f.attrs.mtime.unwrap_or(0),
                            });
                        }
                    }
                }
                Err(russh_sftp::client::error::Error::Status(st))
                    if st.status_code == StatusCode::Eof =>
                {
                    break
                }
                Err(e) => {
                    let _ = s.sftp.close(h.as_str()).await;
                    return Err(sftp_err(&format!("listing {dir}"), e));
                }
            }
        }
        let _ = s.sftp.close(h.as_str()).await;
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Remove files by key; a missing one counts as removed.
pub async fn remove_on(s: &Session, keys: &[String], ctx: &RunCtx) -> HostResult<()> {
    for k in keys {
        ctx.check_cancelled()?;
        let p = Remote::path_of(k);
        match s.sftp.remove(&p).await {
            Ok(_) => {}
            Err(russh_sftp::client::error::Error::Status(st))
                if st.status_code == StatusCode::NoSuchFile => {}
            Err(e) => return Err(sftp_err(&format!("deleting {p}"), e)),
        }
    }
    Ok(())
}

/// Delete keys over one connection (callers name the sidecars too).
pub async fn delete(remote: &Remote, keys: &[String], ctx: &RunCtx) -> HostResult<()> {
    with_retry(remote, ctx, |s| {
        let all = keys;
        async move {
            let r = remove_on(&s, all, ctx).await;
            s.close().await;
            r
        }
    })
    .await
}
