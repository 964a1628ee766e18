//! MySQL and MariaDB. Dumps and restores go through their own command-line tools
//! (mariadb-dump/mysqldump and mariadb/mysql), so a dump is exactly what people restore today;
//! the password goes in a private defaults file (mode 0600, removed afterwards), never on the
//! command line, so `ps` does not show it. Queries and maintenance go through mysql_async with
//! real bind parameters (`conn`, `ops`).

pub mod conn;
mod in_container;
pub mod ops;

pub use ops::{
    create_database, database_exists, drop_database, exec, export, query, stats, vacuum, MyDelete,
};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use super::dump_file::{self, DumpReport, Finished, Sanity};
use super::options::*;
use super::restore_target::{self, TargetDb};
use super::server_dump::{self, DumpPlan};
use super::tools;
use super::url::{quote_ident, ServerUrl};
use crate::ctx::RunCtx;
use crate::error::{ErrorKind, HostError, HostResult};
use crate::host::container::db::Target;

const PACKAGE: &str = "mariadb-client";

fn q(name: &str) -> String {
    quote_ident(name, '`')
}

/// Client options for one tool invocation; holds the defaults file alive.
struct Client {
    _defaults: tempfile::NamedTempFile,
    args: Vec<String>,
}

fn client(url: &ServerUrl) -> HostResult<Client> {
    let mut f = tempfile::Builder::new()
        .prefix("mtn-my-")
        .suffix(".cnf")
        .tempfile()
        .map_err(|e| HostError::io("creating a private MySQL defaults file", &e))?;
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut text = String::from("[client]\n");
    if let Some(pw) = &url.password {
        text.push_str(&format!("password=\"{}\"\n", esc(pw)));
    }
    f.write_all(text.as_bytes())
        .and_then(|_| f.flush())
        .map_err(|e| HostError::io("writing the MySQL defaults file", &e))?;
    // --defaults-extra-file must come first.
    let mut args = vec![format!("--defaults-extra-file={}", f.path().display())];
    args.extend(conn_args(url, &url.host));
    Ok(Client { _defaults: f, args })
}

/// Where and as whom a client tool connects: `host` is the URL's, or the container's loopback for
/// the container's own tools (a `socket` in the URL is then a path inside the container).
fn conn_args(url: &ServerUrl, host: &str) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(s) = url.query_param("socket") {
        args.push(format!("--socket={s}"));
    } else {
        args.push(format!("--host={host}"));
        if host != "localhost" || url.port.is_some() {
            args.push("--protocol=TCP".into());
        }
    }
    if let Some(p) = url.port {
        args.push(format!("--port={p}"));
    }
    if let Some(u) = &url.user {
        args.push(format!("--user={u}"));
    }
    args
}

fn classify(url: &ServerUrl, tool: &str, stderr: &str) -> HostError {
    let who = url.user.clone().unwrap_or_default();
    let msg = if stderr.is_empty() {
        "(no error output)"
    } else {
        stderr
    };
    if msg.contains("1045") || msg.contains("Access denied") {
        HostError::new(
            ErrorKind::Auth,
            format!(
                "authentication failed for user {who} at {}: {msg}",
                url.endpoint()
            ),
        )
    } else if msg.contains("ERROR 2002")
        || msg.contains("ERROR 2003")
        || msg.contains("ERROR 2005")
        || msg.contains("2013")
        || msg.contains("Can't connect")
    {
        HostError::network(format!(
            "cannot connect to MySQL/MariaDB at {}: {msg}",
            url.endpoint()
        ))
    } else if msg.contains("1049") || msg.contains("Unknown database") {
        HostError::not_found(format!(
            "database {:?} does not exist on {}",
            url.database,
            url.endpoint()
        ))
    } else {
        HostError::server(format!("{tool} ({}): {msg}", url.without_password()))
    }
}

fn cli() -> HostResult<PathBuf> {
    tools::find_tool(&["mariadb", "mysql"], PACKAGE)
}

// ---------------------------------------------------------------------------------------------
// dump / restore

/// The dump's plan: a database named, plain SQL only.
fn plan_dump(ctx: &RunCtx, raw_url: &str, opts: &DumpOptions) -> HostResult<DumpPlan> {
    let url = ServerUrl::parse(raw_url)?;
    if url.database.is_empty() {
        return Err(HostError::invalid(
            "the MySQL URL names no database (mysql://user:pw@host/DB)",
        ));
    }
    server_dump::plan(ctx, url, opts, |format, codec| {
        if format != "plain" {
            return Err(HostError::invalid(
                "MySQL/MariaDB dumps are plain SQL; drop the `format` option",
            ));
        }
        Ok(format!(".sql{}", codec.map_or("", |c| c.ext())))
    })
}

/// The dump tool's arguments after the connection's: a consistent snapshot, everything that
/// restores the database, then the database and its tables.
fn dump_args(opts: &DumpOptions, database: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "--single-transaction",
        "--quick",
        "--routines",
        "--events",
        "--triggers",
        "--hex-blob",
        "--no-tablespaces",
    ]
    .map(String::from)
    .to_vec();
    if opts.schema_only {
        args.push("--no-data".into());
    }
    if opts.data_only {
        args.push("--no-create-info".into());
    }
    for t in &opts.exclude_tables {
        args.push(format!("--ignore-table={database}.{t}"));
    }
    args.push(database.to_string());
    args.extend(opts.tables.iter().cloned());
    args
}

