//! `notify` (webhooks and email) and `ping` (healthchecks.io-style dead-man's switches): the
//! dispatch and bindings here, one module per channel (`webhook`, `email`, `ping`), each with its
//! own options, so an option of one channel given to another is refused instead of ignored.
//!
//! Webhook URLs and ping URLs carry their secret in the path (Slack's `/services/T/B/XXXX`, a
//! check's UUID), so the path is registered with the redactor before anything can log it, and
//! reports show `https://host/***`. SMTP passwords are registered the same way.

use std::collections::BTreeMap;
use std::time::Duration;

use rhai::{Dynamic, Map};
use serde::{Deserialize, Serialize};

use crate::ctx::Ctx;
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::binding::serde_duration;
use crate::host::registry::Registrar;
use crate::host_fn;
use crate::http::HttpClients;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
pub mod email;
pub mod monitor;
pub mod ping;
pub mod webhook;

pub use ping::{ping, ping_url, PingReport};
pub use webhook::{register_webhook, webhook_body, Format, WebhookBody};

/// `to: "a@x"` or `to: ["a@x", "b@y"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyOptions {
    /// A title (webhooks) or the subject (email, default: the first line of the message).
    pub title: Option<String>,
    pub subject: Option<String>,
    /// info (default), success, warning, error: colours/priorities where the format has them.
    pub level: Option<String>,
    /// Webhook body: json, slack, discord, mattermost, ntfy (default: guessed from the URL).
    pub format: Option<String>,
    /// Extra HTTP headers for a webhook.
    pub headers: BTreeMap<String, String>,
    /// Email recipients (also `?to=` in the smtp URL).
    pub to: Option<OneOrMany>,
    /// Email sender (also `?from=`; default mtn@<hostname>).
    pub from: Option<String>,
    /// smtp:// TLS: "starttls" (default, required), "opportunistic", "none". smtps:// is always TLS.
    pub tls: Option<String>,
    /// PEM file of extra trusted CA certificates (webhook or SMTP server).
    pub ca_file: Option<String>,
    #[serde(with = "serde_duration::option")]
    pub timeout: Option<Duration>,
    /// ntfy tags (emoji short codes); default from `level`.
    pub tags: Vec<String>,
    /// ntfy priority 1-5; default from `level`.
    pub priority: Option<u8>,
}

#[derive(Debug, Serialize)]
pub struct NotifyReport {
    pub ok: bool,
    /// The target with its secrets masked.
    pub target: String,
    /// json, slack, discord, mattermost, ntfy or email.
    pub format: String,
    /// HTTP status of a webhook; `()` for email.
    pub status: Option<u16>,
    pub dry_run: bool,
}

impl NotifyOptions {
    /// The webhook's own options; an email-only key is an error naming the channel, never ignored.
    pub fn webhook(self) -> HostResult<webhook::WebhookOptions> {
        let foreign = [
            ("to", self.to.is_some()),
            ("from", self.from.is_some()),
            ("tls", self.tls.is_some()),
        ];
        refuse_foreign("a webhook", &foreign)?;
        Ok(webhook::WebhookOptions {
            title: self.title.or(self.subject),
            level: self.level,
            format: self.format,
            headers: self.headers,
            ca_file: self.ca_file,
            timeout: self.timeout,
            tags: self.tags,
            priority: self.priority,
        })
    }

    /// The email's own options; a webhook-only key is an error naming the channel.
    pub fn email(self) -> HostResult<email::EmailOptions> {
        let foreign = [
            ("format", self.format.is_some()),
            ("headers", !self.headers.is_empty()),
            ("tags", !self.tags.is_empty()),
            ("priority", self.priority.is_some()),
        ];
        refuse_foreign("an email (smtp://) target", &foreign)?;
        Ok(email::EmailOptions {
            to: self.to,
            from: self.from,
            subject: self.subject,
            title: self.title,
            tls: self.tls,
            ca_file: self.ca_file,
            timeout: self.timeout,
        })
    }
}

