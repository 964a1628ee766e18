//! Tests for the db capability.
