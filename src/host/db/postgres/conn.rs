//! PostgreSQL connections through tokio-postgres: TLS per `sslmode`, connect timeouts, errors
//! that say whether the password, the host or the database was wrong.

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

use crate::error::{ErrorKind, HostError, HostResult};
use crate::host::db::url::ServerUrl;

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Query parameters tokio-postgres understands; libpq-only ones (sslrootcert...) are handled
/// here or left to the command-line tools.
const PASSED_PARAMS: &[&str] = &[
    "connect_timeout",
    "application_name",
    "options",
    "keepalives",
    "keepalives_idle",
    "target_session_attrs",
    "channel_binding",
    "host",
    "port",
    "user",
    "dbname",
    "hostaddr",
];

/// A connection that, when dropped because its run was stopped (timeout, signal: the future
/// awaiting a statement is dropped), sends PostgreSQL a cancel request, so nothing mtn started
/// keeps running on the server. Derefs to the client.
pub struct PgClient {
    client: Client,
    run: Option<tokio_util::sync::CancellationToken>,
}

impl std::ops::Deref for PgClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        let stopped = self.run.as_ref().is_some_and(|t| t.is_cancelled());
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !stopped {
            return;
        }
        // The server has no idea the client gave up: a statement keeps running until it
        // finishes (pg_sleep(60), a long DELETE) unless it is cancelled.
        let cancel = self.client.cancel_token();
        PENDING_CANCELS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        rt.spawn(async move {
            match cancel.cancel_query(NoTls).await {
                Ok(()) => tracing::info!(target: "mtn::db", "sent PostgreSQL a cancel request for the statement the stopped run abandoned"),
                Err(e) => tracing::warn!(target: "mtn::db", "could not cancel the abandoned PostgreSQL statement: {e}"),
            }
            PENDING_CANCELS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        });
    }
}

/// Cancel requests sent but not yet done (see [`settle_cancels`]).
static PENDING_CANCELS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Wait (at most `max`) until every cancel request has gone out: `mtn run` calls this before
/// the process exits, so a timed-out statement does not outlive the run on the server.
pub async fn settle_cancels(max: Duration) {
    let until = tokio::time::Instant::now() + max;
    while PENDING_CANCELS.load(std::sync::atomic::Ordering::SeqCst) > 0
        && tokio::time::Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn spawn_conn<F>(client: Client, conn: F) -> PgClient
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(conn);
    PgClient {
        client,
        run: crate::ctx::run_token(),
    }
}

pub async fn connect(url: &ServerUrl) -> HostResult<PgClient> {
    let mut clean = url.url.clone();
    let pairs: Vec<(String, String)> = url
        .url
        .query_pairs()
        .filter(|(k, _)| PASSED_PARAMS.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    clean.set_query(None);
    if !pairs.is_empty() {
        clean.query_pairs_mut().extend_pairs(pairs);
    }
    let mut cfg = Config::from_str(clean.as_str()).map_err(|e| {
        HostError::invalid(format!(
            "invalid PostgreSQL URL {}: {e}",
            url.without_password()
        ))
    })?;
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    // tokio-postgres reads URL values percent-decoded but keeps `+` as is, while the url crate
    // (which built the query) writes a space as `+`: "mtn fleet h1" arrived as "mtn+fleet+h1".
    match url.query_param("application_name") {
        Some(name) => cfg.application_name(&name),
        None => cfg.application_name("mtn"),
    };
    let sslmode = url
        .query_param("sslmode")
        .unwrap_or_else(|| "prefer".to_string());
    let overall = *cfg
        .get_connect_timeout()
        .unwrap_or(&DEFAULT_CONNECT_TIMEOUT)
        + Duration::from_secs(5);
    let fut = async {
        match sslmode.as_str() {
            "disable" => {
                cfg.ssl_mode(SslMode::Disable);
                let (client, conn) = cfg.connect(NoTls).await.map_err(|e| classify(url, &e))?;
                Ok(spawn_conn(client, conn))
            }
            "allow" | "prefer" | "require" | "verify-ca" | "verify-full" => {
                let verify = sslmode.starts_with("verify");
                cfg.ssl_mode(if matches!(sslmode.as_str(), "require" | "verify-ca" | "verify-full") {
                    SslMode::Require
                } else {
                    SslMode::Prefer
                });
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(
                    verify,
                    url.query_param("sslrootcert").as_deref(),
                )?);
                let (client, conn) = cfg.connect(tls).await.map_err(|e| classify(url, &e))?;
                Ok(spawn_conn(client, conn))
            }
            other => Err(HostError::invalid(format!(
                "sslmode={other} is not valid (use disable, prefer, require, verify-ca or verify-full)"
            ))),
        }
    };
    match tokio::time::timeout(overall, fut).await {
        Ok(r) => r,
        Err(_) => Err(HostError::network(format!(
            "timed out connecting to PostgreSQL at {}",
            url.endpoint()
        ))),
    }
}

