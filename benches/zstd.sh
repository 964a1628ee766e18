#!/usr/bin/env bash
# dump_db with zstd (release build) vs `pg_dump | zstd -T0` vs `pg_dump | gzip` vs mtn's default
# gzip vs `pg_dump > /dev/null`, on the pgbench + JSON-ish database of benches/db.sh. Prints
# times, sizes, mtn's peak RSS and the ratios the issue sets (zstd dump <= 1.1x devnull).
#   SCALE=50 (about 1 GB with the JSON table), JSON_ROWS=1500000, LEVEL=3
# Usage: bash benches/zstd.sh   (starts its own private server when MTN_TEST_PG_URL is unset)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE="${SCALE:-50}"
JSON_ROWS="${JSON_ROWS:-1500000}"
LEVEL="${LEVEL:-3}"
if [ -z "${MTN_TEST_PG_URL:-}" ]; then
  export MTN_REPO="$PWD" MTN_TEST_ENV="${MTN_TEST_ENV:-${HOME:-$PWD}/.cache/mtn-test-env}"
  export MTN_TEST_TMP="$(mktemp -d /tmp/mtn-bench.XXXXXX)"; chmod 755 "$MTN_TEST_TMP"
  export MTN_TEST_PIDS=""
  apt_install() { :; }
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  wait_port() { for ((i = 0; i < ${3:-30} * 10; i++)); do (echo >"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
  # shellcheck source=/dev/null
  source tests/env/20-postgres.sh
  trap 'for p in $MTN_TEST_PIDS; do kill $p 2>/dev/null || true; done; sleep 1; rm -rf "$MTN_TEST_TMP"' EXIT
fi
command -v zstd >/dev/null || { echo "needs the zstd CLI (apt-get install zstd)" >&2; exit 2; }
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
rss() { awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}' "$1"; }

t=$(now); pg_dump "${PGARGS[@]}" "$DB" >/dev/null; T_NULL=$(secs "$t")
t=$(now); pg_dump "${PGARGS[@]}" "$DB" | zstd -q -T0 "-$LEVEL" >"$OUT/cli.sql.zst"; T_ZCLI=$(secs "$t")
t=$(now); pg_dump "${PGARGS[@]}" "$DB" | gzip -6 >"$OUT/cli.sql.gz"; T_GCLI=$(secs "$t")
echo "dump_db(\"$URL\", #{ to: \"$OUT/mtn.sql.zst\", compress: \"zstd:$LEVEL\" });" >"$OUT/z.rhai"
t=$(now); /usr/bin/time -v "$MTN" run -q "$OUT/z.rhai" --allow-path "$OUT" 2>"$OUT/tz.txt"; T_MZ=$(secs "$t")
echo "dump_db(\"$URL\", #{ to: \"$OUT/mtn.sql.gz\" });" >"$OUT/g.rhai"
t=$(now); /usr/bin/time -v "$MTN" run -q "$OUT/g.rhai" --allow-path "$OUT" 2>"$OUT/tg.txt"; T_MG=$(secs "$t")
zstd -t -q "$OUT/mtn.sql.zst"
python3 - "$SIZE" "$LEVEL" "$T_NULL" "$T_ZCLI" "$T_GCLI" "$T_MZ" "$T_MG" "$(rss "$OUT/tz.txt")" "$(rss "$OUT/tg.txt")" \
  "$(stat -c %s "$OUT/cli.sql.zst")" "$(stat -c %s "$OUT/cli.sql.gz")" "$(stat -c %s "$OUT/mtn.sql.zst")" "$(stat -c %s "$OUT/mtn.sql.gz")" "$(nproc)" <<'PY'
import sys
size, level = sys.argv[1], sys.argv[2]
tn, tzc, tgc, tmz, tmg, rz, rg, szc, sgc, smz, smg, cores = map(float, sys.argv[3:])
print(f"database size              {size}   ({int(cores)} cores)")
print(f"pg_dump > /dev/null        {tn:7.2f} s")
print(f"pg_dump | zstd -T0 -{level}      {tzc:7.2f} s   {szc/1e6:8.1f} MB")
print(f"pg_dump | gzip -6          {tgc:7.2f} s   {sgc/1e6:8.1f} MB")
print(f"mtn dump_db zstd:{level}         {tmz:7.2f} s   {smz/1e6:8.1f} MB   peak RSS {rz/1024:.1f} MiB")
print(f"mtn dump_db gzip (default) {tmg:7.2f} s   {smg/1e6:8.1f} MB   peak RSS {rg/1024:.1f} MiB")
print(f"mtn zstd vs pg_dump>null   {tmz/tn:7.2f}x  (target <= 1.1)")
print(f"mtn zstd vs pg_dump|zstd   {tmz/tzc:7.2f}x")
print(f"mtn zstd vs mtn gzip       {tmz/tmg:7.2f}x time, {smz/smg:5.3f}x size")
PY
rm -rf "$OUT"
