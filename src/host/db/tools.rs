//! The database tools mtn drives (pg_dump, psql, mariadb-dump...): finding them, running them
//! with secrets in the environment only, and streaming their pipes from blocking threads.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::error::{ErrorKind, HostError, HostResult};

/// Find the first of `names` in mtn's PATH (trusted entries only, see
/// [`crate::policy::find_program`]), or say which Debian package provides it.
pub fn find_tool(names: &[&str], package: &str) -> HostResult<PathBuf> {
    for name in names {
        if let Some(p) = crate::policy::find_program(name) {
            return Ok(p);
        }
    }
    Err(HostError::new(
        ErrorKind::MissingTool,
        format!(
            "{} not found in PATH: install the Debian package {package} (apt-get install {package})",
            names.join(" / ")
        ),
    ))
}

/// A command that dies with its future (cancellation, timeout) and never inherits our stdin.
pub fn command(program: &Path) -> Command {
    let mut c = Command::new(program);
    c.kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Spawn, naming the program when it cannot start.
pub fn spawn(cmd: &mut Command, program: &Path) -> HostResult<Child> {
    cmd.spawn()
        .map_err(|e| HostError::io(format!("starting {}", program.display()), &e))
}

/// Read a child's stderr to the end in the background (keeping the last 16 KiB), so a chatty
/// tool never blocks on a full pipe.
pub fn drain_stderr(child: &mut Child) -> tokio::task::JoinHandle<String> {
    let stderr = child.stderr.take();
    tokio::spawn(async move {
        let mut out = Vec::new();
        if let Some(mut s) = stderr {
            let mut buf = [0u8; 8192];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        out.extend_from_slice(&buf[..n]);
                        if out.len() > 32 * 1024 {
                            out.drain(..out.len() - 16 * 1024);
                        }
                    }
                }
            }
        }
        crate::redact::redact(String::from_utf8_lossy(&out).trim())
    })
}

/// A child's stdout as a blocking `File` for a reader thread.
pub fn stdout_file(child: &mut Child) -> HostResult<File> {
    let out = child
        .stdout
        .take()
        .ok_or_else(|| HostError::other("child stdout was not piped"))?;
    let fd: OwnedFd = out
        .into_owned_fd()
        .map_err(|e| HostError::io("taking child stdout", &e))?;
    Ok(File::from(fd))
}

/// A child's stdin as a blocking `File` for a writer thread.
pub fn stdin_file(child: &mut Child) -> HostResult<File> {
    let inp = child
        .stdin
        .take()
        .ok_or_else(|| HostError::other("child stdin was not piped"))?;
    let fd: OwnedFd = inp
        .into_owned_fd()
        .map_err(|e| HostError::io("taking child stdin", &e))?;
    Ok(File::from(fd))
}

/// Wait for a tool started with [`spawn`] and [`drain_stderr`]; a non-zero exit becomes the error
/// `on_failure` builds from its stderr.
pub async fn wait(
    mut child: Child,
    stderr: tokio::task::JoinHandle<String>,
    tool: &str,
    on_failure: impl FnOnce(&str) -> HostError,
) -> HostResult<()> {
    let status = child
        .wait()
        .await
        .map_err(|e| HostError::io(format!("waiting for {tool}"), &e))?;
    let err = stderr.await.unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(on_failure(&err))
    }
}

/// [`wait`] after the blocking task that moves data to or from the tool. The tool's failure wins
/// over the task's error: a broken pipe or a short read is only the symptom, stderr says why.
pub async fn wait_with<T>(
    child: Child,
    stderr: tokio::task::JoinHandle<String>,
    task: tokio::task::JoinHandle<HostResult<T>>,
    tool: &str,
    on_failure: impl FnOnce(&str) -> HostError,
) -> HostResult<T> {
    let moved = task
        .await
        .map_err(|e| HostError::other(format!("the thread streaming {tool}'s data failed: {e}")))?;
    wait(child, stderr, tool, on_failure).await?;
    moved
}

/// Run a command to completion, returning stdout; a non-zero exit becomes an error built by
/// `classify` from stderr.
pub async fn run_output(
    mut cmd: Command,
    program: &Path,
    classify: impl Fn(&str) -> HostError,
) -> HostResult<String> {
    cmd.stdout(Stdio::piped());
    let out = cmd
        .output()
        .await
        .map_err(|e| HostError::io(format!("starting {}", program.display()), &e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = crate::redact::redact(String::from_utf8_lossy(&out.stderr).trim());
        Err(classify(&err))
    }
}

/// `major` of a version string like "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)".
pub fn major_version(text: &str) -> Option<u32> {
    text.split_whitespace().find_map(|w| {
        w.split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            .filter(|_| w.contains('.'))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions() {
        assert_eq!(
            super::major_version("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(super::major_version("psql (PostgreSQL) 16.1"), Some(16));
    }
}
