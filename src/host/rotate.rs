//! `rotate`: logrotate's semantics, directive names, defaults and rotated file names.
//!
//! Order of work is logrotate's: every matched log is renamed (or copied and truncated) first,
//! then the `postrotate` closure runs once (sharedscripts), then rotated files are compressed,
//! in parallel across files. Compressing after postrotate matters: until the application
//! reopens its log it may still be writing to the renamed file.
//!
//! Crash safety: renames are atomic; compression writes a temporary `.X.gz.mtn-<random>.tmp`,
//! fsyncs, renames it to `X.gz`, then unlinks `X`. A crash leaves every byte in `X` or `X.gz`
//! (plus possibly a partial temporary file, which holds no unique data). The next rotate first
//! removes those temporary files and, for
//! the instant between rename and unlink, the plain `X` whose complete `X.gz` exists.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rhai::{Array, Dynamic, FnPtr, Map, NativeCallContext};
use serde::{Deserialize, Serialize};

use crate::engine::ctx::RunCtx;
use crate::engine::registry::Registrar;
use crate::host::binding::{call, opts, take_fn, RhaiResult};
use crate::host::compress::{default_threads, gzip_file, remove_if_compressed};
use crate::host::error::{ErrorKind, HostError, HostResult};
use crate::host::fs::dir::par_for_each;

pub use crate::host::units::SizeOpt;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum AgeOpt {
    Days(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CreateOpt {
    On(bool),
    Mode(String),
    Full {
        mode: Option<String>,
        owner: Option<String>,
        group: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RotateOpts {
    /// logrotate `rotate N`: rotated versions kept (default 0: the old log is removed).
    pub keep: u64,
    pub compress: bool,
    /// logrotate's default compressoptions: -6.
    pub compress_level: u32,
    pub delaycompress: bool,
    pub missingok: bool,
    pub notifempty: bool,
    /// Rotate only when the log is at least this big ("100k", "10M", "1G" or bytes).
    pub size: Option<SizeOpt>,
    pub min_size: Option<SizeOpt>,
    /// Ignore `size`/`min_size`, like `logrotate -f`.
    pub force: bool,
    pub copytruncate: bool,
    /// `true`, a mode ("0640"), or `#{ mode, owner, group }`; absent = logrotate's nocreate.
    pub create: Option<CreateOpt>,
    pub dateext: bool,
    pub dateformat: String,
    /// Remove rotated logs older than this (days, or a duration like "30d").
    pub max_age: Option<AgeOpt>,
    /// First rotation number (logrotate `start`, default 1).
    pub start: u64,
}

impl Default for RotateOpts {
    fn default() -> Self {
        RotateOpts {
            keep: 0,
            compress: false,
            compress_level: 6,
            delaycompress: false,
            missingok: false,
            notifempty: false,
            size: None,
            min_size: None,
            force: false,
            copytruncate: false,
            create: None,
            dateext: false,
            dateformat: "-%Y%m%d".to_string(),
            max_age: None,
            start: 1,
        }
    }
}

#[derive(Debug, Serialize, Clone)]
pub struct Moved {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Serialize, Clone)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Serialize, Default)]
pub struct RotateReport {
    /// Each log that was rotated and the name it was rotated to.
    pub rotated: Vec<Moved>,
    /// Older versions shifted up (`app.log.1` → `app.log.2`).
    pub renamed: Vec<Moved>,
    pub compressed: Vec<String>,
    pub deleted: Vec<String>,
    pub created: Vec<String>,
    pub skipped: Vec<Skipped>,
    pub errors: Vec<Skipped>,
    pub postrotate_ran: bool,
    pub dry_run: bool,
}

/// Sizes follow logrotate: `k`, `M`, `G` are powers of 1024 (see `host/units.rs`).
pub fn parse_size(s: &SizeOpt) -> HostResult<u64> {
    s.bytes()
}

fn parse_age(a: &AgeOpt) -> HostResult<Duration> {
    match a {
        AgeOpt::Days(d) => Ok(Duration::from_secs(d * 86400)),
        AgeOpt::Text(t) => crate::host::binding::parse_duration(t),
    }
}

/// A regex for the names dateext produces from `dateformat` (strftime codes become digits).
fn date_regex(base: &str, fmt: &str) -> HostResult<regex::Regex> {
    if fmt.contains(['/', '\0']) {
        return Err(HostError::invalid(format!(
            "dateformat {fmt:?} contains a path separator; it may only add to the file name"
        )));
    }
    let mut re = format!("^{}", regex::escape(base));
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            re.push_str(&regex::escape(&c.to_string()));
            continue;
        }
        match chars.next() {
            Some('Y') => re.push_str(r"\d{4}"),
            Some('m' | 'd' | 'H' | 'M' | 'S' | 'y' | 'V') => re.push_str(r"\d{2}"),
            Some('s') => re.push_str(r"\d+"),
            Some('%') => re.push('%'),
            other => {
                return Err(HostError::invalid(format!(
                    "dateformat {fmt:?}: %{} is not supported (use %Y %m %d %H %M %S %s)",
                    other.map(String::from).unwrap_or_default()
                )))
            }
        }
    }
    re.push_str(r"(\.gz)?$");
    regex::Regex::new(&re).map_err(|e| HostError::invalid(format!("dateformat {fmt:?}: {e}")))
}

