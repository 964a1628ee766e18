//! Databases: `dump_db` and `restore_db` dispatch on the URL scheme.

pub mod mongo;

use crate::engine::registry::Registrar;

pub fn register(r: &mut Registrar) {
    r.category("db");
    mongo::register(r);
}
