//! MySQL/MariaDB queries and maintenance through mysql_async: db_query, db_exec, vacuum,
//! db_stats, delete_rows_older_than, export_table, and the database checks restores need.

use std::time::Instant;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde_json::{Map, Value};

use super::conn::{classify, connect, params, rows, scalar, values};
use super::q;
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::db::batches::{BatchDelete, OlderThan};
use crate::host::db::export_sink::ExportPlan;
use crate::host::db::options::*;
use crate::host::db::url::ServerUrl;

pub async fn query(
    raw_url: &str,
    sql: &str,
    values: &[Value],
) -> HostResult<Vec<Map<String, Value>>> {
    let url = ServerUrl::parse(raw_url)?;
    let mut c = connect(&url, None).await?;
    let out = rows(&url, &mut c, sql, values).await;
    let _ = c.disconnect().await;
    out
}

/// Rows affected by the (last) statement. Without parameters several statements may be given;
/// in a dry run the statement is only prepared.
pub async fn exec(raw_url: &str, sql: &str, values: &[Value], dry_run: bool) -> HostResult<u64> {
    let url = ServerUrl::parse(raw_url)?;
    let mut c = connect(&url, None).await?;
    let res = if dry_run {
        if values.is_empty() && sql.trim().trim_end_matches(';').contains(';') {
            // Several statements cannot be prepared; connecting was the check.
            Ok(())
        } else {
            c.prep(sql).await.map(|_| ())
        }
    } else if values.is_empty() {
        c.query_drop(sql).await
    } else {
        c.exec_drop(sql, params(values)).await
    };
    res.map_err(|e| classify(&url, &e))?;
    let n = if dry_run { 0 } else { c.affected_rows() };
    let _ = c.disconnect().await;
    Ok(n)
}

pub async fn database_exists(url: &ServerUrl, name: &str) -> HostResult<bool> {
    let mut c = connect(url, Some("")).await?;
    let n = scalar(
        url,
        &mut c,
        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?",
        &[Value::from(name)],
    )
    .await?;
    Ok(n > 0)
}

/// Base tables in `name` (a restore refuses a non-empty target).
pub async fn table_count(url: &ServerUrl, name: &str) -> HostResult<i64> {
    let mut c = connect(url, Some("")).await?;
    scalar(
        url,
        &mut c,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ?",
        &[Value::from(name)],
    )
    .await
}

pub async fn create_database(url: &ServerUrl, name: &str) -> HostResult<()> {
    admin(url, &format!("CREATE DATABASE {}", q(name))).await
}

pub async fn drop_database(url: &ServerUrl, name: &str) -> HostResult<()> {
    admin(url, &format!("DROP DATABASE IF EXISTS {}", q(name))).await
}

async fn admin(url: &ServerUrl, sql: &str) -> HostResult<()> {
    let mut c = connect(url, Some("")).await?;
    c.query_drop(sql).await.map_err(|e| classify(url, &e))?;
    let _ = c.disconnect().await;
    Ok(())
}

async fn size_of(url: &ServerUrl, c: &mut Conn) -> HostResult<u64> {
    let n = scalar(
        url,
        c,
        "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS SIGNED) FROM information_schema.tables WHERE table_schema = ?",
        &[Value::from(url.database.as_str())],
    )
    .await?;
    Ok(n.max(0) as u64)
}

pub async fn vacuum(ctx: &RunCtx, raw_url: &str, opts: VacuumOptions) -> HostResult<VacuumReport> {
    let started = Instant::now();
    let url = ServerUrl::parse(raw_url)?;
    let mut c = connect(&url, None).await?;
    let before = size_of(&url, &mut c).await?;
    let tables: Vec<String> = if opts.tables.is_empty() {
        rows(
            &url,
            &mut c,
            "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'",
            &[Value::from(url.database.as_str())],
        )
        .await?
        .iter()
        .filter_map(|r| r.get("t").and_then(|v| v.as_str()).map(String::from))
        .collect()
    } else {
        opts.tables.clone()
    };
    if !ctx.dry_run && !tables.is_empty() {
        let list = tables.iter().map(|t| q(t)).collect::<Vec<_>>().join(", ");
        if opts.full {
            rows(&url, &mut c, &format!("OPTIMIZE TABLE {list}"), &[]).await?;
        }
        if opts.analyze.unwrap_or(true) {
            rows(&url, &mut c, &format!("ANALYZE TABLE {list}"), &[]).await?;
        }
    }
    let size_after = size_of(&url, &mut c).await?;
    let _ = c.disconnect().await;
    Ok(VacuumReport {
        database: url.database.clone(),
        size_before: before,
        size_after,
        tables,
        integrity: String::new(),
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: ctx.dry_run,
    })
}

