//! SQLite: the embedded default. Dumps use SQLite's online backup API (a consistent copy while
//! the application keeps writing), then the shared gzip path; everything else is rusqlite.
//!
//! Why one file of ~600 lines: every SQLite connection must be opened through `open_existing`
//! (path policy, no symlinks, the ATTACH/VACUUM INTO authorizer, the interrupt on stop), and
//! keeping the operations next to it makes a connection that skips it easy to spot. A split
//! into `sqlite/` (open + guards, dump/restore, ops) is the next step once that code settles.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Map, Value};

use super::batches::OlderThan;
use super::dump_file::{self, DumpReport, DumpWriter};
use super::export_sink::ExportPlan;
use super::options::*;
use super::url::{quote_ident, sqlite_path};
use crate::ctx::RunCtx;
use crate::error::{ErrorKind, HostError, HostResult};
use crate::policy::Policy;

fn q(name: &str) -> String {
    quote_ident(name, '"')
}

fn sql_err(context: impl std::fmt::Display) -> impl FnOnce(rusqlite::Error) -> HostError {
    move |e| {
        let denied = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::AuthorizationForStatementDenied);
        // SQLite is a library writing local files: its disk and file errors are local I/O.
        let local = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if matches!(
            f.code,
            rusqlite::ErrorCode::DiskFull
                | rusqlite::ErrorCode::SystemIoFailure
                | rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::ReadOnly
        ));
        let interrupted = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::OperationInterrupted);
        match DENIED.with(|d| d.borrow_mut().take()) {
            Some(why) if denied => HostError::refused(format!("{context}: {why}")),
            _ if local => HostError::new(ErrorKind::Io, format!("{context}: {e}")),
            _ if interrupted => HostError::new(
                ErrorKind::Cancelled,
                format!("{context}: stopped (the run's timeout or a signal)"),
            ),
            _ => HostError::server(format!("{context}: {e}")),
        }
    }
}

thread_local! {
    /// Why the authorizer last refused a statement on this thread (SQLite calls it on the
    /// thread that runs the statement), so the error can say more than "authorization denied".
    static DENIED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Open an existing database. SQLite files are files: opened for writing, the file must pass
/// the path policy; the last component is never followed if it is a symlink; and every file
/// SQL itself can name (`ATTACH`, `VACUUM INTO`, which SQLite authorizes as an attach) must
/// pass the policy too, on read-only connections as well (`VACUUM INTO` writes from one).
fn open_existing(ctx: &RunCtx, path: &Path, write: bool) -> HostResult<Connection> {
    let policy = &ctx.policy;
    let path = if write {
        policy.check_write(path)?
    } else {
        path.to_path_buf()
    };
    if std::fs::symlink_metadata(&path).is_err() {
        return Err(HostError::not_found(format!(
            "SQLite database {} does not exist",
            path.display()
        )));
    }
    let access = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    };
    let mut c = Connection::open_with_flags(
        &path,
        access | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .map_err(sql_err(format!("opening {}", path.display())))?;
    guard_attach(&mut c, policy)?;
    interrupt_on_stop(&mut c, ctx)?;
    // Wait for a writer instead of failing with SQLITE_BUSY.
    c.busy_timeout(Duration::from_secs(30))
        .map_err(sql_err("busy_timeout"))?;
    Ok(c)
}

/// A long statement (a recursive query, a VACUUM) ends within ~1000 VM steps of the run's
/// timeout or signal: SQLite's progress handler interrupts it.
fn interrupt_on_stop(c: &mut Connection, ctx: &RunCtx) -> HostResult<()> {
    let token = ctx.token.clone();
    c.progress_handler(1000, Some(move || token.is_cancelled()))
        .map_err(sql_err("installing the SQLite progress handler"))
}

/// Refuse `ATTACH`/`VACUUM INTO` targets outside the allowed roots, URI file names (their
/// `mode=rwc` would bypass the checks), and symlinks.
fn guard_attach(c: &mut Connection, policy: &Policy) -> HostResult<()> {
    use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
    let policy = policy.clone();
    c.authorizer(Some(move |a: AuthContext<'_>| match a.action {
        AuthAction::Attach { filename } => {
            if filename.is_empty() || filename == ":memory:" {
                return Authorization::Allow;
            }
            let deny = |why: String| {
                DENIED.with(|d| {
                    *d.borrow_mut() = Some(format!(
                        "ATTACH / VACUUM INTO {filename:?} not authorized: {why}"
                    ))
                });
                Authorization::Deny
            };
            if filename.starts_with("file:") {
                return deny("URI file names are not allowed".into());
            }
            let p = Path::new(filename);
            let is_link = std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
            match policy.check_write(p) {
                Ok(_) if !is_link => Authorization::Allow,
                Ok(_) => deny("it is a symlink".into()),
                Err(e) => deny(e.message),
            }
        }
        _ => Authorization::Allow,
    }))
    .map_err(sql_err("installing the SQLite authorizer"))
}

