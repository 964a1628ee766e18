//! Email notifications over SMTP (STARTTLS by default, smtps:// from the start).

use std::collections::BTreeMap;
use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{NotifyReport, OneOrMany, DEFAULT_TIMEOUT};
use crate::ctx::RunCtx;
use crate::error::{ErrorKind, HostError, HostResult};

/// The options an smtp:// target takes (decoded from `notify`'s map by `NotifyOptions::email`).
#[derive(Debug, Default)]
pub struct EmailOptions {
    pub to: Option<OneOrMany>,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub title: Option<String>,
    pub tls: Option<String>,
    pub ca_file: Option<String>,
    pub timeout: Option<Duration>,
}

fn parse_mailbox(s: &str, what: &str) -> HostResult<Mailbox> {
    s.trim()
        .parse::<Mailbox>()
        .map_err(|e| HostError::invalid(format!("invalid {what} address {s:?}: {e}")))
}

pub async fn send_email(
    ctx: &RunCtx,
    url: url::Url,
    message: &str,
    o: &EmailOptions,
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
        let user = percent_encoding::percent_decode_str(url.username())
            .decode_utf8_lossy()
            .into_owned();
        let pass = percent_encoding::percent_decode_str(url.password().unwrap_or_default())
            .decode_utf8_lossy()
            .into_owned();
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
