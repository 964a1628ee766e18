//! Placeholder: filled in by its capability issue.

use crate::engine::registry::Registrar;

pub fn register(_r: &mut Registrar) {}
