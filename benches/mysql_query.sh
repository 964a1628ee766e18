#!/usr/bin/env bash
# db_query on MySQL/MariaDB (mysql_async, bind parameters) vs the `mariadb` client run once per
# query, which is what mtn did before (and what a shell script does). N queries, each on its own
# connection in both cases; mtn's start-up (an empty script) is subtracted. Prints the ratio.
# Needs MTN_TEST_MY_URL / _PORT / _PASSWORD (tests/env/21-mariadb.sh), or starts its own server.
# Usage: bash benches/mysql_query.sh       N=300, MTN_BIN=target/debug/mtn to skip the release build
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-300}"
if [ -z "${MTN_TEST_MY_URL:-}" ]; then
  export MTN_TEST_TMP="$(mktemp -d /tmp/mtn-bench.XXXXXX)"; chmod 755 "$MTN_TEST_TMP"
  export MTN_TEST_PIDS=""
  apt_install() { :; }
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  wait_port() { for ((i = 0; i < ${3:-30} * 10; i++)); do (echo >"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
  # shellcheck source=/dev/null
  source tests/env/21-mariadb.sh
  trap 'for p in $MTN_TEST_PIDS; do kill $p 2>/dev/null || true; done; sleep 1; rm -rf "$MTN_TEST_TMP"' EXIT
fi
if [ -z "${MTN_BIN:-}" ]; then cargo build --release --quiet; fi
MTN="${MTN_BIN:-$PWD/target/release/mtn}"
OUT="$(mktemp -d /tmp/mtn-bench-out.XXXXXX)"
now() { python3 -c 'import time; print(time.time())'; }
since() { python3 -c 'import sys,time; print("%.3f" % (time.time()-float(sys.argv[1])))' "$1"; }

echo "let x = 1;" >"$OUT/empty.rhai"
echo "for i in 0..$N { db_query(\"$MTN_TEST_MY_URL\", \"SELECT ? + 1 AS x\", [i]); }" >"$OUT/q.rhai"
t=$(now); "$MTN" run -q "$OUT/empty.rhai"; T_START=$(since "$t")
t=$(now); "$MTN" run -q "$OUT/q.rhai"; T_MTN=$(since "$t")
t=$(now)
for ((i = 0; i < N; i++)); do
  MYSQL_PWD="$MTN_TEST_MY_PASSWORD" mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -P "$MTN_TEST_MY_PORT" -uroot -N -B -e "SELECT $i + 1 AS x" >/dev/null
done
T_CLI=$(since "$t")
rm -rf "$OUT"
python3 - "$N" "$T_START" "$T_MTN" "$T_CLI" <<'PY'
import sys
n, start, mtn, cli = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"{n} queries: db_query {mtn - start:.2f} s (run {mtn:.2f} s, start-up {start:.2f} s), mariadb -e x{n} {cli:.2f} s, ratio {(mtn - start) / cli:.2f}x")
PY
