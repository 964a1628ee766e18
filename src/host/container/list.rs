//! `containers()` and `container(name)`: what `docker ps -a` and `docker inspect` tell, as maps
//! with the fields the guides look at (state, health, restart count, image, uptime).

use std::collections::BTreeMap;

use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::ListContainersOptionsBuilder;
use serde::{Deserialize, Serialize};

use super::api::{self, api_error};
use crate::error::HostResult;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ListOptions {
    /// Include stopped containers (default true, like `docker ps -a`).
    pub all: Option<bool>,
    /// Only containers whose name contains this text.
    pub name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ContainerInfo {
    pub name: String,
    pub id: String,
    pub image: String,
    /// created | running | paused | restarting | removing | exited | dead
    pub state: String,
    pub running: bool,
    /// healthy | unhealthy | starting, or `()` when the image has no health check.
    pub health: Option<String>,
    /// Consecutive failed health checks.
    pub failing_streak: Option<i64>,
    /// Output of the last health check (trimmed).
    pub health_output: Option<String>,
    pub restart_count: i64,
    pub restart_policy: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Seconds since start, while running.
    pub uptime_secs: Option<i64>,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// The address mtn reaches the container on (first network with one).
    pub ip: Option<String>,
    /// network name → address
    pub networks: BTreeMap<String, String>,
    /// "5432/tcp" → "127.0.0.1:15432" for published ports.
    pub ports: BTreeMap<String, String>,
    /// The docker-compose service, when the container belongs to one.
    pub compose_service: Option<String>,
    pub labels: BTreeMap<String, String>,
}

pub fn info(c: &ContainerInspectResponse) -> ContainerInfo {
    let state = c.state.as_ref();
    let running = state.and_then(|s| s.running).unwrap_or(false);
    let health = state.and_then(|s| s.health.as_ref());
    let health_status = health
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s != "none");
    let health_output = health
        .and_then(|h| h.log.as_ref())
        .and_then(|l| l.last())
        .and_then(|r| r.output.as_deref())
        .map(|o| crate::redact::redact(o.trim()));
    let labels: BTreeMap<String, String> = c
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut networks = BTreeMap::new();
    let mut ports = BTreeMap::new();
    if let Some(ns) = &c.network_settings {
        for (n, e) in ns.networks.iter().flatten() {
            networks.insert(n.clone(), e.ip_address.clone().unwrap_or_default());
        }
        for (p, binds) in ns.ports.iter().flatten() {
            if let Some(b) = binds.as_ref().and_then(|b| b.first()) {
                ports.insert(
                    p.clone(),
                    format!(
                        "{}:{}",
                        b.host_ip.clone().unwrap_or_default(),
                        b.host_port.clone().unwrap_or_default()
                    ),
                );
            }
        }
    }
    let started_at = state.and_then(|s| s.started_at.clone());
    ContainerInfo {
        name: api::clean_name(c.name.as_deref().unwrap_or_default()),
        id: c.id.clone().unwrap_or_default().chars().take(12).collect(),
        image: c
            .config
            .as_ref()
            .and_then(|c| c.image.clone())
            .unwrap_or_default(),
        state: state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        running,
        health: health_status,
        failing_streak: health.and_then(|h| h.failing_streak),
        health_output,
        restart_count: c.restart_count.unwrap_or(0),
        restart_policy: c
            .host_config
            .as_ref()
            .and_then(|h| h.restart_policy.as_ref())
            .and_then(|p| p.name)
            .map(|n| n.to_string())
            .filter(|n| !n.is_empty()),
        uptime_secs: if running {
            api::seconds_since(started_at.as_deref())
        } else {
            None
        },
        started_at,
        finished_at: state.and_then(|s| s.finished_at.clone()),
        exit_code: state.and_then(|s| s.exit_code),
        oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
        ip: api::address(c),
        networks,
        ports,
        compose_service: labels.get("com.docker.compose.service").cloned(),
        labels,
    }
}

pub async fn containers(o: ListOptions) -> HostResult<Vec<ContainerInfo>> {
    let docker = api::client().await?;
    let opts = ListContainersOptionsBuilder::default()
        .all(o.all.unwrap_or(true))
        .build();
    let list = docker
        .list_containers(Some(opts))
        .await
        .map_err(|e| api_error(e, "listing containers"))?;
    let mut out = Vec::new();
    for c in list {
        let Some(id) = c.id else { continue };
        let name = c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| api::clean_name(n))
            .unwrap_or_default();
        if let Some(filter) = &o.name {
            if !name.contains(filter.as_str()) {
                continue;
            }
        }
        // The list lacks restart counts and health details: inspect each. One that vanished
        // between the two calls is skipped.
        match api::inspect(&docker, &id).await {
            Ok(full) => out.push(info(&full)),
            Err(e) if e.kind == crate::error::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub async fn container(name: &str) -> HostResult<ContainerInfo> {
    let docker = api::client().await?;
    Ok(info(&api::inspect(&docker, name).await?))
}
