//! `exec`: run an allow-listed program with an argument array — no shell, so no quoting bugs and
//! no injection through a file name.
//!
//! The child gets its own process group; at its timeout, or when the run is cancelled (the
//! future is dropped), the whole group is killed, so a `sh -c 'sleep 100 &'` leaves nothing
//! behind. Output passes through the redactor before the script sees it.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, ImmutableString};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::ctx::RunCtx;
use crate::error::{ErrorKind, HostError, HostResult};
use crate::host::binding::serde_duration;
use crate::host::registry::Registrar;
use crate::host_fn;

/// Limits of a program run by `exec` or `container_exec` when the script sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
pub const DEFAULT_MAX_OUTPUT: usize = 1024 * 1024;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ExecOptions {
    /// Kill the program (and its children) after this long (default 10m).
    #[serde(with = "serde_duration::option")]
    pub timeout: Option<Duration>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Start from an empty environment (only PATH is kept) plus `env`.
    pub clear_env: bool,
    /// Working directory.
    pub cwd: Option<String>,
    /// Text written to the program's standard input (default: none, stdin is /dev/null).
    pub stdin: Option<String>,
    /// Make a non-zero exit an error (kind `failed`) instead of a result.
    pub check: bool,
    /// Bytes of stdout and of stderr kept (default 1 MiB each); the rest is read and dropped.
    pub max_output: Option<usize>,
    /// The program changes nothing: run it in a dry run too (default false: a dry run skips it).
    pub readonly: bool,
}

#[derive(Debug, Serialize)]
pub struct ExecReport {
    /// Exit code; `()` when killed by a signal.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: f64,
    /// True when output beyond `max_output` was dropped.
    pub truncated: bool,
    pub dry_run: bool,
}

/// How a program ended, as `exec` and `container_exec` report it.
pub struct Ended {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated: bool,
}

