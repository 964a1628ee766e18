//! Tests for the procedures capability.
