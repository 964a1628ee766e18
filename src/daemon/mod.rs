//! `mtn daemon`: cron schedules, hot reload, history, metrics. Filled in by the daemon issue.

use crate::cli::Command;

/// `mtn daemon`, `jobs`, `history`, `trigger`.
pub fn command(_cmd: Command) -> i32 {
    eprintln!("error: the daemon is not available yet");
    crate::commands::exit::USAGE
}
