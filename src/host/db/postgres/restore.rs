//! `restore_db` for PostgreSQL: plain dumps through psql, archives through pg_restore, into a
//! target that is created, or refused when not empty unless `clean`; and the create/drop of
//! databases that the restore drill's scratch databases use.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use tokio_postgres::Client;

use super::conn::{connect, query_error, PgClient};
use super::{checked_tool, libpq_env, q, tool_dsn, tool_failure};
use crate::ctx::RunCtx;
use crate::error::{ErrorKind, HostError, HostResult};
use crate::host::db::backend::ContainerTarget;
use crate::host::db::dump_file;
use crate::host::db::options::*;
use crate::host::db::restore_target::{self, TargetDb};
use crate::host::db::tools;
use crate::host::db::url::ServerUrl;

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
pub async fn admin_connect(url: &ServerUrl) -> HostResult<super::conn::PgClient> {
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
pub(super) enum Archive {
    Plain,
    Custom,
    Directory,
}

impl Archive {
    /// The restore report's `format`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Archive::Plain => "plain",
            Archive::Custom => "custom",
            Archive::Directory => "directory",
        }
    }
}

pub(super) fn archive_kind(dump: &Path) -> HostResult<Archive> {
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

/// The restore's target as PostgreSQL sees it: the database itself through the admin
/// connection, what it holds through a connection of its own.
struct RestoreTarget<'a> {
    admin: PgClient,
    url: &'a ServerUrl,
}

impl TargetDb for RestoreTarget<'_> {
    const OBJECTS: &'static str = "tables, views or sequences";
    async fn exists(&mut self) -> HostResult<bool> {
        database_exists(&self.admin, &self.url.database).await
    }
    async fn objects(&mut self) -> HostResult<i64> {
        let target = connect(self.url).await?;
        user_tables(&target).await
    }
    async fn create(&mut self) -> HostResult<()> {
        create_database(&self.admin, &self.url.database).await
    }
    async fn drop(&mut self) -> HostResult<()> {
        drop_database(&self.admin, &self.url.database).await
    }
}

/// Prepare the target database (see restore_target.rs).
pub(super) async fn prepare_target(
    url: &ServerUrl,
    opts: &RestoreOptions,
    dry_run: bool,
) -> HostResult<()> {
    let admin = admin_connect(url).await?;
    restore_target::prepare(url, opts, dry_run, &mut RestoreTarget { admin, url }).await
}

pub async fn restore(
    ctx: &RunCtx,
    dump: &Path,
    raw_url: &str,
    opts: RestoreOptions,
    container: Option<&ContainerTarget>,
) -> HostResult<RestoreReport> {
    let started = Instant::now();
    let url = ServerUrl::parse(raw_url)?;
    let kind = archive_kind(dump)?;
    match container {
        Some(c) => super::in_container::restore(ctx, dump, &url, kind, &opts, c).await?,
        None => restore_on_host(ctx, dump, &url, kind, &opts).await?,
    }
    Ok(RestoreReport::new(
        &url.database,
        kind.name(),
        dump,
        started,
        ctx.dry_run,
    ))
}

/// Restore `dump` (an archive of `kind`) with the host's psql or pg_restore.
async fn restore_on_host(
    ctx: &RunCtx,
    dump: &Path,
    url: &ServerUrl,
    kind: Archive,
    opts: &RestoreOptions,
) -> HostResult<()> {
    let (tool, args) = restore_args(kind, opts, &tool_dsn(url));
    let tool_path = checked_tool(tool, None).await?;
    prepare_target(url, opts, ctx.dry_run).await?;
    if !ctx.dry_run {
        let mut cmd = tools::command(&tool_path);
        libpq_env(&mut cmd, url);
        cmd.args(args);
        if kind == Archive::Plain {
            cmd.stdin(Stdio::piped());
            let mut child = tools::spawn(&mut cmd, &tool_path)?;
            let stderr = tools::drain_stderr(&mut child);
            let feeder = dump_file::feed(dump, tools::stdin_file(&mut child)?);
            tools::wait_with(child, stderr, feeder, tool, |err| {
                tool_failure(tool, url, err)
            })
            .await?;
        } else {
            // Only a file on the host can be read by several jobs.
            if let Some(j) = opts.jobs {
                cmd.arg(format!("--jobs={}", j.max(1)));
            }
            cmd.arg(dump);
            let mut child = tools::spawn(&mut cmd, &tool_path)?;
            let stderr = tools::drain_stderr(&mut child);
            tools::wait(child, stderr, tool, |err| tool_failure(tool, url, err)).await?;
        }
    }
    Ok(())
}

/// The tool that restores an archive of `kind` into `dsn` and its arguments (the same on the
/// host and in a container): psql in one transaction for a plain dump, pg_restore for an
/// archive. The dump itself is fed or named by the caller.
pub(super) fn restore_args(
    kind: Archive,
    opts: &RestoreOptions,
    dsn: &str,
) -> (&'static str, Vec<String>) {
    let dbname = format!("--dbname={dsn}");
    if kind == Archive::Plain {
        let mut a: Vec<String> = ["-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1"]
            .map(String::from)
            .to_vec();
        a.extend(["--single-transaction".into(), dbname]);
        return ("psql", a);
    }
    let mut a = vec!["--no-password".into(), "--exit-on-error".into(), dbname];
    if opts.no_owner {
        a.push("--no-owner".into());
    }
    ("pg_restore", a)
}
