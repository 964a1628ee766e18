//! `mtn.toml`: global settings, `[policy]`, `[limits]` and the daemon's `[[job]]` tables.
//! Unknown keys are errors, so a typo in a config is reported instead of silently ignored.

pub mod fleet;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cron::JobTz;
use crate::ctx::Limits;
use crate::policy::PolicyConfig;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the daemon's HTTP endpoints (/healthz, /metrics, /status).
    pub listen: Option<String>,
    /// File holding the token for state-changing endpoints (`POST /trigger/{job}`), relative to
    /// the config file (default: `trigger.token` in the state dir, created 0600 on first start).
    pub token_file: Option<PathBuf>,
    /// Allow a non-loopback `listen` without TLS (e.g. behind a TLS-terminating proxy). The
    /// token is still required for every endpoint but /healthz.
    pub insecure_listen: bool,
    /// History and persisted state, relative to the config file (default: see [`state_dir`]).
    pub state_dir: Option<PathBuf>,
    /// Folder of stdlib modules, relative to the config file.
    pub stdlib: Option<PathBuf>,
    /// How long the daemon waits for running jobs on shutdown before cancelling them (default 30s).
    pub shutdown_grace: Option<String>,
    /// Run history entries kept per job (default 500; older entries are dropped).
    pub history_limit: Option<usize>,
    /// Run history entries older than this are dropped (default "90d"); each job's history file
    /// also stays under 4 MiB.
    pub history_max_age: Option<String>,
    pub policy: PolicyConfig,
    pub limits: Limits,
    /// Hosts sharing a PostgreSQL lock database run each `once` job once per slot (docs/fleet.md).
    pub fleet: Option<fleet::FleetConfig>,
    #[serde(rename = "job")]
    pub jobs: Vec<JobConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JobConfig {
    pub name: String,
    /// Script path, relative to the config file.
    pub script: PathBuf,
    /// 5- or 6-field cron expression or @daily/@hourly/...
    pub schedule: String,
    /// IANA time zone for the schedule (default: local time).
    pub timezone: Option<String>,
    pub timeout: Option<String>,
    pub retries: u32,
    pub retry_delay: Option<String>,
    /// skip | queue | replace (default skip)
    pub overlap: Option<String>,
    pub jitter: Option<String>,
    pub catch_up: bool,
    pub vars: BTreeMap<String, toml::Value>,
    /// A notify target (webhook URL or smtp:// URL) told when the job starts failing, and once
    /// when it recovers (not on every failed run).
    pub on_failure: Option<String>,
    /// Repeat the failure alert this often while the job keeps failing (e.g. "6h"; default: never).
    pub notify_every: Option<String>,
    /// Dead-man's switch for every run of the job (healthchecks.io style, see `mtn run --ping`).
    pub ping: Option<String>,
    /// Notify target told once when a run of the job fails (see `mtn run --notify`).
    pub notify: Option<String>,
    pub dry_run: bool,
    pub allow_paths: Vec<PathBuf>,
    pub allow_exec: Vec<String>,
    pub allow_hosts: Vec<String>,
    pub enabled: Option<bool>,
    /// With `[fleet]`: `once` (default: one host runs each slot) or `each` (every host runs it).
    pub fleet: Option<String>,
}

