//! mtn as a library: the engine, the host functions and the daemon, so benchmarks and tests can
//! drive the cores directly. The `mtn` binary is a thin CLI over it.

pub mod alloc;
pub mod atomic;
pub mod cli;
pub mod commands;
pub mod config;
pub mod cron;
pub mod ctx;
pub mod daemon;
pub mod engine;
pub mod env_file;
pub mod error;
pub mod exit;
pub mod host;
pub mod http;
pub mod logging;
pub mod policy;
pub mod progress;
pub mod redact;
pub mod sync;
pub mod tls;
pub mod units;
