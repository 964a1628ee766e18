//! What the dumps of the server engines (PostgreSQL and MySQL/MariaDB, on the host or in a
//! container) share around dump_file's write path: the plan decided before any tool runs, and
//! the trailer check and commit after it.

use std::path::PathBuf;

use super::dump_file::{self, DumpReport, Finished, Sanity};
use super::options::DumpOptions;
use super::url::ServerUrl;
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::codec::Codec;

/// What a dump will write, checked before anything runs: the URL, the format ("plain" unless
/// the options say otherwise), the compression, the destination (allowed by the policy) and its
/// sanity checks.
pub struct DumpPlan {
    pub url: ServerUrl,
    pub format: String,
    pub codec: Option<Codec>,
    pub sanity: Sanity,
    pub dest: PathBuf,
}

/// The plan for `opts`; `ext` names the file's extension for a format and compression, or
/// refuses the format.
pub fn plan(
    ctx: &RunCtx,
    url: ServerUrl,
    opts: &DumpOptions,
    ext: impl FnOnce(&str, Option<Codec>) -> HostResult<String>,
) -> HostResult<DumpPlan> {
    let format = opts.format.clone().unwrap_or_else(|| "plain".into());
    let codec = dump_file::codec_of(&opts.compress)?;
    let ext = ext(&format, codec)?;
    let sanity = opts.sanity()?;
    let dest = dump_file::destination(opts.to.as_deref(), &url.database, &ext);
    let dest = ctx.policy.check_write(&dest)?;
    Ok(DumpPlan {
        url,
        format,
        codec,
        sanity,
        dest,
    })
}

/// A plain SQL dump ends with its tool's trailer (`marker`, said as `shown`); without it the
/// tool stopped early though it exited 0, and the dump is truncated.
pub fn check_trailer(finished: &Finished, tool: &str, marker: &str, shown: &str) -> HostResult<()> {
    if String::from_utf8_lossy(&finished.tail).contains(marker) {
        return Ok(());
    }
    Err(HostError::verification(format!(
        "{tool} exited 0 but its output lacks the \"{shown}\" trailer: the dump is truncated"
    )))
}

/// Check sizes, fsync, rename and write the sidecar, on a blocking thread.
pub async fn commit(finished: Finished, sanity: Sanity, format: String) -> HostResult<DumpReport> {
    tokio::task::spawn_blocking(move || finished.commit(&sanity, &format))
        .await
        .map_err(|e| HostError::other(format!("commit failed: {e}")))?
}