impl JobConfig {
    /// The job's `ping`/`notify` keys, for the run's monitor.
    pub fn monitor(&self) -> crate::ctx::monitor::MonitorOptions {
        crate::ctx::monitor::MonitorOptions {
            ping: self.ping.clone(),
            notify: self.notify.clone(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, String> {
        toml::from_str::<Config>(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            format!(
                "invalid config {}:{line}:{col}: {}{}",
                path.display(),
                e.message().trim_end(),
                unknown_key_hint(e.message())
            )
        })
    }

    /// Parse and check every job table: names, schedules, durations, overlap modes, URLs.
    /// Errors name the job and, where possible, the line of its table.
    pub fn load_checked(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        let cfg = Self::parse(&text, path)?;
        cfg.validate(&text, path)?;
        Ok(cfg)
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), String> {
        let problems = self.problems(text, path);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    /// Every problem of a parsed config (not only the first), each naming file:line:col and the
    /// job: names, schedules, time zones, durations, overlap modes, notify URLs.
    pub fn problems(&self, text: &str, path: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (key, v) in [
            ("shutdown_grace", &self.shutdown_grace),
            ("history_max_age", &self.history_max_age),
        ] {
            if let Some(Err(e)) = v.as_deref().map(crate::units::parse_duration) {
                let (l, c) = top_key_location(text, key);
                out.push(format!(
                    "invalid config {}:{l}:{c}: {key}: {}",
                    path.display(),
                    e.message
                ));
            }
        }
        out.extend(fleet::problems(self, text, path));
        for (i, job) in self.jobs.iter().enumerate() {
            let fail = |key: &str, what: String| job_problem(text, path, i, &job.name, key, &what);
            if job.name.is_empty() {
                let (l, c) = job_key_location(text, i, "");
                out.push(format!(
                    "invalid config {}:{l}:{c}: a [[job]] has no `name`",
                    path.display()
                ));
                continue;
            }
            if !job
                .name
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.".contains(c))
            {
                out.push(fail(
                    "name",
                    "`name` may contain only letters, digits, '-', '_' and '.'".into(),
                ));
            }
            if !seen.insert(job.name.clone()) {
                out.push(fail("name", "another job has the same name".into()));
            }
            if job.script.as_os_str().is_empty() {
                out.push(fail("", "`script` is missing".into()));
            }
            if job.schedule.trim().is_empty() {
                out.push(fail(
                    "",
                    "`schedule` is missing (a cron expression like \"0 2 * * *\" or @daily)".into(),
                ));
            } else if let Err(e) = job.cron() {
                out.push(fail("schedule", e));
            }
            if let Err(e) = job.tz() {
                out.push(fail("timezone", e));
            }
            for (key, v) in [
                ("timeout", &job.timeout),
                ("retry_delay", &job.retry_delay),
                ("jitter", &job.jitter),
                ("notify_every", &job.notify_every),
            ] {
                if let Some(v) = v {
                    if let Err(e) = crate::units::parse_duration(v) {
                        out.push(fail(key, format!("`{key}`: {}", e.message)));
                    }
                }
            }
            if let Err(e) = job.overlap_mode() {
                out.push(fail("overlap", e));
            }
            if let Err(e) = crate::ctx::monitor::Monitor::default().set(job.monitor()) {
                let key = if e.starts_with("ping") {
                    "ping"
                } else {
                    "notify"
                };
                out.push(fail(key, e));
            }
            if let Some(u) = &job.on_failure {
                match url::Url::parse(u) {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https" | "smtp" | "smtps") => {}
                    Ok(parsed) => out.push(fail(
                        "on_failure",
                        format!(
                            "`on_failure`: scheme {:?} is not supported here (use an https:// webhook URL or smtp:// / smtps://)",
                            parsed.scheme()
                        ),
                    )),
                    Err(e) => out.push(fail("on_failure", format!("`on_failure`: not a URL: {e}"))),
                }
            }
        }
        out
    }

    /// The folder relative paths in this config are taken from.
    pub fn base_dir(path: &Path) -> PathBuf {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// Where a command's default state dir is when nothing names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateDefault {
    /// `mtn run`: `.mtn` in the working directory (as before; cron's working directory is $HOME).
    WorkingDir,
    /// The daemon and its clients: a place a service can write, never the config folder.
    Service,
}

/// The state dir, in this order: `--state-dir` / `MTN_STATE_DIR` (`explicit`), the config's
/// `state_dir` (relative to the config file's folder `base`), systemd's `$STATE_DIRECTORY`
/// (set by `StateDirectory=mtn`), then the default: for `Service`, `/var/lib/mtn` as root and
/// `$XDG_STATE_HOME/mtn` (`~/.local/state/mtn`) otherwise. One function, so the daemon, `mtn jobs`,
/// `mtn history` and `mtn trigger` always agree on where the history and the token are.
pub fn state_dir(
    explicit: Option<&Path>,
    configured: Option<&Path>,
    base: &Path,
    default: StateDefault,
) -> PathBuf {
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return crate::policy::absolute(p);
    }
    if let Some(p) = configured.filter(|p| !p.as_os_str().is_empty()) {
        return crate::policy::normalize(&base.join(p));
    }
    // systemd passes a colon-separated list when StateDirectory= names several folders.
    if let Some(first) = std::env::var_os("STATE_DIRECTORY")
        .and_then(|v| {
            v.to_str()
                .and_then(|s| s.split(':').next())
                .map(PathBuf::from)
        })
        .filter(|p| p.is_absolute())
    {
        return first;
    }
    match default {
        StateDefault::WorkingDir => PathBuf::from(".mtn"),
        // SAFETY: geteuid has no preconditions and cannot fail.
        StateDefault::Service if unsafe { libc::geteuid() } == 0 => PathBuf::from("/var/lib/mtn"),
        StateDefault::Service => std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
                    .map(|h| h.join(".local/state"))
            })
            .map(|d| d.join("mtn"))
            .unwrap_or_else(|| crate::policy::absolute(Path::new(".mtn"))),
    }
}

/// Overlap policy when a job fires while its previous run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    Skip,
    Queue,
    Replace,
}