fn numbered_regex(base: &str) -> regex::Regex {
    // Built from an escaped literal: cannot fail.
    regex::Regex::new(&format!(r"^{}\.\d+(\.gz)?$", regex::escape(base)))
        .unwrap_or_else(|_| unreachable!())
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// Expand `path_or_glob` (wildcards in the file name only) to the logs to rotate. Files that are
/// rotated versions of another match (`app.log.1`, `app.log-20261122.gz`) are left out: rotating
/// them again, as logrotate does with a bare `*`, only multiplies suffixes.
fn expand(ctx: &RunCtx, pattern: &str, opts: &RotateOpts) -> HostResult<Vec<PathBuf>> {
    let p = Path::new(pattern);
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| HostError::invalid(format!("rotate: {pattern:?} names no file")))?;
    let parent = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if has_glob(&parent.to_string_lossy()) {
        return Err(HostError::invalid(format!(
            "rotate: wildcards are allowed in the file name only, not in {}",
            parent.display()
        )));
    }
    if !has_glob(&name) {
        return Ok(vec![ctx.policy.check_write(p)?]);
    }
    let m = crate::host::fs::ops::glob(&name)?;
    let mut names: Vec<String> = match fs::read_dir(parent) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| m.is_match(n) && !n.ends_with(".tmp"))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(HostError::io(format!("listing {}", parent.display()), &e)),
    };
    names.sort();
    // One regex for the dateext suffix, then set lookups: comparing every pair of names with
    // per-pair regexes is quadratic in regex compilations and took minutes on 1,000 logs.
    let set: std::collections::HashSet<&str> = names.iter().map(|n| n.as_str()).collect();
    let date_suffix = date_regex("", &opts.dateformat)?;
    let date_suffix = regex::Regex::new(&date_suffix.as_str().replacen('^', "", 1))
        .map_err(|e| HostError::invalid(format!("dateformat: {e}")))?;
    let mut keep = Vec::new();
    for n in &names {
        let stem = n.strip_suffix(".gz").unwrap_or(n);
        let numbered = stem.rsplit_once('.').is_some_and(|(b, d)| {
            !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()) && set.contains(b)
        });
        let dated = date_suffix
            .find(n)
            .is_some_and(|m| m.start() > 0 && set.contains(&n[..m.start()]));
        if !(numbered || dated) {
            keep.push(ctx.policy.check_write(&parent.join(n))?);
        }
    }
    Ok(keep)
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

