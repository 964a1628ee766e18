//! Everyday file functions: list, stat, sizes, disk usage, read/write/remove/copy, audits.

use std::fs::{self, Metadata};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use globset::GlobMatcher;
use serde::{Deserialize, Serialize};

use crate::atomic::AtomicFile;
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};

#[derive(Debug, Serialize, Clone)]
pub struct FileInfo {
    pub path: String,
    pub name: String,
    /// "file", "dir", "symlink" or "other".
    pub kind: String,
    pub size: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// Permission bits in octal, e.g. "0644".
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    /// Where a symlink points (not followed).
    pub target: Option<String>,
}

pub fn kind_name(md: &Metadata) -> &'static str {
    let ft = md.file_type();
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else {
        "other"
    }
}

pub fn mode_string(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

pub fn info(path: &Path, md: &Metadata) -> FileInfo {
    FileInfo {
        path: path.display().to_string(),
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| path.display().to_string()),
        kind: kind_name(md).to_string(),
        size: md.len(),
        mtime: md.mtime(),
        mode: mode_string(md.mode()),
        uid: md.uid(),
        gid: md.gid(),
        target: if md.file_type().is_symlink() {
            fs::read_link(path).ok().map(|t| t.display().to_string())
        } else {
            None
        },
    }
}

fn io_err(what: &str, path: &Path, e: &io::Error) -> HostError {
    HostError::io(format!("{what} {}", path.display()), e)
}

pub fn stat(path: &str) -> HostResult<FileInfo> {
    let p = Path::new(path);
    let md = fs::symlink_metadata(p).map_err(|e| io_err("stat", p, &e))?;
    Ok(info(p, &md))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ListOpts {
    pub pattern: Option<String>,
    pub recursive: bool,
    /// Include directories in the result (default true).
    pub dirs: Option<bool>,
    /// "name" (default), "mtime" (oldest first) or "size" (smallest first).
    pub sort: Option<String>,
    pub reverse: bool,
}

pub fn glob(pattern: &str) -> HostResult<GlobMatcher> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| HostError::invalid(format!("invalid pattern {pattern:?}: {e}")))
}

/// Visit every entry under `root` (not following symlinks), depth first, parents before children.
pub fn walk(
    root: &Path,
    recursive: bool,
    ctx: &RunCtx,
    f: &mut dyn FnMut(&Path, &Path, &Metadata),
) -> HostResult<()> {
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        ctx.check_cancelled()?;
        let dir = root.join(&rel);
        let rd = fs::read_dir(&dir).map_err(|e| io_err("listing", &dir, &e))?;
        let mut subdirs = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| io_err("listing", &dir, &e))?;
            let md = match ent.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("stat", &ent.path(), &e)),
            };
            let child = rel.join(ent.file_name());
            f(&ent.path(), &child, &md);
            if recursive && md.file_type().is_dir() {
                subdirs.push(child);
            }
        }
        subdirs.sort();
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

pub fn list(ctx: &RunCtx, dir: &str, opts: &ListOpts) -> HostResult<Vec<FileInfo>> {
    let root = Path::new(dir);
    let md = fs::metadata(root).map_err(|e| io_err("listing", root, &e))?;
    if !md.is_dir() {
        return Err(HostError::invalid(format!("{dir} is not a directory")));
    }
    let matcher = opts.pattern.as_deref().map(glob).transpose()?;
    let with_dirs = opts.dirs.unwrap_or(true);
    let mut out = Vec::new();
    walk(root, opts.recursive, ctx, &mut |path, rel, md| {
        if !with_dirs && md.is_dir() {
            return;
        }
        if let Some(m) = &matcher {
            let ok = if m.glob().glob().contains('/') {
                m.is_match(rel)
            } else {
                rel.file_name().is_some_and(|n| m.is_match(n))
            };
            if !ok {
                return;
            }
        }
        out.push(info(path, md));
    })?;
    match opts.sort.as_deref().unwrap_or("name") {
        "name" => out.sort_by(|a, b| a.path.cmp(&b.path)),
        "mtime" => out.sort_by(|a, b| a.mtime.cmp(&b.mtime).then(a.path.cmp(&b.path))),
        "size" => out.sort_by(|a, b| a.size.cmp(&b.size).then(a.path.cmp(&b.path))),
        other => {
            return Err(HostError::invalid(format!(
                "unknown sort {other:?} (use \"name\", \"mtime\" or \"size\")"
            )))
        }
    }
    if opts.reverse {
        out.reverse();
    }
    Ok(out)
}

#[derive(Debug, Serialize, Default)]
pub struct DirSize {
    pub path: String,
    pub bytes: u64,
    /// Bytes allocated on disk (what `du` shows).
    pub disk_bytes: u64,
    pub files: u64,
    pub dirs: u64,
}

