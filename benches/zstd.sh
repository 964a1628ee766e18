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
# shellcheck source=benches/lib.sh
source benches/lib.sh
[ -n "${MTN_TEST_PG_URL:-}" ] || bench_env tests/env/20-postgres.sh
command -v zstd >/dev/null || { echo "needs the zstd CLI (apt-get install zstd)" >&2; exit 2; }
bench_mtn
pg_on_host
pg_bench_db
bench_tmp OUT bench-out

t=$EPOCHREALTIME; bench_pg_dump "$DB" >/dev/null; T_NULL=$(since "$t")
t=$EPOCHREALTIME; bench_pg_dump "$DB" | zstd -q -T0 "-$LEVEL" >"$OUT/cli.sql.zst"; T_ZCLI=$(since "$t")
t=$EPOCHREALTIME; bench_pg_dump "$DB" | gzip -6 >"$OUT/cli.sql.gz"; T_GCLI=$(since "$t")
echo "dump_db(\"$URL\", #{ to: \"$OUT/mtn.sql.zst\", compress: \"zstd:$LEVEL\" });" >"$OUT/z.rhai"
t=$EPOCHREALTIME; /usr/bin/time -v "$MTN" run -q "$OUT/z.rhai" --allow-path "$OUT" 2>"$OUT/tz.txt"; T_MZ=$(since "$t")
echo "dump_db(\"$URL\", #{ to: \"$OUT/mtn.sql.gz\" });" >"$OUT/g.rhai"
t=$EPOCHREALTIME; /usr/bin/time -v "$MTN" run -q "$OUT/g.rhai" --allow-path "$OUT" 2>"$OUT/tg.txt"; T_MG=$(since "$t")
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
