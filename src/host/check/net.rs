//! `tcp_check` and `resolve`: is a port open, what does a name resolve to.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};

#[derive(Debug, Serialize)]
pub struct TcpResult {
    pub ok: bool,
    pub latency_ms: f64,
    pub error: Option<String>,
    /// The address that answered.
    pub address: Option<String>,
}

/// Connect to `host:port`; a refused or silent port is a result (`ok: false`), not an error.
pub async fn tcp_check(
    ctx: &RunCtx,
    host: &str,
    port: i64,
    timeout: Duration,
) -> HostResult<TcpResult> {
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| HostError::invalid(format!("invalid port {port}: use 1-65535")))?;
    let host = host.trim().trim_matches(['[', ']']);
    if host.is_empty() {
        return Err(HostError::invalid("empty host name"));
    }
    ctx.policy.check_host(host)?;
    let started = Instant::now();
    let res = tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;
    Ok(match res {
        Ok(Ok(stream)) => TcpResult {
            ok: true,
            latency_ms,
            error: None,
            address: stream.peer_addr().ok().map(|a| a.to_string()),
        },
        Ok(Err(e)) => TcpResult {
            ok: false,
            latency_ms,
            error: Some(format!("{host}:{port}: {e}")),
            address: None,
        },
        Err(_) => TcpResult {
            ok: false,
            latency_ms,
            error: Some(format!(
                "{host}:{port}: no connection within {}",
                humantime::format_duration(timeout)
            )),
            address: None,
        },
    })
}

/// The addresses a host name resolves to (system resolver: /etc/hosts, DNS), deduplicated,
/// IPv4 first. A name that does not resolve is an error of kind `not_found`.
pub async fn resolve(ctx: &RunCtx, host: &str) -> HostResult<Vec<String>> {
    let host = host.trim().trim_matches(['[', ']']);
    if host.is_empty() {
        return Err(HostError::invalid("empty host name"));
    }
    ctx.policy.check_host(host)?;
    let addrs = tokio::time::timeout(Duration::from_secs(30), tokio::net::lookup_host((host, 0)))
        .await
        .map_err(|_| HostError::network(format!("resolving {host}: no answer within 30s")))?
        .map_err(|e| HostError::not_found(format!("resolving {host}: {e}")))?;
    let mut ips: Vec<std::net::IpAddr> = addrs.map(|a| a.ip()).collect();
    ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    ips.dedup();
    Ok(ips.iter().map(|ip| ip.to_string()).collect())
}