pub fn dir_size(ctx: &RunCtx, dir: &str) -> HostResult<DirSize> {
    let root = Path::new(dir);
    let md = fs::metadata(root).map_err(|e| io_err("reading", root, &e))?;
    if !md.is_dir() {
        return Err(HostError::invalid(format!("{dir} is not a directory")));
    }
    let mut r = DirSize {
        path: dir.to_string(),
        ..Default::default()
    };
    walk(root, true, ctx, &mut |_, _, md| {
        r.disk_bytes += md.blocks() * 512;
        if md.is_dir() {
            r.dirs += 1;
        } else {
            r.bytes += md.len();
            r.files += 1;
        }
    })?;
    Ok(r)
}

#[derive(Debug, Serialize)]
pub struct DiskUsage {
    pub path: String,
    pub total: u64,
    pub used: u64,
    /// Bytes available to unprivileged users (df's "Avail").
    pub free: u64,
    /// Used percentage as df computes it: used / (used + free), rounded up.
    pub percent: i64,
    pub inodes_total: u64,
    pub inodes_free: u64,
    pub inodes_percent: i64,
}

fn ceil_percent(used: u64, avail: u64) -> i64 {
    let denom = used + avail;
    if denom == 0 {
        0
    } else {
        (used as u128 * 100).div_ceil(denom as u128) as i64
    }
}

