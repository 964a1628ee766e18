//! Integration tests: they drive the real `mtn` binary against real files, processes and
//! servers started by tests/run.sh. One binary (faster to build), one module per capability.

mod support;

mod azure;
mod checks;
mod containers;
mod daemon;
mod db;
mod deploy;
mod engine;
mod faults;
mod files;
mod fleet;
mod gcs;
mod hardening;
mod layers;
mod messages;
mod mongo;
mod mongo_legacy;
mod newest;
mod procedures;
mod props;
mod restic;
mod rotate_conformance;
mod run_contract;
mod sftp;
mod storage;
mod zstd;
