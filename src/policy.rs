//! The safety policy: where mtn may write or delete, which programs `exec` may run, and which
//! hosts a job may reach.
//!
//! Roots come from config `[policy] allow_paths`, `--allow-path`, and `MTN_ALLOW_PATHS`; with
//! none given, the current directory and the system temp directory are the roots, so a script
//! run from a project folder can write `./backups` and nothing else by default.
//! System paths are refused whatever the roots say.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{HostError, HostResult};

/// `[policy]` in mtn.toml.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Folders where files may be written or deleted.
    pub allow_paths: Vec<PathBuf>,
    /// Programs `exec` may run (bare names looked up in PATH, or absolute paths).
    pub allow_exec: Vec<String>,
    /// Hosts network functions may reach; empty means any.
    pub allow_hosts: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Policy {
    roots: Vec<PathBuf>,
    exec: Vec<String>,
    hosts: Vec<String>,
}

/// Trees that are refused as write targets whatever the configured roots say.
const SYSTEM_TREES: &[&str] = &[
    "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/proc",
    "/sys", "/dev",
];

impl Policy {
    /// Build a policy. Relative roots are taken relative to `base` (the config file's folder or
    /// the current directory). Roots that do not exist yet are kept lexically, so a backup folder
    /// can be created by the first run.
    pub fn new(cfg: &PolicyConfig, base: &Path) -> Self {
        let mut roots: Vec<PathBuf> = cfg
            .allow_paths
            .iter()
            .map(|p| normalize(&base.join(p)))
            .map(|p| canonical_prefix(&p))
            .collect();
        if roots.is_empty() {
            if let Ok(cwd) = std::env::current_dir() {
                roots.push(canonical_prefix(&cwd));
            }
            // The temp dir only when it is a sane one: `TMPDIR=/` or `TMPDIR=/etc` must not
            // make the whole system writable.
            let tmp = canonical_prefix(&absolute(&std::env::temp_dir()));
            match system_path_reason(&tmp) {
                None if tmp.components().count() > 1 => roots.push(tmp),
                _ => {
                    tracing::warn!(target: "mtn::policy", "the temp dir {} is not used as a default root: it is a system path", tmp.display())
                }
            }
        }
        Policy {
            roots,
            exec: cfg.allow_exec.clone(),
            hosts: cfg.allow_hosts.clone(),
        }
    }

    /// A policy for tests and `mtn check`: the given roots only.
    pub fn with_roots(roots: Vec<PathBuf>) -> Self {
        Policy {
            roots: roots.iter().map(|p| canonical_prefix(p)).collect(),
            exec: Vec::new(),
            hosts: Vec::new(),
        }
    }

    pub fn add_root(&mut self, root: &Path) {
        let abs = absolute(root);
        self.roots.push(canonical_prefix(&abs));
    }
    pub fn add_exec(&mut self, program: &str) {
        self.exec.push(program.to_string());
    }
    pub fn add_host(&mut self, host: &str) {
        self.hosts.push(host.to_string());
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }
    pub fn exec_allow_list(&self) -> &[String] {
        &self.exec
    }

    /// Narrow this policy with a job's own lists: a path must satisfy both, a program and a
    /// host must be in both lists (an empty job list means "no further narrowing").
    /// A job root outside every global root is an error (it could never be written, and a job
    /// that silently refuses everything is found only when its backup is needed).
    pub fn narrowed(&self, job: &PolicyConfig, base: &Path) -> Result<Policy, String> {
        let mut p = self.clone();
        if !job.allow_paths.is_empty() {
            let job_roots: Vec<PathBuf> = job
                .allow_paths
                .iter()
                .map(|r| canonical_prefix(&normalize(&base.join(r))))
                .collect();
            let outside: Vec<String> = job_roots
                .iter()
                .filter(|jr| !self.roots.iter().any(|gr| jr.starts_with(gr)))
                .map(|jr| jr.display().to_string())
                .collect();
            if !outside.is_empty() {
                let roots: Vec<String> =
                    self.roots.iter().map(|r| r.display().to_string()).collect();
                return Err(format!(
                    "allow_paths {} {} outside the global roots ({}): a job can only narrow [policy] allow_paths, add {} there first",
                    outside.join(", "),
                    if outside.len() == 1 { "is" } else { "are" },
                    roots.join(", "),
                    if outside.len() == 1 { "it" } else { "them" }
                ));
            }
            p.roots = job_roots;
        }
        if !job.allow_exec.is_empty() {
            p.exec = job
                .allow_exec
                .iter()
                .filter(|e| self.exec.is_empty() || self.exec.contains(e))
                .cloned()
                .collect();
        }
        if !job.allow_hosts.is_empty() {
            p.hosts = job
                .allow_hosts
                .iter()
                .filter(|h| self.hosts.is_empty() || self.hosts.contains(h))
                .cloned()
                .collect();
        }
        Ok(p)
    }

