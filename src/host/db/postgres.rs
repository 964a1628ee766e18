//! PostgreSQL: dumps and restores through the system's pg_dump / psql / pg_restore (the dump is
//! exactly what people restore today), queries and maintenance through tokio-postgres.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio_postgres::Client;

use super::dump_file::{self, DumpReport, DumpWriter};
use super::options::*;
use super::pg_conn::{connect, query_error};
use super::pg_values::{row_to_json, Param};
use super::tools;
use super::url::{quote_ident, ServerUrl};
use crate::engine::ctx::RunCtx;
use crate::host::error::{ErrorKind, HostError, HostResult};

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
        ErrorKind::PermissionDenied
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

// ---------------------------------------------------------------------------------------------
// dump

pub async fn dump(ctx: &RunCtx, raw_url: &str, opts: DumpOptions) -> HostResult<DumpReport> {
    let url = ServerUrl::parse(raw_url)?;
    let format = opts.format.clone().unwrap_or_else(|| "plain".into());
    let gzip = dump_file::gzip_level(&opts.compress)?;
    let ext = match (format.as_str(), gzip) {
        ("plain", Some(_)) => ".sql.gz",
        ("plain", None) => ".sql",
        ("custom", _) => ".dump",
        ("directory", _) => ".dir",
        (other, _) => {
            return Err(HostError::invalid(format!(
            "dump_db: format {other:?} is not valid (use \"plain\", \"custom\" or \"directory\")"
        )))
        }
    };
    if opts.schema_only && opts.data_only {
        return Err(HostError::invalid(
            "dump_db: schema_only and data_only exclude each other",
        ));
    }
    let sanity = opts.sanity()?;
    let dest = dump_file::destination(opts.to.as_deref(), &url.database, ext);
    let dest = ctx.policy.check_write(&dest)?;
    let pg_dump = tools::find_tool(&["pg_dump"], CLIENT_PACKAGE)?;
    let client = connect(&url).await?;
    let server = server_major(&client).await?;
    drop(client);
    let pg_dump = checked_tool(pg_dump.to_str().unwrap_or("pg_dump"), Some(server)).await?;
    if ctx.dry_run {
        return Ok(dump_file::dry_run_report(&dest, &format));
    }

    let mut cmd = tools::command(&pg_dump);
    libpq_env(&mut cmd, &url);
    cmd.arg("--no-password")
        .arg(format!("--dbname={}", tool_dsn(&url)));
    cmd.arg(format!("--format={}", &format[..1]));
    for t in &opts.tables {
        cmd.arg(format!("--table={t}"));
    }
    for t in &opts.exclude_tables {
        cmd.arg(format!("--exclude-table={t}"));
    }
    if opts.schema_only {
        cmd.arg("--schema-only");
    }
    if opts.data_only {
        cmd.arg("--data-only");
    }
    if format != "plain" {
        cmd.arg(format!("--compress={}", gzip.unwrap_or(0)));
    }
    if format == "directory" {
        return dump_directory(cmd, &pg_dump, &url, &dest, &opts, &sanity).await;
    }
    cmd.stdout(Stdio::piped());
    let mut child = tools::spawn(&mut cmd, &pg_dump)?;
    let stderr = tools::drain_stderr(&mut child);
    let out = tools::stdout_file(&mut child)?;
    // pg_dump's own compression already did the work for custom format.
    let level = if format == "plain" { gzip } else { None };
    let writer = dump_file::write_from(out, dest.clone(), level, opts.threads);
    let finished = tools::wait_with(child, stderr, writer, "pg_dump", |err| {
        tool_failure("pg_dump", &url, err)
    })
    .await?;
    if format == "plain" {
        let tail = String::from_utf8_lossy(&finished.tail);
        if !tail.contains("PostgreSQL database dump complete") {
            return Err(HostError::verification(
                "pg_dump exited 0 but its output lacks the \"dump complete\" trailer: the dump is truncated",
            ));
        }
    } else {
        verify_archive(finished.tmp_path(), &url).await?;
    }
    let report = tokio::task::spawn_blocking(move || finished.commit(&sanity, &format))
        .await
        .map_err(|e| HostError::other(format!("commit failed: {e}")))??;
    tracing::info!(target: "mtn::db", path = %report.path, bytes = report.bytes, raw_bytes = report.raw_bytes, "PostgreSQL dump written");
    Ok(report)
}

