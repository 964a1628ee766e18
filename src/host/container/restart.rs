//! `restart_container(name, opts)`: destructive, so it honours `--dry-run` and needs the policy's
//! word: `--allow-exec NAME:@restart` (or `NAME:*`).

use std::time::{Duration, Instant};

use bollard::query_parameters::RestartContainerOptionsBuilder;
use serde::{Deserialize, Serialize};

use super::api::{self, api_error};
use crate::ctx::RunCtx;
use crate::error::HostResult;
use crate::host::binding::serde_duration;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RestartOptions {
    /// Seconds the engine waits for the container to stop before killing it (default 10s).
    #[serde(with = "serde_duration::option")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Serialize)]
pub struct RestartReport {
    pub container: String,
    pub restarted: bool,
    pub running: bool,
    pub duration_ms: u64,
    pub dry_run: bool,
}

pub async fn restart_container(
    ctx: &RunCtx,
    name: &str,
    o: RestartOptions,
) -> HostResult<RestartReport> {
    api::check_name(name)?;
    ctx.policy.check_container_exec(name, "@restart")?;
    let docker = api::client().await?;
    let before = api::inspect(&docker, name).await?;
    let started = Instant::now();
    if ctx.dry_run {
        tracing::info!(target: "mtn::host", "dry run: would restart container {name}");
        return Ok(RestartReport {
            container: name.to_string(),
            restarted: false,
            running: before.state.and_then(|s| s.running).unwrap_or(false),
            duration_ms: 0,
            dry_run: true,
        });
    }
    let secs = o
        .timeout
        .map(|d| d.as_secs())
        .unwrap_or(10)
        .min(i32::MAX as u64) as i32;
    docker
        .restart_container(
            name,
            Some(RestartContainerOptionsBuilder::default().t(secs).build()),
        )
        .await
        .map_err(|e| api_error(e, &format!("restarting container {name}")))?;
    let after = api::inspect(&docker, name).await?;
    tracing::info!(target: "mtn::host", "restarted container {name}");
    Ok(RestartReport {
        container: name.to_string(),
        restarted: true,
        running: after.state.and_then(|s| s.running).unwrap_or(false),
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: false,
    })
}
