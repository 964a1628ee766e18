//! Typed options of the database functions (decoded from the script's map with serde).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::dump_file::{CompressOpt, Sanity, SizeOpt};
use crate::error::HostResult;
use crate::host::binding::serde_duration;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DumpOptions {
    /// File or directory; default `./backups/<db>_<YYYY-mm-dd_HHMMSS>.<ext>`.
    pub to: Option<String>,
    /// plain | custom | directory (PostgreSQL).
    pub format: Option<String>,
    pub compress: Option<CompressOpt>,
    pub tables: Vec<String>,
    pub exclude_tables: Vec<String>,
    pub schema_only: bool,
    pub data_only: bool,
    /// Parallel pg_dump jobs (directory format).
    pub jobs: Option<u32>,
    pub min_size: Option<SizeOpt>,
    pub max_shrink: Option<f64>,
    /// Compression threads (default: all cores).
    pub threads: Option<usize>,
}

impl DumpOptions {
    pub fn sanity(&self) -> HostResult<Sanity> {
        Ok(Sanity {
            min_size: self.min_size.as_ref().map(|s| s.bytes()).transpose()?,
            max_shrink: self.max_shrink,
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreOptions {
    /// Create the target database when it does not exist.
    pub create: bool,
    /// Drop and recreate a non-empty target first.
    pub clean: bool,
    pub jobs: Option<u32>,
    /// pg_restore --no-owner.
    pub no_owner: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub database: String,
    pub format: String,
    pub dump_bytes: u64,
    pub duration_ms: u64,
    pub dry_run: bool,
}

impl RestoreReport {
    /// The report of a restore of `dump` into `database` that started at `started`.
    pub fn new(
        database: &str,
        format: &str,
        dump: &Path,
        started: Instant,
        dry_run: bool,
    ) -> RestoreReport {
        RestoreReport {
            database: database.into(),
            format: format.into(),
            dump_bytes: std::fs::metadata(dump).map(|m| m.len()).unwrap_or(0),
            duration_ms: started.elapsed().as_millis() as u64,
            dry_run,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VacuumOptions {
    pub full: bool,
    pub analyze: Option<bool>,
    pub tables: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VacuumReport {
    pub database: String,
    pub size_before: u64,
    pub size_after: u64,
    pub tables: Vec<String>,
    /// SQLite integrity_check result ("ok"), empty elsewhere.
    pub integrity: String,
    pub duration_ms: u64,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsOptions {
    /// Queries running longer than this are reported (default 5m).
    #[serde(with = "serde_duration::option")]
    pub long_running: Option<Duration>,
    /// How many of the largest tables to list (default 10).
    pub top: Option<usize>,
}

impl StatsOptions {
    pub fn threshold(&self) -> Duration {
        self.long_running.unwrap_or(Duration::from_secs(300))
    }
    pub fn top(&self) -> usize {
        self.top.unwrap_or(10)
    }
}

/// `db_stats`: one shape for every SQL engine (fields an engine lacks are absent or zero).
#[derive(Debug, Clone, Serialize)]
pub struct DbStats {
    pub engine: &'static str,
    pub database: String,
    pub server_version: String,
    pub size_bytes: u64,
    pub connections: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
    pub long_running: Vec<serde_json::Map<String, serde_json::Value>>,
    pub largest_tables: Vec<serde_json::Map<String, serde_json::Value>>,
    pub dead_tuples: i64,
    /// SQLite: free pages and page size (what VACUUM would return).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_pages: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeleteOptions {
    /// Rows per batch (default 10,000).
    pub batch: Option<u64>,
    /// Pause between batches (default 100ms).
    #[serde(with = "serde_duration::option")]
    pub pause: Option<Duration>,
    /// Stop after this many batches (the rest waits for the next run).
    pub max_batches: Option<u64>,
}

impl DeleteOptions {
    pub fn batch(&self) -> u64 {
        self.batch.unwrap_or(10_000).max(1)
    }
    pub fn pause(&self) -> Duration {
        self.pause.unwrap_or(Duration::from_millis(100))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DeleteReport {
    pub table: String,
    pub deleted: u64,
    pub batches: u64,
    /// Rows that match (counted in dry-run; otherwise what is left after max_batches).
    pub matching: u64,
    pub duration_ms: u64,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportOptions {
    /// csv (default) or jsonl.
    pub format: Option<String>,
    /// Default: gzip when `to` ends in .gz, zstd when it ends in .zst.
    pub compress: Option<CompressOpt>,
    /// Only rows matching this SQL condition (the body of a WHERE clause), e.g.
    /// "created_at < now() - interval '90 days'" — for archiving before deleting.
    #[serde(rename = "where")]
    pub filter: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    pub duration_ms: u64,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

impl ExportOptions {
    /// " WHERE (<filter>)" or nothing.
    pub fn where_clause(&self) -> String {
        match self.filter.as_deref().map(str::trim) {
            Some(f) if !f.is_empty() => format!(" WHERE ({f})"),
            _ => String::new(),
        }
    }

    pub fn format(&self) -> HostResult<ExportFormat> {
        match self.format.as_deref().unwrap_or("csv") {
            "csv" => Ok(ExportFormat::Csv),
            "jsonl" | "ndjson" => Ok(ExportFormat::Jsonl),
            other => Err(crate::error::HostError::invalid(format!(
                "format {other:?} is not supported (use \"csv\" or \"jsonl\")"
            ))),
        }
    }
    pub fn codec(&self, to: &str) -> HostResult<Option<crate::host::codec::Codec>> {
        use crate::host::codec::{Codec, GZIP_DEFAULT, ZSTD_DEFAULT};
        match &self.compress {
            None if to.ends_with(".gz") => Ok(Some(Codec::Gzip(GZIP_DEFAULT))),
            None if to.ends_with(".zst") => Ok(Some(Codec::Zstd(ZSTD_DEFAULT))),
            None => Ok(None),
            some => super::dump_file::codec_of(some),
        }
    }
}
