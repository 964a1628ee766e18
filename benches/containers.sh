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
if [ -z "${MTN_TEST_DOCKER_HOST:-}" ]; then
  export MTN_TEST_ENV="${MTN_TEST_ENV:-${HOME:-$PWD}/.cache/mtn-test-env}"
  export MTN_TEST_TMP="$(mktemp -d /tmp/mtn-bench.XXXXXX)"; chmod 755 "$MTN_TEST_TMP"
  export MTN_TEST_PIDS=""; MTN_TEST_CLEANUP=""
  apt_install() { :; }
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  wait_port() { for ((i = 0; i < ${3:-30} * 10; i++)); do (echo >"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
  # shellcheck source=/dev/null
  source tests/env/80-docker.sh
  trap 'for h in $MTN_TEST_CLEANUP; do $h || true; done; for p in $MTN_TEST_PIDS; do kill $p 2>/dev/null || true; done; sleep 1; rm -rf "$MTN_TEST_TMP"' EXIT
fi
if [ -z "${MTN_BIN:-}" ]; then cargo build --release --quiet; fi
MTN="${MTN_BIN:-$PWD/target/release/mtn}"
export DOCKER_HOST="$MTN_TEST_DOCKER_HOST" DOCKER_API_VERSION=1.41
C="$MTN_TEST_DOCKER_PG"
DB="mtn_bench_s${SCALE}"
psql_c() { docker exec "$C" psql -X -q -U postgres "$@"; }
if ! psql_c -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'" postgres | grep -q 1; then
  echo "creating $DB in $C (pgbench -s $SCALE + $JSON_ROWS JSON-ish rows)..." >&2
  psql_c -c "CREATE DATABASE $DB" postgres
  docker exec "$C" pgbench -U postgres -i -q -s "$SCALE" "$DB" >/dev/null 2>&1
  psql_c -c "CREATE TABLE events AS SELECT g AS id, json_build_object('user', 'u' || (g % 5000), 'action', (ARRAY['login','view','buy','logout'])[1 + g % 4], 'ts', now() - g * interval '1 second', 'payload', md5(g::text) || ' ' || md5((g * 7)::text))::text AS doc FROM generate_series(1, $JSON_ROWS) g" "$DB"
fi
SIZE=$(psql_c -tAc "SELECT pg_size_pretty(pg_database_size('$DB'))" postgres)
OUT="$(mktemp -d /tmp/mtn-bench-out.XXXXXX)"
URL="postgres://postgres:${MTN_TEST_DOCKER_PG_PASSWORD}@container:${C}/${DB}"
secs() { python3 -c 'import sys,time; print("%.2f" % (time.time()-float(sys.argv[1])))' "$1"; }
now() { python3 -c 'import time; print(time.time())'; }

t=$(now); docker exec "$C" pg_dump -U postgres "$DB" >/dev/null; T_NULL=$(secs "$t")
t=$(now); docker exec "$C" pg_dump -U postgres "$DB" | gzip -6 >"$OUT/gzip.sql.gz"; T_GZIP=$(secs "$t")
echo "dump_db(\"$URL\", #{ to: \"$OUT/mtn.sql.gz\" });" >"$OUT/b.rhai"
t=$(now); /usr/bin/time -v "$MTN" run -q "$OUT/b.rhai" --allow-path "$OUT" 2>"$OUT/time.txt"; T_MTN=$(secs "$t")
RSS_KB=$(awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}' "$OUT/time.txt")
S_GZIP=$(stat -c %s "$OUT/gzip.sql.gz"); S_MTN=$(stat -c %s "$OUT/mtn.sql.gz")
gzip -t "$OUT/mtn.sql.gz"
python3 - "$SIZE" "$T_NULL" "$T_GZIP" "$T_MTN" "$RSS_KB" "$S_GZIP" "$S_MTN" <<'PY'
import sys
size, tn, tg, tm, rss, sg, sm = sys.argv[1], *map(float, sys.argv[2:])
print(f"database size                    {size}")
print(f"docker exec pg_dump > /dev/null  {tn:7.2f} s")
print(f"docker exec pg_dump | gzip -6    {tg:7.2f} s   {sg/1e6:8.1f} MB")
print(f"mtn dump_db (container:)         {tm:7.2f} s   {sm/1e6:8.1f} MB   peak RSS {rss/1024:.1f} MiB")
print(f"ratio vs docker exec|gzip        {tm/tg:7.2f}x  (target <= 0.6)")
print(f"ratio vs docker exec>null        {tm/tn:7.2f}x")
print(f"size vs gzip -6                  {sm/sg:7.3f}")
PY
rm -rf "$OUT"
