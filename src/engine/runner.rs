//! Executing a compiled script with its run context; shared by `mtn run` and the daemon.

use std::time::{Duration, Instant};

use rhai::AST;

use crate::engine::ctx::{Ctx, StopReason};
use crate::engine::error::{render, Failure, Rendered};

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
}

pub struct Outcome {
    pub status: Status,
    pub error: Option<Rendered>,
    pub duration: Duration,
    pub host_calls: u64,
    pub host_failures: u64,
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
    let result = engine.run_ast_with_scope(&mut scope, ast);
    let (status, error) = match result {
        Ok(()) if ctx.warned() => (Status::Warning, None),
        Ok(()) => (Status::Ok, None),
        Err(e) => {
            let r = render(&e, &ctx.script);
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
