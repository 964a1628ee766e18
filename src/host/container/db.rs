//! Databases inside containers, named by URL: `postgres://user:pw@container:postgres_db/app`
//! (optionally `container:NAME:PORT`, the port the server listens on inside the container,
//! default the engine's). The URL form was chosen over an option because `db_query` and
//! `db_exec` take no options map, and one URL then works for every database function.
//!
//! Queries connect from the host to the container's address on its network (from inspect), so
//! the port need not be published. SQL dumps and restores run the container's own tools through
//! the engine's exec API (pg_dump / psql / pg_restore, mariadb-dump / mariadb or mysqldump /
//! mysql: `host/db/in_container.rs`), so the tool always matches the server's version. MongoDB's
//! dumps and restores are mtn's own (the driver), so a `mongodb://` URL only needs the address.

use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};

/// The container a database URL named, resolved.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// The address the container's own tools use to reach the server (its loopback).
    pub inner_host: String,
}

/// A database URL in the container form, split: the container's name, its port if given, and
/// the URL with `HOST` standing for the address to fill in.
struct Parts {
    name: String,
    port: Option<String>,
    before: String,
    after: String,
}

fn split(raw: &str) -> Option<Parts> {
    let (scheme, rest) = raw.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let spec = hostport.strip_prefix("container:")?;
    let (name, port) = match spec.split_once(':') {
        Some((n, p)) => (n, Some(p.to_string())),
        None => (spec, None),
    };
    let before = match userinfo {
        Some(u) => format!("{scheme}://{u}@"),
        None => format!("{scheme}://"),
    };
    Some(Parts {
        name: name.to_string(),
        port,
        before,
        after: tail.to_string(),
    })
}

/// True for `...@container:NAME/...` URLs.
pub fn is_container_url(raw: &str) -> bool {
    split(raw).is_some()
}

/// Resolve a container-form URL: the URL mtn connects with from the host (the container's
/// address) and the container. Any other URL is returned as it is, with no target.
pub fn resolve(ctx: &RunCtx, raw: &str) -> HostResult<(String, Option<Target>)> {
    let Some(p) = split(raw) else {
        return Ok((raw.to_string(), None));
    };
    let scheme = raw
        .split("://")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "postgres" | "postgresql" => "5432",
        "mysql" | "mariadb" => "3306",
        "mongodb" => "27017",
        _ => {
            return Err(HostError::invalid(format!(
                "the container:NAME form is for postgres://, mysql:// (mariadb://) and mongodb:// URLs, not {scheme}://"
            )))
        }
    };
    let port = p.port.clone().unwrap_or_else(|| default_port.to_string());
    if port.parse::<u16>().is_err() {
        return Err(HostError::invalid(format!(
            "container:{}:{port}: the port must be a number",
            p.name
        )));
    }
    // Register the password before anything can fail and print the URL.
    crate::redact::register_url(&format!("{}127.0.0.1:{port}{}", p.before, p.after));
    super::api::check_name(&p.name)?;
    let name = p.name.clone();
    let info = ctx.block_on(async move {
        let docker = super::api::client().await?;
        super::api::inspect_running(&docker, &name).await
    })?;
    // Host networking has no address of its own: the server is on the host's loopback.
    let ip = super::api::address(&info).unwrap_or_else(|| "127.0.0.1".to_string());
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip
    };
    tracing::debug!(target: "mtn::db", "container {} is at {host}", p.name);
    Ok((
        format!("{}{host}:{port}{}", p.before, p.after),
        Some(Target {
            name: p.name,
            inner_host: "127.0.0.1".into(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_urls() {
        let p = split("postgres://u:pw@container:postgres_db/app?sslmode=disable").unwrap();
        assert_eq!(p.name, "postgres_db");
        assert_eq!(p.port, None);
        assert_eq!(p.before, "postgres://u:pw@");
        assert_eq!(p.after, "/app?sslmode=disable");
        let p = split("postgresql://container:db:5433/x").unwrap();
        assert_eq!((p.name.as_str(), p.port.as_deref()), ("db", Some("5433")));
        assert_eq!(p.before, "postgresql://");
        assert!(split("postgres://u@localhost/app").is_none());
        assert!(split("postgres://u@containerhost/app").is_none());
        assert!(is_container_url("mysql://root@container:maria/shop"));
    }
}