use crate::tls::provider;

fn tls_config(verify: bool, rootcert: Option<&str>) -> HostResult<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| HostError::other(format!("TLS setup: {e}")))?;
    if !verify {
        // libpq's `require`/`prefer` encrypt without checking the certificate; keep its meaning.
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(crate::tls::AcceptAnyCert::new(provider()))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    match rootcert {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| HostError::io(format!("reading sslrootcert {path}"), &e))?;
            for cert in rustls_pemfile::certs(&mut &pem[..]) {
                let cert =
                    cert.map_err(|e| HostError::invalid(format!("sslrootcert {path}: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| HostError::invalid(format!("sslrootcert {path}: {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Turn a connection error into one that says what to fix.
pub fn classify(url: &ServerUrl, e: &tokio_postgres::Error) -> HostError {
    let user = url.user.clone().unwrap_or_else(|| "(default user)".into());
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let msg = crate::redact::redact(db.message());
        return match code {
            "28P01" | "28000" => HostError::new(
                ErrorKind::Auth,
                format!(
                    "authentication failed for user {user} at {}: {msg}",
                    url.endpoint()
                ),
            ),
            // The server's own text says the same words again; say it once.
            "3D000" => HostError::not_found(format!(
                "database {:?} does not exist on {}",
                url.database,
                url.endpoint()
            )),
            "57P03" | "53300" => HostError::network(format!(
                "server at {} is not accepting connections: {msg}",
                url.endpoint()
            )),
            _ => HostError::server(format!(
                "PostgreSQL at {}: {msg} (SQLSTATE {code})",
                url.endpoint()
            )),
        };
    }
    let text = crate::redact::redact(&e.to_string());
    let source = std::error::Error::source(e)
        .map(|s| crate::redact::redact(&s.to_string()))
        .unwrap_or_default();
    if text.contains("password missing") || source.contains("password missing") {
        // tokio-postgres' own check: the server asked for a password and mtn had none.
        return HostError::new(
            ErrorKind::Auth,
            format!(
                "PostgreSQL at {} asks for a password for user {user} and none was given",
                url.endpoint()
            ),
        );
    }
    HostError::network(format!(
        "cannot connect to PostgreSQL at {}: {text}{}",
        url.endpoint(),
        if source.is_empty() {
            String::new()
        } else {
            format!(": {source}")
        }
    ))
}

/// An error from a query on an open connection.
pub fn query_error(e: &tokio_postgres::Error) -> HostError {
    match e.as_db_error() {
        Some(db) => {
            let mut msg = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                msg.push_str(&format!("; detail: {d}"));
            }
            if let Some(h) = db.hint() {
                msg.push_str(&format!("; hint: {h}"));
            }
            HostError::server(crate::redact::redact(&msg))
        }
        None => {
            let mut msg = e.to_string();
            if let Some(s) = std::error::Error::source(e) {
                msg.push_str(&format!(": {s}"));
            }
            if e.is_closed() {
                HostError::network(crate::redact::redact(&msg))
            } else {
                HostError::server(crate::redact::redact(&msg))
            }
        }
    }
}
