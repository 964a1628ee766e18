//! The reference clients the tests check mtn against: psql on the host or in the test
//! container, the docker CLI, the `zstd` CLI and the MongoDB driver. Each fails the test with the
//! client's own error.

use std::path::Path;
use std::process::Command;

use super::{env_var, stdout_of};

/// Run a client to completion; its stdout, trimmed. Fails the test with `what` and its stderr.
#[track_caller]
pub fn cli(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start it: {e}"));
    stdout_of(out, what).trim().to_string()
}

/// psql's flags for a reference query: no psqlrc, quiet, tuples only, unaligned, stop at the
/// first error.
const PSQL_QUERY: [&str; 6] = ["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"];

/// `psql` on the host for the database at `url` (no psqlrc, quiet, stop at the first error).
/// The URL's password goes in PGPASSWORD, never on the command line: other tests look for
/// passwords in `ps`.
pub fn psql_command(url: &str) -> Command {
    let mut u = url::Url::parse(url).unwrap_or_else(|e| panic!("bad PostgreSQL URL: {e}"));
    let password = u.password().map(|p| {
        percent_encoding::percent_decode_str(p)
            .decode_utf8_lossy()
            .into_owned()
    });
    u.set_password(None).expect("a URL with a host");
    let mut c = Command::new("psql");
    c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", u.as_str()]);
    if let Some(p) = password {
        c.env("PGPASSWORD", p);
    }
    c
}

/// One SQL command through psql on the host; its unaligned output, trimmed.
#[track_caller]
pub fn psql(url: &str, sql: &str) -> String {
    cli(
        psql_command(url).args(["-t", "-A", "-c", sql]),
        &format!("psql {sql}"),
    )
}

/// The docker CLI against the test engine (tests/env/80-docker.sh's).
pub fn docker_command() -> Command {
    let mut c = Command::new("docker");
    c.env("DOCKER_HOST", env_var("MTN_TEST_DOCKER_HOST"))
        .env("DOCKER_API_VERSION", "1.41");
    c
}

/// One docker CLI command against the test engine; its stdout, trimmed.
#[track_caller]
pub fn docker(args: &[&str]) -> String {
    cli(docker_command().args(args), &format!("docker {args:?}"))
}

/// One SQL command through the PostgreSQL container's own psql, as `postgres` on its socket.
#[track_caller]
pub fn ctr_psql(db: &str, sql: &str) -> String {
    let pg = env_var("MTN_TEST_DOCKER_PG");
    let mut args = vec!["exec", &pg, "psql"];
    args.extend(PSQL_QUERY);
    args.extend(["-U", "postgres", "-d", db, "-c", sql]);
    docker(&args)
}

/// `zstd -dc FILE` (checking frame checksums on the way).
#[track_caller]
pub fn unzstd(path: &Path) -> Vec<u8> {
    let out = Command::new("zstd")
        .args(["-d", "-c", "-q"])
        .arg(path)
        .output()
        .expect("run zstd");
    assert!(
        out.status.success(),
        "zstd -d {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A runtime for the MongoDB driver (the tests themselves are synchronous).
pub fn mongo_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A driver client for tests/env/60-mongo.sh's server (MTN_TEST_MONGO_URL), independent of mtn.
pub fn mongo_client(rt: &tokio::runtime::Runtime) -> mongodb::Client {
    let server = env_var("MTN_TEST_MONGO_URL");
    rt.block_on(mongodb::Client::with_uri_str(format!(
        "{server}/?serverSelectionTimeoutMS=5000"
    )))
    .expect("MongoDB client")
}
