//! Tests for the mongo capability.
