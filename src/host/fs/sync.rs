//! `sync_dir`: a one-way mirror with `rsync -a src/ dst/` semantics.
//!
//! New or changed files (size or mtime differ) are copied through a temporary name and renamed;
//! modes, mtimes (files, directories and symlinks) and, as root, owners are preserved; symlinks
//! are copied as symlinks and never followed on either side. With `delete`, entries in `dst`
//! that are not in `src` are removed.
//!
//! The destination may be writable by other users: new files go through [`AtomicFile`]
//! (exclusive, unpredictable temporary names), attributes are set through a descriptor opened
//! with `O_NOFOLLOW` in a folder handle checked by [`crate::atomic::open_dir_checked`], so a
//! symlink planted or swapped in the destination is never written, chmod-ed or chown-ed through.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs::{self, Metadata};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use filetime::FileTime;
use serde::{Deserialize, Serialize};

use crate::atomic::AtomicFile;
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SyncOpts {
    /// Remove entries in `dst` that are not in `src` (rsync --delete).
    pub delete: bool,
}

#[derive(Debug, Serialize, Default)]
pub struct SyncReport {
    pub src: String,
    pub dst: String,
    /// Files copied because they were new or changed (paths relative to `dst`).
    pub copied: Vec<String>,
    pub bytes_copied: u64,
    pub deleted: Vec<String>,
    pub dirs_created: u64,
    pub symlinks: u64,
    pub unchanged: u64,
    /// Special files (sockets, devices, fifos) that were not copied.
    pub skipped: Vec<String>,
    pub dry_run: bool,
}

struct Syncer<'a> {
    ctx: &'a RunCtx,
    opts: &'a SyncOpts,
    as_root: bool,
    report: SyncReport,
}

fn io_err(what: &str, path: &Path, e: &io::Error) -> HostError {
    HostError::io(format!("{what} {}", path.display()), e)
}

fn same_mtime(a: &Metadata, b: &Metadata) -> bool {
    a.mtime() == b.mtime() && a.mtime_nsec() == b.mtime_nsec()
}

