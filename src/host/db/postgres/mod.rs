//! PostgreSQL: dumps and restores through the system's pg_dump / psql / pg_restore (the dump is
//! exactly what people restore today), queries and maintenance through tokio-postgres.
//!
//! Submodules: `conn` (connections, TLS, errors), `values` (Rust ↔ JSON values), `dump`,
//! `restore` (and scratch database create/drop), `ops` (queries, vacuum, stats, batched
//! deletes), `export` (COPY into the shared export sink). This file holds what the tool side
//! shares: finding a client tool of the right version, its environment and its errors.

pub mod conn;
pub mod dump;
pub mod export;
pub mod in_container;
pub mod ops;
pub mod restore;
pub mod values;

use std::path::PathBuf;

use tokio_postgres::Client;

use super::tools;
use super::url::{quote_ident, ServerUrl};
use crate::error::{ErrorKind, HostError, HostResult};
use conn::query_error;

pub use dump::dump;
pub use export::export;
pub use ops::{exec, query, stats, vacuum, PgDelete};
pub use restore::{admin_connect, create_database, drop_database, restore};

const CLIENT_PACKAGE: &str = "postgresql-client";

fn q(name: &str) -> String {
    quote_ident(name, '"')
}

/// Environment for libpq tools: the password travels here, never on the command line.
fn libpq_env(cmd: &mut tokio::process::Command, url: &ServerUrl) {
    if let Some(pw) = &url.password {
        cmd.env("PGPASSWORD", pw);
    }
    if url.query_param("connect_timeout").is_none() {
        cmd.env("PGCONNECT_TIMEOUT", "10");
    }
}

/// A libpq connection string without the password (safe for `ps`).
fn tool_dsn(url: &ServerUrl) -> String {
    url.without_password()
}

async fn server_major(client: &Client) -> HostResult<u32> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(|e| query_error(&e))?;
    let num: i32 = row.get(0);
    Ok((num / 10000) as u32)
}

/// Find `tool` and make sure it is not older than the server (pg_dump refuses then anyway, but
/// with a message that does not say what to install).
async fn checked_tool(tool: &str, server: Option<u32>) -> HostResult<PathBuf> {
    let path = tools::find_tool(&[tool], CLIENT_PACKAGE)?;
    if let Some(server) = server {
        let mut cmd = tools::command(&path);
        cmd.arg("--version");
        let out = tools::run_output(cmd, &path, |e| {
            HostError::new(
                ErrorKind::MissingTool,
                format!("{tool} --version failed: {e}"),
            )
        })
        .await?;
        if let Some(mine) = tools::major_version(&out) {
            if mine < server {
                return Err(HostError::new(
                    ErrorKind::MissingTool,
                    format!(
                        "{tool} {mine} ({}) is older than the server (PostgreSQL {server}): install the Debian package postgresql-client-{server} (from apt.postgresql.org if your release lacks it) and put it first in PATH",
                        path.display()
                    ),
                ));
            }
        }
    }
    Ok(path)
}

fn tool_failure(tool: &str, url: &ServerUrl, stderr: &str) -> HostError {
    let lower = stderr.to_ascii_lowercase();
    let kind = if lower.contains("password authentication failed")
        || lower.contains("no password supplied")
    {
        ErrorKind::Auth
    } else if lower.contains("could not connect")
        || lower.contains("connection refused")
        || lower.contains("timeout")
    {
        ErrorKind::Network
    } else if lower.contains("server version mismatch") {
        ErrorKind::MissingTool
    } else {
        ErrorKind::Server
    };
    let stderr = if stderr.is_empty() {
        "(no error output)"
    } else {
        stderr
    };
    HostError::new(
        kind,
        format!("{tool} failed for {}: {stderr}", url.without_password()),
    )
}