impl ExecReport {
    /// The report of a program that ran (`what` names it in errors, e.g. "`tar -c ...`"): its
    /// output redacted; with `check`, a failure is an error with its last line of stderr.
    pub fn of(ended: Ended, started: Instant, check: bool, what: &str) -> HostResult<Self> {
        let report = ExecReport {
            code: ended.code,
            signal: ended.signal,
            ok: ended.code == Some(0),
            stdout: crate::redact::redact(&String::from_utf8_lossy(&ended.stdout)),
            stderr: crate::redact::redact(&String::from_utf8_lossy(&ended.stderr)),
            duration_ms: (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0,
            truncated: ended.truncated,
            dry_run: false,
        };
        if !check || report.ok {
            return Ok(report);
        }
        let last = report.stderr.trim().lines().last().unwrap_or_default();
        Err(HostError::new(
            ErrorKind::Failed,
            format!(
                "{what} exited with {}{}",
                match (report.code, report.signal) {
                    (Some(c), _) => format!("code {c}"),
                    (None, Some(s)) => format!("signal {s}"),
                    _ => "an unknown status".to_string(),
                },
                if last.is_empty() {
                    String::new()
                } else {
                    format!(": {last}")
                }
            ),
        ))
    }

    /// What a program that was not run reports in a dry run (`exec` and `container_exec`).
    pub fn dry_run() -> Self {
        ExecReport {
            code: Some(0),
            signal: None,
            ok: true,
            stdout: String::new(),
            stderr: String::new(),
            duration_ms: 0.0,
            truncated: false,
            dry_run: true,
        }
    }
}

/// The error of a program killed at its timeout (`what` names it); worth a retry.
pub fn timed_out(what: &str, timeout: Duration) -> HostError {
    HostError::new(
        ErrorKind::Failed,
        format!(
            "{what} killed after its timeout of {}",
            humantime::format_duration(timeout)
        ),
    )
    .with_retryable(true)
}

/// Kills the child's process group unless disarmed: covers timeout, cancellation and panics.
struct GroupGuard {
    pgid: Option<i32>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: plain syscall on a process group this run created.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn read_capped<R: AsyncRead + Unpin>(r: Option<R>, max: usize) -> (Vec<u8>, bool) {
    let Some(mut r) = r else {
        return (Vec::new(), false);
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut cut = false;
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = max.saturating_sub(out.len());
                if n > room {
                    cut = true;
                }
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    (out, cut)
}

pub fn arg_string(i: usize, v: &Dynamic) -> HostResult<String> {
    if let Some(s) = v.read_lock::<ImmutableString>() {
        return Ok(s.to_string());
    }
    if v.is_int() || v.is_float() || v.is_bool() || v.is_char() {
        return Ok(v.to_string());
    }
    Err(HostError::invalid(format!(
        "argument {i} is a {}: arguments must be strings or numbers",
        v.type_name()
    )))
}

pub async fn exec(
    ctx: &RunCtx,
    program: &str,
    args: Vec<String>,
    o: ExecOptions,
) -> HostResult<ExecReport> {
    if program.trim().is_empty() {
        return Err(HostError::invalid("empty program name"));
    }
    let resolved = ctx.policy.resolve_exec(program)?;
    let shown = crate::redact::redact(&format!("{program} {}", args.join(" ")));
    if ctx.dry_run && !o.readonly {
        tracing::info!(target: "mtn::host", "dry run: would run {shown}");
        return Ok(ExecReport::dry_run());
    }
    // The resolved file, not the name: a PATH in `env` must not choose a different program.
    let mut cmd = tokio::process::Command::new(&resolved);
    tracing::debug!(target: "mtn::host", "exec: {program} is {}", resolved.display());
    cmd.arg0(program)
        .args(&args)
        .stdin(if o.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if o.clear_env {
        cmd.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
    }
    cmd.envs(&o.env);
    if let Some(cwd) = &o.cwd {
        cmd.current_dir(cwd);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::MissingTool
        } else {
            HostError::io("", &e).kind
        };
        HostError::new(kind, format!("cannot start `{program}`: {e}"))
    })?;
    let mut guard = GroupGuard {
        pgid: child.id().map(|p| p as i32),
    };
    let max = o.max_output.unwrap_or(DEFAULT_MAX_OUTPUT);
    let stdin_pipe = child.stdin.take();
    let input = o.stdin.clone();
    let feed = async move {
        if let (Some(mut pipe), Some(text)) = (stdin_pipe, input) {
            // A program that exits without reading its input is not an error.
            let _ = pipe.write_all(text.as_bytes()).await;
        }
    };
    let out = read_capped(child.stdout.take(), max);
    let err = read_capped(child.stderr.take(), max);
    let timeout = o.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let waited = tokio::time::timeout(timeout, async {
        let (_, out, err, status) = tokio::join!(feed, out, err, child.wait());
        (out, err, status)
    })
    .await;
    let ((stdout, cut_out), (stderr, cut_err), status) = match waited {
        Ok(v) => v,
        Err(_) => {
            guard.kill();
            let _ = child.wait().await;
            return Err(timed_out(&format!("`{shown}`"), timeout));
        }
    };
    // The leader exited: the group may still hold children it left running; end them too.
    guard.kill();
    let status = status.map_err(|e| HostError::io(format!("waiting for `{program}`"), &e))?;
    use std::os::unix::process::ExitStatusExt;
    let ended = Ended {
        code: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
        truncated: cut_out || cut_err,
    };
    ExecReport::of(ended, started, o.check, &format!("`{shown}`"))
}

pub fn register(r: &mut Registrar) {
    r.category("exec");
    let doc = (
        "Run an allow-listed program (no shell): `#{ code, ok, stdout, stderr, duration_ms }`. A non-zero exit is a result; the program must be in the exec allow-list (`--allow-exec NAME` or `[policy] allow_exec`). A dry run skips it unless `readonly: true`.\n\n```rhai\nlet r = exec(\"systemctl\", [\"reload\", \"nginx\"]);\nif !r.ok { warn(r.stderr); }\n```",
        "Run an allow-listed program with options: `timeout` (default \"10m\"; the program and its children are killed), `env` (map), `clear_env`, `cwd`, `stdin` (text), `check` (non-zero exit is an error), `max_output` (bytes kept per stream, default 1 MiB), `readonly` (also run in a dry run).\n\n```rhai\nlet r = exec(\"pg_isready\", [\"-h\", \"127.0.0.1\"], #{ timeout: \"10s\", readonly: true });\n```",
    );
    host_fn!(r, "exec", doc, |ctx, program: &str, args: Array; opts: ExecOptions| -> "Map" {
        let args = args
            .iter()
            .enumerate()
            .map(|(i, a)| arg_string(i, a))
            .collect::<HostResult<Vec<_>>>()?;
        let c2 = ctx.clone();
        ctx.block_on(async move { exec(&c2, program, args, opts).await })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(code: Option<i32>, signal: Option<i32>, stderr: &str) -> Ended {
        Ended {
            code,
            signal,
            stdout: b"out\n".to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            truncated: false,
        }
    }

    #[test]
    fn a_checked_failure_names_the_program_its_status_and_last_stderr_line() {
        let started = Instant::now();
        let e = ExecReport::of(
            ended(Some(3), None, "a\nlast words\n"),
            started,
            true,
            "`x`",
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Failed);
        assert_eq!(e.message, "`x` exited with code 3: last words");
        let e = ExecReport::of(
            ended(None, Some(9), ""),
            started,
            true,
            "`y` in container c",
        )
        .unwrap_err();
        assert_eq!(e.message, "`y` in container c exited with signal 9");
        // Unchecked, a failure is a result; success passes either way.
        let r = ExecReport::of(ended(Some(3), None, "e"), started, false, "`x`").unwrap();
        assert!(!r.ok && r.code == Some(3) && r.stdout == "out\n");
        assert!(ExecReport::of(ended(Some(0), None, ""), started, true, "`x`").is_ok());
        let t = timed_out("`z`", Duration::from_secs(90));
        assert_eq!(t.message, "`z` killed after its timeout of 1m 30s");
    }
}
