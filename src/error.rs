//! The error every host function core returns (and the ground-floor modules under them, such as
//! policy and units), and its mapping into Rhai.
//!
//! A host error becomes a catchable Rhai runtime error whose thrown value is a map
//! `#{ kind, message, retryable, function }`, so a script can `try { } catch (e) { }` and decide.
//! Timeouts and cancellations become `ErrorTerminated`, which scripts cannot catch: a deadline
//! or a SIGTERM must stop the script, not be swallowed by a `catch`.

use std::fmt;

use rhai::{Dynamic, EvalAltResult, Map, Position};

/// What went wrong, coarse enough for a script to branch on (`e.kind == "network"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A bad argument or option: a typo, a malformed URL, an unknown option key.
    InvalidInput,
    /// A file, database, bucket or object that does not exist.
    NotFound,
    /// The operating system or a server said no (EACCES, not authorized).
    PermissionDenied,
    /// A database login failed: missing or wrong password (the message says where mtn looked).
    Auth,
    /// mtn's safety policy refused the action (outside allowed roots, system path, exec not allowed).
    Refused,
    /// Local I/O failed (disk full, read error).
    Io,
    /// A connection failed or dropped; usually worth retrying.
    Network,
    /// The peer answered with an error (5xx, SQL error, protocol error).
    Server,
    /// A verification failed: checksum mismatch, dump too small, failed restore check.
    Verification,
    /// A required external program is missing or unusable.
    MissingTool,
    /// The run's deadline passed.
    Timeout,
    /// The run was cancelled (SIGINT/SIGTERM, daemon shutdown).
    Cancelled,
    /// The script itself called `fail()`.
    Failed,
    /// Anything else.
    Other,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Auth => "auth",
            ErrorKind::Refused => "refused",
            ErrorKind::Io => "io",
            ErrorKind::Network => "network",
            ErrorKind::Server => "server",
            ErrorKind::Verification => "verification",
            ErrorKind::MissingTool => "missing_tool",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Failed => "failed",
            ErrorKind::Other => "other",
        }
    }
}

/// The error type of every host function core.
#[derive(Debug, Clone)]
pub struct HostError {
    pub kind: ErrorKind,
    pub message: String,
    pub retryable: bool,
}

pub type HostResult<T> = Result<T, HostError>;

impl HostError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let retryable = matches!(kind, ErrorKind::Network | ErrorKind::Timeout);
        HostError {
            kind,
            message: message.into(),
            retryable,
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Refused, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn network(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Network, message)
    }
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Server, message)
    }
    pub fn verification(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Verification, message)
    }
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Other, message)
    }
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// An I/O error with the path it concerns; the kind follows the OS error.
    pub fn io(context: impl fmt::Display, err: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match err.kind() {
            K::NotFound => ErrorKind::NotFound,
            K::PermissionDenied => ErrorKind::PermissionDenied,
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::TimedOut => ErrorKind::Network,
            _ => ErrorKind::Io,
        };
        HostError::new(kind, format!("{context}: {err}"))
    }

    /// Prefix the message with more context (`"uploading x: " + message`).
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Convert into the Rhai error a binding returns. `function` names the host function.
    pub fn into_rhai(self, function: &str) -> Box<EvalAltResult> {
        let message = crate::redact::redact(&self.message);
        match self.kind {
            ErrorKind::Timeout | ErrorKind::Cancelled => Box::new(EvalAltResult::ErrorTerminated(
                Dynamic::from(format!("{function}: {message}")),
                Position::NONE,
            )),
            _ => {
                let mut map = Map::new();
                map.insert("kind".into(), self.kind.as_str().into());
                map.insert("message".into(), message.into());
                map.insert("retryable".into(), self.retryable.into());
                map.insert("function".into(), function.into());
                Box::new(EvalAltResult::ErrorRuntime(map.into(), Position::NONE))
            }
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for HostError {}

impl From<std::io::Error> for HostError {
    fn from(err: std::io::Error) -> Self {
        HostError::io("I/O error", &err)
    }
}