/// A custom or directory archive must be readable by pg_restore.
async fn verify_archive(path: &Path, url: &ServerUrl) -> HostResult<()> {
    let pg_restore = checked_tool("pg_restore", None).await?;
    let mut cmd = tools::command(&pg_restore);
    cmd.arg("--list").arg(path);
    let out = tools::run_output(cmd, &pg_restore, |e| {
        HostError::verification(format!(
            "pg_restore --list rejects the new dump of {}: {e}",
            url.database
        ))
    })
    .await?;
    if !out.contains("TOC Entries") {
        return Err(HostError::verification(
            "pg_restore --list shows no table of contents",
        ));
    }
    Ok(())
}

async fn dump_directory(
    mut cmd: tokio::process::Command,
    pg_dump: &Path,
    url: &ServerUrl,
    dest: &Path,
    opts: &DumpOptions,
    sanity: &dump_file::Sanity,
) -> HostResult<DumpReport> {
    let started = Instant::now();
    if let Some(p) = dest.parent() {
        std::fs::create_dir_all(p)
            .map_err(|e| HostError::io(format!("creating {}", p.display()), &e))?;
    }
    // pg_dump creates the folder itself: it gets a path inside a private 0700 folder with a
    // random name, removed unless committed.
    let staging = crate::atomic::TempDir::create(dest).map_err(|e| {
        HostError::io(
            format!("creating a temporary folder next to {}", dest.display()),
            &e,
        )
    })?;
    let tmp = staging.inner().to_path_buf();
    cmd.arg(format!("--jobs={}", opts.jobs.unwrap_or(2).max(1)))
        .arg(format!("--file={}", tmp.display()));
    let mut child = tools::spawn(&mut cmd, pg_dump)?;
    let stderr = tools::drain_stderr(&mut child);
    tools::wait(child, stderr, "pg_dump", |err| {
        tool_failure("pg_dump", url, err)
    })
    .await?;
    verify_archive(&tmp, url).await?;
    let mut lines = String::new();
    let mut bytes = 0u64;
    let mut entries: Vec<_> = std::fs::read_dir(&tmp)
        .map_err(|e| HostError::io(format!("reading {}", tmp.display()), &e))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (n, h) = crate::atomic::sha256_file(&e.path())
            .map_err(|err| HostError::io(format!("hashing {}", e.path().display()), &err))?;
        bytes += n;
        lines.push_str(&format!("{h}  {}\n", e.file_name().to_string_lossy()));
    }
    sanity.check(dest, bytes)?;
    staging
        .commit()
        .map_err(|e| HostError::io(format!("renaming to {}", dest.display()), &e))?;
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(lines.as_bytes()))
    };
    let mut side = dest.file_name().unwrap_or_default().to_os_string();
    side.push(".sha256");
    crate::atomic::write_atomic(&dest.with_file_name(side), lines.as_bytes())
        .map_err(|e| HostError::io("writing sidecar", &e))?;
    Ok(DumpReport {
        path: dest.display().to_string(),
        bytes,
        raw_bytes: bytes,
        sha256: digest,
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: false,
        format: "directory".into(),
    })
}

// ---------------------------------------------------------------------------------------------
// restore

async fn database_exists(admin: &Client, name: &str) -> HostResult<bool> {
    let row = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .map_err(|e| query_error(&e))?;
    Ok(row.get::<_, i64>(0) > 0)
}

/// A connection to the server's maintenance database (to create and drop others).
pub async fn admin_connect(url: &ServerUrl) -> HostResult<Client> {
    match connect(&url.with_database("postgres")).await {
        Ok(c) => Ok(c),
        Err(e) if e.kind == ErrorKind::NotFound => connect(&url.with_database("template1")).await,
        Err(e) => Err(e),
    }
}

pub async fn create_database(admin: &Client, name: &str) -> HostResult<()> {
    admin
        .batch_execute(&format!("CREATE DATABASE {}", q(name)))
        .await
        .map_err(|e| query_error(&e).context(format!("creating database {name}")))
}

