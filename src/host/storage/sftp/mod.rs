//! `sftp://user@host[:port]/path/` targets: "another VPS", a Hetzner Storage Box, any OpenSSH server.
//!
//! Pure-Rust SSH (russh on ring, no openssl) and the SFTP protocol (russh-sftp's raw session, with
//! our own pipelining: up to [`IN_FLIGHT`] reads or writes outstanding, like OpenSSH's `sftp`).
//! One SSH connection per host-function call (retention lists and deletes over the same one).
//!
//! The server is authenticated before anything else: its host key must be in `known_hosts` (the
//! user's, `/etc/ssh/ssh_known_hosts`, or the file given as `known_hosts`) or match the pinned
//! `host_key: "SHA256:..."`. An unknown or changed key is refused with its fingerprint in the
//! message; there is no trust-on-first-use. Then the user: `password`, or `ssh_key` (with
//! `ssh_key_passphrase`), or else the ssh-agent at `SSH_AUTH_SOCK` and the default key files.
//!
//! URL paths are absolute (`sftp://u@h/srv/backups/`); `sftp://u@h/~/backups/` is relative to the
//! login folder (what a chrooted Storage Box shows as `/` anyway).

pub mod conn;
pub mod download;
pub mod glue;
pub mod ops;
mod stream;

use std::path::PathBuf;
use std::time::Duration;

use super::target::ConnOptions;
use crate::error::{HostError, HostResult};

/// SFTP requests outstanding at once on one file (OpenSSH's `sftp -R` default is 64).
pub const IN_FLIGHT: usize = 64;
/// Bytes per read request, and per write request when the server does not announce its limit.
/// 64 KiB halves the per-request overhead of OpenSSH's 32 KiB while keeping `IN_FLIGHT` × this
/// at 4 MiB.
pub const CHUNK: usize = 64 * 1024;
/// Largest write request: OpenSSH's server announces 255 KiB (`limits@openssh.com`). A write
/// that size needs a quarter of the requests, replies and per-packet work of a 64 KiB one, on
/// both ends (docs/benchmarks.md, SFTP).
pub const MAX_WRITE: usize = 255 * 1024;
/// Bytes of write requests outstanding at once, whatever their size (memory stays flat).
pub const WRITE_WINDOW: usize = IN_FLIGHT * CHUNK;

/// Where and as whom: everything needed to open a connection, parsed from the URL and options.
#[derive(Debug, Clone)]
pub struct Remote {
    pub user: String,
    pub host: String,
    pub port: u16,
    pub password: Option<String>,
    pub key_file: Option<PathBuf>,
    pub key_passphrase: Option<String>,
    pub known_hosts: Option<PathBuf>,
    pub host_key: Option<String>,
    pub retries: usize,
    pub retry_timeout: Duration,
    pub request_timeout: Duration,
}

