//! Connecting to MongoDB: URL parsing, short server-selection timeouts, and errors that say
//! what went wrong (bad URL, authentication, unreachable server) without leaking the password.

use std::time::Duration;

use mongodb::error::{Error as MongoError, ErrorKind as MongoKind};
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};

use crate::error::{ErrorKind, HostError, HostResult};

/// How long to look for a server before giving up, unless the URL sets serverSelectionTimeoutMS.
/// The driver's own default (30 s) makes a typo in a host name look like a hang.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Conn {
    pub client: Client,
    pub db: Database,
    /// The URL with its password masked, for messages.
    pub shown: String,
}

/// Register the password of a MongoDB URL with the redactor and return the URL masked.
/// `url::Url` cannot parse seed lists (`h1:1,h2:2`), so the user info is cut out by hand.
pub fn register_secret(url: &str) -> String {
    if let Some((_, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, pw)) = userinfo.split_once(':') {
                crate::redact::register(pw);
                if let Ok(decoded) = percent_encoding::percent_decode_str(pw).decode_utf8() {
                    crate::redact::register(&decoded);
                }
            }
        }
    }
    crate::redact::register_url(url)
}

/// Connect lazily (the driver connects on first use) with mtn's defaults applied.
pub async fn connect(url: &str, timeout: Option<Duration>) -> HostResult<Conn> {
    let shown = register_secret(url);
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("mongodb") | Some("mongodb+srv")) {
        return Err(HostError::invalid(format!(
            "invalid MongoDB URL {shown:?}: it must start with mongodb:// or mongodb+srv://"
        )));
    }
    let mut opts = ClientOptions::parse(url).await.map_err(|e| {
        HostError::invalid(format!("invalid MongoDB URL {shown:?}: {}", describe(&e)))
    })?;
    let wait = timeout.unwrap_or(DEFAULT_TIMEOUT);
    if timeout.is_some() || opts.server_selection_timeout.is_none() {
        opts.server_selection_timeout = Some(wait);
    }
    if opts.connect_timeout.is_none() {
        opts.connect_timeout = Some(wait);
    }
    if opts.app_name.is_none() {
        opts.app_name = Some("mtn".into());
    }
    let db_name = opts.default_database.clone().unwrap_or_default();
    if db_name.is_empty() {
        return Err(HostError::invalid(format!(
            "MongoDB URL {shown:?} names no database: add it to the path, e.g. mongodb://host:27017/mydb"
        )));
    }
    let client = Client::with_options(opts).map_err(|e| {
        HostError::invalid(format!("invalid MongoDB URL {shown:?}: {}", describe(&e)))
    })?;
    let db = client.database(&db_name);
    Ok(Conn { client, db, shown })
}

/// The driver's message without its "Kind: ..., labels: {}" decoration.
fn describe(e: &MongoError) -> String {
    match &*e.kind {
        MongoKind::InvalidArgument { message, .. } => message.clone(),
        MongoKind::Authentication { message, .. } => message.clone(),
        MongoKind::ServerSelection { message, .. } => message.clone(),
        MongoKind::Command(c) => format!("{} ({}, code {})", c.message, c.code_name, c.code),
        _ => e.to_string(),
    }
}

/// A driver error as a host error, in words a person can act on. `what` says what was being
/// done ("listing collections of app") and `shown` is the masked URL.
pub fn map_err(e: MongoError, what: &str, shown: &str) -> HostError {
    let msg = crate::redact::redact(&describe(&e));
    match &*e.kind {
        MongoKind::Authentication { .. } => HostError::new(
            ErrorKind::Auth,
            format!("{what}: authentication failed for {shown}: {msg}"),
        ),
        MongoKind::ServerSelection { .. } => HostError::network(format!(
            "{what}: cannot reach a MongoDB server for {shown} (check host, port and that it runs; the wait is set by serverSelectionTimeoutMS): {msg}"
        )),
        MongoKind::InvalidArgument { .. } => HostError::invalid(format!("{what}: {msg}")),
        MongoKind::Io(_) | MongoKind::ConnectionPoolCleared { .. } => {
            HostError::network(format!("{what}: connection to {shown} failed: {msg}"))
        }
        MongoKind::DnsResolve { .. } => {
            HostError::network(format!("{what}: cannot resolve the host of {shown}: {msg}"))
        }
        MongoKind::Command(c) if matches!(c.code, 18 | 8000) => HostError::new(
            ErrorKind::Auth,
            format!("{what}: authentication failed for {shown}: {msg}"),
        ),
        MongoKind::Command(c) if c.code == 13 => HostError::new(
            ErrorKind::PermissionDenied,
            format!("{what}: not authorized on {shown}: {msg}"),
        ),
        MongoKind::Command(c) if c.code == 26 => HostError::not_found(format!("{what}: {msg}")),
        _ => HostError::server(format!("{what}: {msg}")),
    }
}

/// The same URL pointing at another database. When the URL carries credentials but no
/// authSource, the original database stays the authentication database.
pub fn with_database(url: &str, db: &str) -> HostResult<String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| HostError::invalid("invalid MongoDB URL: missing ://"))?;
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, old_db) = match before_query.split_once('/') {
        Some((a, d)) => (a, d),
        None => (before_query, ""),
    };
    let mut params: Vec<String> = query
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let has_auth_source = params
        .iter()
        .any(|p| p.to_ascii_lowercase().starts_with("authsource="));
    if authority.contains('@') && !has_auth_source {
        let source = if old_db.is_empty() { "admin" } else { old_db };
        params.push(format!("authSource={source}"));
    }
    let mut out = format!("{scheme}://{authority}/{db}");
    if !params.is_empty() {
        out.push('?');
        out.push_str(&params.join("&"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_database_keeping_auth_source() {
        assert_eq!(
            with_database("mongodb://h:1/app", "scratch").unwrap(),
            "mongodb://h:1/scratch"
        );
        assert_eq!(
            with_database("mongodb://u:p@h:1,h2:2/app?w=1", "s").unwrap(),
            "mongodb://u:p@h:1,h2:2/s?w=1&authSource=app"
        );
        assert_eq!(
            with_database("mongodb://u:p@h/?authSource=x", "s").unwrap(),
            "mongodb://u:p@h/s?authSource=x"
        );
    }

    #[test]
    fn registers_seed_list_password() {
        let shown = register_secret("mongodb://bob:Sup%3Ar-pw@h1:1,h2:2/app");
        assert!(!shown.contains("Sup"), "{shown}");
        assert_eq!(crate::redact::redact("x Sup:r-pw y"), "x *** y");
    }
}