    /// Check that `path` may be written, created or deleted. Returns the absolute path with every
    /// existing parent resolved (so a symlinked parent cannot smuggle the write elsewhere).
    pub fn check_write(&self, path: &Path) -> HostResult<PathBuf> {
        let resolved = resolve_for_write(path)?;
        if let Some(reason) = system_path_reason(&resolved) {
            return Err(HostError::refused(format!(
                "refused to modify {}: {reason}",
                resolved.display()
            )));
        }
        if !self.roots.iter().any(|r| resolved.starts_with(r)) {
            let roots: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
            return Err(HostError::refused(format!(
                "refused to modify {}: outside the allowed roots ({}); allow it with --allow-path {} or [policy] allow_paths",
                resolved.display(),
                roots.join(", "),
                resolved.parent().unwrap_or(&resolved).display()
            )));
        }
        Ok(resolved)
    }

    /// Check that `program` may be run by `exec` and say exactly which file that is: a bare name
    /// is looked up in mtn's own PATH now (never in a PATH the script passes to the child), so
    /// the file that runs is the one the allow-list meant.
    pub fn resolve_exec(&self, program: &str) -> HostResult<PathBuf> {
        self.check_exec(program)?;
        if program.contains('/') {
            return Ok(absolute(Path::new(program)));
        }
        find_program(program).ok_or_else(|| {
            HostError::new(
                crate::error::ErrorKind::MissingTool,
                format!(
                    "cannot start `{program}`: not found in mtn's PATH ({})",
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
        })
    }

    /// Check that `program` may be run by `exec`.
    pub fn check_exec(&self, program: &str) -> HostResult<()> {
        let name = Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let allowed = self
            .exec
            .iter()
            .any(|a| a == program || (!a.contains('/') && a == &name && !program.contains('/')));
        if allowed {
            Ok(())
        } else {
            Err(HostError::refused(format!(
                "refused to run `{program}`: not in the exec allow-list ({}); allow it with --allow-exec {program} or [policy] allow_exec",
                if self.exec.is_empty() {
                    "empty".to_string()
                } else {
                    self.exec.join(", ")
                }
            )))
        }
    }

    /// Check that `program` may run inside `container` (`container_exec`): the exec allow-list
    /// names both, `CONTAINER:PROGRAM` (exactly as the script passes the program) or
    /// `CONTAINER:*`. Actions on a container use a name no program has: `CONTAINER:@restart`.
    pub fn check_container_exec(&self, container: &str, program: &str) -> HostResult<()> {
        let exact = format!("{container}:{program}");
        let any = format!("{container}:*");
        if self.exec.iter().any(|a| *a == exact || *a == any) {
            return Ok(());
        }
        let what = if let Some(action) = program.strip_prefix('@') {
            format!("{action} container {container}")
        } else {
            format!("run `{program}` in container {container}")
        };
        Err(HostError::refused(format!(
            "refused to {what}: not in the exec allow-list ({}); allow it with --allow-exec {exact} or [policy] allow_exec",
            if self.exec.is_empty() {
                "empty".to_string()
            } else {
                self.exec.join(", ")
            }
        )))
    }

    /// Check that network functions may reach `host`.
    pub fn check_host(&self, host: &str) -> HostResult<()> {
        if self.hosts.is_empty()
            || self
                .hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host) || host.ends_with(&format!(".{h}")))
        {
            Ok(())
        } else {
            Err(HostError::refused(format!(
                "refused to connect to {host}: not in allow_hosts ({})",
                self.hosts.join(", ")
            )))
        }
    }
}

/// Why a path is always refused, if it is.
pub fn system_path_reason(path: &Path) -> Option<&'static str> {
    if path == Path::new("/") {
        return Some("the root directory is never a valid target");
    }
    for tree in SYSTEM_TREES {
        if path.starts_with(tree) {
            return Some("system paths are always refused");
        }
    }
    // `/lib*`: every library tree a distribution may have (/lib, /lib64, /libx32, /libexec...).
    let mut comps = path.components();
    if let (Some(Component::RootDir), Some(Component::Normal(first))) = (comps.next(), comps.next())
    {
        if first.to_string_lossy().starts_with("lib") {
            return Some("system paths are always refused");
        }
    }
    if path == Path::new("/home") {
        return Some("the folder of every home directory is never a valid target");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let is_home = home.as_deref() == Some(path)
        || path == Path::new("/root")
        || (path.parent() == Some(Path::new("/home")));
    if is_home {
        return Some("a home directory itself is never a valid target");
    }
    None
}

/// Find a program by bare name in mtn's own PATH. Relative and empty PATH entries are skipped
/// (they would resolve against whatever folder mtn was started in), and so is a candidate that
/// another user could have planted or changed (see [`untrusted_reason`]): mtn runs database tools
/// with passwords in their environment, often as root.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        if !dir.is_absolute() {
            continue;
        }
        let candidate = dir.join(name);
        let Ok(md) = std::fs::metadata(&candidate) else {
            continue;
        };
        use std::os::unix::fs::PermissionsExt;
        if !md.is_file() || md.permissions().mode() & 0o111 == 0 {
            continue;
        }
        if let Some(why) = untrusted_reason(&candidate) {
            tracing::warn!(target: "mtn::policy", "skipping {}: {why}", candidate.display());
            continue;
        }
        tracing::debug!(target: "mtn::policy", "{name} is {}", candidate.display());
        return Some(candidate);
    }
    None
}

