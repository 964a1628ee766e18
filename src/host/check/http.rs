//! `http_check`, `http_check_all`, `http_request`: HTTP(S) probes and API calls.
//!
//! A check never throws for what it is checking: a refused connection, a timeout, a 500 or a
//! missing word in the body all come back as `ok: false` with an `error` saying why, so the
//! script decides what is an alert. Only mistakes in the script itself (a malformed URL, an
//! unknown option, a host outside the policy) are errors.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::binding::serde_duration;
use crate::http::{HttpClients, DEFAULT_TIMEOUT};

/// How much of a body a check reads to look for `contains` (the rest is not downloaded).
const CHECK_BODY_LIMIT: usize = 1024 * 1024;
/// `http_request` returns the body to the script, which has its own string limit.
const REQUEST_BODY_LIMIT: usize = 16 * 1024 * 1024;
const SNIPPET_CHARS: usize = 200;

/// `expect_status: 200` or `expect_status: [200, 204]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ExpectStatus {
    One(u16),
    Many(Vec<u16>),
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CheckOptions {
    /// HTTP method (default GET).
    pub method: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    /// Acceptable status codes (default: any 2xx or 3xx).
    pub expect_status: Option<ExpectStatus>,
    /// A substring the body must contain, or `/regex/`.
    pub contains: Option<String>,
    #[serde(with = "serde_duration::option")]
    pub timeout: Option<Duration>,
    /// Extra attempts after a failed one (default 0).
    pub retries: u32,
    #[serde(with = "serde_duration::option")]
    pub retry_delay: Option<Duration>,
    /// Follow up to 10 redirects (default true).
    pub follow_redirects: Option<bool>,
    /// PEM file of extra trusted CA certificates (internal CA, self-signed server).
    pub ca_file: Option<String>,
    /// A label echoed in the result (useful with `http_check_all`).
    pub name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CheckResult {
    pub ok: bool,
    pub status: Option<u16>,
    pub latency_ms: f64,
    pub error: Option<String>,
    pub body_snippet: Option<String>,
    pub tls_days_left: Option<i64>,
    pub url: String,
    pub attempts: u32,
    pub name: Option<String>,
}

/// A check, validated before anything is sent.
pub struct Check {
    url: reqwest::Url,
    shown_url: String,
    method: reqwest::Method,
    matcher: Option<Matcher>,
    opts: CheckOptions,
}

enum Matcher {
    Substring(String),
    Regex(regex::Regex),
}

impl Matcher {
    fn parse(s: &str) -> HostResult<Matcher> {
        if s.len() > 2 && s.starts_with('/') && s.ends_with('/') {
            let re = regex::Regex::new(&s[1..s.len() - 1])
                .map_err(|e| HostError::invalid(format!("contains: invalid regex {s}: {e}")))?;
            Ok(Matcher::Regex(re))
        } else {
            Ok(Matcher::Substring(s.to_string()))
        }
    }
    fn matches(&self, body: &str) -> bool {
        match self {
            Matcher::Substring(s) => body.contains(s.as_str()),
            Matcher::Regex(r) => r.is_match(body),
        }
    }
}

/// Parse a URL for an HTTP function: http(s) only, host allowed by the policy, password
/// registered with the redactor. Returns the URL and its printable (masked) form.
pub fn parse_url(ctx: &RunCtx, raw: &str) -> HostResult<(reqwest::Url, String)> {
    let shown = crate::redact::register_url(raw);
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| HostError::invalid(format!("invalid URL {shown:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HostError::invalid(format!(
            "unsupported URL scheme in {shown:?}: use http:// or https://"
        )));
    }
    let host = url
        .host_str()
        .ok_or_else(|| HostError::invalid(format!("URL {shown:?} has no host")))?;
    ctx.policy.check_host(host.trim_matches(['[', ']']))?;
    Ok((url, shown))
}

fn parse_method(m: Option<&str>) -> HostResult<reqwest::Method> {
    let m = m.unwrap_or("GET").to_ascii_uppercase();
    reqwest::Method::from_bytes(m.as_bytes())
        .map_err(|_| HostError::invalid(format!("invalid HTTP method {m:?}")))
}

impl Check {
    pub fn new(ctx: &RunCtx, url: &str, opts: CheckOptions) -> HostResult<Check> {
        let (url, shown_url) = parse_url(ctx, url)?;
        let method = parse_method(opts.method.as_deref())?;
        let matcher = opts.contains.as_deref().map(Matcher::parse).transpose()?;
        for (k, v) in &opts.headers {
            validate_header(k, v)?;
        }
        Ok(Check {
            url,
            shown_url,
            method,
            matcher,
            opts,
        })
    }

