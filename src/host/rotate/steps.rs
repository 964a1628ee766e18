//! The work on one log, step by step, in logrotate's order: look at the file, decide whether it
//! is due, clear up after an interrupted run, make room (shift numbered names or prune dated
//! ones, removing what `keep` and `max_age` no longer allow), move the log, create its
//! successor, queue compression.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Local};

use super::attrs::create_attrs;
use super::names::{numbered, with_suffix, DateFmt, Listing};
use super::schedule::{due, Conditions, State};
use super::{Moved, RotateOpts, RotateReport, Skipped};
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};

/// `max_age`: a whole number of days is counted as logrotate ≥ 3.22 counts it (whole days
/// elapsed, so `1` removes rotations 2 days old, not 25 hours old); another duration is exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxAge {
    Days(u64),
    Exact(Duration),
}

impl MaxAge {
    pub fn from_duration(d: Duration) -> MaxAge {
        if d.subsec_nanos() == 0 && d.as_secs().is_multiple_of(86400) {
            MaxAge::Days(d.as_secs() / 86400)
        } else {
            MaxAge::Exact(d)
        }
    }

    /// Is a file last modified `age` ago past the limit? A future mtime never is.
    pub fn expired(&self, age: Duration) -> bool {
        match *self {
            MaxAge::Days(n) => age.as_secs() / 86400 > n,
            MaxAge::Exact(d) => age > d,
        }
    }
}

pub(super) fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

fn io_err(what: &str, p: &Path, e: io::Error) -> HostError {
    HostError::io(format!("{what} {}", p.display()), &e)
}

/// Where room was made: the name the log moves to, and the uncompressed rotations that remain
/// beside it (at their new names).
struct Room {
    plain: Vec<PathBuf>,
}

pub struct Rotator<'a> {
    pub ctx: &'a RunCtx,
    pub opts: &'a RotateOpts,
    pub report: RotateReport,
    pub to_compress: Vec<PathBuf>,
    pub max_age: Option<MaxAge>,
    pub date: DateFmt,
    pub cond: Conditions,
    /// Present when an interval (daily, weekly, ...) is set.
    pub state: Option<State>,
    pub now: DateTime<Local>,
    pub(super) listings: HashMap<PathBuf, Listing>,
}

impl<'a> Rotator<'a> {
    pub fn new(
        ctx: &'a RunCtx,
        opts: &'a RotateOpts,
        date: DateFmt,
        cond: Conditions,
        max_age: Option<MaxAge>,
        state: Option<State>,
    ) -> Self {
        Rotator {
            ctx,
            opts,
            report: RotateReport {
                dry_run: ctx.dry_run,
                ..Default::default()
            },
            to_compress: Vec::new(),
            max_age,
            date,
            cond,
            state,
            now: Local::now(),
            listings: HashMap::new(),
        }
    }

    pub fn rotate_one(&mut self, log: &Path) -> HostResult<()> {
        let Some(md) = self.inspect(log)? else {
            return Ok(());
        };
        if !self.is_due(log, &md) {
            return Ok(());
        }
        let dir = log.parent().unwrap_or(Path::new("/")).to_path_buf();
        let base = log
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let target = self.target_name(&dir, &base)?;
        self.recover(&dir, &base)
            .map_err(|e| io_err("recovering rotated files of", log, e))?;
        let room = if self.opts.dateext {
            self.prune_dated(&dir, &base)?
        } else {
            self.shift_numbered(&dir, &base)?
        };
        self.move_log(log, &target, &md)?;
        self.create_successor(log, &md)?;
        let now = self.now;
        if let Some(s) = self.state.as_mut() {
            s.set(log, now);
        }
        if self.opts.keep == 0 {
            return self
                .remove(&target)
                .map_err(|e| io_err("removing", &target, e));
        }
        self.queue_compression(&target, room);
        Ok(())
    }

    fn skip(&mut self, log: &Path, reason: String) {
        self.report.skipped.push(Skipped {
            path: log.display().to_string(),
            reason,
        });
    }

