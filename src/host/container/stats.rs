//! `container_stats(name)`: one sample of `docker stats --no-stream`, computed as the docker CLI
//! computes it (CPU % from the delta against the engine's previous sample, memory without the
//! page cache).

use bollard::models::{ContainerCpuStats, ContainerStatsResponse};
use bollard::query_parameters::StatsOptionsBuilder;
use futures::StreamExt;
use serde::Serialize;

use super::api::{self, api_error};
use crate::error::{HostError, HostResult};

#[derive(Debug, Serialize)]
pub struct ContainerStats {
    pub name: String,
    /// Percent of one CPU (200.0 = two CPUs busy), as `docker stats` shows it.
    pub cpu_percent: f64,
    pub online_cpus: u32,
    /// Bytes used, without the page cache.
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
    pub memory_percent: f64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
    pub pids: u64,
}

fn cpu_total(c: Option<&ContainerCpuStats>) -> (u64, u64) {
    let Some(c) = c else { return (0, 0) };
    (
        c.cpu_usage
            .as_ref()
            .and_then(|u| u.total_usage)
            .unwrap_or(0),
        c.system_cpu_usage.unwrap_or(0),
    )
}

pub fn compute(name: &str, s: &ContainerStatsResponse) -> ContainerStats {
    let (cpu, sys) = cpu_total(s.cpu_stats.as_ref());
    let (pcpu, psys) = cpu_total(s.precpu_stats.as_ref());
    let online = s
        .cpu_stats
        .as_ref()
        .and_then(|c| {
            c.online_cpus.filter(|n| *n > 0).or_else(|| {
                c.cpu_usage
                    .as_ref()
                    .and_then(|u| u.percpu_usage.as_ref())
                    .map(|p| p.len() as u32)
            })
        })
        .unwrap_or(1)
        .max(1);
    let cpu_delta = cpu.saturating_sub(pcpu) as f64;
    let sys_delta = sys.saturating_sub(psys) as f64;
    let cpu_percent = if cpu_delta > 0.0 && sys_delta > 0.0 {
        cpu_delta / sys_delta * online as f64 * 100.0
    } else {
        0.0
    };
    let mem = s.memory_stats.as_ref();
    let usage = mem.and_then(|m| m.usage).unwrap_or(0);
    // cgroup v1 counts the page cache as `total_inactive_file`/`cache`, v2 as `inactive_file`;
    // the docker CLI subtracts it.
    let cache = mem
        .and_then(|m| m.stats.as_ref())
        .and_then(|st| {
            st.get("total_inactive_file")
                .or_else(|| st.get("inactive_file"))
                .or_else(|| st.get("cache"))
                .copied()
        })
        .unwrap_or(0);
    let used = usage.saturating_sub(cache);
    let limit = mem.and_then(|m| m.limit).unwrap_or(0);
    let (mut rx, mut tx) = (0, 0);
    for n in s.networks.iter().flat_map(|n| n.values()) {
        rx += n.rx_bytes.unwrap_or(0);
        tx += n.tx_bytes.unwrap_or(0);
    }
    let (mut read, mut write) = (0, 0);
    for e in s
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
        .into_iter()
        .flatten()
    {
        match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => read += e.value.unwrap_or(0),
            Some("write") => write += e.value.unwrap_or(0),
            _ => {}
        }
    }
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    ContainerStats {
        name: name.to_string(),
        cpu_percent: round2(cpu_percent),
        online_cpus: online,
        memory_bytes: used,
        memory_limit_bytes: limit,
        memory_percent: if limit > 0 {
            round2(used as f64 / limit as f64 * 100.0)
        } else {
            0.0
        },
        net_rx_bytes: rx,
        net_tx_bytes: tx,
        block_read_bytes: read,
        block_write_bytes: write,
        pids: s.pids_stats.as_ref().and_then(|p| p.current).unwrap_or(0),
    }
}

pub async fn container_stats(name: &str) -> HostResult<ContainerStats> {
    let docker = api::client().await?;
    api::inspect_running(&docker, name).await?;
    // stream=false: the engine takes two samples a second apart, so CPU % has a delta.
    let opts = StatsOptionsBuilder::default().stream(false).build();
    let mut stream = docker.stats(name, Some(opts));
    let sample = stream
        .next()
        .await
        .ok_or_else(|| HostError::server(format!("the engine sent no stats for {name}")))?
        .map_err(|e| api_error(e, &format!("stats of container {name}")))?;
    Ok(compute(name, &sample))
}
