//! mtn: run maintenance scripts written in Rhai against a safe standard library.

use clap::Parser;

// Counts heap bytes so a script's [limits] max_memory can be enforced (src/alloc.rs).
#[global_allocator]
static ALLOC: mtn::alloc::Counting = mtn::alloc::Counting;

fn main() {
    let mut cli = mtn::cli::Cli::parse();
    if let Some(file) = cli.env_file.clone() {
        if let Err(e) = mtn::env_file::load(&file) {
            eprintln!("error: {}", mtn::redact::redact(&e));
            std::process::exit(mtn::exit::USAGE);
        }
        // Parse again: options with an environment fallback (MTN_STATE_DIR, MTN_STDLIB...) may
        // come from the file.
        cli = mtn::cli::Cli::parse();
    }
    mtn::logging::set_color(cli.color);
    mtn::tls::install_default_provider();
    let code = mtn::commands::dispatch(cli);
    std::process::exit(code);
}