/// Check the dump's trailer, then fsync, rename and write the sidecar.
async fn commit(finished: Finished, sanity: Sanity) -> HostResult<DumpReport> {
    server_dump::check_trailer(
        &finished,
        "mariadb-dump",
        "Dump completed",
        "Dump completed",
    )?;
    server_dump::commit(finished, sanity, "plain".into()).await
}

pub async fn dump(
    ctx: &RunCtx,
    raw_url: &str,
    opts: DumpOptions,
    inside: Option<&Target>,
) -> HostResult<DumpReport> {
    let plan = plan_dump(ctx, raw_url, &opts)?;
    if let Some(c) = inside {
        return in_container::dump(ctx, plan, &opts, c).await;
    }
    let url = &plan.url;
    let prog = tools::find_tool(&["mariadb-dump", "mysqldump"], PACKAGE)?;
    // Fails fast with a clear message on a wrong password, host or database.
    let _ = conn::connect(url, None).await?.disconnect().await;
    if ctx.dry_run {
        return Ok(dump_file::dry_run_report(&plan.dest, "plain"));
    }
    let c = client(url)?;
    let mut cmd = tools::command(&prog);
    cmd.args(&c.args)
        .args(dump_args(&opts, &url.database))
        .stdout(Stdio::piped());
    let mut child = tools::spawn(&mut cmd, &prog)?;
    let stderr = tools::drain_stderr(&mut child);
    let out = tools::stdout_file(&mut child)?;
    let writer = dump_file::write_from(out, plan.dest.clone(), plan.codec, opts.threads);
    let finished = tools::wait_with(child, stderr, writer, "mariadb-dump", |err| {
        classify(url, "mariadb-dump", err)
    })
    .await?;
    // The defaults file holding the password may go only once the tool has exited.
    drop(c);
    commit(finished, plan.sanity).await
}

/// Refuse what is not a MySQL/MariaDB SQL dump, and make the target ready: created when
/// missing (`create`), dropped and recreated when not empty (`clean`).
async fn prepare_target(
    ctx: &RunCtx,
    dump: &Path,
    url: &ServerUrl,
    opts: &RestoreOptions,
) -> HostResult<()> {
    let head = dump_file::sniff(dump)?;
    if head.starts_with(b"PGDMP") || head.starts_with(b"SQLite format 3") {
        return Err(HostError::invalid(format!(
            "{} is not a MySQL/MariaDB SQL dump",
            dump.display()
        )));
    }
    restore_target::prepare(url, opts, ctx.dry_run, &mut RestoreTarget(url)).await
}

/// The restore's target database (the URL's).
struct RestoreTarget<'a>(&'a ServerUrl);

impl TargetDb for RestoreTarget<'_> {
    const OBJECTS: &'static str = "tables";
    async fn exists(&mut self) -> HostResult<bool> {
        database_exists(self.0, &self.0.database).await
    }
    async fn objects(&mut self) -> HostResult<i64> {
        ops::table_count(self.0, &self.0.database).await
    }
    async fn create(&mut self) -> HostResult<()> {
        create_database(self.0, &self.0.database).await
    }
    async fn drop(&mut self) -> HostResult<()> {
        drop_database(self.0, &self.0.database).await
    }
}

pub async fn restore(
    ctx: &RunCtx,
    dump: &Path,
    raw_url: &str,
    opts: RestoreOptions,
    inside: Option<&Target>,
) -> HostResult<RestoreReport> {
    let started = Instant::now();
    let url = ServerUrl::parse(raw_url)?;
    // A missing client is said before the target is touched.
    let inner_client = match inside {
        Some(c) => Some((c, in_container::client(c).await?)),
        None => {
            cli()?;
            None
        }
    };
    prepare_target(ctx, dump, &url, &opts).await?;
    if !ctx.dry_run {
        match inner_client {
            Some((c, program)) => in_container::restore(dump, &url, c, program).await?,
            None => {
                let prog = cli()?;
                let c = client(&url)?;
                let mut cmd = tools::command(&prog);
                cmd.args(&c.args)
                    .args(restore_args(&url))
                    .stdin(Stdio::piped());
                let mut child = tools::spawn(&mut cmd, &prog)?;
                let stderr = tools::drain_stderr(&mut child);
                let feeder = dump_file::feed(dump, tools::stdin_file(&mut child)?);
                tools::wait_with(child, stderr, feeder, "mariadb", |err| {
                    classify(&url, "mariadb", err)
                })
                .await?;
            }
        }
    }
    Ok(RestoreReport::new(
        &url.database,
        "plain",
        dump,
        started,
        ctx.dry_run,
    ))
}

/// The client's arguments after the connection's, for a restore.
fn restore_args(url: &ServerUrl) -> [String; 2] {
    ["--batch".into(), format!("--database={}", url.database)]
}
