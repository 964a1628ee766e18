//! PostgreSQL inside a container: `dump_db` and `restore_db` run the container's own pg_dump,
//! psql and pg_restore through the engine's exec API, so the tool always matches the server's
//! major version (no postgresql-client-NN on the host). The bytes go through the same path as a
//! host dump: the exec's stdout is piped into the parallel-gzip writer (temporary name, fsync,
//! rename, `.sha256`), and a restore's dump is fed into the exec's stdin.
//!
//! Plain and custom formats only: a directory archive is a folder the container's tools would
//! have to write inside the container.

use std::path::Path;
use std::time::Instant;

use super::dump::{dump_args, extension};
use super::restore::{archive_kind, prepare_target, Archive};
use super::{server_major, tool_failure};
use crate::engine::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::container::db::Target;
use crate::host::container::process::{self, AbortOnDrop, Spec};
use crate::host::db::dump_file::{self, DumpReport};
use crate::host::db::options::*;
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

fn spec<'a>(c: &'a Target, url: &ServerUrl, cmd: Vec<String>, stdin: bool) -> Spec<'a> {
    Spec {
        container: &c.name,
        cmd,
        env: inner_env(url),
        user: None,
        workdir: None,
        stdin,
    }
}

/// A failed tool: its stderr, and the container named.
fn failure(tool: &str, url: &ServerUrl, c: &Target, code: i64, stderr: &str) -> HostError {
    let stderr = if stderr.is_empty() {
        format!("exited with code {code}")
    } else {
        stderr.to_string()
    };
    tool_failure(&format!("{tool} (in container {})", c.name), url, &stderr)
}

pub async fn dump(
    ctx: &RunCtx,
    raw_url: &str,
    opts: DumpOptions,
    c: &Target,
) -> HostResult<DumpReport> {
    let url = ServerUrl::parse(raw_url)?;
    let format = opts.format.clone().unwrap_or_else(|| "plain".into());
    let codec = dump_file::codec_of(&opts.compress)?;
    let ext = extension(&format, codec)?;
    let ext = ext.as_str();
    if format == "directory" {
        return Err(HostError::invalid(format!(
            "the directory format is not available for a database in container {} (use \"plain\" or \"custom\")",
            c.name
        )));
    }
    if opts.schema_only && opts.data_only {
        return Err(HostError::invalid(
            "schema_only and data_only exclude each other",
        ));
    }
    let sanity = opts.sanity()?;
    let dest = dump_file::destination(opts.to.as_deref(), &url.database, ext);
    let dest = ctx.policy.check_write(&dest)?;
    // The server answers on the container's address: the same check a host dump makes.
    let client = super::conn::connect(&url).await?;
    let server = server_major(&client).await?;
    drop(client);
    tracing::debug!(target: "mtn::db", "PostgreSQL {server} in container {}", c.name);
    if ctx.dry_run {
        return Ok(dump_file::dry_run_report(&dest, &format));
    }
    let mut cmd = vec!["pg_dump".to_string()];
    cmd.extend(dump_args(&opts, &format, codec, &inner_dsn(&url, c)?));
    let mut running = process::start(spec(c, &url, cmd, false)).await?;
    let (out, pump) = running.stdout_file()?;
    let pump = AbortOnDrop::new(pump);
    let level = if format == "plain" { codec } else { None };
    let writer = dump_file::write_from(out, dest.clone(), level, opts.threads);
    let written = writer
        .await
        .map_err(|e| HostError::other(format!("the thread writing the dump failed: {e}")));
    let stderr = pump.join("reading pg_dump's output").await??;
    let code = running.exit_code().await?;
    if code != 0 {
        return Err(failure("pg_dump", &url, c, code, &stderr));
    }
    let finished = written??;
    if format == "plain" {
        let tail = String::from_utf8_lossy(&finished.tail);
        if !tail.contains("PostgreSQL database dump complete") {
            return Err(HostError::verification(
                "pg_dump exited 0 but its output lacks the \"dump complete\" trailer: the dump is truncated",
            ));
        }
    } else {
        verify_archive(c, &url, finished.tmp_path()).await?;
    }
    let report = tokio::task::spawn_blocking(move || finished.commit(&sanity, &format))
        .await
        .map_err(|e| HostError::other(format!("commit failed: {e}")))??;
    tracing::info!(target: "mtn::db", path = %report.path, bytes = report.bytes, raw_bytes = report.raw_bytes, container = %c.name, "PostgreSQL dump written (tools of the container)");
    Ok(report)
}