fn refuse_foreign(channel: &str, keys: &[(&str, bool)]) -> HostResult<()> {
    let set: Vec<&str> = keys.iter().filter(|(_, s)| *s).map(|(k, _)| *k).collect();
    if set.is_empty() {
        return Ok(());
    }
    let (noun, verb) = if set.len() == 1 {
        ("option", "does")
    } else {
        ("options", "do")
    };
    Err(HostError::invalid(format!(
        "{noun} {} {verb} not apply to {channel}; remove it or send to the other kind of target",
        set.iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    Info,
    Success,
    Warning,
    Error,
}

impl Level {
    pub(super) fn parse(s: Option<&str>) -> HostResult<Level> {
        Ok(match s.map(|s| s.to_ascii_lowercase()).as_deref() {
            None | Some("info") => Level::Info,
            Some("success") | Some("ok") => Level::Success,
            Some("warning") | Some("warn") => Level::Warning,
            Some("error") | Some("critical") => Level::Error,
            Some(other) => {
                return Err(HostError::invalid(format!(
                    "unknown level {other:?}: use info, success, warning or error"
                )))
            }
        })
    }
    pub(super) fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Success => "success",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
    pub(super) fn emoji(self) -> &'static str {
        match self {
            Level::Info => "information_source",
            Level::Success => "white_check_mark",
            Level::Warning => "warning",
            Level::Error => "rotating_light",
        }
    }
    pub(super) fn ntfy_priority(self) -> u8 {
        match self {
            Level::Info | Level::Success => 3,
            Level::Warning => 4,
            Level::Error => 5,
        }
    }
}

pub(super) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_string();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        parts.push(s.to_string());
        src = s.source();
    }
    if parts.is_empty() {
        parts.push("request failed".to_string());
    }
    crate::redact::redact(&parts.join(": "))
}

pub async fn notify(
    ctx: &RunCtx,
    clients: &HttpClients,
    target: &str,
    message: &str,
    o: NotifyOptions,
) -> HostResult<NotifyReport> {
    let shown = crate::redact::register_url(target);
    let url = url::Url::parse(target.trim()).map_err(|e| {
        HostError::invalid(format!(
            "invalid notify target {shown:?}: {e} (use a webhook URL or smtp://host)"
        ))
    })?;
    match url.scheme() {
        "http" | "https" => webhook::send_webhook(ctx, clients, url, message, &o.webhook()?).await,
        "smtp" | "smtps" => email::send_email(ctx, url, message, &o.email()?).await,
        other => Err(HostError::invalid(format!(
            "unsupported notify target scheme {other:?}: use https:// (webhook), smtp:// or smtps://"
        ))),
    }
}