    /// The log's own metadata (never following a link), or `None` when it is skipped: missing
    /// with `missingok`, or not a file mtn rotates (each refusal is logged as a warning).
    fn inspect(&mut self, log: &Path) -> HostResult<Option<fs::Metadata>> {
        let md = match fs::symlink_metadata(log) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.opts.missingok => {
                return Ok(None)
            }
            Err(e) => return Err(io_err("stat of", log, e)),
        };
        let ft = md.file_type();
        let refusal = if ft.is_symlink() {
            Some("a symbolic link: links are not rotated, to avoid security issues (logrotate skips them too)".to_string())
        } else if ft.is_fifo() {
            Some("a named pipe (FIFO): a pipe holds no log to keep and opening it would block; skipped (logrotate ≥ 3.22 renames it and then fails to compress it)".to_string())
        } else if !ft.is_file() {
            Some("not a regular file: skipped".to_string())
        } else if md.nlink() > 1 && !self.opts.allowhardlink {
            Some(format!(
                "has {} hard links: skipped, as logrotate does (allowhardlink: true rotates it)",
                md.nlink()
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            tracing::warn!(target: "mtn::rotate", "rotate: {} is {reason}", log.display());
            self.skip(log, reason);
            return Ok(None);
        }
        Ok(Some(md))
    }

    /// logrotate's conditions; a log seen for the first time with an interval is recorded.
    fn is_due(&mut self, log: &Path, md: &fs::Metadata) -> bool {
        let last = self.state.as_ref().and_then(|s| s.last(log));
        match due(&self.cond, md.len(), last, self.now) {
            Ok(()) => true,
            Err(reason) => {
                if last.is_none() && self.cond.interval.is_some() {
                    let now = self.now;
                    if let Some(s) = self.state.as_mut() {
                        s.set(log, now);
                    }
                }
                self.skip(log, reason);
                false
            }
        }
    }

    /// The name the log moves to, checked by the policy and kept beside the log.
    fn target_name(&self, dir: &Path, base: &str) -> HostResult<PathBuf> {
        let o = self.opts;
        let target = if o.dateext {
            // DateFmt::new accepted the format: every code in it is one chrono formats.
            let stamp = self.now.format(&o.dateformat).to_string();
            let t = dir.join(format!("{base}{stamp}"));
            for p in [t.clone(), with_suffix(&t, ".gz")] {
                if exists(&p) {
                    return Err(HostError::refused(format!(
                        "destination {} already exists, skipping rotation",
                        p.display()
                    )));
                }
            }
            t
        } else {
            dir.join(format!("{base}.{}", o.start))
        };
        let target = self.ctx.policy.check_write(&target)?;
        if target.parent() != Some(dir) {
            return Err(HostError::refused(format!(
                "the rotated name {} is not in the log's folder {}",
                target.display(),
                dir.display()
            )));
        }
        Ok(target)
    }

    fn listing(&mut self, dir: &Path) -> HostResult<&Listing> {
        if !self.listings.contains_key(dir) {
            let l = Listing::read(dir).map_err(|e| io_err("listing", dir, e))?;
            self.listings.insert(dir.to_path_buf(), l);
        }
        Ok(&self.listings[dir])
    }

    /// Past `max_age` (by its mtime, without following a link)?
    fn expired(&self, p: &Path) -> bool {
        let Some(max) = self.max_age else {
            return false;
        };
        fs::symlink_metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| max.expired(age))
    }

