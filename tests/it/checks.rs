//! Tests for the checks capability.