pub fn register(r: &mut Registrar) {
    r.category("notify");
    let doc = (
        "Send a notification to a webhook URL (Slack, Discord, Mattermost, ntfy or generic JSON, guessed from the URL) or by email (`smtp://user:pass@host:587?to=ops@example.com`). Secrets in the URL are masked in logs; a failure is an error (kind `network` or `server`). A dry run sends nothing.\n\n```rhai\nnotify(env(\"SLACK_WEBHOOK\", \"https://hooks.slack.com/services/T0/B0/XXXX\"), \"backup finished\");\n```",
        "Send a notification with options: `title`, `level` (info, success, warning, error), `format` (json, slack, discord, mattermost, ntfy), `headers`; email: `to` (string or array), `from`, `subject`, `tls` (starttls (default), opportunistic, none; smtps:// is TLS from the start); `ca_file`, `timeout`; ntfy: `tags`, `priority`.\n\n```rhai\nnotify(\"smtp://alerts:pw@mail.example.com:587\", \"disk 91% full on db1\", #{ to: \"ops@example.com\", subject: \"[db1] disk\", level: \"error\" });\n```",
    );
    host_fn!(r, "notify", doc, |ctx, target: &str, message: Dynamic; opts: NotifyOptions| -> "Map" {
        let clients = ctx.http();
        let c2 = ctx.clone();
        let message = message.to_string();
        ctx.block_on(async move { notify(&c2, &clients, target, &message, opts).await })
    });

    // Its options are required: one arity.
    host_fn!(r, "monitor", "Monitor this run: `ping` (a healthchecks.io-style check URL) gets `/start` now and, when the run ends, success for exit 0 or `/fail` with the error and the last log lines for any other exit (error, `--timeout`, SIGTERM); `notify` (webhook or smtp:// URL) is told once when the run fails. The final signal is sent by mtn after the script's last statement, so a later step that fails can never be reported as success. Same as `mtn run --ping URL --notify TARGET` and a daemon job's `ping`/`notify` keys; an empty string keeps what is set.\n\n```rhai\nmonitor(#{ ping: env(\"HC_URL\", \"\"), notify: env(\"SLACK_WEBHOOK\", \"\") });\n```", |ctx, opts: Map| -> "()" {
        let o: crate::ctx::monitor::MonitorOptions = crate::host::binding::opts(&opts)?;
        ctx.monitor.set(o).map_err(HostError::invalid)?;
        let c2 = ctx.clone();
        ctx.block_on(async move {
            monitor::start(&c2).await;
            Ok(())
        })
    });

    // A status and a body are positional, not options: three definitions.
    host_fn!(r, "ping", "Ping a dead-man's switch (healthchecks.io style) to say the job succeeded; retried up to 3 times.\n\n```rhai\nping(env(\"HC_URL\", \"https://hc-ping.com/your-uuid\"));\n```", |ctx, url: &str| -> "Map" {
        do_ping(&ctx, url, Dynamic::UNIT, None)
    });
    host_fn!(r, "ping", "Ping with a status: \"start\" (`/start`), \"success\", \"fail\" (`/fail`), \"log\", true/false, or an exit code (`/<code>`).\n\n```rhai\nlet hc = env(\"HC_URL\", \"https://hc-ping.com/your-uuid\");\nping(hc, \"start\");\n// ... the job ...\nping(hc, \"success\");\n```", |ctx, url: &str, status: Dynamic| -> "Map" {
        do_ping(&ctx, url, status.clone(), None)
    });
    host_fn!(r, "ping", "Ping with a status and a body (e.g. the tail of a log; masked, at most 100 kB).\n\n```rhai\nping(env(\"HC_URL\", \"https://hc-ping.com/your-uuid\"), \"fail\", \"upload failed: timeout\");\n```", |ctx, url: &str, status: Dynamic, body: &str| -> "Map" {
        do_ping(&ctx, url, status.clone(), Some(body.to_string()))
    });
}

fn do_ping(
    ctx: &Ctx,
    url: &str,
    status: Dynamic,
    body: Option<String>,
) -> HostResult<ping::PingReport> {
    let clients = ctx.http();
    let c2 = ctx.clone();
    ctx.block_on(async move { ping(&c2, &clients, url, status, body).await })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_urls() {
        let b = "https://hc-ping.com/abc/";
        assert_eq!(
            ping_url(b, &Dynamic::UNIT).unwrap(),
            "https://hc-ping.com/abc"
        );
        assert_eq!(
            ping_url(b, &"start".into()).unwrap(),
            "https://hc-ping.com/abc/start"
        );
        assert_eq!(
            ping_url(b, &"fail".into()).unwrap(),
            "https://hc-ping.com/abc/fail"
        );
        assert_eq!(
            ping_url(b, &Dynamic::from(false)).unwrap(),
            "https://hc-ping.com/abc/fail"
        );
        assert_eq!(
            ping_url(b, &Dynamic::from(3_i64)).unwrap(),
            "https://hc-ping.com/abc/3"
        );
        assert!(ping_url(b, &"bogus".into()).is_err());
        assert!(ping_url(b, &Dynamic::from(999_i64)).is_err());
    }

    #[test]
    fn guesses_format() {
        let g = |u: &str| Format::guess(&url::Url::parse(u).unwrap());
        assert_eq!(g("https://hooks.slack.com/services/T/B/X"), Format::Slack);
        assert_eq!(g("https://discord.com/api/webhooks/1/x"), Format::Discord);
        assert_eq!(g("https://ntfy.sh/topic"), Format::Ntfy);
        assert_eq!(g("https://chat.example.com/hooks/abc"), Format::Mattermost);
        assert_eq!(g("https://example.com/alert"), Format::Json);
    }

    #[test]
    fn webhook_mask() {
        let u = url::Url::parse("https://hooks.slack.com/services/T0/B0/sekrit-token-9").unwrap();
        assert_eq!(register_webhook(&u), "https://hooks.slack.com/***");
        assert!(!crate::redact::redact(
            "posting to https://hooks.slack.com/services/T0/B0/sekrit-token-9"
        )
        .contains("sekrit"));
    }
}