/// A private scratch folder next to `near` for a full copy of a database, after removing the
/// ones earlier runs killed with SIGKILL left behind.
fn scratch_dir(near: &Path) -> HostResult<crate::atomic::TempDir> {
    let parent = near.parent().unwrap_or(Path::new("."));
    let name = near
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let io = |e: std::io::Error| {
        HostError::io(
            format!("creating a temporary folder in {}", parent.display()),
            &e,
        )
    };
    let stale = crate::atomic::remove_stale_temps(parent, |t| t == name).map_err(io)?;
    if stale > 0 {
        tracing::info!(target: "mtn::db", "removed {stale} scratch copies left next to {} by an interrupted run", near.display());
    }
    crate::atomic::TempDir::create(near).map_err(io)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// dump / restore

pub fn dump(ctx: &RunCtx, url: &str, opts: DumpOptions) -> HostResult<DumpReport> {
    let src = sqlite_path(url)?;
    if opts
        .format
        .as_deref()
        .is_some_and(|f| f != "plain" && f != "sqlite")
    {
        return Err(HostError::invalid(
            "SQLite dumps have one format (a database file); drop the `format` option",
        ));
    }
    if !opts.tables.is_empty()
        || !opts.exclude_tables.is_empty()
        || opts.schema_only
        || opts.data_only
    {
        return Err(HostError::invalid("tables, exclude_tables, schema_only and data_only are PostgreSQL/MySQL options; an SQLite dump is the whole file"));
    }
    let codec = dump_file::codec_of(&opts.compress)?;
    let stem = src
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "db".into());
    let dest = dump_file::destination(
        opts.to.as_deref(),
        &stem,
        &format!(".db{}", codec.map_or("", |c| c.ext())),
    );
    let dest = ctx.policy.check_write(&dest)?;
    let sanity = opts.sanity()?;
    let source = open_existing(ctx, &src, false)?;
    if ctx.dry_run {
        return Ok(dump_file::dry_run_report(&dest, "sqlite"));
    }
    let parent = dest.parent().unwrap_or(Path::new("."));
    crate::atomic::create_private_dirs(parent)
        .map_err(|e| HostError::io(format!("creating {}", parent.display()), &e))?;
    // The consistent copy goes next to the destination (same file system) in a private 0700
    // folder with one of mtn's temporary names: removed on drop, and by the next run if this one
    // is killed (it is a full, uncompressed copy of the data).
    let scratch = scratch_dir(&dest)?;
    let copy = scratch.inner().to_path_buf();
    {
        let mut dst = Connection::open(&copy).map_err(sql_err("opening the backup copy"))?;
        let backup = rusqlite::backup::Backup::new(&source, &mut dst)
            .map_err(sql_err("starting the SQLite backup"))?;
        loop {
            ctx.check_cancelled()?;
            // Small steps release the read lock often, so the application's writers keep going.
            match backup.step(1024).map_err(sql_err("SQLite backup"))? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    let check: String = Connection::open_with_flags(&copy, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("PRAGMA quick_check", [], |r| r.get(0)))
        .map_err(sql_err("checking the backup copy"))?;
    if check != "ok" {
        return Err(HostError::verification(format!(
            "the backup copy of {} fails quick_check: {check}",
            src.display()
        )));
    }
    let mut w = DumpWriter::create(&dest, codec, opts.threads)?;
    let f = std::fs::File::open(&copy).map_err(|e| HostError::io("reading the backup copy", &e))?;
    w.copy_from(f)
        .map_err(|e| HostError::io(format!("writing {}", dest.display()), &e))?;
    ctx.check_cancelled()?;
    let finished = w
        .finish()
        .map_err(|e| HostError::io(format!("writing {}", dest.display()), &e))?;
    finished.commit(&sanity, "sqlite")
}

pub fn restore(
    ctx: &RunCtx,
    dump: &Path,
    url: &str,
    opts: RestoreOptions,
) -> HostResult<RestoreReport> {
    let started = Instant::now();
    let target = sqlite_path(url)?;
    let head = dump_file::sniff(dump)?;
    if !head.starts_with(b"SQLite format 3") {
        return Err(HostError::invalid(format!(
            "{} is not an SQLite database (or a gzipped one): an SQL dump restores into postgres:// or mysql://",
            dump.display()
        )));
    }
    let resolved = ctx.policy.check_write(&target)?;
    if resolved.exists() {
        let c = open_existing(ctx, &resolved, false)?;
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )
            .map_err(sql_err("inspecting the target"))?;
        if n > 0 && !opts.clean {
            return Err(HostError::refused(format!(
                "{} is not empty ({n} tables/indexes); pass clean: true to replace it",
                resolved.display()
            )));
        }
    } else if !opts.create {
        return Err(HostError::not_found(format!(
            "{} does not exist (pass create: true to create it)",
            resolved.display()
        )));
    }
    if !ctx.dry_run {
        restore_into(ctx, dump, &resolved)?;
    }
    Ok(RestoreReport::new(
        &resolved.display().to_string(),
        "sqlite",
        dump,
        started,
        ctx.dry_run,
    ))
}

/// Decompress `dump` next to `resolved` and copy it in through the backup API.
pub fn restore_into(ctx: &RunCtx, dump: &Path, resolved: &Path) -> HostResult<()> {
    {
        let parent = resolved.parent().unwrap_or(Path::new("."));
        crate::atomic::create_private_dirs(parent)
            .map_err(|e| HostError::io(format!("creating {}", parent.display()), &e))?;
        let scratch = scratch_dir(resolved)?;
        let plain = scratch.inner().to_path_buf();
        {
            let mut r = dump_file::open_dump(dump)?;
            let mut f = std::fs::File::create(&plain)
                .map_err(|e| HostError::io("writing the restore copy", &e))?;
            let stop = || ctx.token.is_cancelled();
            crate::atomic::copy_until(&mut r, &mut f, &stop)
                .map_err(|e| HostError::io(format!("reading {}", dump.display()), &e))?;
            f.flush()
                .map_err(|e| HostError::io("writing the restore copy", &e))?;
        }
        // Through the backup API into the (possibly open) target, so readers see old or new.
        let mut dst = Connection::open_with_flags(
            resolved,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        )
        .map_err(sql_err(format!("opening {}", resolved.display())))?;
        dst.busy_timeout(Duration::from_secs(30))
            .map_err(sql_err("busy_timeout"))?;
        // Step by step (not Connection::restore) so a timeout or a signal ends it.
        let src = Connection::open_with_flags(&plain, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(sql_err("opening the restore copy"))?;
        let backup = rusqlite::backup::Backup::new(&src, &mut dst)
            .map_err(sql_err(format!("restoring into {}", resolved.display())))?;
        loop {
            ctx.check_cancelled()?;
            match backup
                .step(1024)
                .map_err(sql_err(format!("restoring into {}", resolved.display())))?
            {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// queries

fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(*b as i64),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => Value::from(f),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(format!("\\x{}", hex::encode(b))),
    }
}

pub fn query(
    ctx: &RunCtx,
    url: &str,
    sql: &str,
    params: &[Value],
) -> HostResult<Vec<Map<String, Value>>> {
    let path = sqlite_path(url)?;
    let c = open_existing(ctx, &path, false)?;
    query_on(&c, sql, params)
}

fn query_on(c: &Connection, sql: &str, params: &[Value]) -> HostResult<Vec<Map<String, Value>>> {
    let mut stmt = c.prepare(sql).map_err(sql_err("db_query"))?;
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let ps: Vec<SqlValue> = params.iter().map(to_sql).collect();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(ps.iter()))
        .map_err(sql_err("db_query"))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_err("db_query"))? {
        let mut m = Map::new();
        for (i, n) in names.iter().enumerate() {
            m.insert(
                n.clone(),
                from_sql(row.get_ref(i).map_err(sql_err("db_query"))?),
            );
        }
        out.push(m);
    }
    Ok(out)
}

pub fn exec(
    ctx: &RunCtx,
    url: &str,
    sql: &str,
    params: &[Value],
    dry_run: bool,
) -> HostResult<u64> {
    let path = sqlite_path(url)?;
    let c = open_existing(ctx, &path, !dry_run)?;
    if dry_run {
        if params.is_empty() && sql.contains(';') {
            return Ok(0);
        }
        c.prepare(sql).map_err(sql_err("db_exec"))?;
        return Ok(0);
    }
    if params.is_empty() {
        let before = c.total_changes();
        c.execute_batch(sql).map_err(sql_err("db_exec"))?;
        return Ok(c.total_changes().saturating_sub(before));
    }
    let ps: Vec<SqlValue> = params.iter().map(to_sql).collect();
    c.execute(sql, rusqlite::params_from_iter(ps.iter()))
        .map(|n| n as u64)
        .map_err(sql_err("db_exec"))
}

// ---------------------------------------------------------------------------------------------
// maintenance

pub fn vacuum(ctx: &RunCtx, url: &str, opts: VacuumOptions) -> HostResult<VacuumReport> {
    let started = Instant::now();
    let path = sqlite_path(url)?;
    let c = open_existing(ctx, &path, !ctx.dry_run)?;
    let before = file_size(&path);
    if !ctx.dry_run {
        c.execute_batch("VACUUM").map_err(sql_err("VACUUM"))?;
        if opts.analyze.unwrap_or(true) {
            c.execute_batch("ANALYZE").map_err(sql_err("ANALYZE"))?;
        }
    }
    let integrity: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(sql_err("integrity_check"))?;
    if integrity != "ok" {
        return Err(HostError::verification(format!(
            "{} fails integrity_check: {integrity}",
            path.display()
        )));
    }
    Ok(VacuumReport {
        database: path.display().to_string(),
        size_before: before,
        size_after: file_size(&path),
        tables: opts.tables,
        integrity,
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: ctx.dry_run,
    })
}

pub fn stats(ctx: &RunCtx, url: &str, opts: StatsOptions) -> HostResult<DbStats> {
    let path = sqlite_path(url)?;
    let c = open_existing(ctx, &path, false)?;
    let pragma = |p: &str| -> HostResult<i64> {
        c.query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
            .map_err(sql_err(p.to_string()))
    };
    let page_size = pragma("page_size")?;
    let free = pragma("freelist_count")?;
    let mut tables: Vec<Map<String, Value>> = Vec::new();
    let names: Vec<String> = {
        let mut s = c
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .map_err(sql_err("listing tables"))?;
        let rows = s
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(sql_err("listing tables"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql_err("listing tables"))?
    };
    for n in names {
        let rows: i64 = c
            .query_row(&format!("SELECT count(*) FROM {}", q(&n)), [], |r| r.get(0))
            .map_err(sql_err(format!("counting {n}")))?;
        // dbstat is compiled into the bundled SQLite; fall back to null if a build lacks it.
        let bytes: Value = c
            .query_row(
                "SELECT sum(pgsize) FROM dbstat WHERE name = ?1",
                [&n],
                |r| r.get::<_, Option<i64>>(0),
            )
            .ok()
            .flatten()
            .map(Value::from)
            .unwrap_or(Value::Null);
        let mut m = Map::new();
        m.insert("table".into(), n.into());
        m.insert("bytes".into(), bytes);
        m.insert("rows".into(), rows.into());
        m.insert("dead_tuples".into(), Value::from(0));
        tables.push(m);
    }
    tables.sort_by_key(|m| std::cmp::Reverse(m.get("rows").and_then(|v| v.as_i64()).unwrap_or(0)));
    tables.truncate(opts.top());
    Ok(DbStats {
        engine: "sqlite",
        database: path.display().to_string(),
        server_version: rusqlite::version().to_string(),
        size_bytes: file_size(&path),
        connections: 0,
        max_connections: None,
        long_running: Vec::new(),
        largest_tables: tables,
        dead_tuples: 0,
        free_pages: Some(free),
        page_size: Some(page_size),
    })
}

/// The age condition for SQLite: text timestamps ('2024-01-01 10:00:00' or ISO with 'T')
/// compare by julianday; integers and reals are Unix seconds. `?1` is the age in seconds.
fn older_than(col: &str) -> String {
    format!(
        "(CASE WHEN typeof({col}) IN ('integer','real') THEN {col} < unixepoch('now') - ?1 \
         ELSE julianday({col}) < julianday('now') - ?1 / 86400.0 END)"
    )
}

/// The batched delete on SQLite: rowid batches.
pub struct SqliteDelete {
    c: Connection,
    secs: f64,
    count_sql: String,
    delete_sql: String,
    what: String,
}

impl super::batches::BatchDelete for SqliteDelete {
    async fn count(&mut self) -> HostResult<u64> {
        self.c
            .query_row(&self.count_sql, [self.secs], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(sql_err(format!("delete_rows_older_than {}", self.what)))
    }
    async fn delete_batch(&mut self, limit: u64) -> HostResult<u64> {
        self.c
            .execute(&self.delete_sql, rusqlite::params![self.secs, limit as i64])
            .map(|n| n as u64)
            .map_err(sql_err(format!("delete_rows_older_than {}", self.what)))
    }
}

impl SqliteDelete {
    /// Open the database (read-only in a dry run).
    pub fn open(ctx: &RunCtx, url: &str, rows: &OlderThan<'_>) -> HostResult<SqliteDelete> {
        let path = sqlite_path(url)?;
        let t = q(rows.table);
        let cond = older_than(&q(rows.column));
        Ok(SqliteDelete {
            c: open_existing(ctx, &path, !ctx.dry_run)?,
            secs: rows.age.as_secs_f64(),
            count_sql: format!("SELECT count(*) FROM {t} WHERE {cond}"),
            delete_sql: format!(
                "DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} WHERE {cond} LIMIT ?2)"
            ),
            what: rows.what(),
        })
    }
}

pub fn export(ctx: &RunCtx, url: &str, plan: ExportPlan) -> HostResult<ExportReport> {
    let path = sqlite_path(url)?;
    let c = open_existing(ctx, &path, false)?;
    let mut stmt = c
        .prepare(&format!("SELECT * FROM {}{}", q(&plan.table), plan.filter))
        .map_err(sql_err(plan.context()))?;
    if ctx.dry_run {
        return Ok(plan.dry());
    }
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let width = names.len();
    let mut sink = plan.sink()?;
    sink.columns(names)?;
    let mut rows = stmt.query([]).map_err(sql_err(plan.context()))?;
    while let Some(row) = rows.next().map_err(sql_err(plan.context()))? {
        if sink.rows().is_multiple_of(10_000) {
            ctx.check_cancelled()?;
        }
        let vals: Vec<Value> = (0..width)
            .map(|i| row.get_ref(i).map(from_sql))
            .collect::<Result<_, _>>()
            .map_err(sql_err("export_table"))?;
        sink.row(vals)?;
    }
    sink.finish(None)
}
