#!/usr/bin/env bash
# dump_db of a PostgreSQL in a container (postgres://...@container:NAME/db: the container's own
# pg_dump through the exec API, parallel gzip on the host) vs `docker exec NAME pg_dump | gzip -6`
# on the same container and database (pgbench -s SCALE + JSON-ish rows, as benches/db.sh).
#   SCALE=50 JSON_ROWS=1500000 (≈1 GB)
# Usage: bash benches/containers.sh   (starts the private engine of tests/env/80-docker.sh when
# MTN_TEST_DOCKER_HOST is unset)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${SCALE:-50}"
JSON_ROWS="${JSON_ROWS:-1500000}"
# shellcheck source=benches/lib.sh
source benches/lib.sh
[ -n "${MTN_TEST_DOCKER_HOST:-}" ] || bench_env tests/env/80-docker.sh
bench_mtn
export DOCKER_HOST="$MTN_TEST_DOCKER_HOST" DOCKER_API_VERSION=1.41
pg_in_container "$MTN_TEST_DOCKER_PG"
pg_bench_db
bench_tmp OUT bench-out

dump_vs_gzip "docker exec " "" "" ""