// statvfs field widths differ between platforms (u32 on 32-bit); the casts keep it portable.
#[allow(clippy::unnecessary_cast)]
pub fn disk_usage(path: &str) -> HostResult<DiskUsage> {
    let c =
        std::ffi::CString::new(path).map_err(|_| HostError::invalid("path contains a NUL byte"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: c is a valid C string and st is written on success.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Err(io_err(
            "statvfs",
            Path::new(path),
            &io::Error::last_os_error(),
        ));
    }
    let st = unsafe { st.assume_init() };
    let f = st.f_frsize as u64;
    let total = st.f_blocks as u64 * f;
    let used = (st.f_blocks as u64).saturating_sub(st.f_bfree as u64) * f;
    let free = st.f_bavail as u64 * f;
    let iused = (st.f_files as u64).saturating_sub(st.f_ffree as u64);
    Ok(DiskUsage {
        path: path.to_string(),
        total,
        used,
        free,
        percent: ceil_percent(used, free),
        inodes_total: st.f_files as u64,
        inodes_free: st.f_favail as u64,
        inodes_percent: ceil_percent(iused, st.f_favail as u64),
    })
}

pub fn read_file(ctx: &RunCtx, path: &str) -> HostResult<String> {
    let p = Path::new(path);
    let md = fs::metadata(p).map_err(|e| io_err("reading", p, &e))?;
    if md.len() as usize > ctx.limits.max_string_size {
        return Err(HostError::invalid(format!(
            "{path} is {} bytes, more than the string limit ({} bytes)",
            md.len(),
            ctx.limits.max_string_size
        )));
    }
    let bytes = fs::read(p).map_err(|e| io_err("reading", p, &e))?;
    String::from_utf8(bytes).map_err(|_| HostError::invalid(format!("{path} is not UTF-8 text")))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WriteOpts {
    /// Permission bits, e.g. "0600" (default: keep an existing file's mode, else 0600: written data stays private).
    pub mode: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct WriteReport {
    pub path: String,
    pub bytes: u64,
    pub dry_run: bool,
}

pub fn parse_mode(text: &str) -> HostResult<u32> {
    let t = text.trim_start_matches("0o");
    u32::from_str_radix(t, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            HostError::invalid(format!("invalid mode {text:?} (use octal, e.g. \"0640\")"))
        })
}

pub fn write_file(
    ctx: &RunCtx,
    path: &str,
    content: &[u8],
    opts: &WriteOpts,
) -> HostResult<WriteReport> {
    let dest = ctx.policy.check_write(Path::new(path))?;
    let mode = opts.mode.as_deref().map(parse_mode).transpose()?;
    let report = WriteReport {
        path: dest.display().to_string(),
        bytes: content.len() as u64,
        dry_run: ctx.dry_run,
    };
    if ctx.dry_run {
        return Ok(report);
    }
    let existing_mode = fs::symlink_metadata(&dest)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.mode() & 0o7777);
    let mut f = AtomicFile::create(&dest).map_err(|e| io_err("writing", &dest, &e))?;
    f.write_all(content)
        .map_err(|e| io_err("writing", &dest, &e))?;
    if let Some(m) = mode.or(existing_mode) {
        f.set_mode(m).map_err(|e| io_err("chmod", &dest, &e))?;
    }
    f.commit().map_err(|e| io_err("writing", &dest, &e))?;
    Ok(report)
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RemoveOpts {
    /// A missing file is not an error.
    pub missing_ok: bool,
}

#[derive(Debug, Serialize)]
pub struct RemoveReport {
    pub path: String,
    pub removed: bool,
    pub bytes_freed: u64,
    pub dry_run: bool,
}

pub fn remove_file(ctx: &RunCtx, path: &str, opts: &RemoveOpts) -> HostResult<RemoveReport> {
    let target = ctx.policy.check_write(Path::new(path))?;
    let md = match fs::symlink_metadata(&target) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound && opts.missing_ok => {
            return Ok(RemoveReport {
                path: target.display().to_string(),
                removed: false,
                bytes_freed: 0,
                dry_run: ctx.dry_run,
            })
        }
        Err(e) => return Err(io_err("removing", &target, &e)),
    };
    if md.is_dir() {
        return Err(HostError::invalid(format!(
            "{} is a directory; remove_file removes files and symlinks only",
            target.display()
        )));
    }
    if !ctx.dry_run {
        // remove_file unlinks a symlink itself, never its target.
        fs::remove_file(&target).map_err(|e| io_err("removing", &target, &e))?;
        crate::atomic::sync_dir(&target);
    }
    let bytes_freed = if md.is_file() { md.len() } else { 0 };
    crate::host::deletion::announce(ctx, &target.display().to_string(), Some(bytes_freed));
    Ok(RemoveReport {
        path: target.display().to_string(),
        removed: true,
        bytes_freed,
        dry_run: ctx.dry_run,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CopyOpts {
    /// Replace an existing destination (default true).
    pub overwrite: bool,
    /// Keep the source's mode and modification time (default true).
    pub preserve: bool,
}

impl Default for CopyOpts {
    fn default() -> Self {
        CopyOpts {
            overwrite: true,
            preserve: true,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CopyReport {
    pub from: String,
    pub to: String,
    pub bytes: u64,
    pub dry_run: bool,
}

/// Copy `src` to `dest` through a temporary file, keeping mode and mtime when asked.
pub fn copy_file_atomic(
    src: &Path,
    dest: &Path,
    src_md: &Metadata,
    preserve: bool,
    stop: &(dyn Fn() -> bool + Sync),
) -> io::Result<u64> {
    let mut input = fs::File::open(src)?;
    let mut f = AtomicFile::create(dest)?;
    let n = crate::atomic::copy_until(&mut input, f.file(), stop)?;
    if preserve {
        f.set_mode(src_md.mode())?;
        let mtime = filetime::FileTime::from_last_modification_time(src_md);
        filetime::set_file_handle_times(f.file(), None, Some(mtime))?;
    } else {
        // As cp does: the source's permission bits less the umask (the temporary file is 0600).
        f.set_mode(src_md.mode() & 0o777 & !crate::atomic::umask())?;
    }
    f.commit()?;
    Ok(n)
}

pub fn copy(ctx: &RunCtx, src: &str, dst: &str, opts: &CopyOpts) -> HostResult<CopyReport> {
    let src_p = Path::new(src);
    let md = fs::metadata(src_p).map_err(|e| io_err("copying", src_p, &e))?;
    if md.is_dir() {
        return Err(HostError::invalid(format!(
            "{src} is a directory; use sync_dir(src, dst) to copy a tree"
        )));
    }
    let mut dest = PathBuf::from(dst);
    if fs::symlink_metadata(&dest)
        .map(|m| m.is_dir())
        .unwrap_or(false)
    {
        dest = dest.join(src_p.file_name().unwrap_or_default());
    }
    let dest = ctx.policy.check_write(&dest)?;
    if !opts.overwrite && fs::symlink_metadata(&dest).is_ok() {
        return Err(HostError::refused(format!(
            "{} already exists (overwrite: false)",
            dest.display()
        )));
    }
    let report = CopyReport {
        from: src.to_string(),
        to: dest.display().to_string(),
        bytes: md.len(),
        dry_run: ctx.dry_run,
    };
    if !ctx.dry_run {
        let stop = || ctx.token.is_cancelled();
        copy_file_atomic(src_p, &dest, &md, opts.preserve, &stop)
            .map_err(|e| io_err(&format!("copying {src} to"), &dest, &e))?;
    }
    Ok(report)
}

/// Files and directories anyone may write, not following symlinks. Directories with the sticky
/// bit (like /tmp) are safe by design and left out.
pub fn find_world_writable(ctx: &RunCtx, dir: &str) -> HostResult<Vec<String>> {
    let root = Path::new(dir);
    let mut out = Vec::new();
    let md = fs::symlink_metadata(root).map_err(|e| io_err("reading", root, &e))?;
    let flag = |md: &Metadata| {
        let m = md.mode();
        !md.file_type().is_symlink() && m & 0o002 != 0 && !(md.is_dir() && m & 0o1000 != 0)
    };
    if flag(&md) {
        out.push(root.display().to_string());
    }
    if md.is_dir() {
        walk(root, true, ctx, &mut |p, _, md| {
            if flag(md) {
                out.push(p.display().to_string());
            }
        })?;
    }
    out.sort();
    Ok(out)
}

/// Permission bits of `path` (following a symlink to what it protects), e.g. "0600".
pub fn file_mode(path: &str) -> HostResult<String> {
    let p = Path::new(path);
    let md = fs::metadata(p).map_err(|e| io_err("stat", p, &e))?;
    Ok(mode_string(md.mode()))
}
