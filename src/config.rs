//! `mtn.toml`: global settings, `[policy]`, `[limits]` and the daemon's `[[job]]` tables.
//! Unknown keys are errors, so a typo in a config is reported instead of silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::ctx::Limits;
use crate::policy::PolicyConfig;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the daemon's HTTP endpoints (/healthz, /metrics, /status).
    pub listen: Option<String>,
    /// History and persisted state, relative to the config file.
    pub state_dir: Option<PathBuf>,
    /// Folder of stdlib modules, relative to the config file.
    pub stdlib: Option<PathBuf>,
    /// How long the daemon waits for running jobs on shutdown before cancelling them (default 30s).
    pub shutdown_grace: Option<String>,
    /// Run history entries kept per job (default 500; older entries are dropped).
    pub history_limit: Option<usize>,
    pub policy: PolicyConfig,
    pub limits: Limits,
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
    /// A notify target (webhook URL or smtp:// URL) told when the job fails.
    pub on_failure: Option<String>,
    pub dry_run: bool,
    pub allow_paths: Vec<PathBuf>,
    pub allow_exec: Vec<String>,
    pub allow_hosts: Vec<String>,
    pub enabled: Option<bool>,
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
                "invalid config {}:{line}:{col}: {}",
                path.display(),
                e.message()
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
        let mut seen = std::collections::HashSet::new();
        for g in [&self.shutdown_grace].into_iter().flatten() {
            crate::host::binding::parse_duration(g).map_err(|e| {
                format!(
                    "invalid config {}: shutdown_grace: {}",
                    path.display(),
                    e.message
                )
            })?;
        }
        for (i, job) in self.jobs.iter().enumerate() {
            let at = job_location(text, i, &job.name);
            let fail = |what: String| {
                format!(
                    "invalid config {}:{at}: job {:?}: {what}",
                    path.display(),
                    job.name
                )
            };
            if job.name.is_empty() {
                return Err(format!(
                    "invalid config {}:{at}: a [[job]] has no `name`",
                    path.display()
                ));
            }
            if !job
                .name
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.".contains(c))
            {
                return Err(fail(
                    "`name` may contain only letters, digits, '-', '_' and '.'".into(),
                ));
            }
            if !seen.insert(job.name.clone()) {
                return Err(fail("another job has the same name".into()));
            }
            if job.script.as_os_str().is_empty() {
                return Err(fail("`script` is missing".into()));
            }
            if job.schedule.trim().is_empty() {
                return Err(fail(
                    "`schedule` is missing (a cron expression like \"0 2 * * *\" or @daily)".into(),
                ));
            }
            job.cron().map_err(fail)?;
            job.tz().map_err(fail)?;
            for (key, v) in [
                ("timeout", &job.timeout),
                ("retry_delay", &job.retry_delay),
                ("jitter", &job.jitter),
            ] {
                if let Some(v) = v {
                    crate::host::binding::parse_duration(v)
                        .map_err(|e| fail(format!("`{key}`: {}", e.message)))?;
                }
            }
            job.overlap_mode().map_err(fail)?;
            if let Some(u) = &job.on_failure {
                match url::Url::parse(u) {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https" | "smtp" | "smtps") => {}
                    Ok(parsed) => {
                        return Err(fail(format!(
                            "`on_failure`: scheme {:?} is not supported here (use an https:// webhook URL or smtp:// / smtps://)",
                            parsed.scheme()
                        )))
                    }
                    Err(e) => return Err(fail(format!("`on_failure`: not a URL: {e}"))),
                }
            }
        }
        Ok(())
    }

    /// The folder relative paths in this config are taken from.
    pub fn base_dir(path: &Path) -> PathBuf {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
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

/// A job's schedule time zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JobTz {
    Local,
    Named(chrono_tz::Tz),
}

impl JobConfig {
    pub fn cron(&self) -> Result<croner::Cron, String> {
        self.schedule
            .parse::<croner::Cron>()
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

/// `line:col` of the i-th `[[job]]` table header, for error messages.
fn job_location(text: &str, index: usize, _name: &str) -> String {
    let mut count = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("[[job]]") {
            if count == index {
                let (l, c) = line_col(text, offset + (line.len() - line.trim_start().len()));
                return format!("{l}:{c}");
            }
            count += 1;
        }
        offset += line.len();
    }
    "0:0".to_string()
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
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
            err.contains("m.toml:5:1") && err.contains("same name"),
            "{err}"
        );
    }
}
