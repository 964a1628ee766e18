//! The run's HTTP clients, on the ground floor because the run context owns them
//! (`RunCtx::http`): `http_check`, `http_request`, `notify` and
//! `ping` share one set per run, the monitor's pings and the daemon's alerts make their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{HostError, HostResult};

/// Connect timeout of every client, and the default timeout of a check or request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The run's HTTP clients: one per (redirect policy, CA file), built on first use and shared by
/// every call of the run, so connections and TLS sessions are reused.
#[derive(Default)]
pub struct HttpClients {
    clients: Mutex<HashMap<(bool, Option<String>), reqwest::Client>>,
    /// The run's policy: a redirect may not lead to a host outside `allow_hosts`.
    policy: Option<crate::policy::Policy>,
}

impl HttpClients {
    pub fn new() -> Arc<Self> {
        Arc::new(HttpClients::default())
    }

    pub fn with_policy(policy: crate::policy::Policy) -> Arc<Self> {
        Arc::new(HttpClients {
            clients: Mutex::default(),
            policy: Some(policy),
        })
    }

    pub fn get(
        &self,
        follow_redirects: bool,
        ca_file: Option<&str>,
    ) -> HostResult<reqwest::Client> {
        let key = (follow_redirects, ca_file.map(str::to_string));
        let mut map = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let redirect = if follow_redirects {
            let policy = self.policy.clone();
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 10 {
                    return attempt.error("too many redirects (10)");
                }
                let host = attempt.url().host_str().unwrap_or("").to_string();
                match policy.as_ref().map(|p| p.check_host(&host)) {
                    Some(Err(e)) => attempt.error(format!("redirect refused: {}", e.message)),
                    _ => attempt.follow(),
                }
            })
        } else {
            reqwest::redirect::Policy::none()
        };
        crate::tls::install_default_provider();
        let mut builder = reqwest::Client::builder()
            .redirect(redirect)
            .tls_info(true)
            .user_agent(concat!("mtn/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(DEFAULT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| HostError::io(format!("reading ca_file {path}"), &e))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                HostError::invalid(format!("ca_file {path}: not a PEM certificate bundle: {e}"))
            })?;
            if certs.is_empty() {
                return Err(HostError::invalid(format!(
                    "ca_file {path}: no certificate found"
                )));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder
            .build()
            .map_err(|e| HostError::other(format!("building HTTP client: {}", chain(&e))))?;
        map.insert(key, client.clone());
        Ok(client)
    }
}

/// An error and its causes on one line, without the URL (the caller shows a masked one).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        src = s.source();
    }
    crate::redact::redact(&parts.join(": "))
}
