//! `mtn check FILE...`: compile without running.

use std::sync::Arc;

use crate::cli::Common;
use crate::commands::{exit, find_stdlib, runtime};
use crate::engine::check::Checker;
use crate::engine::ctx::RunCtx;
use crate::policy::Policy;

pub fn run(files: Vec<std::path::PathBuf>, common: Common) -> i32 {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the I/O runtime: {e}");
            return exit::USAGE;
        }
    };
    let mut problems = 0usize;
    for file in &files {
        let mut ctx = RunCtx::new(
            rt.handle().clone(),
            file.clone(),
            Policy::with_roots(vec![]),
        );
        ctx.stdlib_dir = find_stdlib(common.stdlib.clone());
        let ctx = Arc::new(ctx);
        let engine = crate::engine::build(ctx.clone());
        let mut checker = Checker::new(&engine, &ctx);
        checker.check_script(file);
        for p in &checker.problems {
            eprint!("{p}");
        }
        problems += checker.problems.len();
        if checker.problems.is_empty() && !common.quiet {
            println!("ok: {}", file.display());
        }
    }
    if problems > 0 {
        eprintln!(
            "{problems} problem{} found",
            if problems == 1 { "" } else { "s" }
        );
        exit::FAILED
    } else {
        exit::OK
    }
}