pub async fn drop_database(admin: &Client, name: &str) -> HostResult<()> {
    let force = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", q(name));
    match admin.batch_execute(&force).await {
        Ok(()) => Ok(()),
        // Before PostgreSQL 13 there is no FORCE: end the sessions ourselves.
        Err(e) if e.code().map(|c| c.code()) == Some("42601") => {
            let _ = admin
                .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", &[&name])
                .await;
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {}", q(name)))
                .await
                .map_err(|e| query_error(&e).context(format!("dropping database {name}")))
        }
        Err(e) => Err(query_error(&e).context(format!("dropping database {name}"))),
    }
}

async fn user_tables(client: &Client) -> HostResult<i64> {
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','p','v','m','S') AND n.nspname NOT IN ('pg_catalog','information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'",
            &[],
        )
        .await
        .map_err(|e| query_error(&e))?;
    Ok(row.get(0))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Archive {
    Plain,
    Custom,
    Directory,
}

fn archive_kind(dump: &Path) -> HostResult<Archive> {
    if dump.is_dir() {
        if dump.join("toc.dat").exists() {
            return Ok(Archive::Directory);
        }
        return Err(HostError::invalid(format!(
            "{} is a directory without toc.dat: not a pg_dump directory archive",
            dump.display()
        )));
    }
    let head = dump_file::sniff(dump)?;
    if head.starts_with(b"PGDMP") {
        Ok(Archive::Custom)
    } else if head.starts_with(b"SQLite format 3") {
        Err(HostError::invalid(format!(
            "{} is an SQLite database: restore it with a sqlite:// URL",
            dump.display()
        )))
    } else {
        Ok(Archive::Plain)
    }
}

/// Prepare the target database: create it (create: true), refuse a non-empty one unless
/// clean: true (then drop and recreate it).
async fn prepare_target(url: &ServerUrl, opts: &RestoreOptions, dry_run: bool) -> HostResult<()> {
    let admin = admin_connect(url).await?;
    let exists = database_exists(&admin, &url.database).await?;
    if !exists {
        if !opts.create {
            return Err(HostError::not_found(format!(
                "restore_db: database {:?} does not exist on {} (pass create: true to create it)",
                url.database,
                url.endpoint()
            )));
        }
        if !dry_run {
            create_database(&admin, &url.database).await?;
        }
        return Ok(());
    }
    let target = connect(url).await?;
    let n = user_tables(&target).await?;
    drop(target);
    if n > 0 {
        if !opts.clean {
            return Err(HostError::refused(format!(
                "restore_db: database {:?} on {} is not empty ({n} tables, views or sequences); pass clean: true to drop and recreate it",
                url.database,
                url.endpoint()
            )));
        }
        if !dry_run {
            drop_database(&admin, &url.database).await?;
            create_database(&admin, &url.database).await?;
        }
    }
    Ok(())
}

