//! The one export sink of `export_table`: rows (or bytes an engine already formatted, like
//! PostgreSQL's COPY) into a file written atomically, compressed when asked, with its `.sha256`
//! sidecar, and the one report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Map, Value};

use super::dump_file::{DumpWriter, Sanity};
use super::options::{ExportFormat, ExportOptions, ExportReport};
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::codec::Codec;

/// What an export reads (the table, the `where` filter) and where and how it goes, decided
/// (and the destination checked against the policy) before the engine touches the database.
pub struct ExportPlan {
    pub table: String,
    /// ` WHERE (...)`, or empty.
    pub filter: String,
    pub dest: PathBuf,
    pub format: ExportFormat,
    codec: Option<Codec>,
    started: Instant,
}

impl ExportPlan {
    pub fn new(
        ctx: &RunCtx,
        table: &str,
        to: &str,
        opts: &ExportOptions,
    ) -> HostResult<ExportPlan> {
        Ok(ExportPlan {
            started: Instant::now(),
            table: table.to_string(),
            filter: opts.where_clause(),
            format: opts.format()?,
            codec: opts.codec(to)?,
            dest: ctx.policy.check_write(Path::new(to))?,
        })
    }

    /// What an engine's error adds: `export_table TABLE`.
    pub fn context(&self) -> String {
        format!("export_table {}", self.table)
    }

    /// What a dry run reports: the destination, nothing written.
    pub fn dry(&self) -> ExportReport {
        ExportSink::dry(&self.dest)
    }

    pub fn sink(&self) -> HostResult<ExportSink> {
        ExportSink::create(&self.dest, self.format, self.codec, self.started)
    }
}

pub struct ExportSink {
    w: DumpWriter,
    dest: PathBuf,
    format: ExportFormat,
    names: Vec<String>,
    rows: u64,
    started: Instant,
}

impl ExportSink {
    /// What a dry run reports: the destination, nothing written.
    pub fn dry(dest: &Path) -> ExportReport {
        ExportReport {
            path: dest.display().to_string(),
            rows: 0,
            bytes: 0,
            sha256: String::new(),
            duration_ms: 0,
            dry_run: true,
        }
    }

    pub fn create(
        dest: &Path,
        format: ExportFormat,
        codec: Option<Codec>,
        started: Instant,
    ) -> HostResult<ExportSink> {
        Ok(ExportSink {
            w: DumpWriter::create(dest, codec, None)?,
            dest: dest.to_path_buf(),
            format,
            names: Vec::new(),
            rows: 0,
            started,
        })
    }

    fn io(&self, e: std::io::Error) -> HostError {
        HostError::io(format!("writing {}", self.dest.display()), &e)
    }

    /// The column names: the CSV header line, the JSON keys.
    pub fn columns(&mut self, names: Vec<String>) -> HostResult<()> {
        if self.format == ExportFormat::Csv {
            let header: Vec<String> = names.iter().map(|n| csv_field(n)).collect();
            writeln!(self.w, "{}", header.join(",")).map_err(|e| self.io(e))?;
        }
        self.names = names;
        Ok(())
    }

    /// One row, its values in column order.
    pub fn row(&mut self, values: Vec<Value>) -> HostResult<()> {
        match self.format {
            ExportFormat::Csv => {
                let fields: Vec<String> = values
                    .iter()
                    .map(|v| match v {
                        Value::Null => String::new(),
                        Value::String(s) => csv_field(s),
                        other => other.to_string(),
                    })
                    .collect();
                writeln!(self.w, "{}", fields.join(",")).map_err(|e| self.io(e))?;
            }
            ExportFormat::Jsonl => {
                let obj: Map<String, Value> = self.names.iter().cloned().zip(values).collect();
                serde_json::to_writer(&mut self.w, &obj)
                    .map_err(|e| HostError::other(format!("{e}")))?;
                self.w.write_all(b"\n").map_err(|e| self.io(e))?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Bytes already in the export's format (PostgreSQL COPY output).
    pub fn raw(&mut self, data: &[u8]) -> HostResult<()> {
        self.w.write_all(data).map_err(|e| self.io(e))
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Close, fsync, rename into place, write the sidecar. `rows` overrides the count for raw
    /// writes.
    pub fn finish(self, rows: Option<u64>) -> HostResult<ExportReport> {
        let rows = rows.unwrap_or(self.rows);
        let dest = self.dest.clone();
        let finished = self
            .w
            .finish()
            .map_err(|e| HostError::io(format!("writing {}", dest.display()), &e))?;
        let r = finished.commit(&Sanity::default(), "export")?;
        Ok(ExportReport {
            path: r.path,
            rows,
            bytes: r.bytes,
            sha256: r.sha256,
            duration_ms: self.started.elapsed().as_millis() as u64,
            dry_run: false,
        })
    }
}

/// RFC 4180 quoting, only when needed.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
