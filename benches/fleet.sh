#!/usr/bin/env bash
# Fleet benchmark (issue 16), on a private PostgreSQL cluster on loopback:
#   1. claim overhead per run: `mtn run --once` against plain `mtn run` (same script), and the
#      daemons' own measure (mtn_fleet_claim_seconds: claim + release, pooled connections)
#                                                               target <= 20 ms per run
#   2. JOBS jobs x 3 daemons every 5 s for SECS seconds: no slot lost or doubled (from the
#      claims table), connections to PostgreSQL at rest <= 2 per daemon (pg_stat_activity,
#      application_name "mtn fleet HOST")
# Usage: benches/fleet.sh [--jobs N] [--secs S] [--runs R]   (defaults 100 jobs, 300 s, 30 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=100
SECS=300
RUNS=30
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) JOBS=$2; shift 2 ;;
    --secs) SECS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "usage: $0 [--jobs N] [--secs S] [--runs R]" >&2; exit 2 ;;
  esac
done
# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_mtn
bench_tmp WORK bench-fleet
chmod 755 "$WORK"
PIDS=""
# Its own cluster rather than tests/env/20-postgres.sh's: 200 connections (three daemons of 100
# jobs each) and trust authentication, so the lock URL carries no password.
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
PG_PORT=$(free_port)
on_exit 'for p in $PIDS; do kill "$p" 2>/dev/null || true; done; runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1'
mkdir -p "$WORK/pg" && touch "$WORK/pg.log" && chown postgres: "$WORK/pg" "$WORK/pg.log"
runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w \
  -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
LOCK="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
q() { psql -X -A -t -d "$LOCK" -c "$1"; }

# 1. mtn run --once vs mtn run.
mkdir -p "$WORK/once"
echo 'let x = 1 + 1;' > "$WORK/once/t.rhai"
ms() { python3 -c 'import time; print(int(time.time()*1000))'; }
cd "$WORK/once"
"$MTN" run t.rhai -q >/dev/null   # warm the page cache
t0=$(ms); for i in $(seq 1 "$RUNS"); do "$MTN" run t.rhai -q >/dev/null; done; t1=$(ms)
for i in $(seq 1 "$RUNS"); do "$MTN" run t.rhai -q --once warm --lock "$LOCK" --slot "$i" >/dev/null; done
t2=$(ms); for i in $(seq 1 "$RUNS"); do "$MTN" run t.rhai -q --once bench --lock "$LOCK" --slot "$i" >/dev/null; done; t3=$(ms)
cd - >/dev/null
plain=$(python3 -c "print(f'{($t1-$t0)/$RUNS:.1f}')")
once=$(python3 -c "print(f'{($t3-$t2)/$RUNS:.1f}')")
echo "mtn run:        ${plain} ms per run ($RUNS runs)"
echo "mtn run --once: ${once} ms per run (connect, claim, run, release, shared history)"
python3 -c "print(f'claim overhead, new process per run: {($t3-$t2-($t1-$t0))/$RUNS:.1f} ms per run; ratio once/plain {($t3-$t2)/max($t1-$t0,1):.2f}')"

# 2. JOBS jobs x 3 daemons.
for h in h1 h2 h3; do
  mkdir -p "$WORK/$h/scripts"
  port=$(free_port)
  echo "$port" > "$WORK/$h/port"
  {
    echo "listen = \"127.0.0.1:$port\""
    echo 'state_dir = ".mtn"'
    printf '[fleet]\nlock = "%s"\nhost_id = "%s"\ncheck_every = "5s"\n' "$LOCK" "$h"
    for i in $(seq 1 "$JOBS"); do
      printf '[[job]]\nname = "job%03d"\nscript = "scripts/job.rhai"\nschedule = "*/5 * * * * *"\n' "$i"
    done
  } > "$WORK/$h/mtn.toml"
  echo 'let x = run.slot_unix * 2;' > "$WORK/$h/scripts/job.rhai"
done
for h in h1 h2 h3; do
  (cd "$WORK/$h" && exec "$MTN" daemon --config mtn.toml -q 2> daemon.log) &
  PIDS="$PIDS $!"
done
sleep 3
from=$(( $(date +%s) + 5 ))
echo "daemons: 3 x $JOBS jobs every 5 s for $SECS s ..."
max_rest=0
end=$(( $(date +%s) + SECS ))
while [ "$(date +%s)" -lt "$end" ]; do
  # At rest: 3 s after a slot (every run of these jobs takes milliseconds).
  s=$(date +%s); sleep $(( (5 - s % 5 + 3) % 5 )).5
  n=$(q "SELECT coalesce(max(c), 0) FROM (SELECT count(*) c FROM pg_stat_activity WHERE application_name LIKE 'mtn fleet %' GROUP BY application_name) x")
  [ "$n" -gt "$max_rest" ] && max_rest=$n
  sleep 1
done
to=$(( $(date +%s) - 5 ))
sleep 2
for h in h1 h2 h3; do
  curl -s "http://127.0.0.1:$(cat "$WORK/$h/port")/metrics" | awk -v h=$h '/^mtn_fleet_claim_seconds_(sum|count)/ {v[$1]=$2} END {if (v["mtn_fleet_claim_seconds_count"]>0) printf "%s: %d claims won, claim + release %.2f ms mean\n", h, v["mtn_fleet_claim_seconds_count"], 1000*v["mtn_fleet_claim_seconds_sum"]/v["mtn_fleet_claim_seconds_count"]}'
done
expected=$(python3 -c "print(sum(1 for t in range($from, $to + 1) if t % 5 == 0) * $JOBS)")
read -r rows distinct lost_or_skipped <<<"$(q "SELECT count(*), count(DISTINCT (job, slot)), count(*) FILTER (WHERE outcome <> 'ok' OR outcome IS NULL) FROM mtn_fleet_claims WHERE takeover = 0 AND slot BETWEEN to_timestamp($from) AND to_timestamp($to)" | tr '|' ' ')"
echo "slots expected $expected, claimed $rows (distinct $distinct), not ok $lost_or_skipped"
echo "connections at rest, max per daemon: $max_rest (target <= 2)"
by_host=$(q "SELECT host, count(*) FROM mtn_fleet_claims WHERE slot BETWEEN to_timestamp($from) AND to_timestamp($to) GROUP BY host ORDER BY host" | tr '\n' ' ')
echo "slots run per host: $by_host"
if [ "$rows" = "$expected" ] && [ "$distinct" = "$expected" ] && [ "$lost_or_skipped" = 0 ] && [ "$max_rest" -le 2 ]; then
  echo "OK: no slot lost or doubled"
else
  echo "FAILED; slots without a claim (job, slot):"
  q "SELECT j.name, to_char(s, 'HH24:MI:SS') FROM generate_series(to_timestamp($from), to_timestamp($to), '1 second') s,
       (SELECT 'job' || lpad(g::text, 3, '0') AS name FROM generate_series(1, $JOBS) g) j
     WHERE extract(epoch FROM s)::bigint % 5 = 0
       AND NOT EXISTS (SELECT 1 FROM mtn_fleet_claims c WHERE c.job = j.name AND c.slot = s) ORDER BY 2, 1" | head -20
  for h in h1 h2 h3; do echo "--- $h: warnings and errors"; grep -iE "warn|error" "$WORK/$h/daemon.log" | head -10; done
  exit 1
fi
