//! Parallel gzip, shared by database dumps, log rotation and `compress()`.
//!
//! Input is cut into chunks; each chunk is deflated on its own thread into a complete gzip
//! member, and members are written in order. The concatenation is a valid multi-member gzip
//! file that `gunzip`, `zcat` and flate2's `MultiGzDecoder` read as one stream. Memory stays
//! bounded: at most `2 × threads` chunks are in flight.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use rhai::Map;
use serde::{Deserialize, Serialize};

use crate::atomic::AtomicFile;
use crate::engine::ctx::RunCtx;
use crate::engine::registry::Registrar;
use crate::host::binding::{call, opts, RhaiResult};
use crate::host::error::{HostError, HostResult};

/// Chunk size per gzip member. 1 MiB keeps the size penalty of independent members well under
/// 1% at level 6 while giving enough chunks to keep every core busy.
pub const DEFAULT_CHUNK: usize = 1024 * 1024;

pub fn default_threads() -> usize {
    thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

pub struct ParallelGzWriter<W: Write> {
    inner: Option<W>,
    level: u32,
    chunk: usize,
    threads: usize,
    buf: Vec<u8>,
    pending: VecDeque<mpsc::Receiver<io::Result<Vec<u8>>>>,
    raw_bytes: u64,
    finished: bool,
}

impl<W: Write> ParallelGzWriter<W> {
    pub fn new(inner: W, level: u32) -> Self {
        Self::with_options(inner, level, default_threads(), DEFAULT_CHUNK)
    }

    pub fn with_options(inner: W, level: u32, threads: usize, chunk: usize) -> Self {
        ParallelGzWriter {
            inner: Some(inner),
            level: level.min(9),
            chunk: chunk.max(64 * 1024),
            threads: threads.max(1),
            buf: Vec::with_capacity(chunk),
            pending: VecDeque::new(),
            raw_bytes: 0,
            finished: false,
        }
    }

    /// Uncompressed bytes written so far.
    pub fn raw_bytes(&self) -> u64 {
        self.raw_bytes
    }

    fn dispatch(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk));
        let level = self.level;
        let (tx, rx) = mpsc::sync_channel(1);
        if self.threads == 1 {
            let _ = tx.send(compress_member(&data, level));
        } else {
            thread::spawn(move || {
                let _ = tx.send(compress_member(&data, level));
            });
        }
        self.pending.push_back(rx);
        while self.pending.len() >= self.threads * 2 {
            self.drain_one()?;
        }
        Ok(())
    }

    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let member = rx
                .recv()
                .map_err(|_| io::Error::other("compression thread died"))??;
            self.out()?.write_all(&member)?;
        }
        Ok(())
    }

    /// Compress what is left, write every member, and return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.finish_inner()?;
        self.inner
            .take()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))
    }

    fn out(&mut self) -> io::Result<&mut W> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip writer already finished"))
    }

    fn finish_inner(&mut self) -> io::Result<()> {
        if self.finished {
            return Ok(());
        }
        // An empty input still yields a valid (empty) gzip file.
        if self.buf.is_empty() && self.pending.is_empty() && self.raw_bytes == 0 {
            let member = compress_member(&[], self.level)?;
            self.out()?.write_all(&member)?;
        } else {
            self.dispatch()?;
        }
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        self.out()?.flush()?;
        self.finished = true;
        Ok(())
    }
}

impl<W: Write> Write for ParallelGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.chunk - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.raw_bytes += n as u64;
        if self.buf.len() >= self.chunk {
            self.dispatch()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        // Members are only complete at chunk boundaries; flushing the partial chunk early would
        // just make more, smaller members. Data is guaranteed out by `finish`.
        Ok(())
    }
}

impl<W: Write> Drop for ParallelGzWriter<W> {
    fn drop(&mut self) {
        // Dropping without finish() is an abandoned write (error path): do not block on
        // compression threads, just let them finish into closed channels.
        self.pending.clear();
    }
}

