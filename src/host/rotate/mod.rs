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
//!
//! Layout: `names` (rotated names, dated sorting, which matches are logs), `schedule` (daily,
//! weekly, ... and sizes as logrotate decides, and the state file), `steps` (the work on one
//! log), `attrs` (`create`). Deliberate differences from logrotate are listed in docs/files.md.

use std::fs;

use rhai::{Array, Dynamic, FnPtr, Map, NativeCallContext};
use serde::{Deserialize, Serialize};

use crate::ctx::RunCtx;
use crate::error::{ErrorKind, HostError, HostResult};
use crate::host::binding::{opts, take_fn};
use crate::host::compress::{default_threads, gzip_file};
use crate::host::fs::dir::par_for_each;
use crate::host::registry::Registrar;
use crate::host_fn;

mod attrs;
mod names;
mod recover;
mod schedule;
mod steps;

pub use crate::units::SizeOpt;
pub use attrs::CreateOpt;
use names::with_suffix;
use schedule::{Conditions, Interval};
use steps::{MaxAge, Rotator};

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum AgeOpt {
    Days(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RotateOpts {
    /// logrotate `rotate N`: rotated versions kept (default 0: the old log is removed; -1: none
    /// is ever removed for their number).
    pub keep: i64,
    pub compress: bool,
    /// logrotate's default compressoptions: -6.
    pub compress_level: u32,
    pub delaycompress: bool,
    pub missingok: bool,
    pub notifempty: bool,
    /// logrotate `size`: rotate when at least this big ("100k", "10M", "1G" or bytes),
    /// whatever the time; a criterion of its own, so not together with `daily` & co.
    pub size: Option<SizeOpt>,
    /// logrotate `minsize`: with an interval, rotate only when also at least this big (without
    /// one, like `size`).
    pub min_size: Option<SizeOpt>,
    /// logrotate `maxsize`: bigger than this rotates even before the interval has passed.
    pub max_size: Option<SizeOpt>,
    /// logrotate's time criteria; at most one. Due-ness is kept in the state dir.
    pub hourly: bool,
    pub daily: bool,
    pub weekly: bool,
    pub monthly: bool,
    pub yearly: bool,
    /// Ignore the conditions, like `logrotate -f`.
    pub force: bool,
    pub copytruncate: bool,
    /// `true`, a mode ("0640"), or `#{ mode, owner, group }`; absent = logrotate's nocreate.
    pub create: Option<CreateOpt>,
    pub dateext: bool,
    pub dateformat: String,
    /// Remove rotated logs older than this: days (whole days elapsed, as logrotate ≥ 3.22), or
    /// a duration like "30d" or "36h".
    pub max_age: Option<AgeOpt>,
    /// First rotation number (logrotate `start`, default 1).
    pub start: u64,
    /// Rotate logs with more than one hard link (logrotate `allowhardlink`).
    pub allowhardlink: bool,
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
            max_size: None,
            hourly: false,
            daily: false,
            weekly: false,
            monthly: false,
            yearly: false,
            force: false,
            copytruncate: false,
            create: None,
            dateext: false,
            dateformat: "-%Y%m%d".to_string(),
            max_age: None,
            start: 1,
            allowhardlink: false,
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
    /// Logs not rotated, and why: not due, or refused (links, pipes, hard links).
    pub skipped: Vec<Skipped>,
    pub errors: Vec<Skipped>,
    pub postrotate_ran: bool,
    pub dry_run: bool,
}

/// Sizes follow logrotate: `k`, `M`, `G` are powers of 1024 (see `src/units.rs`).
pub fn parse_size(s: &SizeOpt) -> HostResult<u64> {
    s.bytes()
}

fn parse_age(a: &AgeOpt) -> HostResult<MaxAge> {
    match a {
        AgeOpt::Days(d) => Ok(MaxAge::Days(*d)),
        AgeOpt::Text(t) => crate::units::parse_duration(t).map(MaxAge::from_duration),
    }
}

/// Check the options as a whole and turn them into logrotate's conditions.
fn conditions(o: &RotateOpts) -> HostResult<Conditions> {
    if !(1..=9).contains(&o.compress_level) {
        return Err(HostError::invalid(format!(
            "compress_level must be 1 to 9, got {}",
            o.compress_level
        )));
    }
    if o.keep < -1 {
        return Err(HostError::invalid(format!(
            "keep must be -1 (never remove old logs), 0 or more, got {}",
            o.keep
        )));
    }
    let intervals: Vec<Interval> = [
        (o.hourly, Interval::Hourly),
        (o.daily, Interval::Daily),
        (o.weekly, Interval::Weekly),
        (o.monthly, Interval::Monthly),
        (o.yearly, Interval::Yearly),
    ]
    .into_iter()
    .filter_map(|(on, i)| on.then_some(i))
    .collect();
    if intervals.len() > 1 {
        let names: Vec<&str> = intervals.iter().map(|i| i.name()).collect();
        return Err(HostError::invalid(format!(
            "{} are exclusive; give one",
            names.join(" and ")
        )));
    }
    let interval = intervals.first().copied();
    if let (Some(i), Some(_)) = (interval, &o.size) {
        return Err(HostError::invalid(format!(
            "size and {} are two separate criteria (in logrotate the later one silently wins); \
use min_size to rotate {} only when at least that big, or max_size to rotate early when bigger",
            i.name(),
            i.name()
        )));
    }
    if o.delaycompress && !o.compress {
        tracing::warn!(target: "mtn::rotate", "rotate: delaycompress ignored since compress is off (as logrotate)");
    }
    let size = |s: &Option<SizeOpt>| s.as_ref().map(parse_size).transpose();
    Ok(Conditions {
        interval,
        force: o.force,
        size: size(&o.size)?,
        min_size: size(&o.min_size)?,
        max_size: size(&o.max_size)?,
        notifempty: o.notifempty,
    })
}

impl Rotator<'_> {
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
    let cond = conditions(opts)?;
    let date = names::DateFmt::new(&opts.dateformat)?;
    let logs = names::expand(ctx, pattern, &date)?;
    if logs.is_empty() && !opts.missingok {
        return Err(HostError::not_found(format!(
            "nothing matches {pattern} (missingok: true allows that)"
        )));
    }
    let state = match cond.interval {
        Some(_) => Some(schedule::State::load(&ctx.state_dir)?),
        None => None,
    };
    let max_age = opts.max_age.as_ref().map(parse_age).transpose()?;
    let mut r = Rotator::new(ctx, opts, date, cond, max_age, state);
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
    // Recorded before postrotate and compression: the renames are done whatever follows.
    if let (Some(state), false) = (&r.state, ctx.dry_run) {
        if let Err(e) = state.save() {
            r.report.errors.push(Skipped {
                path: schedule::State::path(&ctx.state_dir).display().to_string(),
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
directives, with logrotate's defaults when absent: `keep` (rotate N; 0; -1 never removes old logs), `compress` (false), \
`compress_level` (6), `delaycompress`, `missingok`, `notifempty`, `daily`/`weekly`/`monthly`/`hourly`/`yearly` (at most one; \
when the log was last rotated is kept in the state dir, so an hourly script rotates a daily log once a day; a log seen \
for the first time is recorded, not rotated, as logrotate does), `size` (\"100k\", \"10M\"; rotate when at least that big, \
instead of an interval), `min_size` (with an interval: only when also at least that big), `max_size` (rotate early when \
bigger), `force` (ignore every condition, like `logrotate -f`), `copytruncate`, `create` (true, \"0640\" or \
`#{ mode, owner, group }`; absent = nocreate), `dateext`, `dateformat` (\"-%Y%m%d\"), `max_age` (days, counted as whole \
days elapsed like logrotate: 1 removes rotations 2 days old; or a duration such as \"36h\"), `start` (1), `allowhardlink`, \
and `postrotate` (a closure called once after every log is renamed and before compression, with the array of rotated logs). \
Without an interval or size, every call rotates. Symbolic links, named pipes and logs with several hard links are skipped \
with a warning (see docs/files.md, differences from logrotate).\n\
Returns `#{ rotated, renamed, compressed, deleted, created, skipped, errors, postrotate_ran, dry_run }`. Compression writes \
a temporary file and renames it, so a crash never loses a line.\n\n\
```rhai\nrotate(\"./logs/*.log\", #{ daily: true, keep: 7, compress: true, delaycompress: true, missingok: true, notifempty: true,\n    create: \"0640\", postrotate: |rotated| log(`rotated ${rotated.len()} logs`) });\n```";

fn run_binding(
    ctx: &RunCtx,
    nctx: &NativeCallContext,
    pattern: &str,
    mut map: Map,
) -> HostResult<RotateReport> {
    let post: Option<FnPtr> = take_fn(&mut map, "postrotate")?;
    let o: RotateOpts = opts(&map)?;
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
}

fn postrotate_error(e: rhai::EvalAltResult) -> HostError {
    if let rhai::EvalAltResult::ErrorTerminated(..) = e {
        return HostError::new(ErrorKind::Cancelled, "postrotate: run stopped");
    }
    HostError::new(ErrorKind::Failed, format!("postrotate: {e}"))
}

pub fn register(r: &mut Registrar) {
    r.category("files");
    host_fn!(r, "rotate", DOC, |ctx, nctx: NativeCallContext, path_or_glob: &str; opts| -> "Map" {
        run_binding(&ctx, &nctx, path_or_glob, opts.clone())
    });
}
