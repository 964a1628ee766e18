//! Command line: `mtn run`, `check`, `fns`, `docs`, `defs`, `daemon`, `jobs`, `history`, `trigger`,
//! `completions`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::logging::{ColorChoice, LogFormat};

#[derive(Parser, Debug)]
#[command(
    name = "mtn",
    version,
    about = "Run maintenance scripts: backups, restore tests, rotation, retention, checks"
)]
pub struct Cli {
    /// Read environment variables from this file first (systemd EnvironmentFile format:
    /// `NAME=value` lines, `#` comments, quotes), so secrets stay out of crontabs and command lines.
    /// Its values override the inherited environment, as systemd's EnvironmentFile= does.
    #[arg(long, global = true, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Colour in the log on stderr: `auto` (only on a terminal, and not when NO_COLOR is set),
    /// `always` or `never`.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

/// The daemon's config and state dir, shared by `daemon`, `jobs`, `history` and `trigger` so the
/// clients find the history and the token where the daemon keeps them.
#[derive(Args, Debug, Clone)]
pub struct DaemonPaths {
    /// Config file.
    #[arg(long, default_value = "mtn.toml")]
    pub config: PathBuf,
    /// History, state and the trigger token (default: the config's `state_dir`, else systemd's
    /// $STATE_DIRECTORY, else /var/lib/mtn as root, ~/.local/state/mtn otherwise).
    #[arg(long, env = "MTN_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    /// More output (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Folder of stdlib modules (default: MTN_STDLIB, else `stdlib/` beside the binary or in the repo).
    #[arg(long, env = "MTN_STDLIB", global = true)]
    pub stdlib: Option<PathBuf>,
    /// Config file with [policy] and [limits] (the daemon's mtn.toml works too).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// The script to run.
    pub file: PathBuf,
    /// Do everything up to the change: destructive functions report what they would do.
    #[arg(long)]
    pub dry_run: bool,
    /// Script variables, visible as `vars.NAME` (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Stop the run after this long (e.g. 30s, 10m, 2h); exit code 124.
    #[arg(long, value_name = "DUR")]
    pub timeout: Option<String>,
    /// Exit with code 3 when the run ends with warnings.
    #[arg(long)]
    pub fail_on_warning: bool,
    /// Allow writes and deletes under this folder (repeatable).
    #[arg(long = "allow-path", value_name = "DIR")]
    pub allow_path: Vec<PathBuf>,
    /// Allow `exec` to run this program (repeatable).
    #[arg(long = "allow-exec", value_name = "PROGRAM")]
    pub allow_exec: Vec<String>,
    /// Operation limit for the script (default 50,000,000; at least 1: Rhai reads 0 as
    /// "unlimited", which is never what a limit means).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_operations: Option<u64>,
    /// Where persisted state lives (default .mtn, or MTN_STATE_DIR).
    #[arg(long, env = "MTN_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Dead-man's switch for this run (healthchecks.io style): `/start` now, then success on
    /// exit 0 or `/fail` with the error and log tail on any other exit.
    #[arg(long, value_name = "URL")]
    pub ping: Option<String>,
    /// Tell this target (webhook or smtp:// URL) once when the run fails.
    #[arg(long, value_name = "TARGET")]
    pub notify: Option<String>,
    /// Run only if this host wins slot NAME on the fleet lock database (`--lock`, or `[fleet]
    /// lock` of `--config`); another host having it prints "skipped: claimed by HOST", exit 0.
    #[arg(long, value_name = "NAME")]
    pub once: Option<String>,
    /// The lock database for --once (postgres:// URL or libpq keyword string).
    #[arg(long, value_name = "URL", requires = "once")]
    pub lock: Option<String>,
    /// The slot to claim with --once (default: the current minute): an RFC 3339 time,
    /// `YYYY-MM-DD HH:MM[:SS]` in local time, or Unix seconds.
    #[arg(long, value_name = "TIME", requires = "once")]
    pub slot: Option<String>,
    /// This host's id in the claim and the shared history (default: `[fleet] host_id`, else the
    /// host name).
    #[arg(long, value_name = "ID", requires = "once")]
    pub host_id: Option<String>,
}

// Parsed once per process: the size of the largest variant (`run` and its flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a script once.
    Run {
        #[command(flatten)]
        args: RunArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Compile scripts without running them; report syntax errors and unknown functions.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// List every host function with its signature and summary.
    Fns {
        /// Only functions whose name or summary contains this word (case-insensitive).
        word: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Only functions of this capability (core, files, db, storage, checks, notify, exec).
        #[arg(long)]
        category: Option<String>,
    },
    /// Print the function reference as Markdown (docs/reference.md is generated from this).
    Docs {
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write Rhai definition files for editor completion.
    Defs {
        /// Folder to write the definitions into.
        #[arg(long, default_value = ".mtn/defs")]
        out: PathBuf,
    },
    /// Run scripts on cron schedules from mtn.toml, reloading edited scripts.
    Daemon {
        #[command(flatten)]
        paths: DaemonPaths,
        /// Check the config and every job's script, print the next fire times, and exit
        /// (0 when everything is valid) instead of starting.
        #[arg(long)]
        check: bool,
        /// Address for /healthz, /metrics, /status (overrides `listen` in the config).
        #[arg(long)]
        listen: Option<String>,
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
        /// Only warnings and errors.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show the daemon's jobs, schedules, next fire times and last results.
    Jobs {
        #[command(flatten)]
        paths: DaemonPaths,
        #[arg(long)]
        json: bool,
        /// Print each job's next N fire times instead of the status table.
        #[arg(long, value_name = "N")]
        next: Option<usize>,
    },
    /// Show the run history (of one job, or all).
    History {
        job: Option<String>,
        #[command(flatten)]
        paths: DaemonPaths,
        /// At most this many entries (the newest).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// One JSON object per line (with the log tail).
        #[arg(long)]
        json: bool,
        /// Only runs that failed or timed out.
        #[arg(long)]
        failed: bool,
        /// Only runs started within this long (e.g. 7d, 12h).
        #[arg(long, value_name = "DUR")]
        since: Option<String>,
        /// Show one run in full with its log tail: a run id (`42`, with JOB) or `JOB#42`.
        #[arg(long, value_name = "RUN")]
        tail: Option<String>,
        /// With `[fleet]`: this host's history file (with its skipped slots) instead of every
        /// host's runs from the lock database.
        #[arg(long)]
        local: bool,
    },
    /// Ask the running daemon to run a job now.
    Trigger {
        job: String,
        #[command(flatten)]
        paths: DaemonPaths,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}
