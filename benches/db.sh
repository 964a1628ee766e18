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
if [ -z "${MTN_TEST_PG_URL:-}" ]; then
  export MTN_TEST_TMP="$(mktemp -d /tmp/mtn-bench.XXXXXX)"; chmod 755 "$MTN_TEST_TMP"
  export MTN_TEST_PIDS=""
  apt_install() { :; }
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  wait_port() { for ((i = 0; i < ${3:-30} * 10; i++)); do (echo >"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
  # shellcheck source=/dev/null
  source tests/env/20-postgres.sh
  trap 'for p in $MTN_TEST_PIDS; do kill $p 2>/dev/null || true; done; sleep 1; rm -rf "$MTN_TEST_TMP"' EXIT
fi
if [ -z "${MTN_BIN:-}" ]; then cargo build --release --quiet; fi
MTN="${MTN_BIN:-$PWD/target/release/mtn}"
export PGPASSWORD="$MTN_TEST_PG_PASSWORD"
PGARGS=(-h 127.0.0.1 -p "$MTN_TEST_PG_PORT" -U postgres)
DB="mtn_bench_s${SCALE}"
if ! psql "${PGARGS[@]}" -X -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'" postgres | grep -q 1; then
  echo "creating $DB (pgbench -s $SCALE + $JSON_ROWS JSON-ish rows)..." >&2
  psql "${PGARGS[@]}" -X -qc "CREATE DATABASE $DB" postgres
  pgbench "${PGARGS[@]}" -i -q -s "$SCALE" "$DB" >/dev/null 2>&1
  psql "${PGARGS[@]}" -X -qc "CREATE TABLE events AS SELECT g AS id, json_build_object('user', 'u' || (g % 5000), 'action', (ARRAY['login','view','buy','logout'])[1 + g % 4], 'ts', now() - g * interval '1 second', 'payload', md5(g::text) || ' ' || md5((g * 7)::text))::text AS doc FROM generate_series(1, $JSON_ROWS) g" "$DB"
fi
SIZE=$(psql "${PGARGS[@]}" -X -tAc "SELECT pg_size_pretty(pg_database_size('$DB'))" postgres)
OUT="$(mktemp -d /tmp/mtn-bench-out.XXXXXX)"
URL="postgres://postgres:${MTN_TEST_PG_PASSWORD}@127.0.0.1:${MTN_TEST_PG_PORT}/${DB}"
secs() { python3 -c 'import sys,time; print("%.2f" % (time.time()-float(sys.argv[1])))' "$1"; }
now() { python3 -c 'import time; print(time.time())'; }

t=$(now); pg_dump "${PGARGS[@]}" "$DB" >/dev/null; T_NULL=$(secs "$t")
t=$(now); pg_dump "${PGARGS[@]}" "$DB" | gzip -6 >"$OUT/gzip.sql.gz"; T_GZIP=$(secs "$t")
echo "dump_db(\"$URL\", #{ to: \"$OUT/mtn.sql.gz\" });" >"$OUT/b.rhai"
t=$(now); /usr/bin/time -v "$MTN" run -q "$OUT/b.rhai" --allow-path "$OUT" 2>"$OUT/time.txt"; T_MTN=$(secs "$t")
RSS_KB=$(awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}' "$OUT/time.txt")
S_GZIP=$(stat -c %s "$OUT/gzip.sql.gz"); S_MTN=$(stat -c %s "$OUT/mtn.sql.gz")
gzip -t "$OUT/mtn.sql.gz"
python3 - "$SIZE" "$T_NULL" "$T_GZIP" "$T_MTN" "$RSS_KB" "$S_GZIP" "$S_MTN" <<'PY'
import sys
size, tn, tg, tm, rss, sg, sm = sys.argv[1], *map(float, sys.argv[2:])
print(f"database size            {size}")
print(f"pg_dump > /dev/null      {tn:7.2f} s")
print(f"pg_dump | gzip -6        {tg:7.2f} s   {sg/1e6:8.1f} MB")
print(f"mtn dump_db              {tm:7.2f} s   {sm/1e6:8.1f} MB   peak RSS {rss/1024:.1f} MiB (mtn only; pg_dump is a child)")
print(f"ratio vs pg_dump|gzip    {tm/tg:7.2f}x  (target <= 0.6)")
print(f"ratio vs pg_dump>null    {tm/tn:7.2f}x  (target <= 1.3)")
print(f"size vs gzip -6          {sm/sg:7.3f}   (target within 5%)")
PY
rm -rf "$OUT"
