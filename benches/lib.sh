# What every bench shares (sourced from the repository root, never run): the test environment's
# helpers (tests/env/lib.sh: apt_install, free_port, wait_port), one exit trap, the mtn binary
# under test, private servers from tests/env, and the timers. A bench keeps only what it measures.
# shellcheck source=tests/env/lib.sh
source tests/env/lib.sh
# Decimal points, whatever the locale: the timers below read bash's clock as text.
export LC_NUMERIC=C

# on_exit COMMAND: run COMMAND (evaluated then, so it sees variables as they are at exit) when the
# bench ends, however it ends; the last registered runs first.
BENCH_ON_EXIT=()
on_exit() { BENCH_ON_EXIT=("$*" "${BENCH_ON_EXIT[@]}"); }
bench_exit() {
  local h
  for h in "${BENCH_ON_EXIT[@]}"; do eval "$h" || true; done
}
trap bench_exit EXIT

# bench_tmp VAR [NAME=bench]: a new folder /tmp/mtn-NAME.XXXXXX in VAR, removed at exit.
bench_tmp() {
  local dir
  dir="$(mktemp -d "/tmp/mtn-${2:-bench}.XXXXXX")"
  on_exit "rm -rf '$dir'"
  printf -v "$1" '%s' "$dir"
}

# bench_mtn [CARGO ARGS...]: MTN is the binary under test: MTN_BIN when set (no build), otherwise
# the release build, built first (cargo does nothing when it is up to date).
bench_mtn() {
  if [ -z "${MTN_BIN:-}" ]; then cargo build --release --quiet "$@"; fi
  MTN="${MTN_BIN:-$PWD/target/release/mtn}"
  [ -x "$MTN" ] || { echo "no mtn binary at $MTN" >&2; exit 2; }
}

# bench_env FILE...: start the private servers of these tests/env files, as tests/run.sh does,
# stopped at exit. A bench calls it only when the server's MTN_TEST_* variables are unset, so it
# can also run against servers already started (e.g. inside tests/run.sh's environment).
bench_env() {
  env_init mtn-bench
  on_exit env_cleanup
  env_source "$@"
}

# start_daemon DIR PORT [ARGS...]: `mtn daemon --config mtn.toml ARGS` in DIR (stderr to
# DIR/daemon.log), DAEMON_PID its PID, stopped at exit; returns once /healthz answers.
DAEMON_PID=""
on_exit '[ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null'
start_daemon() {
  local dir=$1 port=$2
  shift 2
  (cd "$dir" && exec "$MTN" daemon --config mtn.toml "$@" 2>daemon.log) &
  DAEMON_PID=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "daemon did not start" >&2
  cat "$dir/daemon.log" >&2
  exit 1
}
# stop_daemon: stop the daemon of start_daemon and wait for it.
stop_daemon() {
  kill "$DAEMON_PID"
  wait "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=""
}

# Timers: `t=$EPOCHREALTIME; CMD; T=$(since "$t" [DIGITS])` times CMD in seconds by bash's own
# clock (no process starts before the first reading); secs T0 T1 [DIGITS] is the time between two
# readings. DIGITS after the point: 2 unless given.
since() { secs "$1" "$EPOCHREALTIME" "${2:-2}"; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.${3:-2}f}')" "$1" "$2"; }
# ratio A B: A / B with 2 digits.
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }
# rss FILE: the peak RSS in KiB from the report of GNU time -v in FILE.
rss() { awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}' "$1"; }
# vmrss PID: the resident memory in KiB of a running process, now.
vmrss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# pg_on_host / pg_in_container NAME: where the PostgreSQL benches' server is (tests/env/20-postgres.sh's
# or tests/env/80-docker.sh's container): bench_psql, bench_pgbench and bench_pg_dump run its CLI
# tools there (the host's or the container's own), PG_URL is mtn's URL for it, without a database.
pg_on_host() {
  export PGPASSWORD="$MTN_TEST_PG_PASSWORD"
  PGARGS=(-h 127.0.0.1 -p "$MTN_TEST_PG_PORT" -U postgres)
  bench_psql() { psql "${PGARGS[@]}" -X "$@"; }
  bench_pgbench() { pgbench "${PGARGS[@]}" "$@"; }
  bench_pg_dump() { pg_dump "${PGARGS[@]}" "$@"; }
  PG_URL="postgres://postgres:${MTN_TEST_PG_PASSWORD}@127.0.0.1:${MTN_TEST_PG_PORT}"
}
pg_in_container() {
  PG_CONTAINER=$1
  bench_psql() { docker exec "$PG_CONTAINER" psql -X -U postgres "$@"; }
  bench_pgbench() { docker exec "$PG_CONTAINER" pgbench -U postgres "$@"; }
  bench_pg_dump() { docker exec "$PG_CONTAINER" pg_dump -U postgres "$@"; }
  PG_URL="postgres://postgres:${MTN_TEST_DOCKER_PG_PASSWORD}@container:$PG_CONTAINER"
}