/// One complete gzip member for `data`.
pub fn compress_member(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(data.len() / 3 + 64),
        Compression::new(level),
    );
    enc.write_all(data)?;
    enc.finish()
}

/// Compress `src` into `dest` through `<dest>.tmp` (fsynced, then renamed), keeping the source's
/// mode, mtime and (as root) owner, like gzip. The source is left alone: the caller removes it
/// once the compressed file is in place, so a crash at any point leaves the data complete in
/// `src`, in `dest`, or (for an instant between rename and unlink) in both, which
/// rotate's recovery (`host/rotate/recover.rs`) resolves. Returns (bytes in, bytes out).
pub fn gzip_file(
    src: &Path,
    dest: &Path,
    level: u32,
    threads: usize,
    stop: &(dyn Fn() -> bool + Sync),
) -> io::Result<(u64, u64)> {
    let mut input = crate::atomic::open_regular(src)?;
    let md = input.metadata()?;
    let out = AtomicFile::create(dest)?;
    let mut gz = ParallelGzWriter::with_options(out, level, threads, DEFAULT_CHUNK);
    let mut buf = vec![0u8; DEFAULT_CHUNK];
    let name = src.file_name().unwrap_or_default().to_string_lossy();
    let progress = crate::progress::Progress::start(&format!("compressing {name}"), Some(md.len()));
    loop {
        if stop() {
            return Err(crate::atomic::cancelled());
        }
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        gz.write_all(&buf[..n])?;
        progress.inc(n as u64);
    }
    drop(progress);
    let raw = gz.raw_bytes();
    unchanged_since(&input, &md, raw, src)?;
    let mut out = gz.finish()?;
    let written = out.file().stream_position()?;
    copy_attrs(out.file(), &md)?;
    out.commit()?;
    Ok((raw, written))
}

/// A file still being written to (a log an application appends to) must not be compressed and
/// then removed: the lines appended during the read would be lost. Compare what was read with
/// the file as it is now.
fn unchanged_since(f: &File, before: &std::fs::Metadata, read: u64, path: &Path) -> io::Result<()> {
    let now = f.metadata()?;
    if now.len() != read || now.modified().ok() != before.modified().ok() {
        return Err(io::Error::other(format!(
            "{} changed while it was being compressed ({read} bytes read, {} bytes now): it is left as it is and no .gz is written; \
stop the writer first, or rotate it (rotate renames first, then compresses)",
            path.display(),
            now.len()
        )));
    }
    Ok(())
}

/// Give `f` the mode, access and modification times and (as root) owner of `md`.
pub fn copy_attrs(f: &File, md: &std::fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::fchown(f, Some(md.uid()), Some(md.gid()))?;
    }
    f.set_permissions(std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
    // Both times, as gzip and logrotate keep them (logrotate test 0108).
    let atime = filetime::FileTime::from_last_access_time(md);
    let mtime = filetime::FileTime::from_last_modification_time(md);
    filetime::set_file_handle_times(f, Some(atime), Some(mtime))
}

