//! `[fleet]` in mtn.toml and each job's `fleet = "once" | "each"`, checked like every other key
//! (file:line:col, every problem at once).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{job_problem, line_col, Config, JobConfig, Overlap};

/// `[fleet]`: the hosts that share this lock database run each `once` job once per slot.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// `postgres://...` URL or libpq keyword string of the lock database. A password missing
    /// from it is found the way every database function finds one (docs/databases.md).
    pub lock: String,
    /// File holding the lock database's password, relative to the config file.
    pub password_file: Option<PathBuf>,
    /// This host's name in claims and the shared history (default: the host name).
    pub host_id: Option<String>,
    /// How often the daemon looks for runs whose host died (default 30s).
    pub check_every: Option<String>,
}

/// Whether a job runs on one host per slot or on every host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetMode {
    Once,
    Each,
}

impl FleetConfig {
    /// This host's id: `host_id`, else the host name.
    pub fn host(&self) -> String {
        self.host_id
            .clone()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(crate::host::core::hostname)
    }

    pub fn check_every(&self) -> std::time::Duration {
        self.check_every
            .as_deref()
            .and_then(|d| crate::units::parse_duration(d).ok())
            .unwrap_or(std::time::Duration::from_secs(30))
    }
}

/// A job's mode: none without `[fleet]`; with it, `once` unless the job says `each`.
pub fn mode(fleet: Option<&FleetConfig>, job: &JobConfig) -> Option<FleetMode> {
    fleet?;
    match job.fleet.as_deref() {
        Some("each") => Some(FleetMode::Each),
        _ => Some(FleetMode::Once),
    }
}

/// Every problem of `[fleet]` and of the jobs' `fleet` keys.
pub fn problems(cfg: &Config, text: &str, path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(f) = &cfg.fleet {
        let fail = |key: &str, what: String| {
            let (l, c) = table_key_location(text, "fleet", key);
            format!("invalid config {}:{l}:{c}: [fleet] {what}", path.display())
        };
        if f.lock.trim().is_empty() {
            out.push(fail(
                "",
                "`lock` is missing: the PostgreSQL database that decides which host runs a slot (lock = \"postgres://mtn@db.internal/mtn\")".into(),
            ));
        } else if let Err(e) = check_lock_url(&f.lock) {
            out.push(fail("lock", format!("`lock`: {e}")));
        }
        if let Some(h) = &f.host_id {
            if h.trim().is_empty() || h.len() > 200 || h.chars().any(|c| c.is_control()) {
                out.push(fail(
                    "host_id",
                    "`host_id` must be 1 to 200 printable characters".into(),
                ));
            }
        }
        if let Some(Err(e)) = f.check_every.as_deref().map(crate::units::parse_duration) {
            out.push(fail("check_every", format!("`check_every`: {}", e.message)));
        }
    }
    for (i, job) in cfg.jobs.iter().enumerate() {
        let fail = |key: &str, what: String| job_problem(text, path, i, &job.name, key, &what);
        match job.fleet.as_deref() {
            None => {}
            Some("once" | "each") if cfg.fleet.is_none() => out.push(fail(
                "fleet",
                "`fleet` needs a [fleet] table with the `lock` database".into(),
            )),
            Some("once" | "each") => {}
            Some(other) => out.push(fail(
                "fleet",
                format!("`fleet` {other:?}: expected \"once\" (one host per slot) or \"each\" (every host)"),
            )),
        }
        if mode(cfg.fleet.as_ref(), job) == Some(FleetMode::Once) {
            if let Ok(o @ (Overlap::Queue | Overlap::Replace)) = job.overlap_mode() {
                out.push(fail(
                    "overlap",
                    format!(
                        "`overlap` {:?} cannot apply across hosts (a slot whose previous run is still going on any host is skipped); remove it or set fleet = \"each\"",
                        format!("{o:?}").to_lowercase()
                    ),
                ));
            }
        }
    }
    out
}

/// The lock URL must name a PostgreSQL server; checked without connecting.
pub fn check_lock_url(raw: &str) -> Result<(), String> {
    let normalized = match crate::host::db::url::libpq_keywords(raw) {
        Some(r) => r.map_err(|e| e.message)?,
        None => raw.to_string(),
    };
    match crate::host::db::url::Engine::of(&normalized) {
        Ok(crate::host::db::url::Engine::Postgres) => {}
        Ok(e) => {
            return Err(format!(
                "the lock database must be PostgreSQL (advisory locks), not {}",
                e.name()
            ))
        }
        Err(e) => return Err(e.message),
    }
    crate::host::db::url::ServerUrl::parse(&normalized)
        .map(|_| ())
        .map_err(|e| e.message)
}

/// `(line, col)` of `key = ...` inside `[table]`, else of the table's header.
fn table_key_location(text: &str, table: &str, key: &str) -> (usize, usize) {
    let header = format!("[{table}]");
    let mut offset = 0;
    let mut found = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let at = offset + (line.len() - trimmed.len());
        offset += line.len();
        if trimmed.starts_with('[') {
            if found.is_some() {
                break;
            }
            if trimmed.starts_with(&header) {
                found = Some(at);
            }
            continue;
        }
        if found.is_some()
            && !key.is_empty()
            && trimmed
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        {
            return line_col(text, at);
        }
    }
    found.map(|h| line_col(text, h)).unwrap_or((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Vec<String> {
        let cfg = Config::parse(text, Path::new("m.toml")).unwrap();
        cfg.problems(text, Path::new("m.toml"))
    }

    #[test]
    fn fleet_keys_are_checked_with_their_location() {
        let job = "[[job]]\nname = \"a\"\nscript = \"a.rhai\"\nschedule = \"@daily\"\n";
        assert!(check(&format!("[fleet]\nlock = \"postgres://u@h/db\"\n{job}")).is_empty());
        let p = check(&format!("[fleet]\nlock = \"mysql://u@h/db\"\n{job}"));
        assert!(
            p[0].contains("m.toml:2:1") && p[0].contains("must be PostgreSQL"),
            "{p:?}"
        );
        let p = check(&format!(
            "[fleet]\nhost_id = \"x\"\ncheck_every = \"soon\"\n{job}"
        ));
        assert!(
            p[0].contains("m.toml:1:1") && p[0].contains("`lock` is missing"),
            "{p:?}"
        );
        assert!(
            p[1].contains("m.toml:3:1") && p[1].contains("check_every"),
            "{p:?}"
        );
        let p = check(&format!("{job}fleet = \"twice\"\n"));
        assert!(
            p[0].contains("m.toml:5:1") && p[0].contains("expected \"once\""),
            "{p:?}"
        );
        let p = check(&format!("{job}fleet = \"once\"\n"));
        assert!(p[0].contains("needs a [fleet] table"), "{p:?}");
        let p = check(&format!(
            "[fleet]\nlock = \"host=db dbname=mtn\"\n{job}overlap = \"queue\"\n"
        ));
        assert!(
            p[0].contains("m.toml:7:1") && p[0].contains("across hosts"),
            "{p:?}"
        );
        let p = check(&format!(
            "[fleet]\nlock = \"postgres://h/db\"\n{job}overlap = \"queue\"\nfleet = \"each\"\n"
        ));
        assert!(p.is_empty(), "{p:?}");
        let e = Config::parse("[fleet]\nlok = \"x\"\n", Path::new("m.toml")).unwrap_err();
        assert!(
            e.contains("m.toml:2:1") && e.contains("did you mean `lock`"),
            "{e}"
        );
    }
}
