//! PostgreSQL queries and maintenance through tokio-postgres: db_query, db_exec, vacuum,
//! db_stats, delete_rows_older_than.

use std::time::Instant;

use serde_json::{Map, Value};
use tokio_postgres::Client;

use super::conn::{connect, query_error};
use super::q;
use super::values::{row_to_json, Param};
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::db::batches::{BatchDelete, OlderThan};
use crate::host::db::options::*;
use crate::host::db::url::ServerUrl;

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

pub async fn stats(raw_url: &str, opts: StatsOptions) -> HostResult<DbStats> {
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
    Ok(DbStats {
        engine: "postgres",
        database: url.database.clone(),
        server_version: version,
        size_bytes: db_size(&c).await?,
        connections,
        max_connections: Some(max_connections as i64),
        long_running,
        largest_tables,
        dead_tuples: dead,
        free_pages: None,
        page_size: None,
    })
}

/// The batched delete on PostgreSQL: ctid batches, each DELETE its own short transaction.
pub struct PgDelete {
    c: super::conn::PgClient,
    secs: f64,
    count_sql: String,
    delete: tokio_postgres::Statement,
    what: String,
}

impl BatchDelete for PgDelete {
    async fn count(&mut self) -> HostResult<u64> {
        self.c
            .query_one(self.count_sql.as_str(), &[&self.secs])
            .await
            .map(|r| r.get::<_, i64>(0).max(0) as u64)
            .map_err(|e| query_error(&e).context(format!("delete_rows_older_than {}", self.what)))
    }
    async fn delete_batch(&mut self, limit: u64) -> HostResult<u64> {
        self.c
            .execute(&self.delete, &[&self.secs, &(limit as i64)])
            .await
            .map_err(|e| query_error(&e))
    }
}

impl PgDelete {
    pub async fn open(raw_url: &str, rows: &OlderThan<'_>) -> HostResult<PgDelete> {
        let c = connect(&ServerUrl::parse(raw_url)?).await?;
        let t = q(rows.table);
        let cond = format!(
            "{} < now() - make_interval(secs => $1::float8)",
            q(rows.column)
        );
        let del = format!(
            "DELETE FROM {t} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {t} WHERE {cond} LIMIT $2::int8))"
        );
        let delete = c.prepare(&del).await.map_err(|e| query_error(&e))?;
        Ok(PgDelete {
            c,
            secs: rows.age.as_secs_f64(),
            count_sql: format!("SELECT count(*) FROM {t} WHERE {cond}"),
            delete,
            what: rows.what(),
        })
    }
}
