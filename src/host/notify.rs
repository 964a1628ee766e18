//! `notify` (webhooks and email) and `ping` (healthchecks.io-style dead-man's switches).
//!
//! Webhook URLs and ping URLs carry their secret in the path (Slack's `/services/T/B/XXXX`, a
//! check's UUID), so the path is registered with the redactor before anything can log it, and
//! reports show `https://host/***`. SMTP passwords are registered the same way.

use std::collections::BTreeMap;
use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rhai::{Dynamic, Map};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::engine::ctx::RunCtx;
use crate::engine::registry::Registrar;
use crate::host::binding::{call, opts, serde_duration, RhaiResult};
use crate::host::check::http::{clients_for, HttpClients};
use crate::host::error::{ErrorKind, HostError, HostResult};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Slack,
    Discord,
    Mattermost,
    Ntfy,
}

impl Format {
    fn parse(s: &str) -> HostResult<Format> {
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
    fn guess(url: &url::Url) -> Format {
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
    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
            Format::Discord => "discord",
            Format::Mattermost => "mattermost",
            Format::Ntfy => "ntfy",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Info,
    Success,
    Warning,
    Error,
}

impl Level {
    fn parse(s: Option<&str>) -> HostResult<Level> {
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
    fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Success => "success",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
    fn emoji(self) -> &'static str {
        match self {
            Level::Info => "information_source",
            Level::Success => "white_check_mark",
            Level::Warning => "warning",
            Level::Error => "rotating_light",
        }
    }
    fn ntfy_priority(self) -> u8 {
        match self {
            Level::Info | Level::Success => 3,
            Level::Warning => 4,
            Level::Error => 5,
        }
    }
}

/// Mask the secret part of a webhook URL (path and query) and return the printable form.
fn register_webhook(url: &url::Url) -> String {
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

async fn send_webhook(
    ctx: &RunCtx,
    clients: &HttpClients,
    url: url::Url,
    message: &str,
    o: &NotifyOptions,
) -> HostResult<NotifyReport> {
    let shown = register_webhook(&url);
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    ctx.policy.check_host(host)?;
    let format = match &o.format {
        Some(f) => Format::parse(f)?,
        None => Format::guess(&url),
    };
    let title = o.title.as_deref().or(o.subject.as_deref());
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

fn describe(e: &reqwest::Error) -> String {
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

fn parse_mailbox(s: &str, what: &str) -> HostResult<Mailbox> {
    s.trim()
        .parse::<Mailbox>()
        .map_err(|e| HostError::invalid(format!("invalid {what} address {s:?}: {e}")))
}

async fn send_email(
    ctx: &RunCtx,
    url: url::Url,
    message: &str,
    o: &NotifyOptions,
) -> HostResult<NotifyReport> {
    crate::redact::register_url(url.as_str());
    let shown = smtp_display(&url);
    let host = url
        .host_str()
        .ok_or_else(|| HostError::invalid(format!("{shown}: no SMTP host")))?
        .trim_matches(['[', ']'])
        .to_string();
    ctx.policy.check_host(&host)?;
    let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    let mut to: Vec<String> = o.to.clone().map(OneOrMany::into_vec).unwrap_or_default();
    if let Some(q) = query.get("to") {
        to.extend(q.split(',').map(str::to_string));
    }
    if to.is_empty() {
        return Err(HostError::invalid(
            "email needs a recipient: `to` option or ?to= in the smtp URL",
        ));
    }
    let from = o
        .from
        .clone()
        .or_else(|| query.get("from").cloned())
        .unwrap_or_else(|| format!("mtn@{}", crate::host::core::hostname()));
    let message = crate::redact::redact(message);
    let subject = o
        .subject
        .clone()
        .or_else(|| o.title.clone())
        .unwrap_or_else(|| {
            message
                .lines()
                .next()
                .unwrap_or("mtn notification")
                .chars()
                .take(120)
                .collect()
        });
    let mut builder = Message::builder()
        .from(parse_mailbox(&from, "from")?)
        .subject(subject);
    for t in &to {
        builder = builder.to(parse_mailbox(t, "to")?);
    }
    let email = builder
        .header(ContentType::TEXT_PLAIN)
        .body(message.clone())
        .map_err(|e| HostError::invalid(format!("building the email: {e}")))?;

    let implicit_tls = url.scheme() == "smtps";
    let port = url.port().unwrap_or(if implicit_tls { 465 } else { 587 });
    let tls_params = || -> HostResult<TlsParameters> {
        let mut b = TlsParameters::builder(host.clone());
        // `?ca_file=` in the URL too, so a daemon's `on_failure` URL can carry it.
        if let Some(path) = o.ca_file.as_ref().or(query.get("ca_file")) {
            let pem = std::fs::read(path)
                .map_err(|e| HostError::io(format!("reading ca_file {path}"), &e))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| HostError::invalid(format!("ca_file {path}: {e}")))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls()
            .map_err(|e| HostError::other(format!("TLS setup for {host}: {e}")))
    };
    let tls = if implicit_tls {
        Tls::Wrapper(tls_params()?)
    } else {
        match o
            .tls
            .as_deref()
            .or(query.get("tls").map(String::as_str))
            .unwrap_or("starttls")
        {
            "starttls" | "required" => Tls::Required(tls_params()?),
            "opportunistic" => Tls::Opportunistic(tls_params()?),
            "none" => Tls::None,
            other => {
                return Err(HostError::invalid(format!(
                    "unknown tls mode {other:?}: use starttls, opportunistic or none"
                )))
            }
        }
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
        .port(port)
        .tls(tls)
        .timeout(Some(o.timeout.unwrap_or(DEFAULT_TIMEOUT)));
    if !url.username().is_empty() {
        let user = percent_decode(url.username());
        let pass = percent_decode(url.password().unwrap_or_default());
        crate::redact::register(&pass);
        transport = transport.credentials(Credentials::new(user, pass));
    }
    let report = NotifyReport {
        ok: true,
        target: shown.clone(),
        format: "email".to_string(),
        status: None,
        dry_run: ctx.dry_run,
    };
    if ctx.dry_run {
        tracing::info!(target: "mtn::host", "dry run: would email {} via {shown}", to.join(", "));
        return Ok(report);
    }
    // lettre's own timeout covers connecting only; a server that stops answering must not hang
    // the run, so the whole exchange is bounded.
    let limit = o.timeout.unwrap_or(DEFAULT_TIMEOUT) * 3;
    let sent = tokio::time::timeout(limit, transport.build().send(email))
        .await
        .map_err(|_| {
            HostError::network(format!(
                "sending email via {shown}: no answer within {}",
                humantime::format_duration(limit)
            ))
        })?;
    sent.map_err(|e| {
        let mut text = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            text.push_str(": ");
            text.push_str(&s.to_string());
            src = s.source();
        }
        let kind = if e.is_permanent() {
            ErrorKind::Server
        } else {
            ErrorKind::Network
        };
        HostError::new(
            kind,
            format!(
                "sending email via {shown}: {}",
                crate::redact::redact(&text)
            ),
        )
    })?;
    Ok(report)
}

/// `smtp://user:***@host:port`: built from the parsed URL rather than masked in the text,
/// because an address in `?to=` contains an `@` too.
fn smtp_display(url: &url::Url) -> String {
    let user = if url.username().is_empty() {
        String::new()
    } else if url.password().is_some() {
        format!("{}:***@", url.username())
    } else {
        format!("{}@", url.username())
    };
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{user}{}{port}",
        url.scheme(),
        url.host_str().unwrap_or_default()
    )
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
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
        "http" | "https" => send_webhook(ctx, clients, url, message, &o).await,
        "smtp" | "smtps" => send_email(ctx, url, message, &o).await,
        other => Err(HostError::invalid(format!(
            "unsupported notify target scheme {other:?}: use https:// (webhook), smtp:// or smtps://"
        ))),
    }
}

/// healthchecks.io convention: `<url>/start`, `<url>` (success), `<url>/fail`, `<url>/<exit code>`.
pub fn ping_url(base: &str, status: &Dynamic) -> HostResult<String> {
    let base = base.trim_end_matches('/');
    if status.is_unit() {
        return Ok(base.to_string());
    }
    if let Ok(code) = status.as_int() {
        if !(0..=255).contains(&code) {
            return Err(HostError::invalid(format!(
                "ping: exit status {code} out of range 0-255"
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
            "ping: unknown status {other:?}: use \"start\", \"success\", \"fail\", \"log\", true/false or an exit code"
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
            "ping: invalid URL {:?}: {e}",
            crate::redact::register_url(base)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HostError::invalid("ping: use an http:// or https:// URL"));
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

pub fn register(r: &mut Registrar) {
    r.category("notify");
    let ctx = r.ctx.clone();
    let send = move |target: &str, message: Dynamic, o: Map| -> RhaiResult {
        call(&ctx, "notify", || {
            let o: NotifyOptions = opts("notify", &o)?;
            let clients = clients_for(&ctx);
            let c2 = ctx.clone();
            let message = message.to_string();
            ctx.block_on(async move { notify(&c2, &clients, target, &message, o).await })
        })
    };
    let f = send.clone();
    r.add(
        "notify",
        &["target: &str", "message: ?"],
        "Map",
        "Send a notification to a webhook URL (Slack, Discord, Mattermost, ntfy or generic JSON, guessed from the URL) or by email (`smtp://user:pass@host:587?to=ops@example.com`). Secrets in the URL are masked in logs; a failure is an error (kind `network` or `server`). A dry run sends nothing.\n\n```rhai\nnotify(env(\"SLACK_WEBHOOK\", \"https://hooks.slack.com/services/T0/B0/XXXX\"), \"backup finished\");\n```",
        move |t: &str, m: Dynamic| f(t, m, Map::new()),
    );
    r.add(
        "notify",
        &["target: &str", "message: ?", "opts: Map"],
        "Map",
        "Send a notification with options: `title`, `level` (info, success, warning, error), `format` (json, slack, discord, mattermost, ntfy), `headers`; email: `to` (string or array), `from`, `subject`, `tls` (starttls (default), opportunistic, none; smtps:// is TLS from the start); `ca_file`, `timeout`; ntfy: `tags`, `priority`.\n\n```rhai\nnotify(\"smtp://alerts:pw@mail.example.com:587\", \"disk 91% full on db1\", #{ to: \"ops@example.com\", subject: \"[db1] disk\", level: \"error\" });\n```",
        send,
    );

    let ctx = r.ctx.clone();
    r.add(
        "monitor",
        &["opts: Map"],
        "()",
        "Monitor this run: `ping` (a healthchecks.io-style check URL) gets `/start` now and, when the run ends, success for exit 0 or `/fail` with the error and the last log lines for any other exit (error, `--timeout`, SIGTERM); `notify` (webhook or smtp:// URL) is told once when the run fails. The final signal is sent by mtn after the script's last statement, so a later step that fails can never be reported as success. Same as `mtn run --ping URL --notify TARGET` and a daemon job's `ping`/`notify` keys; an empty string keeps what is set.\n\n```rhai\nmonitor(#{ ping: env(\"HC_URL\", \"\"), notify: env(\"SLACK_WEBHOOK\", \"\") });\n```",
        move |o: Map| -> RhaiResult {
            call(&ctx, "monitor", || {
                let o: crate::engine::monitor::MonitorOptions = opts("monitor", &o)?;
                ctx.monitor.set(o).map_err(HostError::invalid)?;
                let c2 = ctx.clone();
                ctx.block_on(async move {
                    crate::engine::monitor::start(&c2).await;
                    Ok(())
                })
            })
        },
    );

    let ctx = r.ctx.clone();
    let do_ping = move |url: &str, status: Dynamic, body: Option<String>| -> RhaiResult {
        call(&ctx, "ping", || {
            let clients = clients_for(&ctx);
            let c2 = ctx.clone();
            ctx.block_on(async move { ping(&c2, &clients, url, status, body).await })
        })
    };
    let f = do_ping.clone();
    r.add(
        "ping",
        &["url: &str"],
        "Map",
        "Ping a dead-man's switch (healthchecks.io style) to say the job succeeded; retried up to 3 times.\n\n```rhai\nping(env(\"HC_URL\", \"https://hc-ping.com/your-uuid\"));\n```",
        move |u: &str| f(u, Dynamic::UNIT, None),
    );
    let f = do_ping.clone();
    r.add(
        "ping",
        &["url: &str", "status: ?"],
        "Map",
        "Ping with a status: \"start\" (`/start`), \"success\", \"fail\" (`/fail`), \"log\", true/false, or an exit code (`/<code>`).\n\n```rhai\nlet hc = env(\"HC_URL\", \"https://hc-ping.com/your-uuid\");\nping(hc, \"start\");\n// ... the job ...\nping(hc, \"success\");\n```",
        move |u: &str, s: Dynamic| f(u, s, None),
    );
    r.add(
        "ping",
        &["url: &str", "status: ?", "body: &str"],
        "Map",
        "Ping with a status and a body (e.g. the tail of a log; masked, at most 100 kB).\n\n```rhai\nping(env(\"HC_URL\", \"https://hc-ping.com/your-uuid\"), \"fail\", \"upload failed: timeout\");\n```",
        move |u: &str, s: Dynamic, b: &str| do_ping(u, s, Some(b.to_string())),
    );
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
