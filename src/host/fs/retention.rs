//! `delete_older_than`: age-based retention that never follows symlinks, never leaves its
//! directory, always keeps the newest `keep_at_least` files and refuses to delete more than
//! `max_delete`.
//!
//! Three phases: list every directory (sequentially, names only), `lstat` the matching files
//! (in parallel, one directory per task), decide, then unlink (in parallel, one directory per
//! task, relative to the directory's descriptor).

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

use super::dir::{self, Dir, Kind};
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeleteOpts {
    /// Glob on the file name (or on the path relative to `dir` when it contains `/`).
    pub pattern: Option<String>,
    pub recursive: bool,
    /// The newest N matching files survive whatever their age.
    pub keep_at_least: usize,
    /// Refuse (deleting nothing) when more files than this would go.
    pub max_delete: Option<usize>,
    pub remove_empty_dirs: bool,
}

impl Default for DeleteOpts {
    fn default() -> Self {
        DeleteOpts {
            pattern: None,
            recursive: false,
            keep_at_least: 1,
            max_delete: None,
            remove_empty_dirs: false,
        }
    }
}

#[derive(Debug, Serialize, Clone)]
pub struct PathError {
    pub path: String,
    pub error: String,
}

#[derive(Debug, Serialize, Default)]
pub struct DeleteReport {
    pub dir: String,
    pub deleted: Vec<String>,
    pub bytes_freed: u64,
    pub kept: Vec<String>,
    pub removed_dirs: Vec<String>,
    pub errors: Vec<PathError>,
    pub dry_run: bool,
}

/// One directory found by the walk: its path relative to the root and the files in it.
struct DirFiles {
    rel: PathBuf,
    files: Vec<CString>,
    subdirs: Vec<CString>,
}

#[derive(Clone)]
struct Candidate {
    dir: usize,
    name: CString,
    mtime: f64,
    size: u64,
}

fn compile_pattern(pattern: &str) -> HostResult<GlobMatcher> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| HostError::invalid(format!("invalid pattern {pattern:?}: {e}")))
}

fn walk(root: &Dir, recursive: bool, ctx: &RunCtx) -> HostResult<Vec<DirFiles>> {
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, Option<Dir>)> = vec![(PathBuf::new(), None)];
    while let Some((rel, handle)) = stack.pop() {
        ctx.check_cancelled()?;
        let d = match handle {
            Some(d) => d,
            None => root
                .open_rel(&rel)
                .map_err(|e| HostError::io(format!("opening {}", rel.display()), &e))?,
        };
        let entries = d
            .entries()
            .map_err(|e| HostError::io(format!("listing {}", rel.display()), &e))?;
        let mut files = Vec::new();
        let mut subdirs = Vec::new();
        for e in entries {
            match e.kind {
                Kind::File => files.push(e.name),
                Kind::Dir => subdirs.push(e.name),
                // Symlinks are neither followed nor deleted: a link is not a backup.
                Kind::Symlink | Kind::Other => {}
            }
        }
        if recursive {
            for s in &subdirs {
                stack.push((rel.join(dir::name_os(s)), None));
            }
        }
        out.push(DirFiles {
            rel,
            files,
            subdirs,
        });
    }
    Ok(out)
}

fn display(root: &Path, rel: &Path, name: &std::ffi::CStr) -> String {
    root.join(rel)
        .join(dir::name_os(name))
        .display()
        .to_string()
}

