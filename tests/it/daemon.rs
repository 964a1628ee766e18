//! Tests for the daemon capability.
