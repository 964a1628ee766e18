//! MySQL and MariaDB through their own command-line tools (mariadb-dump/mysqldump and
//! mariadb/mysql). The password goes in a private defaults file (mode 0600, removed afterwards),
//! never on the command line, so `ps` does not show it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use super::dump_file::{self, DumpReport, DumpWriter};
use super::options::*;
use super::tools;
use super::url::{quote_ident, ServerUrl};
use crate::engine::ctx::RunCtx;
use crate::host::error::{ErrorKind, HostError, HostResult};

const PACKAGE: &str = "mariadb-client";

fn q(name: &str) -> String {
    quote_ident(name, '`')
}

/// A SQL string literal.
pub fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
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
    let socket = url.query_param("socket");
    if let Some(s) = &socket {
        args.push(format!("--socket={s}"));
    } else {
        args.push(format!("--host={}", url.host));
        if url.host != "localhost" || url.port.is_some() {
            args.push("--protocol=TCP".into());
        }
    }
    if let Some(p) = url.port {
        args.push(format!("--port={p}"));
    }
    if let Some(u) = &url.user {
        args.push(format!("--user={u}"));
    }
    Ok(Client { _defaults: f, args })
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
            ErrorKind::PermissionDenied,
            format!(
                "authentication failed for user {who} at {}: {msg} (check the password in the URL)",
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
            "database {:?} does not exist on {}: {msg}",
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

/// Run SQL and return the raw batch output (tab-separated, header first).
async fn run_sql(url: &ServerUrl, db: Option<&str>, sql: &str) -> HostResult<String> {
    let prog = cli()?;
    let c = client(url)?;
    let mut cmd = tools::command(&prog);
    // mariadb-dump has no --connect-timeout; the dump runs after this check has connected.
    cmd.args(&c.args)
        .arg("--connect-timeout=10")
        .arg("--batch")
        .arg("--execute")
        .arg(sql);
    if let Some(db) = db.filter(|d| !d.is_empty()) {
        cmd.arg(format!("--database={db}"));
    }
    tools::run_output(cmd, &prog, |e| classify(url, "mariadb", e)).await
}

fn unescape(cell: &str) -> Value {
    if cell == "NULL" {
        return Value::Null;
    }
    let mut s = String::with_capacity(cell.len());
    let mut it = cell.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some('0') => s.push('\0'),
                Some('\\') => s.push('\\'),
                Some(o) => {
                    s.push('\\');
                    s.push(o)
                }
                None => s.push('\\'),
            }
        } else {
            s.push(c);
        }
    }
    typed(s)
}

/// The CLI prints every value as text; give numbers back their type.
fn typed(s: String) -> Value {
    let plain_int = !s.is_empty()
        && s.trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit())
        && !(s.trim_start_matches('-').len() > 1 && s.trim_start_matches('-').starts_with('0'));
    if plain_int {
        if let Ok(i) = s.parse::<i64>() {
            return Value::from(i);
        }
    }
    Value::String(s)
}

fn parse_batch(out: &str) -> Vec<Map<String, Value>> {
    let mut lines = out.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let names: Vec<&str> = header.split('\t').collect();
    lines
        .map(|l| {
            names
                .iter()
                .map(|n| n.to_string())
                .zip(l.split('\t').map(unescape))
                .collect()
        })
        .collect()
}

