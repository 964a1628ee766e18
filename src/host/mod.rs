//! The functions scripts call, one module per capability.

pub mod audit;
pub mod binding;
pub mod check;
pub mod codec;
pub mod compress;
pub mod container;
pub mod core;
pub mod db;
pub mod deletion;
pub mod exec;
pub mod fs;
pub mod notify;
pub mod options;
pub mod pgzip;
pub mod redis;
pub mod registry;
pub mod rotate;
pub mod state;
pub mod storage;
pub mod system;
pub mod verify;

use crate::host::registry::Registrar;

/// Register every host function. The order decides nothing but the order of `mtn fns`.
pub fn register_all(r: &mut Registrar) {
    core::register(r);
    fs::register(r);
    rotate::register(r);
    compress::register(r);
    db::register(r);
    storage::register(r);
    check::register(r);
    notify::register(r);
    exec::register(r);
    container::register(r);
    redis::register(r);
    verify::register(r);
    audit::register(r);
    system::register(r);
    state::register(r);
}