impl Remote {
    /// `host:port` as errors show it.
    pub fn shown(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The server path of a key: `~/x` is relative to the login folder, anything else absolute.
    pub fn path_of(key: &str) -> String {
        match key.strip_prefix("~/") {
            Some(rel) => rel.trim_end_matches('/').to_string(),
            None if key == "~" => ".".to_string(),
            None => format!("/{}", key.trim_end_matches('/')),
        }
    }
}

/// Parse `sftp://user@host[:port]/path` into the connection and the key (the path without its
/// leading '/', ending in '/' when the URL names a folder) and the URL base the key is shown under.
pub fn parse(raw: &str, conn: &ConnOptions) -> HostResult<(Remote, String, String)> {
    let shown = crate::redact::redact(raw);
    let url = url::Url::parse(raw)
        .map_err(|e| HostError::invalid(format!("invalid sftp URL {shown}: {e}")))?;
    if url.password().is_some() {
        return Err(HostError::invalid(format!(
            "invalid sftp URL {shown}: a password in the URL would end up in logs and process lists; pass password: secret(\"NAME\") instead"
        )));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| HostError::invalid(format!("invalid sftp URL {shown}: no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let user = match url.username() {
        "" => std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                HostError::invalid(format!(
                    "invalid sftp URL {shown}: no user (sftp://user@host/path/)"
                ))
            })?,
        u => percent_encoding::percent_decode_str(u)
            .decode_utf8_lossy()
            .into_owned(),
    };
    let port = url.port().unwrap_or(22);
    let path = percent_encoding::percent_decode_str(url.path())
        .decode_utf8_lossy()
        .into_owned();
    if path.split('/').any(|s| s == "..") {
        return Err(HostError::invalid(format!(
            "invalid sftp URL {shown}: '..' is not allowed in the path"
        )));
    }
    let key = path.trim_start_matches('/').to_string();
    let host_part = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let base = if port == 22 {
        format!("sftp://{user}@{host_part}/")
    } else {
        format!("sftp://{user}@{host_part}:{port}/")
    };
    for s in [&conn.password, &conn.ssh_key_passphrase]
        .into_iter()
        .flatten()
    {
        crate::redact::register(s);
    }
    if let Some(pin) = &conn.host_key {
        if !pin.trim().starts_with("SHA256:") {
            return Err(HostError::invalid(format!(
                "host_key {pin:?} is not a SHA256 fingerprint (\"SHA256:...\", as `ssh-keygen -lf KEY.pub` prints it)"
            )));
        }
    }
    let remote = Remote {
        user,
        host,
        port,
        password: conn.password.clone(),
        key_file: conn.ssh_key.as_ref().map(|k| expand_home(k)),
        key_passphrase: conn.ssh_key_passphrase.clone(),
        known_hosts: conn.known_hosts.as_ref().map(|k| expand_home(k)),
        host_key: conn.host_key.as_ref().map(|k| k.trim().to_string()),
        retries: conn.retries.unwrap_or(5),
        retry_timeout: conn.retry_timeout.unwrap_or(Duration::from_secs(120)),
        request_timeout: conn.request_timeout.unwrap_or(Duration::from_secs(60)),
    };
    Ok((remote, key, base))
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let c = ConnOptions::default();
        let (r, key, base) = parse("sftp://bob@127.0.0.1:2222/srv/backups/", &c).unwrap();
        assert_eq!(
            (r.user.as_str(), r.host.as_str(), r.port),
            ("bob", "127.0.0.1", 2222)
        );
        assert_eq!(key, "srv/backups/");
        assert_eq!(base, "sftp://bob@127.0.0.1:2222/");
        assert_eq!(Remote::path_of(&key), "/srv/backups");
        assert_eq!(Remote::path_of("~/b/x.gz"), "b/x.gz");
        let (r, key, base) = parse("sftp://u%40x@[::1]/a%20b", &c).unwrap();
        assert_eq!(
            (r.user.as_str(), r.host.as_str(), r.port),
            ("u@x", "::1", 22)
        );
        assert_eq!(key, "a b");
        assert_eq!(base, "sftp://u@x@[::1]/");
        assert!(parse("sftp://u:pw@h/x", &c).is_err());
        let pinned = ConnOptions {
            host_key: Some("abc".into()),
            ..Default::default()
        };
        assert!(parse("sftp://u@h/x", &pinned).is_err());
    }

    /// A request whose reply can no longer come (the connection dropped) is a retryable network
    /// error said plainly; other unexpected answers are the server's and not retried.
    #[test]
    fn a_dropped_connection_is_retryable() {
        use russh_sftp::client::error::Error as SftpError;
        let e = conn::sftp_err(
            "writing x",
            SftpError::UnexpectedBehavior("sender dropped".into()),
        );
        assert!(e.retryable);
        assert_eq!(e.kind, crate::error::ErrorKind::Network);
        assert_eq!(
            e.message,
            "writing x: the connection to the server was lost"
        );
        let e = conn::sftp_err("writing x", SftpError::UnexpectedBehavior("odd".into()));
        assert!(!e.retryable);
    }
}
