//! `export_table` for PostgreSQL: `COPY ... TO STDOUT` (CSV with header, or one JSON object per
//! line) streamed into the shared export sink; [`RowCounter`] counts rows and undoes COPY's
//! text escaping for JSON lines.

use futures::StreamExt;

use super::conn::{connect, query_error};
use super::q;
use crate::ctx::RunCtx;
use crate::error::HostResult;
use crate::host::db::export_sink::ExportPlan;
use crate::host::db::options::*;
use crate::host::db::url::ServerUrl;

pub async fn export(ctx: &RunCtx, raw_url: &str, plan: ExportPlan) -> HostResult<ExportReport> {
    let format = plan.format;
    let url = ServerUrl::parse(raw_url)?;
    let c = connect(&url).await?;
    let t = q(&plan.table);
    let sql = match format {
        ExportFormat::Csv => format!(
            "COPY (SELECT * FROM {t}{}) TO STDOUT WITH (FORMAT csv, HEADER true)",
            plan.filter
        ),
        ExportFormat::Jsonl => format!(
            "COPY (SELECT row_to_json(x)::text FROM {t} x{}) TO STDOUT",
            plan.filter
        ),
    };
    // Plan it even in dry-run so a wrong table name shows up.
    let stream = c
        .copy_out(sql.as_str())
        .await
        .map_err(|e| query_error(&e).context(plan.context()))?;
    if ctx.dry_run {
        return Ok(plan.dry());
    }
    let mut sink = plan.sink()?;
    let mut counter = RowCounter::new(format);
    futures::pin_mut!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| query_error(&e).context(plan.context()))?;
        sink.raw(&counter.feed(&chunk))?;
    }
    sink.finish(Some(counter.rows()))
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
