//! Running restic: the binary, the repository, the password (in the child's environment only,
//! never on its command line or in a log line), and restic's failures turned into errors that say
//! what went wrong where.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;

use crate::ctx::RunCtx;
use crate::error::{ErrorKind, HostError, HostResult};
use crate::host::db::tools;

/// Options every restic function takes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepoOptions {
    /// The repository password (use secret()); without it restic's own RESTIC_PASSWORD,
    /// RESTIC_PASSWORD_FILE or RESTIC_PASSWORD_COMMAND from mtn's environment.
    pub password: Option<String>,
    /// Only snapshots of this host (restic's `--host`; backups are recorded under it).
    pub host: Option<String>,
    /// sftp: repositories: the private key file ssh logs in with.
    pub ssh_key: Option<String>,
    /// sftp: repositories: the known_hosts file the server's key must be in.
    pub known_hosts: Option<String>,
}

pub const REPO_KEYS: &[&str] = &["password", "host", "ssh_key", "known_hosts"];

/// Backends restic spells as `NAME:...`; anything else is a local path.
const REMOTE_SCHEMES: &[&str] = &[
    "sftp:", "s3:", "rest:", "b2:", "azure:", "gs:", "swift:", "rclone:",
];

pub struct Restic {
    bin: PathBuf,
    /// As restic is given it (a local path resolved inside the allowed roots).
    pub repo: String,
    password: Option<String>,
    /// When the repository is a local folder.
    pub local: Option<PathBuf>,
    /// Global flags before every command (`-o sftp.command=...`).
    global: Vec<String>,
}

impl Restic {
    /// Find restic, check the repository location against the policy, register the password.
    pub fn open(ctx: &RunCtx, repo: &str, o: &RepoOptions) -> HostResult<Restic> {
        let bin = tools::find_tool(&["restic"], "restic")?;
        if repo.trim().is_empty() {
            return Err(HostError::invalid("empty restic repository"));
        }
        let (repo, local) = if REMOTE_SCHEMES.iter().any(|s| repo.starts_with(s)) {
            crate::redact::register_url(repo.split_once(':').map_or(repo, |(_, r)| r));
            if let Some(h) = remote_host(repo) {
                ctx.policy.check_host(&h)?;
            }
            (repo.to_string(), None)
        } else {
            // restic creates and deletes files in it: a write target like any other.
            let p = ctx.policy.check_write(Path::new(repo))?;
            (p.display().to_string(), Some(p))
        };
        let password = o.password.clone().filter(|p| !p.is_empty());
        if let Some(p) = &password {
            crate::redact::register(p);
        } else if [
            "RESTIC_PASSWORD",
            "RESTIC_PASSWORD_FILE",
            "RESTIC_PASSWORD_COMMAND",
        ]
        .iter()
        .all(|v| std::env::var_os(v).is_none())
        {
            return Err(HostError::invalid(format!(
                "no password for the restic repository {repo}: pass `password: secret(\"RESTIC_PASSWORD\")` (or set RESTIC_PASSWORD_FILE for restic)"
            )));
        }
        if let Ok(p) = std::env::var("RESTIC_PASSWORD") {
            crate::redact::register(&p);
        }
        let mut global = Vec::new();
        if o.ssh_key.is_some() || o.known_hosts.is_some() {
            if !repo.starts_with("sftp:") {
                return Err(HostError::invalid(format!(
                    "ssh_key and known_hosts apply to sftp: repositories only, not {}",
                    crate::redact::redact(&repo)
                )));
            }
            global.push("-o".to_string());
            global.push(format!("sftp.command={}", sftp_command(&repo, o)?));
        }
        Ok(Restic {
            bin,
            repo,
            password,
            global,
            local,
        })
    }

    /// Run `restic ARGS` to completion; stdout on success, a classified error otherwise.
    /// `ok_codes` are exit codes that still mean success (backup's 3: some files unreadable).
    pub async fn run(&self, args: &[String], ok_codes: &[i32]) -> HostResult<Output> {
        let mut cmd = tools::command(&self.bin);
        cmd.args(&self.global)
            .args(args)
            .stdout(Stdio::piped())
            // The repository goes by environment too: a rest: URL may carry a password.
            .env("RESTIC_REPOSITORY", &self.repo)
            .env_remove("RESTIC_REPOSITORY_FILE")
            .env("RESTIC_PROGRESS_FPS", "0.016");
        if let Some(p) = &self.password {
            cmd.env("RESTIC_PASSWORD", p)
                .env_remove("RESTIC_PASSWORD_FILE")
                .env_remove("RESTIC_PASSWORD_COMMAND");
        }
        let out = cmd
            .output()
            .await
            .map_err(|e| HostError::io(format!("starting {}", self.bin.display()), &e))?;
        let stderr = crate::redact::redact(String::from_utf8_lossy(&out.stderr).trim());
        let code = out.status.code().unwrap_or(-1);
        if out.status.success() || ok_codes.contains(&code) {
            return Ok(Output {
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr,
                code,
            });
        }
        let what = args.first().map(String::as_str).unwrap_or("");
        Err(self.classify(what, code, &stderr))
    }

