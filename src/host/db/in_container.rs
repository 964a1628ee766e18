//! The container side of the database tools, shared by every engine whose dumps and restores run
//! the container's own client (PostgreSQL's pg_dump/psql/pg_restore, MariaDB's
//! mariadb-dump/mariadb or MySQL's mysqldump/mysql): the tool runs through the engine's exec API
//! (`container::process`, no shell), its secret in the exec's environment only, and its bytes go
//! through the same path as a host dump — stdout piped into the parallel-gzip writer (temporary
//! name, fsync, rename, `.sha256`), a restore's dump fed into its stdin.

use std::path::{Path, PathBuf};

use crate::error::{ErrorKind, HostError, HostResult};
use crate::host::codec::Codec;
use crate::host::container::db::Target;
use crate::host::container::process::{self, AbortOnDrop, Spec};
use crate::host::db::dump_file::{self, Finished};

/// One tool invocation in the container: the argument vector and its environment (where the
/// password travels: PGPASSWORD, MYSQL_PWD).
pub struct Tool<'a> {
    pub container: &'a Target,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
}

impl Tool<'_> {
    fn spec(&self, stdin: bool) -> Spec<'_> {
        Spec {
            container: &self.container.name,
            cmd: self.cmd.clone(),
            env: self.env.clone(),
            user: None,
            workdir: None,
            stdin,
        }
    }
}

/// How a tool ended: its exit code and (redacted) stderr.
pub struct Exit {
    pub code: i64,
    pub stderr: String,
}

impl Exit {
    /// The stderr, or the exit code when the tool said nothing.
    pub fn reason(&self) -> String {
        if self.stderr.is_empty() {
            format!("exited with code {}", self.code)
        } else {
            self.stderr.clone()
        }
    }
}

/// Run the tool with its stdout streamed into a new dump at `dest` (compressed with `codec`).
/// The written file is returned with the exit: the caller checks the exit first (a failed tool's
/// stderr says more than a short file) and commits the file only then.
pub async fn dump_to(
    tool: Tool<'_>,
    dest: PathBuf,
    codec: Option<Codec>,
    threads: Option<usize>,
) -> HostResult<(Exit, HostResult<Finished>)> {
    let mut running = process::start(tool.spec(false)).await?;
    let (out, pump) = running.stdout_file()?;
    let pump = AbortOnDrop::new(pump);
    let written = dump_file::write_from(out, dest, codec, threads)
        .await
        .map_err(|e| HostError::other(format!("the thread writing the dump failed: {e}")))
        .and_then(|r| r);
    let what = format!("reading the output of {}", tool.cmd[0]);
    let stderr = pump.join(&what).await??;
    let code = running.exit_code().await?;
    Ok((Exit { code, stderr }, written))
}

/// Run the tool with `input` (a dump, decompressed when needed) fed to its stdin; returns its
/// exit and up to 1 MiB of its stdout.
pub async fn run_fed(tool: Tool<'_>, input: &Path) -> HostResult<(Exit, Vec<u8>)> {
    let mut running = process::start(tool.spec(true)).await?;
    let (stdin, pump) = running.stdin_file()?;
    let _pump = AbortOnDrop::new(pump);
    let feeder = dump_file::feed(input, stdin);
    let (fed, collected) = tokio::join!(feeder, running.collect(1024 * 1024));
    let (out, err, _) = collected?;
    let code = running.exit_code().await?;
    fed.map_err(|e| HostError::other(format!("the thread feeding the dump failed: {e}")))??;
    let stderr = crate::redact::redact(String::from_utf8_lossy(&err).trim());
    Ok((Exit { code, stderr }, out))
}

/// The first of `names` the container has (it runs with `--version`): images ship one client or
/// the other (MariaDB's `mariadb-dump`, MySQL's `mysqldump`).
pub async fn which(c: &Target, names: &[&str]) -> HostResult<String> {
    for name in names {
        let spec = Spec {
            container: &c.name,
            cmd: vec![name.to_string(), "--version".into()],
            env: Vec::new(),
            user: None,
            workdir: None,
            stdin: false,
        };
        let mut running = process::start(spec).await?;
        let (out, _, _) = running.collect(64 * 1024).await?;
        if running.exit_code().await? == 0 {
            tracing::debug!(target: "mtn::db", "container {}: {}", c.name, String::from_utf8_lossy(&out).trim());
            return Ok(name.to_string());
        }
    }
    Err(HostError::new(
        ErrorKind::MissingTool,
        format!(
            "container {} has no {} in its PATH: its image ships no database client tools",
            c.name,
            names.join(" or ")
        ),
    ))
}
