#!/usr/bin/env bash
# dump_db (release build) vs `pg_dump | gzip` and `pg_dump > /dev/null` on a pgbench database plus a
# table of JSON-ish text rows. Needs MTN_TEST_PG_URL / _PORT / _PASSWORD (tests/env/20-postgres.sh
# starts a private server), or run it through: bash tests/run.sh is not needed, see below.
#   SCALE=50 (≈1 GB with the JSON table), JSON_ROWS=1500000
# Usage: bash benches/db.sh            (starts its own private server when MTN_TEST_PG_URL is unset)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${SCALE:-50}"
JSON_ROWS="${JSON_ROWS:-1500000}"
# shellcheck source=benches/lib.sh
source benches/lib.sh
[ -n "${MTN_TEST_PG_URL:-}" ] || bench_env tests/env/20-postgres.sh
bench_mtn
pg_on_host
pg_bench_db
bench_tmp OUT bench-out

dump_vs_gzip "" "(target <= 1.3)" "(target within 5%)" "(mtn only; pg_dump is a child)"
