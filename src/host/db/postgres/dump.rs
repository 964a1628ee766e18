//! `dump_db` for PostgreSQL: the system's pg_dump (plain, custom or directory format) streamed
//! through the shared compression path, with the tool checked against the server's version first.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use super::conn::connect;
use super::{checked_tool, libpq_env, server_major, tool_dsn, tool_failure, CLIENT_PACKAGE};
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::codec::Codec;
use crate::host::db::backend::ContainerTarget;
use crate::host::db::dump_file::{self, DumpReport};
use crate::host::db::options::*;
use crate::host::db::server_dump::{self, DumpPlan};
use crate::host::db::tools;
use crate::host::db::url::ServerUrl;

pub async fn dump(
    ctx: &RunCtx,
    raw_url: &str,
    opts: DumpOptions,
    container: Option<&ContainerTarget>,
) -> HostResult<DumpReport> {
    let plan = plan_dump(ctx, raw_url, &opts)?;
    if let Some(c) = container {
        return super::in_container::dump(ctx, plan, opts, c).await;
    }
    let DumpPlan {
        url,
        format,
        codec,
        sanity,
        dest,
    } = plan;
    let pg_dump = tools::find_tool(&["pg_dump"], CLIENT_PACKAGE)?;
    let server = server_version(&url).await?;
    let pg_dump = checked_tool(pg_dump.to_str().unwrap_or("pg_dump"), Some(server)).await?;
    if ctx.dry_run {
        return Ok(dump_file::dry_run_report(&dest, &format));
    }

    let mut cmd = tools::command(&pg_dump);
    libpq_env(&mut cmd, &url);
    cmd.args(dump_args(&opts, &format, codec, &tool_dsn(&url)));
    if format == "directory" {
        return dump_directory(cmd, &pg_dump, &url, &dest, &opts, &sanity).await;
    }
    cmd.stdout(Stdio::piped());
    let mut child = tools::spawn(&mut cmd, &pg_dump)?;
    let stderr = tools::drain_stderr(&mut child);
    let out = tools::stdout_file(&mut child)?;
    // pg_dump's own compression already did the work for custom format.
    let level = if format == "plain" { codec } else { None };
    let writer = dump_file::write_from(out, dest.clone(), level, opts.threads);
    let finished = tools::wait_with(child, stderr, writer, "pg_dump", |err| {
        tool_failure("pg_dump", &url, err)
    })
    .await?;
    if format == "plain" {
        check_trailer(&finished)?;
    } else {
        verify_archive(finished.tmp_path(), &url).await?;
    }
    let report = server_dump::commit(finished, sanity, format).await?;
    tracing::info!(target: "mtn::db", path = %report.path, bytes = report.bytes, raw_bytes = report.raw_bytes, "PostgreSQL dump written: {} ({} before compression)", crate::units::human(report.bytes), crate::units::human(report.raw_bytes));
    Ok(report)
}

/// The dump's plan (the same on the host and in a container): a known format, and not both
/// schema_only and data_only.
fn plan_dump(ctx: &RunCtx, raw_url: &str, opts: &DumpOptions) -> HostResult<DumpPlan> {
    let plan = server_dump::plan(ctx, ServerUrl::parse(raw_url)?, opts, extension)?;
    if opts.schema_only && opts.data_only {
        return Err(HostError::invalid(
            "schema_only and data_only exclude each other",
        ));
    }
    Ok(plan)
}

/// The server's major version, asked before its tools run: a wrong password, host or database
/// fails here, clearly.
pub(super) async fn server_version(url: &ServerUrl) -> HostResult<u32> {
    let client = connect(url).await?;
    server_major(&client).await
}

/// A plain dump ends with pg_dump's trailer, or it is truncated.
pub(super) fn check_trailer(finished: &dump_file::Finished) -> HostResult<()> {
    server_dump::check_trailer(
        finished,
        "pg_dump",
        "PostgreSQL database dump complete",
        "dump complete",
    )
}