    pub async fn run(&self, clients: &HttpClients) -> HostResult<CheckResult> {
        let client = clients.get(
            self.opts.follow_redirects.unwrap_or(true),
            self.opts.ca_file.as_deref(),
        )?;
        let attempts = self.opts.retries.saturating_add(1);
        let delay = self.opts.retry_delay.unwrap_or(Duration::from_secs(1));
        let mut result = self.attempt(&client).await;
        let mut n = 1;
        while !result.ok && n < attempts {
            tokio::time::sleep(delay).await;
            result = self.attempt(&client).await;
            n += 1;
        }
        result.attempts = n;
        Ok(result)
    }

    async fn attempt(&self, client: &reqwest::Client) -> CheckResult {
        let timeout = self.opts.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let mut req = client
            .request(self.method.clone(), self.url.clone())
            .timeout(timeout);
        for (k, v) in &self.opts.headers {
            req = req.header(k, v);
        }
        if let Some(b) = &self.opts.body {
            req = req.body(b.clone());
        }
        let started = Instant::now();
        let mut result = CheckResult {
            ok: false,
            status: None,
            latency_ms: 0.0,
            error: None,
            body_snippet: None,
            tls_days_left: None,
            url: self.shown_url.clone(),
            attempts: 1,
            name: self.opts.name.clone(),
        };
        let outcome = async {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let days = resp
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|t| t.peer_certificate())
                .and_then(|der| super::tls::parse_cert(der, "").ok())
                .map(|c| c.days_left);
            let body = read_limited(resp, CHECK_BODY_LIMIT).await?;
            Ok::<_, reqwest::Error>((status, days, body))
        }
        .await;
        result.latency_ms = round_ms(started.elapsed());
        match outcome {
            Err(e) => {
                result.error = Some(describe_error(&e, timeout));
            }
            Ok((status, days, body)) => {
                result.status = Some(status);
                result.tls_days_left = days;
                let text = String::from_utf8_lossy(&body.0);
                let snippet: String = text.chars().take(SNIPPET_CHARS).collect();
                result.body_snippet = Some(crate::redact::redact(&snippet));
                let status_ok = match &self.opts.expect_status {
                    None => (200..400).contains(&status),
                    Some(ExpectStatus::One(s)) => status == *s,
                    Some(ExpectStatus::Many(v)) => v.contains(&status),
                };
                if !status_ok {
                    let expected = match &self.opts.expect_status {
                        None => "2xx or 3xx".to_string(),
                        Some(ExpectStatus::One(s)) => s.to_string(),
                        Some(ExpectStatus::Many(v)) => format!("{v:?}"),
                    };
                    result.error = Some(format!("status {status} (expected {expected})"));
                } else if let Some(m) = &self.matcher {
                    if !m.matches(&text) {
                        let what = self.opts.contains.as_deref().unwrap_or_default();
                        let scope = if body.1 {
                            format!(" (first {} KiB read)", CHECK_BODY_LIMIT / 1024)
                        } else {
                            String::new()
                        };
                        result.error = Some(crate::redact::redact(&format!(
                            "body does not contain {what:?}{scope}"
                        )));
                    } else {
                        result.ok = true;
                    }
                } else {
                    result.ok = true;
                }
            }
        }
        result
    }
}

/// Read at most `limit` bytes of a body; the flag says whether the body was cut.
async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = limit - out.len();
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return Ok((out, true));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((out, false))
}

fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

fn describe_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {}", humantime::format_duration(timeout));
    }
    // reqwest's own Display includes the full URL, which may carry a token: show the causes.
    let what = if e.is_connect() {
        "connection failed"
    } else if e.is_redirect() {
        "redirect failed"
    } else if e.is_body() || e.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    };
    let mut parts = vec![what.to_string()];
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let text = s.to_string();
        // hyper-util's "client error (Connect)" wrapper says nothing the next cause does not.
        if !text.starts_with("client error (") && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        src = s.source();
    }
    crate::redact::redact(&parts.join(": "))
}

fn validate_header(k: &str, v: &str) -> HostResult<()> {
    reqwest::header::HeaderName::from_bytes(k.as_bytes())
        .map_err(|_| HostError::invalid(format!("invalid header name {k:?}")))?;
    reqwest::header::HeaderValue::from_str(v)
        .map_err(|_| HostError::invalid(format!("invalid value for header {k:?}")))?;
    Ok(())
}

