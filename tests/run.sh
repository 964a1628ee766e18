#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts private servers on free loopback ports,
# runs every test, stops the servers. This is the README's test command; .ci/run calls it.
#
# Each tests/env/NN-*.sh is sourced in order. A file installs its tools when missing, starts its
# server(s) in $MTN_TEST_TMP, exports the variables the tests read (e.g. MTN_TEST_PG_URL), and
# appends server PIDs to MTN_TEST_PIDS so they are stopped at the end. Tests that need a server
# fail (never skip) when its variable is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/env/lib.sh
source tests/env/lib.sh
env_init mtn-test
trap env_cleanup EXIT
env_source tests/env/[0-9]*.sh

cargo build --quiet
cargo test --no-fail-fast "$@"