fn lookup_user(name: &str) -> HostResult<u32> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let c = std::ffi::CString::new(name).map_err(|_| HostError::invalid("bad user name"))?;
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(HostError::invalid(format!("create: unknown user {name:?}")));
    }
    Ok(unsafe { (*pw).pw_uid })
}

fn lookup_group(name: &str) -> HostResult<u32> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let c = std::ffi::CString::new(name).map_err(|_| HostError::invalid("bad group name"))?;
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    if gr.is_null() {
        return Err(HostError::invalid(format!(
            "create: unknown group {name:?}"
        )));
    }
    Ok(unsafe { (*gr).gr_gid })
}

/// Mode, uid, gid for the new empty log, defaulting to the old log's.
fn create_attrs(c: &CreateOpt, md: &fs::Metadata) -> HostResult<Option<(u32, u32, u32)>> {
    use crate::host::fs::ops::parse_mode;
    let old = (md.mode() & 0o7777, md.uid(), md.gid());
    Ok(match c {
        CreateOpt::On(false) => None,
        CreateOpt::On(true) => Some(old),
        CreateOpt::Mode(m) => Some((parse_mode(m)?, old.1, old.2)),
        CreateOpt::Full { mode, owner, group } => Some((
            mode.as_deref()
                .map(parse_mode)
                .transpose()?
                .unwrap_or(old.0),
            owner
                .as_deref()
                .map(lookup_user)
                .transpose()?
                .unwrap_or(old.1),
            group
                .as_deref()
                .map(lookup_group)
                .transpose()?
                .unwrap_or(old.2),
        )),
    })
}

struct Rotator<'a> {
    ctx: &'a RunCtx,
    opts: &'a RotateOpts,
    report: RotateReport,
    to_compress: Vec<PathBuf>,
    max_age: Option<Duration>,
}

