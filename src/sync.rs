//! Locks that survive a panic in another holder.
//!
//! A panic inside a run is already a failed run (see `engine::runner`); the shared state it held
//! (a job's last result, the metrics) is still consistent at every await point, so the daemon
//! keeps using it instead of turning one bug into a dead scheduler.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

pub fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}
