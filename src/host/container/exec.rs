//! `container_exec(name, program, args, opts)`: `docker exec` without a shell, allow-listed like
//! `exec` (the policy names container and program: `--allow-exec website:python`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::process::{self, Spec};
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::binding::serde_duration;
use crate::host::exec::{timed_out, Ended, ExecReport, DEFAULT_MAX_OUTPUT, DEFAULT_TIMEOUT};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ContainerExecOptions {
    /// Kill the program after this long (default 10m).
    #[serde(with = "serde_duration::option")]
    pub timeout: Option<Duration>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Run as this user (name or uid[:gid]) instead of the container's.
    pub user: Option<String>,
    /// Working directory inside the container.
    pub cwd: Option<String>,
    /// Text written to the program's standard input.
    pub stdin: Option<String>,
    /// Make a non-zero exit an error (kind `failed`).
    pub check: bool,
    /// Bytes of stdout and of stderr kept (default 1 MiB each).
    pub max_output: Option<usize>,
    /// The program changes nothing: run it in a dry run too.
    pub readonly: bool,
}

pub async fn container_exec(
    ctx: &RunCtx,
    container: &str,
    program: &str,
    args: Vec<String>,
    o: ContainerExecOptions,
) -> HostResult<ExecReport> {
    if program.trim().is_empty() {
        return Err(HostError::invalid("empty program name"));
    }
    super::api::check_name(container)?;
    ctx.policy.check_container_exec(container, program)?;
    let shown = crate::redact::redact(&format!("{program} {}", args.join(" ")));
    if ctx.dry_run && !o.readonly {
        tracing::info!(target: "mtn::host", "dry run: would run {shown} in container {container}");
        return Ok(ExecReport::dry_run());
    }
    let what = format!("`{shown}` in container {container}");
    let mut cmd = vec![program.to_string()];
    cmd.extend(args);
    let started = Instant::now();
    let mut running = process::start(Spec {
        container,
        cmd,
        env: o.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        user: o.user.clone(),
        workdir: o.cwd.clone(),
        stdin: o.stdin.is_some(),
    })
    .await?;
    let max = o.max_output.unwrap_or(DEFAULT_MAX_OUTPUT);
    let timeout = o.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let input = o.stdin.clone();
    let waited = tokio::time::timeout(timeout, async {
        if let Some(text) = input {
            // A program that exits without reading its input is not an error.
            let _ = running.input.write_all(text.as_bytes()).await;
            let _ = running.input.shutdown().await;
        }
        let collected = running.collect(max).await?;
        let code = running.exit_code().await?;
        Ok::<_, HostError>((collected, code))
    })
    .await;
    let ((stdout, stderr, truncated), code) = match waited {
        Ok(r) => r?,
        Err(_) => {
            running.guard.kill();
            return Err(timed_out(&what, timeout));
        }
    };
    let code = i32::try_from(code).unwrap_or(-1);
    let ended = Ended {
        code: Some(code),
        signal: None,
        stdout,
        stderr,
        truncated,
    };
    ExecReport::of(ended, started, o.check, &what)
}