impl Rotator<'_> {
    fn remove(&mut self, p: &Path) -> io::Result<()> {
        if !self.ctx.dry_run {
            fs::remove_file(p)?;
        }
        self.report.deleted.push(p.display().to_string());
        Ok(())
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        if !self.ctx.dry_run {
            fs::rename(from, to)?;
        }
        self.report.renamed.push(Moved {
            from: from.display().to_string(),
            to: to.display().to_string(),
        });
        Ok(())
    }

    /// Rotated versions of `log` present in its directory (names only, sorted).
    fn siblings(&self, log: &Path, re: &regex::Regex) -> Vec<PathBuf> {
        let dir = log.parent().unwrap_or(Path::new("/"));
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| re.is_match(&e.file_name().to_string_lossy()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Clean up after an earlier crash: partial `.gz.tmp` files and plain copies whose complete
    /// `.gz` exists.
    fn recover(&mut self, log: &Path, re: &regex::Regex) -> io::Result<()> {
        if self.ctx.dry_run {
            return Ok(());
        }
        // Partial compressions (mtn's random temporary names) of this log's rotations.
        let dir = log.parent().unwrap_or(Path::new("/"));
        let base = log
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        crate::atomic::remove_stale_temps(dir, |target| {
            target.ends_with(".gz") && target.starts_with(&base) && target.len() > base.len()
        })?;
        if !self.opts.dateext {
            // Numbered names are known: probe them instead of scanning a directory that may
            // hold thousands of logs, once per log.
            let last = self.opts.keep + self.opts.start;
            for i in self.opts.start..=last {
                let plain = with_suffix(log, &format!(".{i}"));
                if remove_if_compressed(&plain)? {
                    tracing::warn!(target: "mtn::rotate", "removed {} left by an interrupted compression", plain.display());
                }
            }
            return Ok(());
        }
        for s in self.siblings(log, re) {
            if s.extension().is_some_and(|e| e == "gz") {
                continue;
            }
            if remove_if_compressed(&s)? {
                tracing::warn!(target: "mtn::rotate", "removed {} left by an interrupted compression ({}.gz is complete)", s.display(), s.display());
            }
        }
        Ok(())
    }

    fn rotate_one(&mut self, log: &Path) -> HostResult<()> {
        let o = self.opts;
        let io_err = |what: &str, p: &Path, e: io::Error| {
            HostError::io(format!("{what} {}", p.display()), &e)
        };
        let md = match fs::symlink_metadata(log) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound && o.missingok => return Ok(()),
            Err(e) => return Err(io_err("stat of", log, e)),
        };
        if md.file_type().is_symlink() {
            return Err(HostError::refused(format!(
                "{} is a symbolic link; rotating links is refused (as logrotate does)",
                log.display()
            )));
        }
        if !md.is_file() {
            return Err(HostError::invalid(format!(
                "{} is not a regular file",
                log.display()
            )));
        }
        let skip = |me: &mut Self, reason: String| {
            me.report.skipped.push(Skipped {
                path: log.display().to_string(),
                reason,
            });
            Ok(())
        };
        if !o.force {
            for (label, lim) in [("size", &o.size), ("min_size", &o.min_size)] {
                if let Some(l) = lim {
                    let l = parse_size(l)?;
                    if md.len() < l {
                        return skip(self, format!("{} bytes, below {label} {l}", md.len()));
                    }
                }
            }
        }
        if o.notifempty && md.len() == 0 {
            return skip(self, "empty (notifempty)".into());
        }
        let base = log
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let dir = log.parent().unwrap_or(Path::new("/")).to_path_buf();
        // Compiled only when a directory scan needs it: with thousands of logs per call,
        // compiling two regexes per log dominated the run time.
        static NEVER: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let owned = if o.dateext {
            Some(date_regex(&base, &o.dateformat)?)
        } else if self.max_age.is_some() {
            Some(numbered_regex(&base))
        } else {
            None
        };
        let re = match &owned {
            Some(r) => r,
            None => {
                NEVER.get_or_init(|| regex::Regex::new(r"\A\z.").unwrap_or_else(|_| unreachable!()))
            }
        };
        let date_re = re;
        self.recover(log, re)
            .map_err(|e| io_err("recovering rotated files of", log, e))?;

        let target;
        let mut dispose_target = false;
        if o.dateext {
            let stamp = chrono::Local::now().format(&o.dateformat).to_string();
            target = dir.join(format!("{base}{stamp}"));
            if exists(&target) || exists(&with_suffix(&target, ".gz")) {
                return Err(HostError::new(
                    ErrorKind::Refused,
                    format!(
                        "destination {} already exists, skipping rotation",
                        if exists(&target) {
                            target.clone()
                        } else {
                            with_suffix(&target, ".gz")
                        }
                        .display()
                    ),
                ));
            }
            let existing = self.siblings(log, date_re);
            // After adding the new one at most `keep` remain; oldest names sort first.
            let excess = (existing.len() + 1).saturating_sub(o.keep as usize);
            for old in existing.iter().take(excess) {
                self.remove(old).map_err(|e| io_err("removing", old, e))?;
            }
            dispose_target = o.keep == 0;
        } else {
            let num = |i: u64, ext: &str| dir.join(format!("{base}.{i}{ext}"));
            // The oldest kept number: what is there now is dropped, the rest shift up by one.
            let last = (o.keep + o.start).saturating_sub(1);
            if o.keep > 0 {
                for ext in ["", ".gz"] {
                    let p = num(last, ext);
                    if exists(&p) {
                        self.remove(&p).map_err(|e| io_err("removing", &p, e))?;
                    }
                }
            }
            for i in (o.start..last).rev() {
                for ext in ["", ".gz"] {
                    let from = num(i, ext);
                    if exists(&from) {
                        let to = num(i + 1, ext);
                        self.rename(&from, &to)
                            .map_err(|e| io_err("renaming", &from, e))?;
                    }
                }
            }
            target = num(o.start, "");
            dispose_target = dispose_target || o.keep == 0;
        }
        // Every computed name goes through the policy, and must stay beside the log.
        let target = self.ctx.policy.check_write(&target)?;
        if target.parent() != Some(dir.as_path()) {
            return Err(HostError::refused(format!(
                "rotate: the rotated name {} is not in the log's folder {}",
                target.display(),
                dir.display()
            )));
        }

        if !self.ctx.dry_run {
            if o.copytruncate {
                // Lines written between the copy and the truncation are lost, exactly as with
                // logrotate's copytruncate: the price of not renaming an open file.
                let mut src = fs::File::open(log).map_err(|e| io_err("opening", log, e))?;
                let mut out = crate::atomic::AtomicFile::create(&target)
                    .map_err(|e| io_err("creating", &target, e))?;
                io::copy(&mut src, out.file()).map_err(|e| io_err("copying", log, e))?;
                crate::host::compress::copy_attrs(out.file(), &md)
                    .map_err(|e| io_err("copying attributes to", &target, e))?;
                out.commit().map_err(|e| io_err("writing", &target, e))?;
                fs::OpenOptions::new()
                    .write(true)
                    .open(log)
                    .and_then(|f| f.set_len(0))
                    .map_err(|e| io_err("truncating", log, e))?;
            } else {
                fs::rename(log, &target).map_err(|e| io_err("renaming", log, e))?;
            }
        }
        self.report.rotated.push(Moved {
            from: log.display().to_string(),
            to: target.display().to_string(),
        });
        if !o.copytruncate {
            if let Some(c) = &o.create {
                if let Some((mode, uid, gid)) = create_attrs(c, &md)? {
                    if !self.ctx.dry_run {
                        let f = fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(log)
                            .map_err(|e| io_err("creating", log, e))?;
                        f.set_permissions(fs::Permissions::from_mode(mode))
                            .map_err(|e| io_err("chmod", log, e))?;
                        if uid != md.uid() || gid != md.gid() || unsafe { libc::geteuid() } == 0 {
                            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
                                .map_err(|e| io_err("chown", log, e))?;
                        }
                    }
                    self.report.created.push(log.display().to_string());
                }
            }
        }
        if dispose_target {
            self.remove(&target)
                .map_err(|e| io_err("removing", &target, e))?;
            return Ok(());
        }
        if o.compress {
            // Plain older versions that should have been compressed (an earlier run was
            // interrupted, or compression was just switched on) are compressed now.
            let newest_plain = if o.delaycompress {
                o.start + 1
            } else {
                o.start
            };
            if !o.dateext {
                for i in (newest_plain + 1)..=(o.keep + o.start).saturating_sub(1) {
                    let p = dir.join(format!("{base}.{i}"));
                    if exists(&p) {
                        self.to_compress.push(p);
                    }
                }
            }
            if !o.delaycompress {
                self.to_compress.push(target.clone());
                if o.dateext {
                    for s in self.siblings(log, date_re) {
                        if s != target && s.extension().is_none_or(|e| e != "gz") {
                            self.to_compress.push(s);
                        }
                    }
                }
            } else if o.dateext {
                for s in self.siblings(log, date_re) {
                    if s != target && s.extension().is_none_or(|e| e != "gz") {
                        self.to_compress.push(s);
                    }
                }
            } else {
                let prev = dir.join(format!("{base}.{}", o.start + 1));
                if exists(&prev)
                    || self.ctx.dry_run
                        && self.report.renamed.iter().any(|m| Path::new(&m.to) == prev)
                {
                    self.to_compress.push(prev);
                }
            }
        }
        if let Some(age) = self.max_age {
            let cutoff = SystemTime::now()
                .checked_sub(age)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            for s in self.siblings(log, re) {
                if s == target {
                    continue;
                }
                let old = fs::symlink_metadata(&s)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < cutoff);
                if old {
                    self.to_compress.retain(|c| c != &s);
                    self.remove(&s).map_err(|e| io_err("removing", &s, e))?;
                }
            }
        }
        Ok(())
    }

    fn compress_all(&mut self) {
        let files = std::mem::take(&mut self.to_compress);
        if self.ctx.dry_run {
            self.report.compressed.extend(
                files
                    .iter()
                    .map(|f| with_suffix(f, ".gz").display().to_string()),
            );
            return;
        }
        let inner_threads = if files.len() == 1 {
            default_threads()
        } else {
            1
        };
        let level = self.opts.compress_level;
        let results = std::sync::Mutex::new(Vec::new());
        par_for_each(&files, default_threads(), |f| {
            if self.ctx.check_cancelled().is_err() {
                return;
            }
            let dest = with_suffix(f, ".gz");
            let stop = || self.ctx.token.is_cancelled();
            let r = gzip_file(f, &dest, level, inner_threads, &stop).and_then(|_| {
                fs::remove_file(f)?;
                Ok(())
            });
            results
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((f.clone(), dest, r));
        });
        let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        results.sort_by(|a, b| a.0.cmp(&b.0));
        for (f, dest, r) in results {
            match r {
                Ok(()) => self.report.compressed.push(dest.display().to_string()),
                Err(e) => self.report.errors.push(Skipped {
                    path: f.display().to_string(),
                    reason: format!("compressing: {e}"),
                }),
            }
        }
        if let Some(first) = files.first() {
            crate::atomic::sync_dir(first);
        }
    }
}

