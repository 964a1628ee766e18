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
    /// Seconds the daemon waits for running jobs on shutdown before cancelling them.
    pub shutdown_grace: Option<String>,
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
    /// skip | queue | replace
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

    /// The folder relative paths in this config are taken from.
    pub fn base_dir(path: &Path) -> PathBuf {
        match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    (line, col)
}