/// Decompress `src` (plain or multi-member gzip) into `dest` through a temporary file.
pub fn gunzip_file(
    src: &Path,
    dest: &Path,
    stop: &(dyn Fn() -> bool + Sync),
) -> io::Result<(u64, u64)> {
    let input = crate::atomic::open_regular(src)?;
    let md = input.metadata()?;
    let mut dec = MultiGzDecoder::new(io::BufReader::with_capacity(256 * 1024, input));
    let mut out = AtomicFile::create(dest)?;
    let n = crate::atomic::copy_until(&mut dec, out.file(), stop)?;
    copy_attrs(out.file(), &md)?;
    out.commit()?;
    Ok((md.len(), n))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressOpts {
    /// gzip level 1–9 (default 6, like gzip).
    pub level: u32,
    /// Keep the input file (gzip -k).
    pub keep: bool,
    /// Replace an existing output (gzip -f).
    pub force: bool,
    /// Compression threads (default: every core).
    pub threads: Option<usize>,
}

impl Default for CompressOpts {
    fn default() -> Self {
        CompressOpts {
            level: 6,
            keep: false,
            force: false,
            threads: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CompressReport {
    pub input: String,
    pub output: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub ratio: f64,
    pub dry_run: bool,
}

fn io_err(what: &str, path: &Path, e: &io::Error) -> HostError {
    HostError::io(format!("{what} {}", path.display()), e)
}

fn check_input(path: &Path) -> HostResult<std::fs::Metadata> {
    let md = std::fs::symlink_metadata(path).map_err(|e| io_err("reading", path, &e))?;
    if !md.is_file() {
        return Err(HostError::invalid(format!(
            "{} is not a regular file (symlinks are not followed)",
            path.display()
        )));
    }
    Ok(md)
}

pub fn compress(ctx: &RunCtx, path: &str, opts: &CompressOpts) -> HostResult<CompressReport> {
    if !(1..=9).contains(&opts.level) {
        return Err(HostError::invalid(format!(
            "compress: level must be 1 to 9, got {}",
            opts.level
        )));
    }
    let src = Path::new(path);
    if path.ends_with(".gz") {
        return Err(HostError::invalid(format!(
            "{path} already has the .gz suffix"
        )));
    }
    let (src_abs, dest, report) = prepare(
        ctx,
        src,
        Path::new(&format!("{path}.gz")),
        opts.keep,
        opts.force,
    )?;
    if ctx.dry_run {
        return Ok(report);
    }
    let threads = opts.threads.unwrap_or_else(default_threads).max(1);
    let stop = || ctx.token.is_cancelled();
    let (raw, out) = gzip_file(&src_abs, &dest, opts.level, threads, &stop)
        .map_err(|e| io_err("compressing", &src_abs, &e))?;
    complete(report, &src_abs, opts.keep, (raw, out), true)
}

/// What compress and decompress share before any byte moves: the input must be a regular file,
/// both paths pass the policy (the input only when it will be removed), an existing output is
/// refused unless `force`, and the report starts with the input's size.
fn prepare(
    ctx: &RunCtx,
    src: &Path,
    dest: &Path,
    keep: bool,
    force: bool,
) -> HostResult<(PathBuf, PathBuf, CompressReport)> {
    let md = check_input(src)?;
    let dest = ctx.policy.check_write(dest)?;
    let src_abs = if keep {
        crate::policy::absolute(src)
    } else {
        ctx.policy.check_write(src)?
    };
    if !force && std::fs::symlink_metadata(&dest).is_ok() {
        return Err(HostError::refused(format!(
            "{} already exists (force: true replaces it)",
            dest.display()
        )));
    }
    let report = CompressReport {
        input: src_abs.display().to_string(),
        output: dest.display().to_string(),
        bytes_in: md.len(),
        bytes_out: 0,
        ratio: 0.0,
        dry_run: ctx.dry_run,
    };
    Ok((src_abs, dest, report))
}

/// After the output is in place: remove the input unless `keep`, fill in the sizes; `ratio` is
/// always compressed / raw, whichever way the data went.
fn complete(
    mut report: CompressReport,
    src_abs: &Path,
    keep: bool,
    (bytes_in, bytes_out): (u64, u64),
    compressing: bool,
) -> HostResult<CompressReport> {
    let (raw, compressed) = if compressing {
        (bytes_in, bytes_out)
    } else {
        (bytes_out, bytes_in)
    };
    if !keep {
        std::fs::remove_file(src_abs).map_err(|e| io_err("removing", src_abs, &e))?;
        crate::atomic::sync_dir(src_abs);
    }
    report.bytes_in = bytes_in;
    report.bytes_out = bytes_out;
    report.ratio = if raw == 0 {
        0.0
    } else {
        compressed as f64 / raw as f64
    };
    Ok(report)
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DecompressOpts {
    pub keep: bool,
    pub force: bool,
}

pub fn decompress(ctx: &RunCtx, path: &str, opts: &DecompressOpts) -> HostResult<CompressReport> {
    let Some(stem) = path.strip_suffix(".gz") else {
        return Err(HostError::invalid(format!("{path} does not end in .gz")));
    };
    let src = Path::new(path);
    let (src_abs, dest, report) = prepare(ctx, src, Path::new(stem), opts.keep, opts.force)?;
    if ctx.dry_run {
        return Ok(report);
    }
    let stop = || ctx.token.is_cancelled();
    let (inp, out) = gunzip_file(&src_abs, &dest, &stop).map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidInput || e.kind() == io::ErrorKind::InvalidData {
            HostError::verification(format!("{path} is not valid gzip: {e}"))
        } else {
            io_err("decompressing", &src_abs, &e)
        }
    })?;
    complete(report, &src_abs, opts.keep, (inp, out), false)
}

pub fn register(r: &mut Registrar) {
    r.category("files");
    const C: &str = "gzip a file into `path.gz` (parallel on large files; plain gzip that `gunzip` reads), then remove `path`.\n\n\
The output is written to a temporary file and renamed, so a crash never leaves a partial `.gz` nor loses the input. \
Mode and mtime are kept, like gzip. Honours the policy and dry-run. Options: `level` (6), `keep` (false: \
remove the input), `force` (false: refuse to replace an existing output), `threads` (every core). \
Returns `#{ input, output, bytes_in, bytes_out, ratio, dry_run }`.\n\n\
```rhai\nlet r = compress(\"./dump.sql\", #{ level: 6 });\nlog(`${r.output}: ${r.ratio}`);\n```";
    let ctx = r.ctx.clone();
    r.add(
        "compress",
        &["path: &str"],
        "Map",
        C,
        move |p: &str| -> RhaiResult {
            call(&ctx, "compress", || {
                compress(&ctx, p, &CompressOpts::default())
            })
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "compress",
        &["path: &str", "opts: Map"],
        "Map",
        C,
        move |p: &str, o: Map| -> RhaiResult {
            call(&ctx, "compress", || {
                compress(&ctx, p, &opts("compress", &o)?)
            })
        },
    );
    const D: &str = "gunzip `path` (which must end in .gz, single or multi-member) into the name without .gz, then remove `path`.\n\n\
Written through a temporary file and renamed. Honours the policy and dry-run. Options: `keep` (false), `force` (false). \
Returns `#{ input, output, bytes_in, bytes_out, ratio, dry_run }`.\n\n\
```rhai\ndecompress(\"./dump.sql.gz\", #{ keep: true });\n```";
    let ctx = r.ctx.clone();
    r.add(
        "decompress",
        &["path: &str"],
        "Map",
        D,
        move |p: &str| -> RhaiResult {
            call(&ctx, "decompress", || {
                decompress(&ctx, p, &DecompressOpts::default())
            })
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "decompress",
        &["path: &str", "opts: Map"],
        "Map",
        D,
        move |p: &str, o: Map| -> RhaiResult {
            call(&ctx, "decompress", || {
                decompress(&ctx, p, &opts("decompress", &o)?)
            })
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(data: &[u8], threads: usize, chunk: usize) -> Vec<u8> {
        let mut w = ParallelGzWriter::with_options(Vec::new(), 6, threads, chunk);
        w.write_all(data).unwrap();
        let gz = w.finish().unwrap();
        let mut out = Vec::new();
        MultiGzDecoder::new(&gz[..]).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn roundtrips_empty_small_and_multi_chunk() {
        assert_eq!(roundtrip(b"", 2, 65536), b"");
        assert_eq!(roundtrip(b"hello", 2, 65536), b"hello");
        let big: Vec<u8> = (0..1_000_000u32).flat_map(|i| i.to_le_bytes()).collect();
        assert_eq!(roundtrip(&big, 3, 65536), big);
        assert_eq!(roundtrip(&big, 1, 65536), big);
    }
}