impl JobConfig {
    pub fn cron(&self) -> Result<crate::cron::Schedule, String> {
        self.schedule
            .parse::<crate::cron::Schedule>()
            .map_err(|e| format!("`schedule` {:?}: {e} (use 5 or 6 cron fields, or @hourly/@daily/@weekly/@monthly/@yearly)", self.schedule))
    }

    pub fn tz(&self) -> Result<JobTz, String> {
        match self.timezone.as_deref() {
            None | Some("local") | Some("Local") => Ok(JobTz::Local),
            Some(name) => name
                .parse::<chrono_tz::Tz>()
                .map(JobTz::Named)
                .map_err(|_| format!("`timezone` {name:?} is not an IANA time zone (e.g. \"UTC\", \"Europe/Paris\")")),
        }
    }

    pub fn overlap_mode(&self) -> Result<Overlap, String> {
        match self.overlap.as_deref().unwrap_or("skip") {
            "skip" => Ok(Overlap::Skip),
            "queue" => Ok(Overlap::Queue),
            "replace" => Ok(Overlap::Replace),
            other => Err(format!(
                "`overlap` {other:?}: expected skip, queue or replace"
            )),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}

/// A problem with `key` of the i-th `[[job]]`, located as `file:line:col`.
pub fn job_problem(
    text: &str,
    path: &Path,
    index: usize,
    job: &str,
    key: &str,
    what: &str,
) -> String {
    let (l, c) = job_key_location(text, index, key);
    format!(
        "invalid config {}:{l}:{c}: job {job:?}: {what}",
        path.display()
    )
}

/// `(line, col)` of `key = ...` inside the i-th `[[job]]` table, else of the table's header.
pub fn job_key_location(text: &str, index: usize, key: &str) -> (usize, usize) {
    let mut count = 0;
    let mut offset = 0;
    let mut header = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let at = offset + (line.len() - trimmed.len());
        offset += line.len();
        if trimmed.starts_with('[') {
            if header.is_some() {
                break;
            }
            if trimmed.starts_with("[[job]]") {
                if count == index {
                    header = Some(at);
                }
                count += 1;
            }
            continue;
        }
        if header.is_some() && !key.is_empty() && is_key_line(trimmed, key) {
            return line_col(text, at);
        }
    }
    header.map(|h| line_col(text, h)).unwrap_or((0, 0))
}

/// `(line, col)` of a top-level `key = ...` (before the first table).
fn top_key_location(text: &str, key: &str) -> (usize, usize) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            break;
        }
        if is_key_line(trimmed, key) {
            return line_col(text, offset + (line.len() - trimmed.len()));
        }
        offset += line.len();
    }
    (0, 0)
}

fn is_key_line(trimmed: &str, key: &str) -> bool {
    trimmed
        .strip_prefix(key)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

/// serde's "unknown field `x`, expected one of `a`, `b`" → " (did you mean `b`?)" when a known
/// key is a small edit away from the typo.
fn unknown_key_hint(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return String::new();
    };
    let Some((typo, expected)) = rest.split_once('`') else {
        return String::new();
    };
    let best = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|k| (edit_distance(typo, k), k))
        .min();
    match best {
        Some((d, k)) if d <= typo.len().div_ceil(3).max(2) => format!(" (did you mean `{k}`?)"),
        _ => String::new(),
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/mtn.toml");
        let cfg = Config::load_checked(&path).unwrap();
        assert_eq!(cfg.jobs.len(), 2);
        assert_eq!(cfg.jobs[1].overlap_mode().unwrap(), Overlap::Skip);
    }

    #[test]
    fn duplicate_job_names_are_refused() {
        let text = "[[job]]\nname = \"a\"\nscript = \"a.rhai\"\nschedule = \"@daily\"\n[[job]]\nname = \"a\"\nscript = \"b.rhai\"\nschedule = \"@daily\"\n";
        let cfg = Config::parse(text, Path::new("m.toml")).unwrap();
        let err = cfg.validate(text, Path::new("m.toml")).unwrap_err();
        assert!(
            err.contains("m.toml:6:1") && err.contains("same name"),
            "{err}"
        );
    }
}
