//! `ping`: healthchecks.io-style dead-man's switches.

use std::time::Duration;

use rhai::Dynamic;
use serde::Serialize;

use super::describe;
use super::webhook::register_webhook;
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::http::HttpClients;

/// healthchecks.io convention: `<url>/start`, `<url>` (success), `<url>/fail`, `<url>/<exit code>`.
pub fn ping_url(base: &str, status: &Dynamic) -> HostResult<String> {
    let base = base.trim_end_matches('/');
    if status.is_unit() {
        return Ok(base.to_string());
    }
    if let Ok(code) = status.as_int() {
        if !(0..=255).contains(&code) {
            return Err(HostError::invalid(format!(
                "exit status {code} out of range 0-255"
            )));
        }
        return Ok(format!("{base}/{code}"));
    }
    if let Ok(ok) = status.as_bool() {
        return Ok(if ok {
            base.to_string()
        } else {
            format!("{base}/fail")
        });
    }
    match status.to_string().to_ascii_lowercase().as_str() {
        "success" | "ok" | "" => Ok(base.to_string()),
        "start" => Ok(format!("{base}/start")),
        "fail" | "failure" | "error" => Ok(format!("{base}/fail")),
        "log" => Ok(format!("{base}/log")),
        other => Err(HostError::invalid(format!(
            "unknown status {other:?}: use \"start\", \"success\", \"fail\", \"log\", true/false or an exit code"
        ))),
    }
}

#[derive(Debug, Serialize)]
pub struct PingReport {
    pub ok: bool,
    pub url: String,
    pub status: Option<u16>,
    pub attempts: u32,
    pub dry_run: bool,
}

pub async fn ping(
    ctx: &RunCtx,
    clients: &HttpClients,
    base: &str,
    status: Dynamic,
    body: Option<String>,
) -> HostResult<PingReport> {
    let full = ping_url(base, &status)?;
    let url = url::Url::parse(&full).map_err(|e| {
        HostError::invalid(format!(
            "invalid URL {:?}: {e}",
            crate::redact::register_url(base)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HostError::invalid("use an http:// or https:// URL"));
    }
    let shown = register_webhook(&url);
    ctx.policy
        .check_host(url.host_str().unwrap_or_default().trim_matches(['[', ']']))?;
    if ctx.dry_run {
        tracing::info!(target: "mtn::host", "dry run: would ping {shown}");
        return Ok(PingReport {
            ok: true,
            url: shown,
            status: None,
            attempts: 0,
            dry_run: true,
        });
    }
    let client = clients.get(true, None)?;
    let mut last = String::new();
    // A dead-man's switch that misses one ping raises a false alarm: retry briefly.
    for attempt in 1..=3u32 {
        let mut req = client.post(url.clone()).timeout(Duration::from_secs(10));
        if let Some(b) = &body {
            let b: String = crate::redact::redact(b).chars().take(100_000).collect();
            req = req.body(b);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                return Ok(PingReport {
                    ok: true,
                    url: shown,
                    status: Some(resp.status().as_u16()),
                    attempts: attempt,
                    dry_run: false,
                })
            }
            Ok(resp) if resp.status().is_client_error() => {
                return Err(HostError::server(format!(
                    "ping {shown}: server answered {}",
                    resp.status()
                )))
            }
            Ok(resp) => last = format!("server answered {}", resp.status()),
            Err(e) => last = describe(&e),
        }
        if attempt < 3 {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
    }
    Err(HostError::network(format!(
        "ping {shown}: {last} (3 attempts)"
    )))
}
