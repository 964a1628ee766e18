//! mtn: run maintenance scripts written in Rhai against a safe standard library.

use clap::Parser;

fn main() {
    let cli = mtn::cli::Cli::parse();
    let code = mtn::commands::dispatch(cli);
    std::process::exit(code);
}