/// Rotate every log matching `pattern`. `postrotate` runs once after all renames, with the list
/// of rotated logs, and only when at least one log was rotated.
pub fn rotate(
    ctx: &RunCtx,
    pattern: &str,
    opts: &RotateOpts,
    postrotate: Option<&mut dyn FnMut(Vec<String>) -> HostResult<()>>,
) -> HostResult<RotateReport> {
    if !(1..=9).contains(&opts.compress_level) {
        return Err(HostError::invalid(format!(
            "rotate: compress_level must be 1 to 9, got {}",
            opts.compress_level
        )));
    }
    for s in [&opts.size, &opts.min_size].into_iter().flatten() {
        parse_size(s)?;
    }
    let logs = expand(ctx, pattern, opts)?;
    if logs.is_empty() && !opts.missingok {
        return Err(HostError::not_found(format!(
            "rotate: nothing matches {pattern} (missingok: true allows that)"
        )));
    }
    let mut r = Rotator {
        ctx,
        opts,
        report: RotateReport {
            dry_run: ctx.dry_run,
            ..Default::default()
        },
        to_compress: Vec::new(),
        max_age: opts.max_age.as_ref().map(parse_age).transpose()?,
    };
    for log in &logs {
        ctx.check_cancelled()?;
        if let Err(e) = r.rotate_one(log) {
            if matches!(e.kind, ErrorKind::Timeout | ErrorKind::Cancelled) {
                return Err(e);
            }
            r.report.errors.push(Skipped {
                path: log.display().to_string(),
                reason: e.message,
            });
        }
    }
    let mut post_err = None;
    if !r.report.rotated.is_empty() {
        if let Some(f) = postrotate {
            r.report.postrotate_ran = true;
            let rotated = r.report.rotated.iter().map(|m| m.from.clone()).collect();
            post_err = f(rotated).err();
        }
    }
    match post_err {
        // The application may still write to the rotated file: compressing it now could lose
        // lines, so leave it uncompressed.
        Some(e) => {
            return Err(e.context(format!(
                "postrotate failed; {} rotated file(s) left uncompressed",
                r.to_compress.len()
            )))
        }
        None => r.compress_all(),
    }
    ctx.check_cancelled()?;
    if !r.report.errors.is_empty() {
        let list: Vec<String> = r
            .report
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.reason))
            .collect();
        return Err(HostError::new(
            ErrorKind::Io,
            format!(
                "{} log(s) failed ({} rotated): {}",
                r.report.errors.len(),
                r.report.rotated.len(),
                list.join("; ")
            ),
        ));
    }
    Ok(r.report)
}