/// Run a tool in the container with `input` fed to its stdin; returns (exit code, stdout, stderr).
async fn run_fed(
    c: &Target,
    url: &ServerUrl,
    cmd: Vec<String>,
    input: &Path,
) -> HostResult<(i64, Vec<u8>, String)> {
    let mut running = process::start(spec(c, url, cmd, true)).await?;
    let (stdin, pump) = running.stdin_file()?;
    let _pump = AbortOnDrop::new(pump);
    let feeder = dump_file::feed(input, stdin);
    let (fed, collected) = tokio::join!(feeder, running.collect(1024 * 1024));
    let (out, err, _) = collected?;
    let code = running.exit_code().await?;
    fed.map_err(|e| HostError::other(format!("the thread feeding the dump failed: {e}")))??;
    Ok((
        code,
        out,
        crate::redact::redact(String::from_utf8_lossy(&err).trim()),
    ))
}

/// A custom archive must be readable by the container's pg_restore (the host's may be older).
async fn verify_archive(c: &Target, url: &ServerUrl, path: &Path) -> HostResult<()> {
    let cmd = vec!["pg_restore".to_string(), "--list".to_string()];
    let (code, out, err) = run_fed(c, url, cmd, path).await?;
    if code != 0 {
        return Err(HostError::verification(format!(
            "pg_restore --list (in container {}) rejects the new dump of {}: {err}",
            c.name, url.database
        )));
    }
    if !String::from_utf8_lossy(&out).contains("TOC Entries") {
        return Err(HostError::verification(
            "pg_restore --list shows no table of contents",
        ));
    }
    Ok(())
}

pub async fn restore(
    ctx: &RunCtx,
    dump: &Path,
    raw_url: &str,
    opts: RestoreOptions,
    c: &Target,
) -> HostResult<RestoreReport> {
    let started = Instant::now();
    let url = ServerUrl::parse(raw_url)?;
    let kind = archive_kind(dump)?;
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
    let dump_bytes = std::fs::metadata(dump).map(|m| m.len()).unwrap_or(0);
    prepare_target(&url, &opts, ctx.dry_run).await?;
    let format = if kind == Archive::Plain {
        "plain"
    } else {
        "custom"
    };
    if !ctx.dry_run {
        let dsn = format!("--dbname={}", inner_dsn(&url, c)?);
        let (tool, cmd) = if kind == Archive::Plain {
            let mut cmd: Vec<String> = [
                "psql",
                "-X",
                "-q",
                "--no-password",
                "-v",
                "ON_ERROR_STOP=1",
                "--single-transaction",
            ]
            .map(String::from)
            .to_vec();
            cmd.push(dsn);
            ("psql", cmd)
        } else {
            let mut cmd: Vec<String> = ["pg_restore", "--no-password", "--exit-on-error"]
                .map(String::from)
                .to_vec();
            cmd.push(dsn);
            if opts.no_owner {
                cmd.push("--no-owner".into());
            }
            ("pg_restore", cmd)
        };
        let (code, _, err) = run_fed(c, &url, cmd, dump).await?;
        if code != 0 {
            return Err(failure(tool, &url, c, code, &err));
        }
    }
    Ok(RestoreReport {
        database: url.database.clone(),
        format: format.into(),
        dump_bytes,
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: ctx.dry_run,
    })
}
