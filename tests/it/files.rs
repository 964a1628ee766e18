//! Tests for the files capability.