pub async fn stats(raw_url: &str, opts: StatsOptions) -> HostResult<DbStats> {
    let url = ServerUrl::parse(raw_url)?;
    let mut c = connect(&url, None).await?;
    let head = rows(&url, &mut c, "SELECT VERSION() AS v, @@max_connections AS m, (SELECT COUNT(*) FROM information_schema.processlist) AS c", &[]).await?;
    let get = |k: &str| {
        head.first()
            .and_then(|r| r.get(k))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let long_running = rows(
        &url,
        &mut c,
        "SELECT id AS pid, user, command AS state, time AS seconds, LEFT(info, 500) AS query FROM information_schema.processlist \
         WHERE command NOT IN ('Sleep', 'Daemon', 'Binlog Dump') AND time >= ? AND id <> CONNECTION_ID() ORDER BY time DESC",
        &[Value::from(opts.threshold().as_secs())],
    )
    .await?;
    let largest_tables = rows(
        &url,
        &mut c,
        "SELECT CONCAT(table_schema, '.', table_name) AS `table`, data_length + index_length AS bytes, table_rows AS `rows`, NULL AS dead_tuples, data_free AS free_bytes \
         FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY data_length + index_length DESC LIMIT ?",
        &[Value::from(url.database.as_str()), Value::from(opts.top() as u64)],
    )
    .await?;
    let size_bytes = size_of(&url, &mut c).await?;
    let _ = c.disconnect().await;
    Ok(DbStats {
        engine: "mysql",
        database: url.database.clone(),
        server_version: get("v").as_str().unwrap_or_default().to_string(),
        size_bytes,
        connections: get("c").as_i64().unwrap_or(0),
        max_connections: get("m").as_i64(),
        long_running,
        largest_tables,
        dead_tuples: 0,
        free_pages: None,
        page_size: None,
    })
}

/// The batched delete on MySQL/MariaDB: `DELETE ... LIMIT n`.
pub struct MyDelete {
    url: ServerUrl,
    /// None once closed (`disconnect` takes the connection).
    c: Option<Conn>,
    secs: u64,
    count_sql: String,
    delete_sql: String,
}

fn closed() -> HostError {
    HostError::other("delete_rows_older_than: the connection is already closed")
}

impl BatchDelete for MyDelete {
    async fn count(&mut self) -> HostResult<u64> {
        let c = self.c.as_mut().ok_or_else(closed)?;
        let n = scalar(&self.url, c, &self.count_sql, &[Value::from(self.secs)]).await?;
        Ok(n.max(0) as u64)
    }
    async fn delete_batch(&mut self, limit: u64) -> HostResult<u64> {
        let c = self.c.as_mut().ok_or_else(closed)?;
        c.exec_drop(self.delete_sql.as_str(), (self.secs, limit))
            .await
            .map_err(|e| classify(&self.url, &e))?;
        Ok(c.affected_rows())
    }
    async fn close(&mut self) {
        if let Some(c) = self.c.take() {
            let _ = c.disconnect().await;
        }
    }
}

impl MyDelete {
    pub async fn open(raw_url: &str, rows: &OlderThan<'_>) -> HostResult<MyDelete> {
        let url = ServerUrl::parse(raw_url)?;
        let c = connect(&url, None).await?;
        let cond = format!("{} < NOW() - INTERVAL ? SECOND", q(rows.column));
        Ok(MyDelete {
            c: Some(c),
            secs: rows.age.as_secs(),
            count_sql: format!("SELECT COUNT(*) FROM {} WHERE {cond}", q(rows.table)),
            delete_sql: format!("DELETE FROM {} WHERE {cond} LIMIT ?", q(rows.table)),
            url,
        })
    }
}

pub async fn export(ctx: &RunCtx, raw_url: &str, plan: ExportPlan) -> HostResult<ExportReport> {
    let url = ServerUrl::parse(raw_url)?;
    let mut c = connect(&url, None).await?;
    let sql = format!("SELECT * FROM {}{}", q(&plan.table), plan.filter);
    // A wrong table name or condition fails here, in a dry run too.
    c.prep(sql.as_str())
        .await
        .map_err(|e| classify(&url, &e).context(plan.context()))?;
    if ctx.dry_run {
        return Ok(plan.dry());
    }
    let mut sink = plan.sink()?;
    // Rows stream from the server (text protocol, unbuffered) straight into the file.
    let mut result = c
        .query_iter(sql.as_str())
        .await
        .map_err(|e| classify(&url, &e).context(plan.context()))?;
    let names: Vec<String> = result
        .columns_ref()
        .iter()
        .map(|col| col.name_str().into_owned())
        .collect();
    sink.columns(names)?;
    let mut failed: HostResult<()> = Ok(());
    while let Some(mut row) = result
        .next()
        .await
        .map_err(|e| classify(&url, &e).context(plan.context()))?
    {
        if sink.rows().is_multiple_of(10_000) {
            ctx.check_cancelled()?;
        }
        let values = values(&mut row);
        if let Err(e) = sink.row(values) {
            failed = Err(e);
            break;
        }
    }
    drop(result);
    failed?;
    let _ = c.disconnect().await;
    sink.finish(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_parameters_keep_their_types() {
        let p = params(&[
            Value::from(3),
            Value::from("it's"),
            Value::Null,
            Value::from(true),
        ]);
        assert_eq!(p[0], mysql_async::Value::Int(3));
        assert_eq!(p[1], mysql_async::Value::Bytes(b"it's".to_vec()));
        assert_eq!(p[2], mysql_async::Value::NULL);
        assert_eq!(p[3], mysql_async::Value::Int(1));
    }
}
