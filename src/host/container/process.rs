//! A program running inside a container through the engine's exec API, shaped like a local
//! child process: stdout/stderr streams, stdin, an exit code, and a guard that kills it.
//!
//! The engine has no "kill this exec" call, and closing the attached connection does not stop
//! the program. So the guard kills the exec's process by the host PID the engine reports
//! (`ExecInspect.Pid`), which works when mtn runs on the engine's machine in its PID namespace
//! (the usual root + local socket set-up); against a remote engine the program is left to end
//! by itself, and mtn says so in the log.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::Docker;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::api::{self, api_error};
use crate::error::{HostError, HostResult};

pub type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
pub type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// What to run: the container, the argument vector (no shell), extra environment.
pub struct Spec<'a> {
    pub container: &'a str,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub stdin: bool,
}

/// Kills the exec'd process unless disarmed: covers timeout, cancellation (the future holding
/// it is dropped) and errors.
pub struct KillGuard {
    pid: Option<i32>,
}

impl KillGuard {
    pub fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            // SAFETY: plain syscalls on the PID the engine reported for our own exec; the guard
            // is disarmed as soon as the engine says the exec ended, so the PID is not reused.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            tracing::debug!(target: "mtn::host", "killed the exec'd process {pid}");
        }
    }

    pub fn disarm(&mut self) {
        self.pid = None;
    }
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Running {
    pub docker: Docker,
    pub exec_id: String,
    pub output: Output,
    pub input: Input,
    pub guard: KillGuard,
    pub what: String,
}

