//! One file per subcommand.

pub mod check;
mod client;
pub mod docs;
pub mod fns;
mod history;
mod jobs;
pub mod run;
mod trigger;

use crate::cli::{Cli, Command};
use crate::exit;

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
    exit::finish(match cli.command {
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
            Ok(exit::OK)
        }
        Command::Daemon {
            paths,
            check,
            listen,
            log_format,
            verbose,
            quiet,
        } => {
            if check {
                check::config_only(&paths.config, paths.state_dir.as_deref())
            } else {
                let verbosity = if quiet { -1 } else { verbose.min(3) as i8 };
                crate::daemon::run(&paths, listen, log_format, verbosity)
            }
        }
        Command::Jobs { paths, json, next } => match next {
            Some(n) => check::next_fires(&paths.config, paths.state_dir.as_deref(), n, json),
            None => jobs::run(&paths, json),
        },
        Command::History {
            job,
            paths,
            limit,
            json,
            failed,
            since,
            tail,
            local,
        } => {
            let filter = history::Filter {
                job,
                limit,
                failed,
                since,
                local,
            };
            match tail {
                Some(run) => history::tail(&paths, filter.job.as_deref(), &run, json),
                None => history::list(&paths, &filter, json),
            }
        }
        Command::Trigger { job, paths } => trigger::run(&paths, &job),
    })
}