/// Run many checks concurrently (at most `concurrency` at a time); results in input order.
pub async fn check_all(
    ctx: &RunCtx,
    clients: &HttpClients,
    checks: Vec<Check>,
    concurrency: usize,
) -> HostResult<Vec<CheckResult>> {
    let token = ctx.token.clone();
    let results: Vec<HostResult<CheckResult>> = futures::stream::iter(checks.iter())
        .map(|c| c.run(clients))
        .buffered(concurrency.max(1))
        .take_until(token.cancelled())
        .collect()
        .await;
    ctx.check_cancelled()?;
    results.into_iter().collect()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RequestOptions {
    pub headers: BTreeMap<String, String>,
    /// A text body.
    pub body: Option<String>,
    /// A JSON body (sets `content-type: application/json`).
    pub json: Option<serde_json::Value>,
    /// Query parameters added to the URL.
    pub query: BTreeMap<String, String>,
    #[serde(with = "serde_duration::option")]
    pub timeout: Option<Duration>,
    pub follow_redirects: Option<bool>,
    pub ca_file: Option<String>,
    /// `"user:password"` for HTTP basic authentication (the password is masked in logs).
    pub basic_auth: Option<String>,
    /// A bearer token (masked in logs).
    pub bearer: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Response {
    pub status: Option<u16>,
    /// True for a 2xx status.
    pub ok: bool,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// The body parsed as JSON when it is JSON, else `()`.
    pub json: Option<serde_json::Value>,
    pub latency_ms: f64,
    pub dry_run: bool,
}

pub async fn request(
    ctx: &RunCtx,
    clients: &HttpClients,
    method: &str,
    url: &str,
    opts: RequestOptions,
) -> HostResult<Response> {
    let (mut url, shown) = parse_url(ctx, url)?;
    let method = parse_method(Some(method))?;
    for (k, v) in &opts.headers {
        validate_header(k, v)?;
    }
    if opts.body.is_some() && opts.json.is_some() {
        return Err(HostError::invalid("give either `body` or `json`, not both"));
    }
    if !opts.query.is_empty() {
        url.query_pairs_mut().extend_pairs(opts.query.iter());
    }
    // Reads are harmless in a dry run; anything else might change the world.
    let safe = matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS");
    if ctx.dry_run && !safe {
        tracing::info!(target: "mtn::host", "dry run: would send {method} {shown}");
        return Ok(Response {
            status: None,
            ok: true,
            headers: BTreeMap::new(),
            body: String::new(),
            json: None,
            latency_ms: 0.0,
            dry_run: true,
        });
    }
    let client = clients.get(
        opts.follow_redirects.unwrap_or(true),
        opts.ca_file.as_deref(),
    )?;
    let timeout = opts.timeout.unwrap_or(Duration::from_secs(30));
    let mut req = client.request(method.clone(), url).timeout(timeout);
    for (k, v) in &opts.headers {
        req = req.header(k, v);
    }
    if let Some(b) = opts.body {
        req = req.body(b);
    }
    if let Some(j) = &opts.json {
        let bytes =
            serde_json::to_vec(j).map_err(|e| HostError::invalid(format!("json body: {e}")))?;
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes);
    }
    if let Some(auth) = &opts.basic_auth {
        let (user, pass) = auth.split_once(':').unwrap_or((auth.as_str(), ""));
        crate::redact::register(pass);
        req = req.basic_auth(user, Some(pass));
    }
    if let Some(token) = &opts.bearer {
        crate::redact::register(token);
        req = req.bearer_auth(token);
    }
    let started = Instant::now();
    let fail = |e: reqwest::Error| {
        HostError::network(format!("{method} {shown}: {}", describe_error(&e, timeout)))
    };
    let resp = req.send().await.map_err(fail)?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let (body, cut) = read_limited(resp, REQUEST_BODY_LIMIT).await.map_err(fail)?;
    if cut {
        return Err(HostError::server(format!(
            "{method} {shown}: response body larger than {} MiB",
            REQUEST_BODY_LIMIT / (1024 * 1024)
        )));
    }
    let json = serde_json::from_slice(&body).ok();
    Ok(Response {
        status: Some(status),
        ok: (200..300).contains(&status),
        headers,
        body: crate::redact::redact(&String::from_utf8_lossy(&body)),
        json,
        latency_ms: round_ms(started.elapsed()),
        dry_run: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matcher_substring_and_regex() {
        assert!(Matcher::parse("ok").unwrap().matches("all ok"));
        assert!(Matcher::parse("/v\\d+\\.\\d+/").unwrap().matches("v1.2"));
        assert!(!Matcher::parse("/^ok$/").unwrap().matches("not ok"));
        assert!(Matcher::parse("/[/").is_err());
    }
}
