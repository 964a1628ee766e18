//! Building the Rhai engine, in one place.
//!
//! Every engine mtn uses (for `run`, `check`, `fns`, the daemon) comes from [`build`], so limits,
//! disabled symbols, cancellation and the host functions are the same everywhere.

pub mod check;
pub mod error;
pub mod monitor;
pub mod resolver;
pub mod runner;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

use rhai::{Dynamic, Engine, Scope, AST};

use crate::ctx::{Ctx, RunCtx, StopReason};
use crate::engine::resolver::ScriptResolver;

/// Build an engine for one run.
pub fn build(ctx: Ctx) -> Engine {
    let mut engine = Engine::new();
    let l = &ctx.limits;
    engine
        .set_max_operations(l.max_operations)
        .set_max_call_levels(l.max_call_levels)
        .set_max_expr_depths(l.max_expr_depth, l.max_function_expr_depth)
        .set_max_string_size(l.max_string_size)
        .set_max_array_size(l.max_array_size)
        .set_max_map_size(l.max_map_size)
        .set_max_modules(l.max_modules)
        .set_max_functions(l.max_functions)
        .set_max_variables(l.max_variables)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true);
    // Code built from strings at run time would bypass `mtn check` and the review of a script.
    engine.disable_symbol("eval");

    let progress_ctx = ctx.clone();
    let max_memory = ctx.limits.max_memory;
    engine.on_progress(move |_ops| {
        let live = crate::alloc::live_bytes();
        if live > max_memory {
            return Some(Dynamic::from(format!(
                "the script holds {} MiB of memory, over its limit of {} MiB (raise [limits] max_memory if this is intended)",
                live >> 20,
                max_memory >> 20
            )));
        }
        if progress_ctx.token.is_cancelled() {
            let why = match progress_ctx.stop_reason() {
                Some(StopReason::Timeout) => "run timed out",
                Some(StopReason::Interrupted) => "interrupted",
                _ => "cancelled (shutting down)",
            };
            Some(Dynamic::from(why))
        } else {
            None
        }
    });
    let print_ctx = ctx.clone();
    // `print` is the script's output: stdout, redacted, no timestamp, shown with -q, so a report
    // script can be piped. The daemon has no stdout to speak of: the job's log and history tail.
    engine.on_print(move |s| {
        let s = crate::redact::redact(s);
        print_ctx.log_tail.push("print", &s);
        if print_ctx.job.is_some() {
            tracing::info!(target: "mtn::script", "{s}");
        } else {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            // A closed pipe (`mtn run report.rhai | head -1`) is not the script's failure.
            let _ = writeln!(out, "{s}").and_then(|_| out.flush());
        }
    });
    engine.on_debug(|s, src, pos| {
        let s = crate::redact::redact(s);
        let src = src.unwrap_or("script");
        tracing::debug!(target: "mtn::script", "{src}:{pos}: {s}");
    });
    engine.set_module_resolver(ScriptResolver::new(
        &ctx.script_dir,
        ctx.stdlib_dir.as_deref(),
    ));

    let mut r = crate::host::registry::Registrar::new(&mut engine, ctx);
    crate::host::register_all(&mut r);
    engine
}

/// The scope every script starts with: `vars` (from `--set` or a job's `vars`).
pub fn initial_scope(ctx: &RunCtx) -> Scope<'static> {
    let mut scope = Scope::new();
    scope.push_constant("vars", ctx.vars.clone());
    // A variable, not a constant: the optimizer would bake a constant into the compiled AST
    // the daemon reuses for every run (vars are the same for every run; `run` is not).
    scope.push("run", ctx.run.to_map());
    scope
}

/// Compile a script file with the run's scope, so strict variables know `vars`.
pub fn compile(
    engine: &Engine,
    ctx: &RunCtx,
    path: &Path,
) -> Result<AST, Box<rhai::EvalAltResult>> {
    let text = read_script(path)?;
    compile_text(engine, ctx, path, &text)
}

/// The largest script or module mtn compiles. Maintenance scripts are a few KB; Rhai's parser
/// took 0.75 s for 1 MB and 12.5 s for 4 MB of `let` statements, so a bound keeps a wrong or
/// generated file from stalling a run (or the daemon's reload) before `--timeout` starts.
pub const MAX_SCRIPT_BYTES: u64 = 1 << 20;

/// Read a script or module, refusing one over [`MAX_SCRIPT_BYTES`].
pub fn read_script(path: &Path) -> Result<String, Box<rhai::EvalAltResult>> {
    let sys = |what: String, e: std::io::Error| {
        Box::new(rhai::EvalAltResult::ErrorSystem(what, Box::new(e)))
    };
    let len = std::fs::metadata(path)
        .map_err(|e| sys(format!("cannot read {}", path.display()), e))?
        .len();
    if len > MAX_SCRIPT_BYTES {
        return Err(sys(
            format!("cannot compile {}", path.display()),
            std::io::Error::other(format!(
                "it is {len} bytes; scripts and modules are limited to {} KiB (is this the right file?)",
                MAX_SCRIPT_BYTES >> 10
            )),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| sys(format!("cannot read {}", path.display()), e))
}

pub fn compile_text(
    engine: &Engine,
    ctx: &RunCtx,
    path: &Path,
    text: &str,
) -> Result<AST, Box<rhai::EvalAltResult>> {
    let scope = initial_scope(ctx);
    let mut ast = engine
        .compile_with_scope(&scope, text)
        .map_err(Box::<rhai::EvalAltResult>::from)?;
    ast.set_source(path.to_string_lossy().to_string());
    Ok(ast)
}

/// An engine for listing functions and checking scripts: no run attached.
pub fn metadata_engine(handle: tokio::runtime::Handle) -> Engine {
    let ctx = Arc::new(RunCtx::new(
        handle,
        "check.rhai".into(),
        crate::policy::Policy::with_roots(vec![]),
    ));
    build(ctx)
}