/// Start `spec` in its (running) container.
pub async fn start(spec: Spec<'_>) -> HostResult<Running> {
    let docker = api::client().await?;
    api::inspect_running(&docker, spec.container).await?;
    let what = format!("{} in container {}", spec.cmd.join(" "), spec.container);
    let what = crate::redact::redact(&what);
    let created = docker
        .create_exec(
            spec.container,
            CreateExecOptions {
                attach_stdin: Some(spec.stdin),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(false),
                env: Some(spec.env),
                cmd: Some(spec.cmd),
                user: spec.user,
                working_dir: spec.workdir,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| api_error(e, &format!("creating exec of {what}")))?;
    let started = docker
        .start_exec(&created.id, None)
        .await
        .map_err(|e| api_error(e, &format!("starting {what}")))?;
    let StartExecResults::Attached { output, input } = started else {
        return Err(HostError::server(format!(
            "the engine started {what} detached"
        )));
    };
    let mut running = Running {
        docker,
        exec_id: created.id,
        output,
        input,
        guard: KillGuard { pid: None },
        what,
    };
    running.guard.pid = running.host_pid().await;
    if running.guard.pid.is_none() && !api::engine_address().starts_with("unix://") {
        tracing::info!(target: "mtn::host", "the Docker engine is remote: a timeout or cancellation cannot kill {}", running.what);
    }
    Ok(running)
}

impl Running {
    /// The exec's PID on the host, when the engine is local (a remote engine's PIDs mean
    /// nothing here).
    async fn host_pid(&self) -> Option<i32> {
        if !api::engine_address().starts_with("unix://") {
            return None;
        }
        // Up to 3 s: on a busy machine the engine can take longer than half a second to report
        // it, and without it a cancelled dump's tool would be left running (seen in the tests).
        for _ in 0..300 {
            let info = self.docker.inspect_exec(&self.exec_id).await.ok()?;
            match info.pid {
                Some(p) if p > 0 => return i32::try_from(p).ok(),
                _ if info.running == Some(false) => return None,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        None
    }

    /// The exit code once the output ended (the engine may take a moment to record it).
    pub async fn exit_code(&mut self) -> HostResult<i64> {
        for _ in 0..200 {
            let info = self
                .docker
                .inspect_exec(&self.exec_id)
                .await
                .map_err(|e| api_error(e, &format!("inspecting {}", self.what)))?;
            if info.running != Some(true) {
                self.guard.disarm();
                return Ok(info.exit_code.unwrap_or(-1));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(HostError::server(format!(
            "{} closed its output but the engine still reports it running",
            self.what
        )))
    }

    /// Hand stdout to a blocking reader (the dump writer thread) through a pipe; stderr is
    /// kept (the last 16 KiB) and returned by the task when the output ends.
    pub fn stdout_file(
        &mut self,
    ) -> HostResult<(File, tokio::task::JoinHandle<HostResult<String>>)> {
        let (mut tx, rx) = tokio::net::unix::pipe::pipe()
            .map_err(|e| HostError::io("creating a pipe for the container's output", &e))?;
        let fd: OwnedFd = rx
            .into_blocking_fd()
            .map_err(|e| HostError::io("creating a pipe for the container's output", &e))?;
        let mut output = std::mem::replace(&mut self.output, Box::pin(futures::stream::empty()));
        let what = self.what.clone();
        let task = tokio::spawn(async move {
            let mut err = Vec::new();
            while let Some(frame) = output.next().await {
                match frame.map_err(|e| api_error(e, &format!("reading the output of {what}")))? {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        // The reader went away (it failed or was cancelled): stop reading.
                        if tx.write_all(&message).await.is_err() {
                            break;
                        }
                    }
                    LogOutput::StdErr { message } => {
                        err.extend_from_slice(&message);
                        if err.len() > 32 * 1024 {
                            err.drain(..err.len() - 16 * 1024);
                        }
                    }
                    LogOutput::StdIn { .. } => {}
                }
            }
            drop(tx);
            Ok(crate::redact::redact(String::from_utf8_lossy(&err).trim()))
        });
        Ok((File::from(fd), task))
    }

    /// Take stdin as a blocking writer (the restore feeder thread) through a pipe; a task copies
    /// it to the exec and closes the exec's input at the end, so the program sees end of file.
    pub fn stdin_file(&mut self) -> HostResult<(File, tokio::task::JoinHandle<()>)> {
        let (tx, mut rx) = tokio::net::unix::pipe::pipe()
            .map_err(|e| HostError::io("creating a pipe for the container's input", &e))?;
        let fd: OwnedFd = tx
            .into_blocking_fd()
            .map_err(|e| HostError::io("creating a pipe for the container's input", &e))?;
        let mut input: Input = std::mem::replace(&mut self.input, Box::pin(tokio::io::sink()));
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match rx.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if input.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = input.shutdown().await;
        });
        Ok((File::from(fd), task))
    }

    /// Collect stderr (and stdout, capped) until the output ends: for tools whose stdout is
    /// not data (psql -q, pg_restore).
    pub async fn collect(&mut self, max: usize) -> HostResult<(Vec<u8>, Vec<u8>, bool)> {
        let (mut out, mut err, mut cut) = (Vec::new(), Vec::new(), false);
        while let Some(frame) = self.output.next().await {
            let frame =
                frame.map_err(|e| api_error(e, &format!("reading the output of {}", self.what)))?;
            let (buf, msg) = match frame {
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    (&mut out, message)
                }
                LogOutput::StdErr { message } => (&mut err, message),
                LogOutput::StdIn { .. } => continue,
            };
            let room = max.saturating_sub(buf.len());
            if msg.len() > room {
                cut = true;
            }
            buf.extend_from_slice(&msg[..msg.len().min(room)]);
        }
        Ok((out, err, cut))
    }
}

/// Aborts a spawned task when dropped (a cancelled run must not leave pumps running).
pub struct AbortOnDrop<T>(Option<tokio::task::JoinHandle<T>>);

impl<T> AbortOnDrop<T> {
    pub fn new(h: tokio::task::JoinHandle<T>) -> Self {
        AbortOnDrop(Some(h))
    }

    /// Wait for the task to end by itself.
    pub async fn join(mut self, what: &str) -> HostResult<T> {
        match self.0.take() {
            Some(h) => h
                .await
                .map_err(|e| HostError::other(format!("{what} failed: {e}"))),
            None => Err(HostError::other(format!("{what}: already joined"))),
        }
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            h.abort();
        }
    }
}