const DOC: &str = "Rotate logs with logrotate's semantics and names: `app.log.1`, `app.log.2.gz`, `app.log-20261122.gz`.\n\n\
`path_or_glob` may have wildcards in the file name (`/var/log/app/*.log`). Options, named after logrotate's \
directives, with logrotate's defaults when absent: `keep` (rotate N; 0), `compress` (false), `compress_level` (6), \
`delaycompress`, `missingok`, `notifempty`, `size`/`min_size` (\"100k\", \"10M\"; rotate only when at least that big), \
`force` (ignore size like `logrotate -f`), `copytruncate`, `create` (true, \"0640\" or `#{ mode, owner, group }`; \
absent = nocreate), `dateext`, `dateformat` (\"-%Y%m%d\"), `max_age` (days or \"30d\"), `start` (1), and `postrotate` \
(a closure called once after every log is renamed and before compression, with the array of rotated logs).\n\
Returns `#{ rotated, renamed, compressed, deleted, created, skipped, errors, postrotate_ran, dry_run }`. Compression writes \
a temporary file and renames it, so a crash never loses a line.\n\n\
```rhai\nrotate(\"./logs/*.log\", #{ keep: 7, compress: true, delaycompress: true, missingok: true, notifempty: true, create: \"0640\",\n    postrotate: |rotated| log(`rotated ${rotated.len()} logs`) });\n```";

