#!/usr/bin/env bash
# Daemon soak (issue 19): 100 jobs firing every second until 10,000 runs have completed.
# Samples the daemon's RSS, open file descriptors and history size every 10 s; a leak shows as a
# trend. Prints the first and last sample and the growth.
# Usage: benches/daemon_soak.sh [--jobs N] [--runs R]   (defaults 100 jobs, 10,000 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=100
RUNS=10000
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) JOBS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "usage: $0 [--jobs N] [--runs R]" >&2; exit 2 ;;
  esac
done
# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_mtn
bench_tmp WORK soak
PORT=$(free_port)
mkdir -p "$WORK/scripts" "$WORK/out"
{
  echo "listen = \"127.0.0.1:$PORT\""
  echo 'state_dir = ".mtn"'
  for i in $(seq 1 "$JOBS"); do
    printf '[[job]]\nname = "job%03d"\nscript = "scripts/job%03d.rhai"\nschedule = "* * * * * *"\n' "$i" "$i"
  done
} > "$WORK/mtn.toml"
for i in $(seq 1 "$JOBS"); do
  # Each run does real host work: write, list, checksum, delete.
  printf 'let f = "out/f%03d.txt";\nwrite_file(f, `run ${now()}`);\nlet l = list("out");\nverify_backup(f);\ndelete_older_than("out", "1h");\n' "$i" > "$WORK/scripts/job$(printf %03d "$i").rhai"
done
start_daemon "$WORK" "$PORT" -q
runs() { cat "$WORK"/.mtn/history/*.jsonl* 2>/dev/null | wc -l; }
sample() {
  printf '%6s runs  RSS %6s KiB  fds %4s  history %6s KiB\n' "$(runs)" \
    "$(vmrss "$DAEMON_PID")" "$(ls /proc/$DAEMON_PID/fd | wc -l)" \
    "$(du -sk "$WORK/.mtn" | cut -f1)"
}
first=$(sample); echo "$first"
start=$(date +%s)
while [ "$(runs)" -lt "$RUNS" ]; do
  sleep 10
  sample
  kill -0 "$DAEMON_PID" 2>/dev/null || { echo "daemon died" >&2; tail -20 "$WORK/daemon.log" >&2; exit 1; }
done
last=$(sample)
echo "soak: $(runs) runs of $JOBS jobs in $(( $(date +%s) - start )) s"
echo "first: $first"
echo "last:  $last"
