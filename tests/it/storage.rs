//! Tests for the storage capability.