/// Open an existing destination entry without following a symlink anywhere mtn did not put
/// one: its folder through a checked handle, the entry itself with `O_NOFOLLOW`.
fn open_entry(path: &Path) -> io::Result<fs::File> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let dir = crate::atomic::open_dir_checked(parent)?;
    let name = CString::new(path.file_name().unwrap_or_default().as_bytes())
        .map_err(|_| io::Error::other("file name contains a NUL byte"))?;
    // SAFETY: valid descriptor and C string; the new descriptor is owned below.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by openat and is owned by nobody else.
    Ok(fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Give an open file or folder the mode, times and (as root) owner of `md`, through its
/// descriptor.
fn fd_attrs(f: &fs::File, md: &Metadata, as_root: bool) -> io::Result<()> {
    if as_root {
        std::os::unix::fs::fchown(f, Some(md.uid()), Some(md.gid()))?;
    }
    f.set_permissions(fs::Permissions::from_mode(md.mode() & 0o7777))?;
    filetime::set_file_handle_times(
        f,
        Some(FileTime::from_last_access_time(md)),
        Some(FileTime::from_last_modification_time(md)),
    )
}

fn remove_any(path: &Path, md: &Metadata) -> io::Result<()> {
    // The folder must still be the one named (remove_dir_all itself never follows links inside).
    drop(crate::atomic::open_dir_checked(
        path.parent().unwrap_or(Path::new("/")),
    )?);
    if md.is_dir() {
        // remove_dir_all does not follow symlinks inside the tree.
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

impl Syncer<'_> {
    fn attrs(&self, path: &Path, md: &Metadata, is_link: bool) -> io::Result<()> {
        if is_link {
            // lchown and lutimes act on the link itself; a link has no mode of its own.
            drop(crate::atomic::open_dir_checked(
                path.parent().unwrap_or(Path::new("/")),
            )?);
            if self.as_root {
                std::os::unix::fs::lchown(path, Some(md.uid()), Some(md.gid()))?;
            }
            let mtime = FileTime::from_last_modification_time(md);
            filetime::set_symlink_file_times(path, FileTime::from_last_access_time(md), mtime)
        } else {
            fd_attrs(&open_entry(path)?, md, self.as_root)
        }
    }

    fn sync_dir(&mut self, src: &Path, dst: &Path, rel: &Path) -> HostResult<()> {
        self.ctx.check_cancelled()?;
        let mut names = BTreeSet::new();
        let rd = fs::read_dir(src).map_err(|e| io_err("listing", src, &e))?;
        let mut entries: Vec<_> = rd
            .collect::<Result<_, _>>()
            .map_err(|e| io_err("listing", src, &e))?;
        entries.sort_by_key(|e| e.file_name());
        for ent in entries {
            let name = ent.file_name();
            names.insert(name.clone());
            let s = ent.path();
            let d = dst.join(&name);
            let r = rel.join(&name);
            let smd = fs::symlink_metadata(&s).map_err(|e| io_err("stat", &s, &e))?;
            let dmd = fs::symlink_metadata(&d).ok();
            let ft = smd.file_type();
            if ft.is_dir() {
                let real_dir = dmd.as_ref().is_some_and(|m| m.is_dir());
                if !real_dir {
                    if let Some(m) = &dmd {
                        self.replace(&d, m, &r)?;
                    }
                    self.report.dirs_created += 1;
                    if !self.ctx.dry_run {
                        fs::create_dir(&d).map_err(|e| io_err("creating", &d, &e))?;
                    }
                }
                if self.ctx.dry_run && !real_dir {
                    self.preview_new_tree(&s, &r)?;
                } else {
                    self.sync_dir(&s, &d, &r)?;
                }
                if !self.ctx.dry_run {
                    self.attrs(&d, &smd, false)
                        .map_err(|e| io_err("setting attributes of", &d, &e))?;
                }
            } else if ft.is_file() {
                let unchanged = dmd
                    .as_ref()
                    .is_some_and(|m| m.is_file() && m.len() == smd.len() && same_mtime(m, &smd));
                if unchanged {
                    self.report.unchanged += 1;
                    if !self.ctx.dry_run {
                        self.attrs(&d, &smd, false)
                            .map_err(|e| io_err("setting attributes of", &d, &e))?;
                    }
                    continue;
                }
                if let Some(m) = dmd.as_ref().filter(|m| m.is_dir()) {
                    self.replace(&d, m, &r)?;
                }
                self.report.copied.push(r.display().to_string());
                self.report.bytes_copied += smd.len();
                if !self.ctx.dry_run {
                    let res = (|| -> io::Result<()> {
                        let mut input = fs::File::open(&s)?;
                        let mut out = AtomicFile::create(&d)?;
                        io::copy(&mut input, out.file())?;
                        fd_attrs(out.file(), &smd, self.as_root)?;
                        out.commit()
                    })();
                    res.map_err(|e| io_err("copying to", &d, &e))?;
                }
            } else if ft.is_symlink() {
                let target = fs::read_link(&s).map_err(|e| io_err("reading link", &s, &e))?;
                let same = dmd.as_ref().is_some_and(|m| m.file_type().is_symlink())
                    && fs::read_link(&d).ok().as_deref() == Some(target.as_path());
                self.report.symlinks += 1;
                if self.ctx.dry_run {
                    continue;
                }
                if !same {
                    if let Some(m) = dmd.as_ref().filter(|m| m.is_dir()) {
                        self.replace(&d, m, &r)?;
                    }
                    // symlink() never follows and fails on an existing name; the random
                    // name keeps anyone from predicting it.
                    let tmp = d.with_file_name(crate::atomic::temp_name(
                        d.file_name().unwrap_or_default(),
                    ));
                    drop(
                        crate::atomic::open_dir_checked(dst)
                            .map_err(|e| io_err("creating link", &d, &e))?,
                    );
                    std::os::unix::fs::symlink(&target, &tmp)
                        .and_then(|_| fs::rename(&tmp, &d))
                        .map_err(|e| io_err("creating link", &d, &e))?;
                }
                self.attrs(&d, &smd, true)
                    .map_err(|e| io_err("setting attributes of", &d, &e))?;
            } else {
                self.report.skipped.push(r.display().to_string());
            }
        }
        if self.opts.delete {
            if let Ok(rd) = fs::read_dir(dst) {
                let mut extra: Vec<_> = rd
                    .filter_map(|e| e.ok())
                    .filter(|e| !names.contains(&e.file_name()))
                    .collect();
                extra.sort_by_key(|e| e.file_name());
                for e in extra {
                    let p = e.path();
                    let md = fs::symlink_metadata(&p).map_err(|er| io_err("stat", &p, &er))?;
                    self.report
                        .deleted
                        .push(rel.join(e.file_name()).display().to_string());
                    if !self.ctx.dry_run {
                        remove_any(&p, &md).map_err(|er| io_err("deleting", &p, &er))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A destination entry of the wrong type is in the way (a file where a directory goes, or
    /// a directory where a file goes). Like rsync, replace it; a non-empty directory only with
    /// `delete`.
    fn replace(&mut self, d: &Path, m: &Metadata, rel: &Path) -> HostResult<()> {
        if m.is_dir() && !self.opts.delete {
            return Err(HostError::refused(format!(
                "{} is a directory in the destination but not in the source; pass delete: true to replace it",
                d.display()
            )));
        }
        self.report.deleted.push(rel.display().to_string());
        if !self.ctx.dry_run {
            remove_any(d, m).map_err(|e| io_err("replacing", d, &e))?;
        }
        Ok(())
    }

    /// Dry run into a directory that does not exist yet: report what would be copied.
    fn preview_new_tree(&mut self, src: &Path, rel: &Path) -> HostResult<()> {
        let rd = fs::read_dir(src).map_err(|e| io_err("listing", src, &e))?;
        for ent in rd {
            let ent = ent.map_err(|e| io_err("listing", src, &e))?;
            let md =
                fs::symlink_metadata(ent.path()).map_err(|e| io_err("stat", &ent.path(), &e))?;
            let r = rel.join(ent.file_name());
            if md.is_dir() {
                self.report.dirs_created += 1;
                self.preview_new_tree(&ent.path(), &r)?;
            } else if md.is_file() {
                self.report.copied.push(r.display().to_string());
                self.report.bytes_copied += md.len();
            } else if md.file_type().is_symlink() {
                self.report.symlinks += 1;
            } else {
                self.report.skipped.push(r.display().to_string());
            }
        }
        Ok(())
    }
}

pub fn sync_dir(ctx: &RunCtx, src: &str, dst: &str, opts: &SyncOpts) -> HostResult<SyncReport> {
    let src_p = Path::new(src);
    let smd = fs::metadata(src_p).map_err(|e| io_err("reading", src_p, &e))?;
    if !smd.is_dir() {
        return Err(HostError::invalid(format!("{src} is not a directory")));
    }
    let dst_p = ctx.policy.check_write(Path::new(dst))?;
    let src_abs = crate::policy::absolute(src_p);
    let src_real = src_p.canonicalize().unwrap_or(src_abs);
    if dst_p.starts_with(&src_real) || src_real.starts_with(&dst_p) {
        return Err(HostError::invalid(format!(
            "{} and {} overlap; the destination must be outside the source and vice versa",
            src_real.display(),
            dst_p.display()
        )));
    }
    let mut s = Syncer {
        ctx,
        opts,
        as_root: unsafe { libc::geteuid() } == 0,
        report: SyncReport {
            src: src.to_string(),
            dst: dst_p.display().to_string(),
            dry_run: ctx.dry_run,
            ..Default::default()
        },
    };
    match fs::symlink_metadata(&dst_p) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(HostError::invalid(format!(
                "{} exists and is not a directory (symlinks are not followed)",
                dst_p.display()
            )))
        }
        Err(_) => {
            s.report.dirs_created += 1;
            if ctx.dry_run {
                s.preview_new_tree(src_p, Path::new(""))?;
                return Ok(s.report);
            }
            fs::create_dir_all(&dst_p).map_err(|e| io_err("creating", &dst_p, &e))?;
        }
    }
    s.sync_dir(src_p, &dst_p, Path::new(""))?;
    if !ctx.dry_run {
        s.attrs(&dst_p, &smd, false)
            .map_err(|e| io_err("setting attributes of", &dst_p, &e))?;
    }
    Ok(s.report)
}