pub fn delete_older_than(
    ctx: &RunCtx,
    dir_path: &str,
    age: Duration,
    opts: &DeleteOpts,
) -> HostResult<DeleteReport> {
    let root_path = ctx.policy.check_write(Path::new(dir_path))?;
    let root = Dir::open(&root_path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::ENOTDIR) {
            HostError::invalid(format!(
                "{} is not a directory (symlinks are never followed)",
                root_path.display()
            ))
        } else {
            HostError::io(format!("opening {}", root_path.display()), &e)
        }
    })?;
    let matcher = opts.pattern.as_deref().map(compile_pattern).transpose()?;
    let cutoff = SystemTime::now()
        .checked_sub(age)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);

    let dirs = walk(&root, opts.recursive, ctx)?;

    // Phase 2: lstat every matching file, one directory per task.
    let found: Mutex<Vec<Candidate>> = Mutex::new(Vec::new());
    let errors: Mutex<Vec<PathError>> = Mutex::new(Vec::new());
    let indexed: Vec<(usize, &DirFiles)> = dirs.iter().enumerate().collect();
    dir::par_for_each(&indexed, dir::io_threads(), |(i, df)| {
        if ctx.check_cancelled().is_err() {
            return;
        }
        let mut local = Vec::new();
        let d = match root.open_rel(&df.rel) {
            Ok(d) => d,
            Err(e) => {
                errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(PathError {
                        path: root_path.join(&df.rel).display().to_string(),
                        error: e.to_string(),
                    });
                return;
            }
        };
        for name in &df.files {
            if let Some(m) = &matcher {
                let os = dir::name_os(name);
                let ok = if m.glob().glob().contains('/') {
                    m.is_match(df.rel.join(os))
                } else {
                    m.is_match(os)
                };
                if !ok {
                    continue;
                }
            }
            match d.lstat(name) {
                // Only regular files: a file replaced by a symlink since listing is skipped.
                Ok(st) if dir::kind_of_mode(st.st_mode) == Kind::File => local.push(Candidate {
                    dir: *i,
                    name: name.clone(),
                    mtime: dir::mtime_of(&st),
                    size: st.st_size as u64,
                }),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(PathError {
                        path: display(&root_path, &df.rel, name),
                        error: e.to_string(),
                    }),
            }
        }
        found
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(local);
    });
    ctx.check_cancelled()?;
    let mut all = found.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());

    // Phase 3: decide. Newest first; the first keep_at_least survive whatever their age.
    all.sort_by(|a, b| {
        b.mtime
            .total_cmp(&a.mtime)
            .then_with(|| dirs[a.dir].rel.cmp(&dirs[b.dir].rel))
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut kept = Vec::new();
    let mut doomed: Vec<Candidate> = Vec::new();
    for (rank, c) in all.into_iter().enumerate() {
        if rank < opts.keep_at_least || c.mtime >= cutoff {
            kept.push(display(&root_path, &dirs[c.dir].rel, &c.name));
        } else {
            doomed.push(c);
        }
    }
    if let Some(max) = opts.max_delete {
        if doomed.len() > max {
            return Err(HostError::refused(format!(
                "{} files in {} are older than {}, more than max_delete = {max}; nothing was deleted",
                doomed.len(),
                root_path.display(),
                humantime::format_duration(age)
            )));
        }
    }

    let mut report = DeleteReport {
        dir: root_path.display().to_string(),
        kept,
        dry_run: ctx.dry_run,
        ..Default::default()
    };

    // Phase 4: unlink, one directory per task.
    let mut by_dir: Vec<Vec<Candidate>> = vec![Vec::new(); dirs.len()];
    for c in doomed {
        by_dir[c.dir].push(c);
    }
    let work: Vec<(usize, Vec<Candidate>)> = by_dir
        .into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let deleted: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
    let del_errors: Mutex<Vec<PathError>> = Mutex::new(Vec::new());
    if ctx.dry_run {
        for (i, files) in &work {
            for c in files {
                let shown = display(&root_path, &dirs[*i].rel, &c.name);
                crate::host::deletion::announce(ctx, &shown, Some(c.size));
                report.deleted.push(shown);
                report.bytes_freed += c.size;
            }
        }
    } else {
        dir::par_for_each(&work, dir::io_threads(), |(i, files)| {
            let rel = &dirs[*i].rel;
            let mut ok = Vec::with_capacity(files.len());
            let mut bad = Vec::new();
            match root.open_rel(rel) {
                Ok(d) => {
                    for c in files {
                        if ctx.check_cancelled().is_err() {
                            break;
                        }
                        match d.unlink(&c.name) {
                            Ok(()) => ok.push((display(&root_path, rel, &c.name), c.size)),
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => bad.push(PathError {
                                path: display(&root_path, rel, &c.name),
                                error: e.to_string(),
                            }),
                        }
                    }
                }
                Err(e) => {
                    for c in files {
                        bad.push(PathError {
                            path: display(&root_path, rel, &c.name),
                            error: e.to_string(),
                        });
                    }
                }
            }
            deleted.lock().unwrap_or_else(|p| p.into_inner()).extend(ok);
            del_errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(bad);
        });
        let mut del = deleted.into_inner().unwrap_or_else(|p| p.into_inner());
        del.sort();
        for (p, size) in del {
            crate::host::deletion::announce(ctx, &p, Some(size));
            report.bytes_freed += size;
            report.deleted.push(p);
        }
        errors.extend(del_errors.into_inner().unwrap_or_else(|p| p.into_inner()));
        if !report.deleted.is_empty() {
            crate::atomic::sync_dir(&root_path.join("x"));
        }
    }
    ctx.check_cancelled()?;

    if opts.remove_empty_dirs && opts.recursive {
        report.removed_dirs =
            remove_empty_dirs(&root, &root_path, &dirs, &report, ctx.dry_run, &mut errors);
        for d in &report.removed_dirs {
            crate::host::deletion::announce_dir(ctx, d);
        }
    }

    report.errors = errors;
    if !report.errors.is_empty() {
        let list: Vec<String> = report
            .errors
            .iter()
            .take(10)
            .map(|e| format!("{}: {}", e.path, e.error))
            .collect();
        return Err(HostError::new(
            crate::error::ErrorKind::Io,
            format!(
                "{} file(s) could not be deleted ({} others deleted, {} freed): {}{}",
                report.errors.len(),
                report.deleted.len(),
                crate::units::human(report.bytes_freed),
                list.join("; "),
                if report.errors.len() > 10 {
                    "; ..."
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(report)
}

/// Remove sub-directories left empty, deepest first. The root itself always stays.
fn remove_empty_dirs(
    root: &Dir,
    root_path: &Path,
    dirs: &[DirFiles],
    report: &DeleteReport,
    dry_run: bool,
    errors: &mut Vec<PathError>,
) -> Vec<String> {
    use std::collections::HashSet;
    let deleted: HashSet<&str> = report.deleted.iter().map(|s| s.as_str()).collect();
    // A directory is empty (or would be) when every file in it went and every subdir is gone.
    let mut gone: HashSet<PathBuf> = HashSet::new();
    let mut order: Vec<&DirFiles> = dirs
        .iter()
        .filter(|d| !d.rel.as_os_str().is_empty())
        .collect();
    order.sort_by_key(|d| std::cmp::Reverse(d.rel.components().count()));
    let mut removed = Vec::new();
    for d in order {
        let files_gone = d
            .files
            .iter()
            .all(|f| deleted.contains(display(root_path, &d.rel, f).as_str()));
        let subs_gone = d
            .subdirs
            .iter()
            .all(|s| gone.contains(&d.rel.join(dir::name_os(s))));
        if !(files_gone && subs_gone) {
            continue;
        }
        let path = root_path.join(&d.rel).display().to_string();
        if dry_run {
            gone.insert(d.rel.clone());
            removed.push(path);
            continue;
        }
        let (parent, name) = match (d.rel.parent(), d.rel.file_name()) {
            (Some(p), Some(n)) => (p, n),
            _ => continue,
        };
        let Ok(cname) = CString::new(std::os::unix::ffi::OsStrExt::as_bytes(name)) else {
            continue;
        };
        match root.open_rel(parent).and_then(|p| p.rmdir(&cname)) {
            Ok(()) => {
                gone.insert(d.rel.clone());
                removed.push(path);
            }
            // Something new appeared in it meanwhile: leave it.
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {}
            Err(e) => errors.push(PathError {
                path,
                error: e.to_string(),
            }),
        }
    }
    removed
}
