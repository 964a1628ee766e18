//! One file per subcommand.

pub mod check;
pub mod docs;
pub mod fns;
pub mod run;

use std::path::PathBuf;

/// Exit codes; monitoring wrappers depend on them (documented in docs/cli.md).
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const WARNING: i32 = 3;
    pub const TIMEOUT: i32 = 124;
    pub const INTERRUPTED: i32 = 130;
}

/// Find the stdlib folder: explicit, else beside the binary, else in the source repository.
pub fn find_stdlib(explicit: Option<PathBuf>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p);
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let candidates = [
        dir.join("stdlib"),
        dir.join("../share/mtn/stdlib"),
        dir.join("../../stdlib"),
        dir.join("../../../stdlib"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("stdlib"),
    ];
    candidates.into_iter().find(|c| c.is_dir())
}

pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mtn-io")
        .build()
}

use crate::cli::{Cli, Command};

/// Commands that print a listing end quietly when the reader goes away (`mtn fns | head`):
/// the default SIGPIPE action, instead of Rust's "ignore it and panic in println!".
fn quiet_on_closed_pipe() {
    // SAFETY: called before any thread is started; resetting a signal disposition is
    // async-signal-safe and affects only this process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

pub fn dispatch(cli: Cli) -> i32 {
    if matches!(
        cli.command,
        Command::Fns { .. }
            | Command::Docs { .. }
            | Command::Defs { .. }
            | Command::Completions { .. }
            | Command::Jobs { .. }
            | Command::History { .. }
    ) {
        quiet_on_closed_pipe();
    }
    match cli.command {
        Command::Run { args, common } => run::run(args, common),
        Command::Check { files, common } => check::run(files, common),
        Command::Fns {
            word,
            json,
            category,
        } => fns::run(word, json, category),
        Command::Docs { out } => docs::run(out.as_deref()),
        Command::Defs { out } => docs::defs(&out),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "mtn", &mut std::io::stdout());
            exit::OK
        }
        other => crate::daemon::command(other),
    }
}