    fn remove(&mut self, p: &Path) -> io::Result<()> {
        let size = fs::symlink_metadata(p).ok().map(|m| m.len());
        if !self.ctx.dry_run {
            fs::remove_file(p)?;
        }
        crate::host::deletion::announce(self.ctx, &p.display().to_string(), size);
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

    /// Numbered names: `base.N` → `base.N+1`, highest first, as logrotate does. Rotations
    /// that would end up past `keep` are removed, including ones left by an earlier, higher
    /// `keep` (logrotate leaves those forever); `keep: -1` removes none; `max_age` removes
    /// old ones instead of shifting them.
    fn shift_numbered(&mut self, dir: &Path, base: &str) -> HostResult<Room> {
        let o = self.opts;
        let prefix = format!("{base}.");
        let mut found: Vec<(u64, bool)> = self
            .listing(dir)?
            .starting_with(&prefix)
            .filter_map(|n| numbered(base, n))
            .filter(|(i, _)| *i >= o.start)
            .collect();
        found.sort_by(|a, b| b.cmp(a));
        let name =
            |i: u64, gz: bool| dir.join(format!("{base}.{i}{}", if gz { ".gz" } else { "" }));
        // After the shift, numbers below `limit` remain.
        let limit = u64::try_from(o.keep)
            .ok()
            .map(|k| o.start.saturating_add(k));
        let mut plain = Vec::new();
        // Removed here but left for ever by logrotate (which drops only `start + rotate`, and
        // sees only names with the current compression): said in a warning, never silently.
        let mut beyond_logrotate = Vec::new();
        for (i, gz) in found {
            let from = name(i, gz);
            if !exists(&from) {
                continue;
            }
            let past_keep = limit.is_some_and(|l| i.saturating_add(1) >= l);
            if past_keep || self.expired(&from) {
                self.remove(&from)
                    .map_err(|e| io_err("removing", &from, e))?;
                if past_keep && (o.keep == 0 || i > o.start + o.keep as u64 || gz != o.compress) {
                    beyond_logrotate.push(from.display().to_string());
                }
                continue;
            }
            let to = name(i + 1, gz);
            self.rename(&from, &to)
                .map_err(|e| io_err("renaming", &from, e))?;
            if !gz {
                plain.push(to);
            }
        }
        if !beyond_logrotate.is_empty() {
            tracing::warn!(target: "mtn::rotate", "rotate: removed {} past keep: {} (logrotate would leave them): {}",
                beyond_logrotate.len(), o.keep, beyond_logrotate.join(", "));
        }
        Ok(Room { plain })
    }

    /// Dated names: the oldest (by the date in the name, as logrotate sorts them) beyond
    /// `keep - 1` are removed, and any past `max_age`.
    fn prune_dated(&mut self, dir: &Path, base: &str) -> HostResult<Room> {
        let o = self.opts;
        self.listing(dir)?;
        let date = &self.date;
        let mut existing: Vec<String> = self.listings[dir]
            .starting_with(base)
            .filter(|n| date.is_rotation_of(base, n))
            .cloned()
            .collect();
        existing.sort_by_cached_key(|n| (self.date.sort_key(base, n), n.clone()));
        // After adding the new one at most `keep` remain.
        let excess = usize::try_from(o.keep)
            .map(|k| (existing.len() + 1).saturating_sub(k))
            .unwrap_or(0);
        let mut plain = Vec::new();
        for (k, n) in existing.iter().enumerate() {
            let p = dir.join(n);
            if !exists(&p) {
                continue;
            }
            if k < excess || self.expired(&p) {
                self.remove(&p).map_err(|e| io_err("removing", &p, e))?;
            } else if !n.ends_with(".gz") {
                plain.push(p);
            }
        }
        Ok(Room { plain })
    }

    /// Rename the log, or copy it and truncate it in place (`copytruncate`). The log is opened
    /// without blocking and without following a link, and must still be a regular file: a
    /// name swapped for a pipe in the meantime cannot hang the run.
    fn move_log(&mut self, log: &Path, target: &Path, md: &fs::Metadata) -> HostResult<()> {
        if !self.ctx.dry_run {
            if self.opts.copytruncate {
                // Lines written between the copy and the truncation are lost, exactly as with
                // logrotate's copytruncate: the price of not renaming an open file.
                let mut src = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                    .open(log)
                    .map_err(|e| io_err("opening", log, e))?;
                let now = src.metadata().map_err(|e| io_err("stat of", log, e))?;
                if !now.is_file() || now.ino() != md.ino() {
                    return Err(HostError::refused(format!(
                        "{} was replaced while being rotated; left alone",
                        log.display()
                    )));
                }
                let mut out = crate::atomic::AtomicFile::create(target)
                    .map_err(|e| io_err("creating", target, e))?;
                io::copy(&mut src, out.file()).map_err(|e| io_err("copying", log, e))?;
                crate::host::compress::copy_attrs(out.file(), md)
                    .map_err(|e| io_err("copying attributes to", target, e))?;
                out.commit().map_err(|e| io_err("writing", target, e))?;
                src.set_len(0).map_err(|e| io_err("truncating", log, e))?;
            } else {
                fs::rename(log, target).map_err(|e| io_err("renaming", log, e))?;
            }
        }
        self.report.rotated.push(Moved {
            from: log.display().to_string(),
            to: target.display().to_string(),
        });
        Ok(())
    }

    /// `create`: a new empty log with the old one's (or the given) mode and owner.
    fn create_successor(&mut self, log: &Path, md: &fs::Metadata) -> HostResult<()> {
        let (Some(c), false) = (&self.opts.create, self.opts.copytruncate) else {
            return Ok(());
        };
        let Some((mode, uid, gid)) = create_attrs(c, md)? else {
            return Ok(());
        };
        if !self.ctx.dry_run {
            // create_new is O_EXCL: a link planted at the log's name is never followed.
            let f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(log)
                .map_err(|e| io_err("creating", log, e))?;
            f.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| io_err("chmod", log, e))?;
            // SAFETY: geteuid has no preconditions.
            if uid != md.uid() || gid != md.gid() || unsafe { libc::geteuid() } == 0 {
                std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
                    .map_err(|e| io_err("chown", log, e))?;
            }
        }
        self.report.created.push(log.display().to_string());
        Ok(())
    }

    /// With `compress`, every uncompressed older rotation is compressed after postrotate (with
    /// `delaycompress` that is the previous one, whose turn has come; otherwise leftovers of an
    /// interrupted run or of compression just switched on), and the new one unless
    /// `delaycompress`.
    fn queue_compression(&mut self, target: &Path, room: Room) {
        if !self.opts.compress {
            return;
        }
        self.to_compress.extend(room.plain);
        if !self.opts.delaycompress {
            self.to_compress.push(target.to_path_buf());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_counts_whole_days() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        let one = MaxAge::from_duration(Duration::from_secs(86400));
        assert_eq!(one, MaxAge::Days(1));
        // logrotate test 0085: 12, 23, 24, 25, 36, 47 h are kept; 48, 49 h are removed.
        for kept in [12, 23, 24, 25, 36, 47] {
            assert!(!one.expired(h(kept)), "{kept} h");
        }
        for gone in [48, 49, 24 * 365] {
            assert!(one.expired(h(gone)), "{gone} h");
        }
        let exact = MaxAge::from_duration(h(36));
        assert_eq!(exact, MaxAge::Exact(h(36)));
        assert!(!exact.expired(h(36)));
        assert!(exact.expired(h(36) + Duration::from_secs(1)));
    }
}
