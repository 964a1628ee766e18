//! PostgreSQL inside a container: `dump_db` and `restore_db` run the container's own pg_dump,
//! psql and pg_restore through the engine's exec API, so the tool always matches the server's
//! major version (no postgresql-client-NN on the host). The bytes go through the same path as a
//! host dump (`db/in_container.rs`, shared with MariaDB/MySQL).
//!
//! Plain and custom formats only: a directory archive is a folder the container's tools would
//! have to write inside the container.

use std::path::Path;

use super::dump::{check_trailer, dump_args, server_version};
use super::restore::{prepare_target, restore_args, Archive};
use super::tool_failure;
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::container::db::Target;
use crate::host::db::dump_file::{self, DumpReport};
use crate::host::db::in_container::{self, Exit, Tool};
use crate::host::db::options::*;
use crate::host::db::server_dump::{self, DumpPlan};
use crate::host::db::url::ServerUrl;

/// The URL the container's tools use (its own loopback, same port), without the password.
fn inner_dsn(url: &ServerUrl, c: &Target) -> HostResult<String> {
    let mut u = url.url.clone();
    u.set_host(Some(&c.inner_host))
        .map_err(|e| HostError::invalid(format!("container address {}: {e}", c.inner_host)))?;
    let _ = u.set_password(None);
    Ok(u.to_string())
}

/// libpq's environment for the exec: the password travels here, never in the arguments.
fn inner_env(url: &ServerUrl) -> Vec<String> {
    let mut env = Vec::new();
    if let Some(pw) = &url.password {
        env.push(format!("PGPASSWORD={pw}"));
    }
    if url.query_param("connect_timeout").is_none() {
        env.push("PGCONNECT_TIMEOUT=10".into());
    }
    env
}

fn tool<'a>(c: &'a Target, url: &ServerUrl, cmd: Vec<String>) -> Tool<'a> {
    Tool {
        container: c,
        cmd,
        env: inner_env(url),
    }
}

/// A failed tool: its stderr, and the container named.
fn failure(tool: &str, url: &ServerUrl, c: &Target, exit: &Exit) -> HostError {
    tool_failure(
        &format!("{tool} (in container {})", c.name),
        url,
        &exit.reason(),
    )
}

pub async fn dump(
    ctx: &RunCtx,
    plan: DumpPlan,
    opts: DumpOptions,
    c: &Target,
) -> HostResult<DumpReport> {
    let (url, format, codec) = (&plan.url, plan.format, plan.codec);
    if format == "directory" {
        return Err(HostError::invalid(format!(
            "the directory format is not available for a database in container {} (use \"plain\" or \"custom\")",
            c.name
        )));
    }
    // The server answers on the container's address: the same check a host dump makes.
    let server = server_version(url).await?;
    tracing::debug!(target: "mtn::db", "PostgreSQL {server} in container {}", c.name);
    if ctx.dry_run {
        return Ok(dump_file::dry_run_report(&plan.dest, &format));
    }
    let mut cmd = vec!["pg_dump".to_string()];
    cmd.extend(dump_args(&opts, &format, codec, &inner_dsn(url, c)?));
    let level = if format == "plain" { codec } else { None };
    let (exit, written) =
        in_container::dump_to(tool(c, url, cmd), plan.dest, level, opts.threads).await?;
    if exit.code != 0 {
        return Err(failure("pg_dump", url, c, &exit));
    }
    let finished = written?;
    if format == "plain" {
        check_trailer(&finished)?;
    } else {
        verify_archive(c, url, finished.tmp_path()).await?;
    }
    let report = server_dump::commit(finished, plan.sanity, format).await?;
    tracing::info!(target: "mtn::db", path = %report.path, bytes = report.bytes, raw_bytes = report.raw_bytes, container = %c.name, "PostgreSQL dump written (tools of the container)");
    Ok(report)
}

/// A custom archive must be readable by the container's pg_restore (the host's may be older).
async fn verify_archive(c: &Target, url: &ServerUrl, path: &Path) -> HostResult<()> {
    let cmd = vec!["pg_restore".to_string(), "--list".to_string()];
    let (exit, out) = in_container::run_fed(tool(c, url, cmd), path).await?;
    if exit.code != 0 {
        return Err(HostError::verification(format!(
            "pg_restore --list (in container {}) rejects the new dump of {}: {}",
            c.name,
            url.database,
            exit.reason()
        )));
    }
    if !String::from_utf8_lossy(&out).contains("TOC Entries") {
        return Err(HostError::verification(
            "pg_restore --list shows no table of contents",
        ));
    }
    Ok(())
}

/// Restore `dump` (an archive of `kind`) through the container's own psql or pg_restore.
pub(super) async fn restore(
    ctx: &RunCtx,
    dump: &Path,
    url: &ServerUrl,
    kind: Archive,
    opts: &RestoreOptions,
    c: &Target,
) -> HostResult<()> {
    if kind == Archive::Directory {
        return Err(HostError::invalid(format!(
            "a directory archive cannot be restored into container {} (dump it with format \"plain\" or \"custom\")",
            c.name
        )));
    }
    if opts.jobs.is_some_and(|j| j > 1) {
        return Err(HostError::invalid(format!(
            "jobs needs a file pg_restore can seek in; the dump reaches container {} as a stream (leave jobs unset)",
            c.name
        )));
    }
    prepare_target(url, opts, ctx.dry_run).await?;
    if !ctx.dry_run {
        let (name, args) = restore_args(kind, opts, &inner_dsn(url, c)?);
        let mut cmd = vec![name.to_string()];
        cmd.extend(args);
        let (exit, _) = in_container::run_fed(tool(c, url, cmd), dump).await?;
        if exit.code != 0 {
            return Err(failure(name, url, c, &exit));
        }
    }
    Ok(())
}