/// Replace `?` placeholders (outside quotes) with literals: the CLI has no bind parameters.
pub fn bind(sql: &str, params: &[Value]) -> HostResult<String> {
    if params.is_empty() {
        return Ok(sql.to_string());
    }
    let mut out = String::with_capacity(sql.len() + 16 * params.len());
    let mut quote: Option<char> = None;
    let mut i = 0;
    for c in sql.chars() {
        match quote {
            Some(qc) => {
                if c == qc {
                    quote = None;
                }
                out.push(c);
            }
            None if c == '\'' || c == '"' || c == '`' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                let v = params.get(i).ok_or_else(|| {
                    HostError::invalid(format!(
                        "SQL has more ? placeholders than the {} parameters given",
                        params.len()
                    ))
                })?;
                i += 1;
                out.push_str(&match v {
                    Value::Null => "NULL".to_string(),
                    Value::Bool(b) => {
                        if *b {
                            "TRUE".into()
                        } else {
                            "FALSE".into()
                        }
                    }
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => lit(s),
                    other => lit(&other.to_string()),
                });
            }
            None => out.push(c),
        }
    }
    if i != params.len() {
        return Err(HostError::invalid(format!(
            "{} parameters given but the SQL has {i} ? placeholders",
            params.len()
        )));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// dump / restore

pub async fn dump(ctx: &RunCtx, raw_url: &str, opts: DumpOptions) -> HostResult<DumpReport> {
    let url = ServerUrl::parse(raw_url)?;
    if url.database.is_empty() {
        return Err(HostError::invalid(
            "dump_db: the MySQL URL names no database (mysql://user:pw@host/DB)",
        ));
    }
    if opts.format.as_deref().is_some_and(|f| f != "plain") {
        return Err(HostError::invalid(
            "dump_db: MySQL/MariaDB dumps are plain SQL; drop the `format` option",
        ));
    }
    let gzip = dump_file::gzip_level(&opts.compress)?;
    let sanity = opts.sanity()?;
    let dest = dump_file::destination(
        opts.to.as_deref(),
        &url.database,
        if gzip.is_some() { ".sql.gz" } else { ".sql" },
    );
    let dest = ctx.policy.check_write(&dest)?;
    let prog = tools::find_tool(&["mariadb-dump", "mysqldump"], PACKAGE)?;
    // Fails fast with a clear message on a wrong password, host or database.
    run_sql(&url, Some(&url.database), "SELECT 1").await?;
    if ctx.dry_run {
        return Ok(dump_file::dry_run_report(&dest, "plain"));
    }
    let c = client(&url)?;
    let mut cmd = tools::command(&prog);
    cmd.args(&c.args).args([
        "--single-transaction",
        "--quick",
        "--routines",
        "--events",
        "--triggers",
        "--hex-blob",
        "--no-tablespaces",
    ]);
    if opts.schema_only {
        cmd.arg("--no-data");
    }
    if opts.data_only {
        cmd.arg("--no-create-info");
    }
    for t in &opts.exclude_tables {
        cmd.arg(format!("--ignore-table={}.{t}", url.database));
    }
    cmd.arg(&url.database)
        .args(&opts.tables)
        .stdout(Stdio::piped());
    let mut child = tools::spawn(&mut cmd, &prog)?;
    let stderr = tools::drain_stderr(&mut child);
    let out = tools::stdout_file(&mut child)?;
    let writer = dump_file::write_from(out, dest.clone(), gzip, opts.threads);
    let finished = tools::wait_with(child, stderr, writer, "mariadb-dump", |err| {
        classify(&url, "mariadb-dump", err)
    })
    .await?;
    // The defaults file holding the password may go only once the tool has exited.
    drop(c);
    if !String::from_utf8_lossy(&finished.tail).contains("Dump completed") {
        return Err(HostError::verification("mariadb-dump exited 0 but its output lacks the \"Dump completed\" trailer: the dump is truncated"));
    }
    tokio::task::spawn_blocking(move || finished.commit(&sanity, "plain"))
        .await
        .map_err(|e| HostError::other(format!("commit failed: {e}")))?
}

pub async fn database_exists(url: &ServerUrl, name: &str) -> HostResult<bool> {
    let out = run_sql(
        url,
        None,
        &format!(
            "SELECT COUNT(*) AS n FROM information_schema.schemata WHERE schema_name = {}",
            lit(name)
        ),
    )
    .await?;
    Ok(parse_batch(&out)
        .first()
        .and_then(|r| r.get("n"))
        .and_then(|v| v.as_i64())
        .unwrap_or(0)
        > 0)
}

pub async fn create_database(url: &ServerUrl, name: &str) -> HostResult<()> {
    run_sql(url, None, &format!("CREATE DATABASE {}", q(name)))
        .await
        .map(|_| ())
}

pub async fn drop_database(url: &ServerUrl, name: &str) -> HostResult<()> {
    run_sql(url, None, &format!("DROP DATABASE IF EXISTS {}", q(name)))
        .await
        .map(|_| ())
}

pub async fn restore(
    ctx: &RunCtx,
    dump: &Path,
    raw_url: &str,
    opts: RestoreOptions,
) -> HostResult<RestoreReport> {
    let started = Instant::now();
    let url = ServerUrl::parse(raw_url)?;
    let head = dump_file::sniff(dump)?;
    if head.starts_with(b"PGDMP") || head.starts_with(b"SQLite format 3") {
        return Err(HostError::invalid(format!(
            "{} is not a MySQL/MariaDB SQL dump",
            dump.display()
        )));
    }
    let prog = cli()?;
    if !database_exists(&url, &url.database).await? {
        if !opts.create {
            return Err(HostError::not_found(format!(
                "restore_db: database {:?} does not exist on {} (pass create: true to create it)",
                url.database,
                url.endpoint()
            )));
        }
        if !ctx.dry_run {
            create_database(&url, &url.database).await?;
        }
    } else {
        let out = run_sql(
            &url,
            None,
            &format!(
                "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = {}",
                lit(&url.database)
            ),
        )
        .await?;
        let n = parse_batch(&out)
            .first()
            .and_then(|r| r.get("n"))
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        if n > 0 {
            if !opts.clean {
                return Err(HostError::refused(format!("restore_db: database {:?} on {} is not empty ({n} tables); pass clean: true to drop and recreate it", url.database, url.endpoint())));
            }
            if !ctx.dry_run {
                drop_database(&url, &url.database).await?;
                create_database(&url, &url.database).await?;
            }
        }
    }
    let dump_bytes = std::fs::metadata(dump).map(|m| m.len()).unwrap_or(0);
    if !ctx.dry_run {
        let c = client(&url)?;
        let mut cmd = tools::command(&prog);
        cmd.args(&c.args)
            .arg("--batch")
            .arg(format!("--database={}", url.database))
            .stdin(Stdio::piped());
        let mut child = tools::spawn(&mut cmd, &prog)?;
        let stderr = tools::drain_stderr(&mut child);
        let feeder = dump_file::feed(dump, tools::stdin_file(&mut child)?);
        tools::wait_with(child, stderr, feeder, "mariadb", |err| {
            classify(&url, "mariadb", err)
        })
        .await?;
    }
    Ok(RestoreReport {
        database: url.database.clone(),
        format: "plain".into(),
        dump_bytes,
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: ctx.dry_run,
    })
}

// ---------------------------------------------------------------------------------------------
// queries and maintenance

pub async fn query(
    raw_url: &str,
    sql: &str,
    params: &[Value],
) -> HostResult<Vec<Map<String, Value>>> {
    let url = ServerUrl::parse(raw_url)?;
    let out = run_sql(&url, Some(&url.database), &bind(sql, params)?).await?;
    Ok(parse_batch(&out))
}

pub async fn exec(raw_url: &str, sql: &str, params: &[Value], dry_run: bool) -> HostResult<u64> {
    let url = ServerUrl::parse(raw_url)?;
    let sql = bind(sql, params)?;
    if dry_run {
        run_sql(&url, Some(&url.database), "SELECT 1").await?;
        return Ok(0);
    }
    let body = sql.trim().trim_end_matches(';');
    let out = run_sql(
        &url,
        Some(&url.database),
        &format!("{body};\nSELECT ROW_COUNT() AS n"),
    )
    .await?;
    let n = out
        .lines()
        .last()
        .and_then(|l| l.trim().parse::<i64>().ok())
        .unwrap_or(0);
    Ok(n.max(0) as u64)
}

async fn size_of(url: &ServerUrl) -> HostResult<u64> {
    let out = run_sql(url, None, &format!("SELECT COALESCE(SUM(data_length + index_length), 0) AS n FROM information_schema.tables WHERE table_schema = {}", lit(&url.database))).await?;
    Ok(parse_batch(&out)
        .first()
        .and_then(|r| r.get("n"))
        .and_then(|v| v.as_i64())
        .unwrap_or(0)
        .max(0) as u64)
}

pub async fn vacuum(ctx: &RunCtx, raw_url: &str, opts: VacuumOptions) -> HostResult<VacuumReport> {
    let started = Instant::now();
    let url = ServerUrl::parse(raw_url)?;
    let before = size_of(&url).await?;
    let tables = if opts.tables.is_empty() {
        let out = run_sql(&url, None, &format!("SELECT table_name AS t FROM information_schema.tables WHERE table_schema = {} AND table_type = 'BASE TABLE'", lit(&url.database))).await?;
        parse_batch(&out)
            .iter()
            .filter_map(|r| r.get("t").and_then(|v| v.as_str()).map(String::from))
            .collect()
    } else {
        opts.tables.clone()
    };
    if !ctx.dry_run && !tables.is_empty() {
        let list = tables.iter().map(|t| q(t)).collect::<Vec<_>>().join(", ");
        if opts.full {
            run_sql(&url, Some(&url.database), &format!("OPTIMIZE TABLE {list}")).await?;
        }
        if opts.analyze.unwrap_or(true) {
            run_sql(&url, Some(&url.database), &format!("ANALYZE TABLE {list}")).await?;
        }
    }
    Ok(VacuumReport {
        database: url.database.clone(),
        size_before: before,
        size_after: size_of(&url).await?,
        tables,
        integrity: String::new(),
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: ctx.dry_run,
    })
}

#[derive(Debug, Serialize)]
pub struct MyStats {
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

pub async fn stats(raw_url: &str, opts: StatsOptions) -> HostResult<MyStats> {
    let url = ServerUrl::parse(raw_url)?;
    let head = parse_batch(&run_sql(&url, None, "SELECT VERSION() AS v, @@max_connections AS m, (SELECT COUNT(*) FROM information_schema.processlist) AS c").await?);
    let get = |k: &str| {
        head.first()
            .and_then(|r| r.get(k))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let long_running = parse_batch(&run_sql(&url, None, &format!(
        "SELECT id AS pid, user, command AS state, time AS seconds, LEFT(info, 500) AS query FROM information_schema.processlist \
         WHERE command NOT IN ('Sleep', 'Daemon', 'Binlog Dump') AND time >= {} AND id <> CONNECTION_ID() ORDER BY time DESC",
        opts.threshold().as_secs()
    )).await?);
    let largest = parse_batch(&run_sql(&url, None, &format!(
        "SELECT CONCAT(table_schema, '.', table_name) AS `table`, data_length + index_length AS bytes, table_rows AS `rows`, NULL AS dead_tuples, data_free AS free_bytes \
         FROM information_schema.tables WHERE table_schema = {} AND table_type = 'BASE TABLE' ORDER BY data_length + index_length DESC LIMIT {}",
        lit(&url.database), opts.top()
    )).await?);
    Ok(MyStats {
        engine: "mysql",
        database: url.database.clone(),
        server_version: get("v").as_str().unwrap_or_default().to_string(),
        size_bytes: size_of(&url).await?,
        connections: get("c").as_i64().unwrap_or(0),
        max_connections: get("m").as_i64().unwrap_or(0),
        long_running,
        largest_tables: largest,
        dead_tuples: 0,
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
    let cond = format!("{} < NOW() - INTERVAL {} SECOND", q(column), age.as_secs());
    let count_sql = format!("SELECT COUNT(*) AS n FROM {} WHERE {cond}", q(table));
    let count = |out: String| {
        parse_batch(&out)
            .first()
            .and_then(|r| r.get("n"))
            .and_then(|v| v.as_i64())
            .unwrap_or(0)
            .max(0) as u64
    };
    let matching = count(run_sql(&url, Some(&url.database), &count_sql).await?);
    if ctx.dry_run {
        return Ok(DeleteReport {
            table: table.into(),
            deleted: 0,
            batches: 0,
            matching,
            duration_ms: started.elapsed().as_millis() as u64,
            dry_run: true,
        });
    }
    let batch = opts.batch();
    let del = format!(
        "DELETE FROM {} WHERE {cond} LIMIT {batch};\nSELECT ROW_COUNT() AS n",
        q(table)
    );
    let (mut deleted, mut batches) = (0u64, 0u64);
    loop {
        let n = count(run_sql(&url, Some(&url.database), &del).await?);
        deleted += n;
        if n > 0 {
            batches += 1;
        }
        if n < batch || opts.max_batches.is_some_and(|m| batches >= m) {
            break;
        }
        tokio::time::sleep(opts.pause()).await;
    }
    let left = count(run_sql(&url, Some(&url.database), &count_sql).await?);
    Ok(DeleteReport {
        table: table.into(),
        deleted,
        batches,
        matching: left,
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: false,
    })
}

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
    // A wrong table name fails here, in dry-run too.
    run_sql(
        &url,
        Some(&url.database),
        &format!("SELECT * FROM {}{} LIMIT 0", q(table), opts.where_clause()),
    )
    .await?;
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
    let prog = cli()?;
    let c = client(&url)?;
    let mut cmd = tools::command(&prog);
    cmd.args(&c.args)
        .args(["--batch", "--quick"])
        .arg(format!("--database={}", url.database))
        .arg("--execute")
        .arg(format!("SELECT * FROM {}{}", q(table), opts.where_clause()))
        .stdout(Stdio::piped());
    let mut child = tools::spawn(&mut cmd, &prog)?;
    let stderr = tools::drain_stderr(&mut child);
    let out = tools::stdout_file(&mut child)?;
    let dest2 = dest.clone();
    let writer = tokio::task::spawn_blocking(move || -> HostResult<(dump_file::Finished, u64)> {
        let io = |e: std::io::Error| HostError::io(format!("writing {}", dest2.display()), &e);
        let mut w = DumpWriter::create(&dest2, gzip, None)?;
        let mut lines = std::io::BufReader::with_capacity(256 * 1024, out).lines();
        let names: Vec<String> = match lines.next() {
            Some(h) => h.map_err(io)?.split('\t').map(String::from).collect(),
            None => Vec::new(),
        };
        if format == ExportFormat::Csv && !names.is_empty() {
            let h: Vec<String> = names.iter().map(|n| super::sqlite::csv_field(n)).collect();
            writeln!(w, "{}", h.join(",")).map_err(io)?;
        }
        let mut rows = 0u64;
        for line in lines {
            let line = line.map_err(io)?;
            let vals: Vec<Value> = line.split('\t').map(unescape).collect();
            match format {
                ExportFormat::Csv => {
                    let f: Vec<String> = vals
                        .iter()
                        .map(|v| match v {
                            Value::Null => String::new(),
                            Value::String(s) => super::sqlite::csv_field(s),
                            o => o.to_string(),
                        })
                        .collect();
                    writeln!(w, "{}", f.join(",")).map_err(io)?;
                }
                ExportFormat::Jsonl => {
                    let obj: Map<String, Value> = names.iter().cloned().zip(vals).collect();
                    serde_json::to_writer(&mut w, &obj)
                        .map_err(|e| HostError::other(e.to_string()))?;
                    w.write_all(b"\n").map_err(io)?;
                }
            }
            rows += 1;
        }
        Ok((w.finish().map_err(io)?, rows))
    });
    let (finished, rows) = tools::wait_with(child, stderr, writer, "mariadb", |err| {
        classify(&url, "mariadb", err)
    })
    .await?;
    drop(c);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_placeholders_outside_quotes() {
        let s = bind("SELECT '?' , ? , ?", &[Value::from(3), Value::from("it's")]).unwrap();
        assert_eq!(s, "SELECT '?' , 3 , 'it''s'");
        assert!(bind("SELECT ?", &[]).is_ok());
        assert!(bind("SELECT ?, ?", &[Value::from(1)]).is_err());
    }

    #[test]
    fn batch_output() {
        let rows = parse_batch("id\tname\tn\n1\ta\\tb\tNULL\n007\tx\t-5\n");
        assert_eq!(rows[0]["id"], Value::from(1));
        assert_eq!(rows[0]["name"], Value::from("a\tb"));
        assert!(rows[0]["n"].is_null());
        assert_eq!(rows[1]["id"], Value::from("007"));
        assert_eq!(rows[1]["n"], Value::from(-5));
    }
}
