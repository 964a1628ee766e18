//! MariaDB/MySQL inside a container: `dump_db` and `restore_db` run the container's own
//! `mariadb-dump`/`mysqldump` and `mariadb`/`mysql` (whichever its image ships) through the
//! engine's exec API, so the dump always comes from the server's own version. The password goes
//! in the exec's environment (`MYSQL_PWD`), never in the arguments; the tools connect to the
//! server on the container's loopback. The bytes take the host dump's path (`db/in_container.rs`).

use std::path::Path;

use super::{classify, commit, conn, conn_args, dump_args, restore_args, DumpPlan};
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::container::db::Target;
use crate::host::db::dump_file::{self, DumpReport};
use crate::host::db::in_container::{self, Exit, Tool};
use crate::host::db::options::DumpOptions;
use crate::host::db::url::ServerUrl;

/// `tool` connecting to the server from inside the container, with the password in MYSQL_PWD.
fn tool<'a>(c: &'a Target, url: &ServerUrl, program: String, rest: &[String]) -> Tool<'a> {
    let mut cmd = vec![program];
    cmd.extend(conn_args(url, &c.inner_host));
    cmd.extend(rest.iter().cloned());
    Tool {
        container: c,
        cmd,
        env: url
            .password
            .iter()
            .map(|pw| format!("MYSQL_PWD={pw}"))
            .collect(),
    }
}

/// A failed tool, classified like the host's (authentication, connection, unknown database) and
/// naming the container.
fn failure(program: &str, url: &ServerUrl, c: &Target, exit: &Exit) -> HostError {
    classify(
        url,
        &format!("{program} (in container {})", c.name),
        &exit.reason(),
    )
}

pub(super) async fn dump(
    ctx: &RunCtx,
    plan: DumpPlan,
    opts: &DumpOptions,
    c: &Target,
) -> HostResult<DumpReport> {
    let url = &plan.url;
    // The server answers on the container's address: the same early check a host dump makes.
    let _ = conn::connect(url, None).await?.disconnect().await;
    let program = in_container::which(c, &["mariadb-dump", "mysqldump"]).await?;
    if ctx.dry_run {
        return Ok(dump_file::dry_run_report(&plan.dest, "plain"));
    }
    let t = tool(c, url, program.clone(), &dump_args(opts, &url.database));
    let (exit, written) = in_container::dump_to(t, plan.dest, plan.codec, opts.threads).await?;
    if exit.code != 0 {
        return Err(failure(&program, url, c, &exit));
    }
    let report = commit(written?, plan.sanity).await?;
    tracing::info!(target: "mtn::db", path = %report.path, bytes = report.bytes, raw_bytes = report.raw_bytes, container = %c.name, "MariaDB/MySQL dump written ({program} of the container)");
    Ok(report)
}

/// The container's client (asked before the target database is touched).
pub(super) async fn client(c: &Target) -> HostResult<String> {
    in_container::which(c, &["mariadb", "mysql"]).await
}

/// Feed the dump to the container's `program`; the target database is ready (`prepare_target`).
pub(super) async fn restore(
    dump: &Path,
    url: &ServerUrl,
    c: &Target,
    program: String,
) -> HostResult<()> {
    let t = tool(c, url, program.clone(), &restore_args(url));
    let (exit, _) = in_container::run_fed(t, dump).await?;
    if exit.code != 0 {
        return Err(failure(&program, url, c, &exit));
    }
    Ok(())
}