/// Why a program file should not be run by root-owned mtn: it, or its folder, belongs to
/// another user or can be written by other users (a sticky world-writable folder such as /tmp
/// included: anyone can create a name there).
pub fn untrusted_reason(program: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let real = program.canonicalize().ok()?;
    let check = |p: &Path, what: &str| -> Option<String> {
        let md = std::fs::metadata(p).ok()?;
        if md.uid() != 0 && md.uid() != me {
            return Some(format!(
                "the {what} {} belongs to uid {}",
                p.display(),
                md.uid()
            ));
        }
        if md.mode() & 0o002 != 0 {
            return Some(format!(
                "the {what} {} is writable by every user",
                p.display()
            ));
        }
        None
    };
    check(&real, "program").or_else(|| check(real.parent()?, "folder"))
}

/// Absolute, lexically normalized path (no `.` or `..`), without touching the file system.
pub fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    normalize(&joined)
}

pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Canonicalize the longest existing prefix of `path` and append the rest lexically.
fn canonical_prefix(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// The path a write would really touch: the parent is fully resolved (symlinks included), the
/// final component is kept as is, so deleting a symlink deletes the link and not its target.
pub fn resolve_for_write(path: &Path) -> HostResult<PathBuf> {
    let abs = absolute(path);
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => Ok(canonical_prefix(parent).join(name)),
        _ => Ok(abs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_system_paths_and_outside_roots() {
        let dir = tempfile::tempdir().unwrap();
        let p = Policy::with_roots(vec![dir.path().to_path_buf()]);
        assert!(p.check_write(&dir.path().join("a/b.txt")).is_ok());
        assert!(p.check_write(Path::new("/etc/passwd")).is_err());
        assert!(p.check_write(Path::new("/")).is_err());
        assert!(p.check_write(&dir.path().join("../x")).is_err());
        let root_policy = Policy::with_roots(vec![PathBuf::from("/")]);
        assert!(root_policy.check_write(Path::new("/usr/bin/ls")).is_err());
        assert!(root_policy.check_write(Path::new("/root")).is_err());
    }

    #[test]
    fn symlinked_parent_is_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let p = Policy::with_roots(vec![dir.path().to_path_buf()]);
        assert!(p.check_write(&dir.path().join("link/file")).is_err());
        // The link itself may be removed: it lives inside the root.
        assert!(p.check_write(&dir.path().join("link")).is_ok());
    }

    #[test]
    fn system_trees_home_dirs_and_lib_prefix() {
        let p = Policy::with_roots(vec![PathBuf::from("/")]);
        for bad in [
            "/",
            "/etc",
            "/etc/nginx/x.conf",
            "/usr/local/bin/x",
            "/bin/sh",
            "/sbin",
            "/lib",
            "/lib64/x",
            "/libexec/x",
            "/boot/vmlinuz",
            "/proc/1",
            "/sys/kernel",
            "/dev/null",
            "/root",
            "/home",
            "/home/alice",
        ] {
            let err = p.check_write(Path::new(bad)).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::Refused, "{bad}");
        }
        // Inside a home directory, or a name that only starts like a system tree, is fine.
        for ok in [
            "/home/alice/backups/x",
            "/root/backups",
            "/etcetera/x",
            "/usrdata/x",
            "/var/backups/db.gz",
        ] {
            assert!(p.check_write(Path::new(ok)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn allowed_root_given_through_a_symlink_is_canonical() {
        let real = tempfile::tempdir().unwrap();
        let links = tempfile::tempdir().unwrap();
        let alias = links.path().join("alias");
        std::os::unix::fs::symlink(real.path(), &alias).unwrap();
        let p = Policy::with_roots(vec![alias.clone()]);
        // Writes through the alias and to the real path are the same place: both allowed.
        assert!(p.check_write(&alias.join("f")).is_ok());
        assert!(p.check_write(&real.path().join("f")).is_ok());
        // `..` cannot climb out of the root lexically.
        assert!(p.check_write(&alias.join("../escape")).is_err());
    }

    #[test]
    fn exec_allow_list() {
        let mut p = Policy::with_roots(vec![]);
        assert!(p.check_exec("systemctl").is_err());
        p.add_exec("systemctl");
        assert!(p.check_exec("systemctl").is_ok());
        assert!(p.check_exec("/tmp/systemctl").is_err());
    }

    #[test]
    fn container_exec_allow_list() {
        let mut p = Policy::with_roots(vec![]);
        assert!(p.check_container_exec("website", "python").is_err());
        p.add_exec("website:python");
        p.add_exec("db:*");
        assert!(p.check_container_exec("website", "python").is_ok());
        assert!(p.check_container_exec("website", "sh").is_err());
        assert!(p.check_container_exec("other", "python").is_err());
        assert!(p.check_container_exec("db", "psql").is_ok());
        let e = p.check_container_exec("website", "@restart").unwrap_err();
        assert!(
            e.message.contains("refused to restart container website"),
            "{}",
            e.message
        );
        // A container entry does not allow a host program of that name.
        assert!(p.check_exec("python").is_err());
    }
}
