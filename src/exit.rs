//! Exit codes and the one place a command's result becomes one.
//!
//! Monitoring wrappers depend on the codes (documented in docs/cli.md). Commands return a
//! [`Result`]: `Ok(code)` when they did their work (a script run that failed is still `Ok(1)`:
//! the run reported its own error), `Err` when they could not start it (bad arguments, an
//! unreadable config, a daemon that is not there). [`finish`] prints the error, redacted.

pub const OK: i32 = 0;
pub const FAILED: i32 = 1;
pub const USAGE: i32 = 2;
pub const WARNING: i32 = 3;
pub const TIMEOUT: i32 = 124;
pub const INTERRUPTED: i32 = 130;

/// Why a command could not do its work, and the exit code that says so.
#[derive(Debug)]
pub struct CommandError {
    pub code: i32,
    pub message: String,
}

impl CommandError {
    /// Bad arguments or configuration: exit 2.
    pub fn usage(message: impl Into<String>) -> Self {
        CommandError {
            code: USAGE,
            message: message.into(),
        }
    }

    /// The work was attempted and failed: exit 1.
    pub fn failed(message: impl Into<String>) -> Self {
        CommandError {
            code: FAILED,
            message: message.into(),
        }
    }
}

impl From<String> for CommandError {
    fn from(message: String) -> Self {
        CommandError::usage(message)
    }
}

pub type Result = std::result::Result<i32, CommandError>;

/// The process exit code of a command's result; an error is printed once, here, redacted.
pub fn finish(result: Result) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", crate::redact::redact(&e.message));
            e.code
        }
    }
}

/// The multi-threaded I/O runtime of `mtn run`, `mtn check` and the daemon.
pub fn runtime() -> std::result::Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mtn-io")
        .build()
        .map_err(|e| CommandError::usage(format!("cannot start the I/O runtime: {e}")))
}
