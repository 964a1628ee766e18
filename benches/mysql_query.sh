#!/usr/bin/env bash
# db_query on MySQL/MariaDB (mysql_async, bind parameters) vs the `mariadb` client run once per
# query, which is what mtn did before (and what a shell script does). N queries, each on its own
# connection in both cases; mtn's start-up (an empty script) is subtracted. Prints the ratio.
# Needs MTN_TEST_MY_URL / _PORT / _PASSWORD (tests/env/21-mariadb.sh), or starts its own server.
# Usage: bash benches/mysql_query.sh       N=300, MTN_BIN=target/debug/mtn to skip the release build
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-300}"
# shellcheck source=benches/lib.sh
source benches/lib.sh
[ -n "${MTN_TEST_MY_URL:-}" ] || bench_env tests/env/21-mariadb.sh
bench_mtn
bench_tmp OUT bench-out

echo "let x = 1;" >"$OUT/empty.rhai"
echo "for i in 0..$N { db_query(\"$MTN_TEST_MY_URL\", \"SELECT ? + 1 AS x\", [i]); }" >"$OUT/q.rhai"
t=$EPOCHREALTIME; "$MTN" run -q "$OUT/empty.rhai"; T_START=$(since "$t" 3)
t=$EPOCHREALTIME; "$MTN" run -q "$OUT/q.rhai"; T_MTN=$(since "$t" 3)
t=$EPOCHREALTIME
for ((i = 0; i < N; i++)); do
  MYSQL_PWD="$MTN_TEST_MY_PASSWORD" mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -P "$MTN_TEST_MY_PORT" -uroot -N -B -e "SELECT $i + 1 AS x" >/dev/null
done
T_CLI=$(since "$t" 3)
python3 - "$N" "$T_START" "$T_MTN" "$T_CLI" <<'PY'
import sys
n, start, mtn, cli = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"{n} queries: db_query {mtn - start:.2f} s (run {mtn:.2f} s, start-up {start:.2f} s), mariadb -e x{n} {cli:.2f} s, ratio {(mtn - start) / cli:.2f}x")
PY
