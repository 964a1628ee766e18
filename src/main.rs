//! mtn: run maintenance scripts written in Rhai against a safe standard library.

use clap::Parser;

// Counts heap bytes so a script's [limits] max_memory can be enforced (src/alloc.rs).
#[global_allocator]
static ALLOC: mtn::alloc::Counting = mtn::alloc::Counting;

fn main() {
    let cli = mtn::cli::Cli::parse();
    let code = mtn::commands::dispatch(cli);
    std::process::exit(code);
}