# pg_bench_db: DB=mtn_bench_sSCALE, made once and kept for later runs: pgbench -i -s SCALE plus a
# table `events` of JSON_ROWS JSON-ish text rows (≈1 GB at SCALE=50, JSON_ROWS=1500000); SIZE its
# size, URL mtn's URL for it.
pg_bench_db() {
  DB="mtn_bench_s${SCALE}"
  URL="$PG_URL/$DB"
  if ! bench_psql -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'" postgres | grep -q 1; then
    echo "creating $DB (pgbench -s $SCALE + $JSON_ROWS JSON-ish rows)..." >&2
    bench_psql -qc "CREATE DATABASE $DB" postgres
    bench_pgbench -i -q -s "$SCALE" "$DB" >/dev/null 2>&1
    bench_psql -qc "CREATE TABLE events AS SELECT g AS id, json_build_object('user', 'u' || (g % 5000), 'action', (ARRAY['login','view','buy','logout'])[1 + g % 4], 'ts', now() - g * interval '1 second', 'payload', md5(g::text) || ' ' || md5((g * 7)::text))::text AS doc FROM generate_series(1, $JSON_ROWS) g" "$DB"
  fi
  SIZE=$(bench_psql -tAc "SELECT pg_size_pretty(pg_database_size('$DB'))" postgres)
}

# dump_vs_gzip WHO NULL_TARGET SIZE_TARGET RSS_NOTE: the measure of benches/db.sh (WHO empty) and
# benches/containers.sh (WHO "docker exec "): mtn's dump_db of DB (gzip) against WHO pg_dump to
# /dev/null and piped to gzip -6, with sizes, mtn's peak RSS and the ratios (target <= 0.6 vs gzip).
dump_vs_gzip() {
  local t T_NULL T_GZIP T_MTN
  t=$EPOCHREALTIME; bench_pg_dump "$DB" >/dev/null; T_NULL=$(since "$t")
  t=$EPOCHREALTIME; bench_pg_dump "$DB" | gzip -6 >"$OUT/gzip.sql.gz"; T_GZIP=$(since "$t")
  echo "dump_db(\"$URL\", #{ to: \"$OUT/mtn.sql.gz\" });" >"$OUT/b.rhai"
  t=$EPOCHREALTIME; /usr/bin/time -v "$MTN" run -q "$OUT/b.rhai" --allow-path "$OUT" 2>"$OUT/time.txt"; T_MTN=$(since "$t")
  gzip -t "$OUT/mtn.sql.gz"
  python3 - "$1" "$2" "$3" "$4" "$SIZE" "$T_NULL" "$T_GZIP" "$T_MTN" "$(rss "$OUT/time.txt")" \
    "$(stat -c %s "$OUT/gzip.sql.gz")" "$(stat -c %s "$OUT/mtn.sql.gz")" <<'PY'
import sys
who, null_target, size_target, rss_note, size = sys.argv[1:6]
tn, tg, tm, rss, sg, sm = map(float, sys.argv[6:])
mtn = "mtn dump_db (container:)" if who else "mtn dump_db"
rows = [("database size", size),
        (f"{who}pg_dump > /dev/null", f"{tn:7.2f} s"),
        (f"{who}pg_dump | gzip -6", f"{tg:7.2f} s   {sg/1e6:8.1f} MB"),
        (mtn, f"{tm:7.2f} s   {sm/1e6:8.1f} MB   peak RSS {rss/1024:.1f} MiB {rss_note}".rstrip()),
        (f"ratio vs {who.strip() + '|' if who else 'pg_dump|'}gzip", f"{tm/tg:7.2f}x  (target <= 0.6)"),
        (f"ratio vs {who.strip() + '>' if who else 'pg_dump>'}null", f"{tm/tn:7.2f}x  {null_target}".rstrip()),
        ("size vs gzip -6", f"{sm/sg:7.3f}   {size_target}".rstrip())]
width = max(len(label) for label, _ in rows) + 2
for label, value in rows:
    print(f"{label:{width}}{value}")
PY
}