pub async fn restore(
    ctx: &RunCtx,
    dump: &Path,
    raw_url: &str,
    opts: RestoreOptions,
) -> HostResult<RestoreReport> {
    let started = Instant::now();
    let url = ServerUrl::parse(raw_url)?;
    let kind = archive_kind(dump)?;
    let dump_bytes = std::fs::metadata(dump).map(|m| m.len()).unwrap_or(0);
    let tool = if kind == Archive::Plain {
        "psql"
    } else {
        "pg_restore"
    };
    let tool_path = checked_tool(tool, None).await?;
    prepare_target(&url, &opts, ctx.dry_run).await?;
    let format = match kind {
        Archive::Plain => "plain",
        Archive::Custom => "custom",
        Archive::Directory => "directory",
    };
    if !ctx.dry_run {
        let mut cmd = tools::command(&tool_path);
        libpq_env(&mut cmd, &url);
        if kind == Archive::Plain {
            cmd.args([
                "-X",
                "-q",
                "--no-password",
                "-v",
                "ON_ERROR_STOP=1",
                "--single-transaction",
            ])
            .arg(format!("--dbname={}", tool_dsn(&url)))
            .stdin(Stdio::piped());
            let mut child = tools::spawn(&mut cmd, &tool_path)?;
            let stderr = tools::drain_stderr(&mut child);
            let feeder = dump_file::feed(dump, tools::stdin_file(&mut child)?);
            tools::wait_with(child, stderr, feeder, "psql", |err| {
                tool_failure("psql", &url, err)
            })
            .await?;
        } else {
            cmd.args(["--no-password", "--exit-on-error"])
                .arg(format!("--dbname={}", tool_dsn(&url)));
            if opts.no_owner {
                cmd.arg("--no-owner");
            }
            if let Some(j) = opts.jobs {
                cmd.arg(format!("--jobs={}", j.max(1)));
            }
            cmd.arg(dump);
            let mut child = tools::spawn(&mut cmd, &tool_path)?;
            let stderr = tools::drain_stderr(&mut child);
            tools::wait(child, stderr, "pg_restore", |err| {
                tool_failure("pg_restore", &url, err)
            })
            .await?;
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

// ---------------------------------------------------------------------------------------------
// queries

fn params_of(params: &[Value]) -> Vec<Param> {
    params.iter().cloned().map(Param).collect()
}

pub async fn query(
    raw_url: &str,
    sql: &str,
    params: &[Value],
) -> HostResult<Vec<Map<String, Value>>> {
    let url = ServerUrl::parse(raw_url)?;
    let client = connect(&url).await?;
    query_on(&client, sql, params).await
}

pub async fn query_on(
    client: &Client,
    sql: &str,
    params: &[Value],
) -> HostResult<Vec<Map<String, Value>>> {
    let ps = params_of(params);
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = ps.iter().map(|p| p as _).collect();
    let rows = client
        .query(sql, &refs)
        .await
        .map_err(|e| param_or_query_error(&e))?;
    rows.iter().map(row_to_json).collect()
}

fn param_or_query_error(e: &tokio_postgres::Error) -> HostError {
    if e.as_db_error().is_none() {
        if let Some(src) = std::error::Error::source(e) {
            return HostError::invalid(crate::redact::redact(&format!("{e}: {src}")));
        }
    }
    query_error(e)
}

pub async fn exec(raw_url: &str, sql: &str, params: &[Value], dry_run: bool) -> HostResult<u64> {
    let url = ServerUrl::parse(raw_url)?;
    let client = connect(&url).await?;
    if dry_run {
        // Check the statement (it must parse and plan) without running it.
        if params.is_empty() && sql.contains(';') {
            return Ok(0);
        }
        client.prepare(sql).await.map_err(|e| query_error(&e))?;
        return Ok(0);
    }
    if params.is_empty() {
        // simple_query runs several statements and still reports row counts.
        let msgs = client
            .simple_query(sql)
            .await
            .map_err(|e| query_error(&e))?;
        return Ok(msgs
            .iter()
            .map(|m| match m {
                tokio_postgres::SimpleQueryMessage::CommandComplete(n) => *n,
                _ => 0,
            })
            .sum());
    }
    let ps = params_of(params);
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = ps.iter().map(|p| p as _).collect();
    client
        .execute(sql, &refs)
        .await
        .map_err(|e| param_or_query_error(&e))
}

// ---------------------------------------------------------------------------------------------
// maintenance

async fn db_size(client: &Client) -> HostResult<u64> {
    let row = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await
        .map_err(|e| query_error(&e))?;
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

pub async fn vacuum(ctx: &RunCtx, raw_url: &str, opts: VacuumOptions) -> HostResult<VacuumReport> {
    let started = Instant::now();
    let url = ServerUrl::parse(raw_url)?;
    let client = connect(&url).await?;
    let before = db_size(&client).await?;
    let mut flags = Vec::new();
    if opts.full {
        flags.push("FULL");
    }
    if opts.analyze.unwrap_or(true) {
        flags.push("ANALYZE");
    }
    let head = if flags.is_empty() {
        "VACUUM".to_string()
    } else {
        format!("VACUUM ({})", flags.join(", "))
    };
    let targets: Vec<String> = if opts.tables.is_empty() {
        vec![String::new()]
    } else {
        opts.tables.iter().map(|t| q(t)).collect()
    };
    if !ctx.dry_run {
        for t in &targets {
            client
                .batch_execute(&format!("{head} {t}"))
                .await
                .map_err(|e| query_error(&e).context(format!("{head} {t}").trim().to_string()))?;
        }
    }
    let after = db_size(&client).await?;
    Ok(VacuumReport {
        database: url.database.clone(),
        size_before: before,
        size_after: after,
        tables: opts.tables.clone(),
        integrity: String::new(),
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: ctx.dry_run,
    })
}

#[derive(Debug, Serialize)]
pub struct PgStats {
    pub engine: &'static str,
    pub database: String,
    pub server_version: String,
    pub size_bytes: u64,
    pub connections: i64,
    pub max_connections: i64,
    pub long_running: Vec<Map<String, Value>>,
    pub largest_tables: Vec<Map<String, Value>>,
    pub dead_tuples: i64,
}

pub async fn stats(raw_url: &str, opts: StatsOptions) -> HostResult<PgStats> {
    let url = ServerUrl::parse(raw_url)?;
    let c = connect(&url).await?;
    let one = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.map_err(|e| query_error(&e)) }
    };
    let version: String = one("SELECT current_setting('server_version')")
        .await?
        .get(0);
    let connections: i64 =
        one("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            .await?
            .get(0);
    let max_connections: i32 = one("SELECT current_setting('max_connections')::int4")
        .await?
        .get(0);
    let dead: i64 = one("SELECT coalesce(sum(n_dead_tup), 0)::int8 FROM pg_stat_user_tables")
        .await?
        .get(0);
    let threshold = opts.threshold().as_secs_f64();
    let long_running = query_on(
        &c,
        "SELECT pid, usename AS user, state, extract(epoch FROM now() - query_start)::float8 AS seconds, \
         left(query, 500) AS query FROM pg_stat_activity \
         WHERE state <> 'idle' AND pid <> pg_backend_pid() AND query_start < now() - make_interval(secs => $1::float8) \
         ORDER BY query_start",
        &[Value::from(threshold)],
    )
    .await?;
    let largest_tables = query_on(
        &c,
        "SELECT schemaname || '.' || relname AS table, pg_total_relation_size(relid)::int8 AS bytes, \
         n_live_tup::int8 AS rows, n_dead_tup::int8 AS dead_tuples, \
         greatest(last_vacuum, last_autovacuum) AS last_vacuum, greatest(last_analyze, last_autoanalyze) AS last_analyze \
         FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC LIMIT $1::int8",
        &[Value::from(opts.top() as i64)],
    )
    .await?;
    Ok(PgStats {
        engine: "postgres",
        database: url.database.clone(),
        server_version: version,
        size_bytes: db_size(&c).await?,
        connections,
        max_connections: max_connections as i64,
        long_running,
        largest_tables,
        dead_tuples: dead,
    })
}

pub async fn delete_older(
    ctx: &RunCtx,
    raw_url: &str,
    table: &str,
    column: &str,
    age: Duration,
    opts: DeleteOptions,
) -> HostResult<DeleteReport> {
    let started = Instant::now();
    let url = ServerUrl::parse(raw_url)?;
    let c = connect(&url).await?;
    let (t, col) = (q(table), q(column));
    let secs = age.as_secs_f64();
    let cond = format!("{col} < now() - make_interval(secs => $1::float8)");
    let count_sql = format!("SELECT count(*) FROM {t} WHERE {cond}");
    let matching_now = c
        .query_one(count_sql.as_str(), &[&secs])
        .await
        .map(|r| r.get::<_, i64>(0).max(0) as u64)
        .map_err(|e| query_error(&e).context(format!("delete_rows_older_than {table}.{column}")))?;
    if ctx.dry_run {
        return Ok(DeleteReport {
            table: table.into(),
            deleted: 0,
            batches: 0,
            matching: matching_now,
            duration_ms: started.elapsed().as_millis() as u64,
            dry_run: true,
        });
    }
    // ctid batches: each DELETE is its own short transaction, so no long lock is held.
    let del = format!(
        "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE {cond} LIMIT $2::int8))"
    );
    let stmt = c.prepare(&del).await.map_err(|e| query_error(&e))?;
    let batch = opts.batch();
    let (mut deleted, mut batches) = (0u64, 0u64);
    loop {
        let n = c
            .execute(&stmt, &[&secs, &(batch as i64)])
            .await
            .map_err(|e| {
                query_error(&e).context(format!("deleting from {table} (after {deleted} rows)"))
            })?;
        deleted += n;
        if n > 0 {
            batches += 1;
        }
        tracing::debug!(target: "mtn::db", table, batch = batches, rows = n, "deleted batch");
        if n < batch || opts.max_batches.is_some_and(|m| batches >= m) {
            break;
        }
        tokio::time::sleep(opts.pause()).await;
    }
    let left = c
        .query_one(count_sql.as_str(), &[&secs])
        .await
        .map(|r| r.get::<_, i64>(0).max(0) as u64)
        .map_err(|e| query_error(&e))?;
    Ok(DeleteReport {
        table: table.into(),
        deleted,
        batches,
        matching: left,
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: false,
    })
}

// ---------------------------------------------------------------------------------------------
// export

pub async fn export(
    ctx: &RunCtx,
    raw_url: &str,
    table: &str,
    to: &str,
    opts: ExportOptions,
) -> HostResult<ExportReport> {
    let started = Instant::now();
    let url = ServerUrl::parse(raw_url)?;
    let format = opts.format()?;
    let gzip = opts.gzip(to)?;
    let dest = ctx.policy.check_write(Path::new(to))?;
    let c = connect(&url).await?;
    let t = q(table);
    let sql = match format {
        ExportFormat::Csv => format!(
            "COPY (SELECT * FROM {t}{}) TO STDOUT WITH (FORMAT csv, HEADER true)",
            opts.where_clause()
        ),
        ExportFormat::Jsonl => format!(
            "COPY (SELECT row_to_json(x)::text FROM {t} x{}) TO STDOUT",
            opts.where_clause()
        ),
    };
    // Plan it even in dry-run so a wrong table name shows up.
    let stream = c
        .copy_out(sql.as_str())
        .await
        .map_err(|e| query_error(&e).context(format!("export_table {table}")))?;
    if ctx.dry_run {
        return Ok(ExportReport {
            path: dest.display().to_string(),
            rows: 0,
            bytes: 0,
            sha256: String::new(),
            duration_ms: 0,
            dry_run: true,
        });
    }
    let mut w = DumpWriter::create(&dest, gzip, None)?;
    let mut counter = RowCounter::new(format);
    futures::pin_mut!(stream);
    use std::io::Write;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| query_error(&e).context(format!("export_table {table}")))?;
        let data = counter.feed(&chunk);
        w.write_all(&data)
            .map_err(|e| HostError::io(format!("writing {}", dest.display()), &e))?;
    }
    let rows = counter.rows();
    let finished = w
        .finish()
        .map_err(|e| HostError::io(format!("writing {}", dest.display()), &e))?;
    let r = finished.commit(&dump_file::Sanity::default(), "export")?;
    Ok(ExportReport {
        path: r.path,
        rows,
        bytes: r.bytes,
        sha256: r.sha256,
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: false,
    })
}

/// Counts rows in COPY output and, for jsonl, undoes COPY's text-format escaping.
struct RowCounter {
    format: ExportFormat,
    lines: u64,
    in_quotes: bool,
    pending_escape: bool,
}

impl RowCounter {
    fn new(format: ExportFormat) -> Self {
        RowCounter {
            format,
            lines: 0,
            in_quotes: false,
            pending_escape: false,
        }
    }
    fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        match self.format {
            ExportFormat::Csv => {
                for &b in data {
                    match b {
                        b'"' => self.in_quotes = !self.in_quotes,
                        b'\n' if !self.in_quotes => self.lines += 1,
                        _ => {}
                    }
                }
                data.to_vec()
            }
            ExportFormat::Jsonl => {
                let mut out = Vec::with_capacity(data.len());
                for &b in data {
                    if self.pending_escape {
                        self.pending_escape = false;
                        out.push(match b {
                            b'n' => b'\n',
                            b't' => b'\t',
                            b'r' => b'\r',
                            b'b' => 8,
                            b'f' => 12,
                            b'v' => 11,
                            other => other,
                        });
                    } else if b == b'\\' {
                        self.pending_escape = true;
                    } else {
                        if b == b'\n' {
                            self.lines += 1;
                        }
                        out.push(b);
                    }
                }
                out
            }
        }
    }
    fn rows(&self) -> u64 {
        match self.format {
            ExportFormat::Csv => self.lines.saturating_sub(1),
            ExportFormat::Jsonl => self.lines,
        }
    }
}