fn run_binding(ctx: &RunCtx, nctx: &NativeCallContext, pattern: &str, mut map: Map) -> RhaiResult {
    call(ctx, "rotate", || {
        let post: Option<FnPtr> = take_fn("rotate", &mut map, "postrotate")?;
        let o: RotateOpts = opts("rotate", &map)?;
        let mut hook = |rotated: Vec<String>| -> HostResult<()> {
            let Some(f) = &post else { return Ok(()) };
            let arr: Array = rotated.into_iter().map(Dynamic::from).collect();
            match f.call_within_context::<Dynamic>(nctx, (arr,)) {
                Ok(_) => Ok(()),
                // A closure written without a parameter (`|| ...`): call it without one.
                Err(e) if matches!(*e, rhai::EvalAltResult::ErrorFunctionNotFound(..)) => f
                    .call_within_context::<Dynamic>(nctx, ())
                    .map(|_| ())
                    .map_err(|e| postrotate_error(*e)),
                Err(e) => Err(postrotate_error(*e)),
            }
        };
        rotate(
            ctx,
            pattern,
            &o,
            if post.is_some() {
                Some(&mut hook)
            } else {
                None
            },
        )
    })
}

fn postrotate_error(e: rhai::EvalAltResult) -> HostError {
    if let rhai::EvalAltResult::ErrorTerminated(..) = e {
        return HostError::new(ErrorKind::Cancelled, "postrotate: run stopped");
    }
    HostError::new(ErrorKind::Failed, format!("postrotate: {e}"))
}

pub fn register(r: &mut Registrar) {
    r.category("files");
    let ctx = r.ctx.clone();
    r.add(
        "rotate",
        &["path_or_glob: &str"],
        "Map",
        DOC,
        move |nctx: NativeCallContext, p: &str| -> RhaiResult {
            run_binding(&ctx, &nctx, p, Map::new())
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "rotate",
        &["path_or_glob: &str", "opts: Map"],
        "Map",
        DOC,
        move |nctx: NativeCallContext, p: &str, o: Map| -> RhaiResult {
            run_binding(&ctx, &nctx, p, o)
        },
    );
}
