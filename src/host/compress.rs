//! `compress`/`decompress` and the file-level helpers rotation shares (gzip or zstd through
//! host/codec.rs; the parallel gzip writer itself is host/pgzip.rs, re-exported here).

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::AtomicFile;
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::codec::{self, Codec, Format};
pub use crate::host::pgzip::{compress_member, default_threads, ParallelGzWriter, DEFAULT_CHUNK};
use crate::host::registry::Registrar;
use crate::host_fn;

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
    compress_file(src, dest, Codec::Gzip(level), threads, stop)
}

/// [`gzip_file`] for any codec.
pub fn compress_file(
    src: &Path,
    dest: &Path,
    codec: Codec,
    threads: usize,
    stop: &(dyn Fn() -> bool + Sync),
) -> io::Result<(u64, u64)> {
    let mut input = crate::atomic::open_regular(src)?;
    let md = input.metadata()?;
    let out = AtomicFile::create(dest)?;
    let mut gz = codec.writer(out, threads)?;
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

/// Decompress `src` (gzip or zstd, told by its first bytes) into `dest` through a temporary
/// file. Data in neither format is refused (InvalidData).
pub fn decompress_file(
    src: &Path,
    dest: &Path,
    stop: &(dyn Fn() -> bool + Sync),
) -> io::Result<(u64, u64)> {
    let input = crate::atomic::open_regular(src)?;
    let md = input.metadata()?;
    let (format, mut dec) = codec::reader(io::BufReader::with_capacity(256 * 1024, input))?;
    if format == Format::Plain {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "neither gzip nor zstd (its first bytes are not a known magic number)",
        ));
    }
    let mut out = AtomicFile::create(dest)?;
    let n = crate::atomic::copy_until(&mut dec, out.file(), stop)?;
    copy_attrs(out.file(), &md)?;
    out.commit()?;
    Ok((md.len(), n))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressOpts {
    /// "gzip" (default) or "zstd".
    pub compression: String,
    /// gzip 1–9 (default 6, like gzip), zstd 1–22 (default 3, like zstd).
    pub level: Option<i64>,
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
            compression: "gzip".into(),
            level: None,
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
    let codec =
        Codec::new(&opts.compression, opts.level).map_err(|e| HostError::invalid(e.message))?;
    let src = Path::new(path);
    if let Some(ext) = COMPRESSED_EXTS.iter().find(|e| path.ends_with(*e)) {
        return Err(HostError::invalid(format!(
            "{path} already has the {ext} suffix"
        )));
    }
    let (src_abs, dest, report) = prepare(
        ctx,
        src,
        Path::new(&format!("{path}{}", codec.ext())),
        opts.keep,
        opts.force,
    )?;
    if ctx.dry_run {
        return Ok(report);
    }
    let threads = opts.threads.unwrap_or_else(default_threads).max(1);
    let stop = || ctx.token.is_cancelled();
    let (raw, out) = compress_file(&src_abs, &dest, codec, threads, &stop)
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

/// Suffixes that name compressed files (what `decompress` strips).
const COMPRESSED_EXTS: [&str; 2] = [".gz", ".zst"];

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DecompressOpts {
    pub keep: bool,
    pub force: bool,
}

pub fn decompress(ctx: &RunCtx, path: &str, opts: &DecompressOpts) -> HostResult<CompressReport> {
    let Some(stem) = COMPRESSED_EXTS.iter().find_map(|e| path.strip_suffix(*e)) else {
        return Err(HostError::invalid(format!(
            "{path} does not end in .gz or .zst (the output is the name without it)"
        )));
    };
    let src = Path::new(path);
    let (src_abs, dest, report) = prepare(ctx, src, Path::new(stem), opts.keep, opts.force)?;
    if ctx.dry_run {
        return Ok(report);
    }
    let stop = || ctx.token.is_cancelled();
    let (inp, out) = decompress_file(&src_abs, &dest, &stop).map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidInput
            || e.kind() == io::ErrorKind::InvalidData
            || e.kind() == io::ErrorKind::UnexpectedEof
            || e.kind() == io::ErrorKind::Other
        {
            HostError::verification(format!("{path} is not valid gzip or zstd: {e}"))
        } else {
            io_err("decompressing", &src_abs, &e)
        }
    })?;
    complete(report, &src_abs, opts.keep, (inp, out), false)
}

pub fn register(r: &mut Registrar) {
    r.category("files");
    const C: &str = "gzip a file into `path.gz` (parallel on large files; plain gzip that `gunzip` reads), or zstd it into `path.zst`, then remove `path`.\n\n\
The output is written to a temporary file and renamed, so a crash never leaves a partial output nor loses the input. \
Mode and mtime are kept, like gzip. Honours the policy and dry-run. Options: `compression` (\"gzip\" or \"zstd\"; \
multi-threaded like `zstd -T0`), `level` (gzip 1-9, default 6; zstd 1-22, default 3), `keep` (false: \
remove the input), `force` (false: refuse to replace an existing output), `threads` (every core). \
Returns `#{ input, output, bytes_in, bytes_out, ratio, dry_run }`.\n\n\
```rhai\nlet r = compress(\"./dump.sql\", #{ level: 6 });\nlog(`${r.output}: ${r.ratio}`);\ncompress(\"./logs/app.log\", #{ compression: \"zstd\", level: 19 });\n```";
    host_fn!(r, "compress", C, |ctx, path: &str; opts: CompressOpts| -> "Map" {
        compress(&ctx, path, &opts)
    });
    const D: &str = "Decompress `path` (ending in .gz or .zst) into the name without it, then remove `path`.\n\n\
The format is told by the file's first bytes, not its name: gzip (single or multi-member) or zstd (any number of frames). \
Written through a temporary file and renamed. Honours the policy and dry-run. Options: `keep` (false), `force` (false). \
Returns `#{ input, output, bytes_in, bytes_out, ratio, dry_run }`.\n\n\
```rhai\ndecompress(\"./dump.sql.gz\", #{ keep: true });\n```";
    host_fn!(r, "decompress", D, |ctx, path: &str; opts: DecompressOpts| -> "Map" {
        decompress(&ctx, path, &opts)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;

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