    fn classify(&self, what: &str, code: i32, stderr: &str) -> HostError {
        let tail: String = {
            let lines: Vec<&str> = stderr.lines().rev().take(8).collect();
            lines.into_iter().rev().collect::<Vec<_>>().join("\n")
        };
        let repo = crate::redact::redact(&self.repo);
        let (kind, hint) = if stderr.contains("wrong password") {
            (
                ErrorKind::PermissionDenied,
                " (the password is wrong for this repository)",
            )
        } else if stderr.contains("Is there a repository at the following location?")
            || stderr.contains("unable to open config file")
        {
            (
                ErrorKind::NotFound,
                " (no restic repository there: create it with `restic init`, or pass init: true)",
            )
        } else if stderr.contains("Host key verification failed") {
            (
                ErrorKind::Refused,
                " (the server's host key is not in known_hosts, or differs from it: check it with the server's admin, then add it with ssh-keyscan)",
            )
        } else if stderr.contains("Permission denied (publickey") {
            (ErrorKind::PermissionDenied, " (ssh refused the login)")
        } else if stderr.contains("unable to start the sftp session") {
            // restic forwards ssh's own message from a goroutine and may exit before it does,
            // so the reason is not always in stderr.
            (
                ErrorKind::Network,
                " (ssh did not start an sftp session: the host key is unknown or changed (known_hosts), the key was refused, or the server is unreachable; the same ssh command by hand says which)",
            )
        } else if stderr.contains("repository is already locked") {
            (
                ErrorKind::Refused,
                " (another restic process holds the lock; a stale lock is removed with `restic unlock`)",
            )
        } else if stderr.contains("connection refused")
            || stderr.contains("no route to host")
            || stderr.contains("timeout")
        {
            (ErrorKind::Network, "")
        } else {
            (ErrorKind::Other, "")
        };
        HostError::new(
            kind,
            format!("restic {what} on {repo} failed (exit {code}){hint}: {tail}"),
        )
    }
}

pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// The ssh command restic runs for an `sftp:` repository with an explicit key or known_hosts
/// (restic splits it on spaces, so paths with spaces or quotes are refused rather than mangled).
fn sftp_command(repo: &str, o: &RepoOptions) -> HostResult<String> {
    let ssh = tools::find_tool(&["ssh"], "openssh-client")?;
    let (user, host, port) = sftp_parts(repo).ok_or_else(|| {
        HostError::invalid(format!(
            "cannot read user and host from {}: use sftp:user@host:/path or sftp://user@host:port//path",
            crate::redact::redact(repo)
        ))
    })?;
    let mut parts: Vec<String> = vec![
        ssh.display().to_string(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
    ];
    if let Some(k) = &o.ssh_key {
        parts.extend([
            "-i".into(),
            k.clone(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
        ]);
    }
    if let Some(kh) = &o.known_hosts {
        parts.extend(["-o".into(), format!("UserKnownHostsFile={kh}")]);
    }
    if let Some(p) = port {
        parts.extend(["-p".into(), p.to_string()]);
    }
    parts.push(match user {
        Some(u) => format!("{u}@{host}"),
        None => host,
    });
    parts.extend(["-s".into(), "sftp".into()]);
    if let Some(bad) = parts
        .iter()
        .find(|p| p.is_empty() || p.contains(|c: char| c.is_whitespace() || "'\"\\".contains(c)))
    {
        return Err(HostError::invalid(format!(
            "{bad:?} cannot be passed to restic's ssh command (spaces and quotes are not supported there)"
        )));
    }
    Ok(parts.join(" "))
}

/// (user, host, port) of `sftp:user@host:/path` or `sftp://user@host:port//path`.
fn sftp_parts(repo: &str) -> Option<(Option<String>, String, Option<u16>)> {
    let rest = repo.strip_prefix("sftp:")?;
    if rest.starts_with("//") {
        let u = url::Url::parse(&format!("sftp:{rest}")).ok()?;
        let user = Some(u.username().to_string()).filter(|s| !s.is_empty());
        return Some((user, u.host_str()?.to_string(), u.port()));
    }
    let hostpart = rest.split(':').next()?;
    match hostpart.rsplit_once('@') {
        Some((u, h)) => Some((Some(u.to_string()), h.to_string(), None)),
        None => Some((None, hostpart.to_string(), None)),
    }
}

/// The host a remote repository talks to, for the policy's allow_hosts:
/// `sftp:user@host:/path`, `sftp://user@host:port//path`, `s3:https://host/bucket`, `rest:http://...`.
fn remote_host(repo: &str) -> Option<String> {
    let (scheme, rest) = repo.split_once(':')?;
    let with_url = |r: &str| {
        url::Url::parse(r)
            .ok()
            .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
    };
    match scheme {
        "sftp" if rest.starts_with("//") => with_url(&format!("sftp:{rest}")),
        "sftp" => {
            let hostpart = rest.split(':').next()?;
            Some(hostpart.rsplit('@').next()?.to_string())
        }
        "s3" | "rest" | "swift" if rest.starts_with("http") => with_url(rest),
        "s3" => Some(rest.split('/').next()?.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_hosts() {
        assert_eq!(
            remote_host("sftp:backup@box.example:/srv/restic").as_deref(),
            Some("box.example")
        );
        assert_eq!(
            remote_host("sftp://u@127.0.0.1:2222//srv/r").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            remote_host("s3:https://s3.amazonaws.com/bucket/r").as_deref(),
            Some("s3.amazonaws.com")
        );
        assert_eq!(
            remote_host("s3:s3.eu-central-1.amazonaws.com/b").as_deref(),
            Some("s3.eu-central-1.amazonaws.com")
        );
        assert_eq!(
            remote_host("rest:https://u:p@h.example:8000/").as_deref(),
            Some("h.example")
        );
        assert_eq!(remote_host("b2:bucket:path"), None);
        assert_eq!(
            sftp_parts("sftp://u@127.0.0.1:2222//srv/r"),
            Some((Some("u".into()), "127.0.0.1".into(), Some(2222)))
        );
        assert_eq!(
            sftp_parts("sftp:box.example:/srv/r"),
            Some((None, "box.example".into(), None))
        );
    }
}
