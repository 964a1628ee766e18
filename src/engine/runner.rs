//! Executing a compiled script with its run context; shared by `mtn run` and the daemon.

use std::time::{Duration, Instant};

use rhai::AST;

use crate::ctx::{Ctx, StopReason};
use crate::engine::error::{render_with, Failure, Rendered};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warning,
    Failed,
    Timeout,
    Interrupted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Failed => "failed",
            Status::Timeout => "timeout",
            Status::Interrupted => "interrupted",
        }
    }

    /// The process exit code for this status (documented in docs/cli.md).
    pub fn exit_code(self, fail_on_warning: bool) -> i32 {
        use crate::exit;
        match self {
            Status::Ok => exit::OK,
            Status::Warning if fail_on_warning => exit::WARNING,
            Status::Warning => exit::OK,
            Status::Failed => exit::FAILED,
            Status::Timeout => exit::TIMEOUT,
            Status::Interrupted => exit::INTERRUPTED,
        }
    }
}

pub struct Outcome {
    pub status: Status,
    pub error: Option<Rendered>,
    pub duration: Duration,
    pub host_calls: u64,
    pub host_failures: u64,
}

fn late(what: &str) -> Rendered {
    stop_message(&format!("{what} before its last host call returned"))
}

/// The error of a run that panicked: say it is mtn's bug and where to report it.
pub fn panicked(panic: &(dyn std::any::Any + Send)) -> Rendered {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    let message = format!("internal error: {what}");
    Rendered {
        text: format!(
            "error: {message}\n  = note: this is a bug in mtn, not in your script; please report it with the script and this message\n"
        ),
        failure: crate::engine::error::Failure::Script,
        message,
    }
}

/// Build an engine for `ctx` and run `ast` on the current (blocking) thread.
pub fn execute(ctx: Ctx, ast: &AST) -> Outcome {
    let engine = crate::engine::build(ctx.clone());
    execute_with(&engine, ctx, ast)
}

/// Run `ast` with an engine already built for `ctx` (`mtn run` compiles with the same engine).
pub fn execute_with(engine: &rhai::Engine, ctx: Ctx, ast: &AST) -> Outcome {
    let started = Instant::now();
    let mut scope = crate::engine::initial_scope(&ctx);
    // A panic anywhere below (a bug in mtn, a library, Rhai) is a failed run with exit 1, never
    // mistaken for an interruption: mtn run and the daemon both come through here.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        engine.run_ast_with_scope(&mut scope, ast)
    }));
    let (status, error) = match result {
        Err(panic) => (Status::Failed, Some(panicked(panic.as_ref()))),
        // The last host call finished (it ignored or outran the token) after the deadline or a
        // signal: the run still did not end in time, and must not report success.
        Ok(Ok(())) if ctx.stop_reason() == Some(StopReason::Timeout) => {
            (Status::Timeout, Some(late("the run passed its --timeout")))
        }
        Ok(Ok(())) if ctx.stop_reason().is_some() => {
            (Status::Interrupted, Some(late("the run was interrupted")))
        }
        Ok(Ok(())) if ctx.warned() => (Status::Warning, None),
        Ok(Ok(())) => (Status::Ok, None),
        Ok(Err(e)) => {
            let r = render_with(&e, &ctx.script, ctx.stdlib_dir.as_deref());
            // A stop requested from outside wins over whatever error it caused inside.
            let status = match (ctx.stop_reason(), r.failure) {
                (Some(StopReason::Timeout), _) | (None, Failure::Timeout) => Status::Timeout,
                (Some(_), _) | (None, Failure::Interrupted) => Status::Interrupted,
                (None, Failure::Script) => Status::Failed,
            };
            (status, Some(r))
        }
    };
    let (host_calls, host_failures) = ctx.host_calls();
    Outcome {
        status,
        error,
        duration: started.elapsed(),
        host_calls,
        host_failures,
    }
}

/// How long a stopped run (timeout, signal, daemon shutdown) may take to unwind — remove its
/// temporary files, cancel its statements — before it is abandoned. The same for `mtn run` and
/// the daemon.
pub const GRACE: Duration = Duration::from_secs(5);

/// How a supervised run ended.
pub struct Ended {
    pub status: Status,
    /// Rendered for the user when the run did not succeed.
    pub error: Option<Rendered>,
}

/// Supervise one run: `work` (the script) runs on a blocking thread; `timeout` stops it through
/// `ctx`'s token; after any stop ([`Ctx::stop`]: timeout, signal, shutdown) it has [`GRACE`] to
/// unwind and is then abandoned; a panic is a failed run that names mtn's bug. `mtn run` and the
/// daemon both end every run through here, so they agree on what each ending means.
pub async fn supervise(
    ctx: &Ctx,
    timeout: Option<Duration>,
    work: impl FnOnce() -> Outcome + Send + 'static,
) -> Ended {
    let timer = timeout.map(|t| {
        let c = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(t).await;
            c.stop(StopReason::Timeout);
        })
    });
    let mut task = tokio::task::spawn_blocking(work);
    let token = ctx.token.clone();
    let joined = tokio::select! {
        r = &mut task => Some(r),
        _ = async { token.cancelled().await; tokio::time::sleep(GRACE).await } => None,
    };
    if let Some(t) = timer {
        t.abort();
    }
    let stopped = || match ctx.stop_reason() {
        Some(StopReason::Timeout) => Status::Timeout,
        _ => Status::Interrupted,
    };
    match joined {
        Some(Ok(outcome)) => {
            // A stop wins over the error it caused inside (a cancelled host call's message).
            let status = match (outcome.status, ctx.stop_reason()) {
                (Status::Ok | Status::Warning, _) | (_, None) => outcome.status,
                (_, Some(_)) => stopped(),
            };
            let error = outcome.error.or_else(|| match status {
                Status::Timeout | Status::Interrupted => Some(stop_message(stop_words(status))),
                _ => None,
            });
            Ended { status, error }
        }
        Some(Err(join)) if join.is_panic() => Ended {
            status: Status::Failed,
            error: Some(panicked(join.into_panic().as_ref())),
        },
        Some(Err(_)) | None => {
            let status = stopped();
            Ended {
                status,
                error: Some(stop_message(&format!(
                    "{} and did not stop within {}s; abandoned",
                    stop_words(status),
                    GRACE.as_secs()
                ))),
            }
        }
    }
}

/// What a stopped run's error says: "run timed out" or "run interrupted".
fn stop_words(status: Status) -> &'static str {
    if status == Status::Timeout {
        "run timed out"
    } else {
        "run interrupted"
    }
}

fn stop_message(message: &str) -> Rendered {
    Rendered {
        text: format!("error: {message}\n"),
        failure: Failure::Script,
        message: message.to_string(),
    }
}