/// pg_dump's arguments for `opts` (the same on the host and in a container).
pub(super) fn dump_args(
    opts: &DumpOptions,
    format: &str,
    codec: Option<Codec>,
    dsn: &str,
) -> Vec<String> {
    let mut a = vec![
        "--no-password".to_string(),
        format!("--dbname={dsn}"),
        format!("--format={}", &format[..1]),
    ];
    for t in &opts.tables {
        a.push(format!("--table={t}"));
    }
    for t in &opts.exclude_tables {
        a.push(format!("--exclude-table={t}"));
    }
    if opts.schema_only {
        a.push("--schema-only".into());
    }
    if opts.data_only {
        a.push("--data-only".into());
    }
    if format != "plain" {
        // pg_dump compresses its own archives; zstd inside them needs pg_dump 16 or later
        // (older ones refuse the argument, and their error is passed on).
        a.push(match codec {
            None => "--compress=0".to_string(),
            Some(Codec::Gzip(l)) => format!("--compress={l}"),
            Some(Codec::Zstd(l)) => format!("--compress=zstd:{l}"),
        });
    }
    a
}

/// The extension of a dump file for a format, or the error for an unknown format.
pub(super) fn extension(format: &str, codec: Option<Codec>) -> HostResult<String> {
    Ok(match format {
        "plain" => format!(".sql{}", codec.map_or("", |c| c.ext())),
        "custom" => ".dump".into(),
        "directory" => ".dir".into(),
        other => {
            return Err(HostError::invalid(format!(
                "format {other:?} is not valid (use \"plain\", \"custom\" or \"directory\")"
            )))
        }
    })
}

/// A custom or directory archive must be readable by pg_restore.
async fn verify_archive(path: &Path, url: &ServerUrl) -> HostResult<()> {
    let pg_restore = checked_tool("pg_restore", None).await?;
    let mut cmd = tools::command(&pg_restore);
    cmd.arg("--list").arg(path);
    let out = tools::run_output(cmd, &pg_restore, |e| {
        HostError::verification(format!(
            "pg_restore --list rejects the new dump of {}: {e}",
            url.database
        ))
    })
    .await?;
    if !out.contains("TOC Entries") {
        return Err(HostError::verification(
            "pg_restore --list shows no table of contents",
        ));
    }
    Ok(())
}

async fn dump_directory(
    mut cmd: tokio::process::Command,
    pg_dump: &Path,
    url: &ServerUrl,
    dest: &Path,
    opts: &DumpOptions,
    sanity: &dump_file::Sanity,
) -> HostResult<DumpReport> {
    let started = Instant::now();
    if let Some(p) = dest.parent() {
        crate::atomic::create_private_dirs(p)
            .map_err(|e| HostError::io(format!("creating {}", p.display()), &e))?;
    }
    // pg_dump creates the folder itself: it gets a path inside a private 0700 folder with a
    // random name, removed unless committed.
    let staging = crate::atomic::TempDir::create(dest).map_err(|e| {
        HostError::io(
            format!("creating a temporary folder next to {}", dest.display()),
            &e,
        )
    })?;
    let tmp = staging.inner().to_path_buf();
    cmd.arg(format!("--jobs={}", opts.jobs.unwrap_or(2).max(1)))
        .arg(format!("--file={}", tmp.display()));
    let mut child = tools::spawn(&mut cmd, pg_dump)?;
    let stderr = tools::drain_stderr(&mut child);
    tools::wait(child, stderr, "pg_dump", |err| {
        tool_failure("pg_dump", url, err)
    })
    .await?;
    verify_archive(&tmp, url).await?;
    let mut lines = String::new();
    let mut bytes = 0u64;
    let mut entries: Vec<_> = std::fs::read_dir(&tmp)
        .map_err(|e| HostError::io(format!("reading {}", tmp.display()), &e))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (n, h) = crate::atomic::sha256_file(&e.path())
            .map_err(|err| HostError::io(format!("hashing {}", e.path().display()), &err))?;
        bytes += n;
        lines.push_str(&format!("{h}  {}\n", e.file_name().to_string_lossy()));
    }
    sanity.check(dest, bytes)?;
    staging
        .commit()
        .map_err(|e| HostError::io(format!("renaming to {}", dest.display()), &e))?;
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(lines.as_bytes()))
    };
    let mut side = dest.file_name().unwrap_or_default().to_os_string();
    side.push(".sha256");
    crate::atomic::write_atomic(&dest.with_file_name(side), lines.as_bytes())
        .map_err(|e| HostError::io("writing sidecar", &e))?;
    Ok(DumpReport {
        path: dest.display().to_string(),
        bytes,
        raw_bytes: bytes,
        sha256: digest,
        duration_ms: started.elapsed().as_millis() as u64,
        dry_run: false,
        format: "directory".into(),
    })
}
