//! Webhook notifications: Slack, Discord, Mattermost, ntfy or generic JSON, guessed from the URL.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::{describe, Level, NotifyReport, DEFAULT_TIMEOUT};
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::http::HttpClients;

/// The options a webhook target takes (decoded from `notify`'s map by `NotifyOptions::webhook`).
#[derive(Debug, Default)]
pub struct WebhookOptions {
    pub title: Option<String>,
    pub level: Option<String>,
    pub format: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub ca_file: Option<String>,
    pub timeout: Option<Duration>,
    pub tags: Vec<String>,
    pub priority: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Slack,
    Discord,
    Mattermost,
    Ntfy,
}

impl Format {
    pub(super) fn parse(s: &str) -> HostResult<Format> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "json" | "generic" => Format::Json,
            "slack" => Format::Slack,
            "discord" => Format::Discord,
            "mattermost" => Format::Mattermost,
            "ntfy" => Format::Ntfy,
            other => {
                return Err(HostError::invalid(format!(
                    "unknown format {other:?}: use json, slack, discord, mattermost or ntfy"
                )))
            }
        })
    }
    pub(super) fn guess(url: &url::Url) -> Format {
        let host = url.host_str().unwrap_or_default();
        let path = url.path();
        if host == "hooks.slack.com" {
            Format::Slack
        } else if (host.ends_with("discord.com") || host.ends_with("discordapp.com"))
            && path.starts_with("/api/webhooks/")
        {
            Format::Discord
        } else if host == "ntfy.sh" || host.starts_with("ntfy.") {
            Format::Ntfy
        } else if path.starts_with("/hooks/") {
            Format::Mattermost
        } else {
            Format::Json
        }
    }
    pub(super) fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
            Format::Discord => "discord",
            Format::Mattermost => "mattermost",
            Format::Ntfy => "ntfy",
        }
    }
}

/// Mask the secret part of a webhook URL (path and query) and return the printable form.
pub fn register_webhook(url: &url::Url) -> String {
    crate::redact::register_url(url.as_str());
    let path = url.path();
    if path.len() > 1 {
        crate::redact::register(path.trim_start_matches('/'));
    }
    if let Some(q) = url.query() {
        crate::redact::register(q);
    }
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{}{port}/***",
        url.scheme(),
        url.host_str().unwrap_or_default()
    )
}

/// Body bytes, extra headers, content type.
pub type WebhookBody = (Vec<u8>, Vec<(String, String)>, &'static str);

/// The body (and extra headers) a webhook of `format` expects.
pub fn webhook_body(
    format: Format,
    title: Option<&str>,
    message: &str,
    level: &str,
    ntfy: (&[String], Option<u8>),
) -> HostResult<WebhookBody> {
    let lvl = Level::parse(Some(level))?;
    let host = crate::host::core::hostname();
    let json_ct = "application/json";
    Ok(match format {
        Format::Json => {
            let body = json!({
                "title": title,
                "message": message,
                "level": lvl.name(),
                "host": host,
                "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            });
            (body.to_string().into_bytes(), vec![], json_ct)
        }
        Format::Slack => {
            let text = match title {
                Some(t) => format!(":{}: *{t}*\n{message}", lvl.emoji()),
                None => message.to_string(),
            };
            (
                json!({ "text": text }).to_string().into_bytes(),
                vec![],
                json_ct,
            )
        }
        Format::Mattermost => {
            let text = match title {
                Some(t) => format!(":{}: **{t}**\n{message}", lvl.emoji()),
                None => message.to_string(),
            };
            let body = json!({ "text": text, "username": "mtn" });
            (body.to_string().into_bytes(), vec![], json_ct)
        }
        Format::Discord => {
            let text = match title {
                Some(t) => format!("**{t}**\n{message}"),
                None => message.to_string(),
            };
            // Discord rejects content over 2000 characters.
            let text: String = if text.chars().count() > 2000 {
                text.chars().take(1999).chain(['…']).collect()
            } else {
                text
            };
            (
                json!({ "content": text }).to_string().into_bytes(),
                vec![],
                json_ct,
            )
        }
        Format::Ntfy => {
            let mut headers = Vec::new();
            if let Some(t) = title {
                headers.push(("Title".to_string(), t.replace(['\r', '\n'], " ")));
            }
            let prio = ntfy.1.unwrap_or_else(|| lvl.ntfy_priority());
            if !(1..=5).contains(&prio) {
                return Err(HostError::invalid("ntfy priority must be 1-5"));
            }
            headers.push(("Priority".to_string(), prio.to_string()));
            let tags = if ntfy.0.is_empty() {
                lvl.emoji().to_string()
            } else {
                ntfy.0.join(",")
            };
            headers.push(("Tags".to_string(), tags));
            (
                message.as_bytes().to_vec(),
                headers,
                "text/plain; charset=utf-8",
            )
        }
    })
}

pub async fn send_webhook(
    ctx: &RunCtx,
    clients: &HttpClients,
    url: url::Url,
    message: &str,
    o: &WebhookOptions,
) -> HostResult<NotifyReport> {
    let shown = register_webhook(&url);
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    ctx.policy.check_host(host)?;
    let format = match &o.format {
        Some(f) => Format::parse(f)?,
        None => Format::guess(&url),
    };
    let title = o.title.as_deref();
    let level = o.level.as_deref().unwrap_or("info");
    let message = crate::redact::redact(message);
    let (body, headers, content_type) =
        webhook_body(format, title, &message, level, (&o.tags, o.priority))?;
    let mut report = NotifyReport {
        ok: true,
        target: shown.clone(),
        format: format.name().to_string(),
        status: None,
        dry_run: ctx.dry_run,
    };
    if ctx.dry_run {
        tracing::info!(target: "mtn::host", "dry run: would notify {shown} ({})", format.name());
        return Ok(report);
    }
    let client = clients.get(true, o.ca_file.as_deref())?;
    let mut req = client
        .post(url)
        .timeout(o.timeout.unwrap_or(DEFAULT_TIMEOUT))
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    for (k, v) in headers.iter().map(|(k, v)| (k, v)).chain(o.headers.iter()) {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| HostError::network(format!("notify {shown}: {}", describe(&e))))?;
    let status = resp.status();
    report.status = Some(status.as_u16());
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        let text: String = text.chars().take(300).collect();
        return Err(HostError::server(format!(
            "notify {shown}: server answered {status}: {}",
            crate::redact::redact(text.trim())
        ))
        .with_retryable(status.is_server_error() || status.as_u16() == 429));
    }
    Ok(report)
}
