#!/usr/bin/env bash
# The property tests of tests/it/props.rs run long: parsers, masking, the path policy and the
# Rhai↔BSON conversion against many generated inputs (CI runs 256 cases per property).
# Usage: benches/fuzz.sh [CASES]   (default 50000 per property)
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-50000}"
start=$(date +%s)
PROPTEST_CASES="$cases" cargo test --release --test it props:: -- --test-threads=2
echo "fuzz: $cases cases per property in $(( $(date +%s) - start )) s"
