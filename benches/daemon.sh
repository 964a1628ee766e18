#!/usr/bin/env bash
# Daemon benchmark: 100 jobs loaded.
#   1. idle RSS and CPU (jobs scheduled far away)            target RSS <= 25 MiB
#   2. reload latency: script write -> new version active    target median <= 250 ms
#   3. schedule lateness p99 of every-second jobs             target <= 100 ms
# For comparison it prints cron's RSS when a cron daemon runs on this machine.
# Usage: benches/daemon.sh [--jobs N] [--secs S]   (defaults 100 jobs, 120 s of every-second runs)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=100
SECS=120
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) JOBS=$2; shift 2 ;;
    --secs) SECS=$2; shift 2 ;;
    *) echo "usage: $0 [--jobs N] [--secs S]" >&2; exit 2 ;;
  esac
done
# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_mtn
bench_tmp WORK bench-daemon
PORT=$(free_port)

write_config() { # schedule
  {
    echo "listen = \"127.0.0.1:$PORT\""
    echo 'state_dir = ".mtn"'
    for i in $(seq 1 "$JOBS"); do
      printf '[[job]]\nname = "job%03d"\nscript = "scripts/job%03d.rhai"\nschedule = "%s"\n' "$i" "$i" "$1"
    done
  } > "$WORK/mtn.toml"
}
mkdir -p "$WORK/scripts"
cat > "$WORK/scripts/common.rhai" <<'EOF'
fn keep(n) { n * 2 }
EOF
for i in $(seq 1 "$JOBS"); do
  printf 'import "common" as c;\nlet x = c::keep(%d);\nif x < 0 { fail("impossible"); }\n' "$i" > "$WORK/scripts/job$(printf %03d "$i").rhai"
done

# 1. Idle.
write_config "0 3 * * *"
start_daemon "$WORK" "$PORT"
sleep 3
rss_kib=$(vmrss "$DAEMON_PID")
ticks() { awk '{print $14 + $15}' /proc/$DAEMON_PID/stat; }
t0=$(ticks); sleep 10; t1=$(ticks)
hz=$(getconf CLK_TCK)
idle_cpu=$(python3 -c "print(f'{($t1-$t0)/$hz/10*100:.3f}')")
echo "idle: ${JOBS} jobs, RSS $((rss_kib / 1024)) MiB ($rss_kib KiB), CPU ${idle_cpu}% of one core (10 s)"
if cron_pid=$(pgrep -x cron 2>/dev/null | head -1) && [ -n "$cron_pid" ]; then
  cron_kib=$(vmrss "$cron_pid")
  echo "cron (for comparison): RSS $cron_kib KiB; mtn/cron ratio $(python3 -c "print(round($rss_kib/$cron_kib,1))")"
fi

# 2. Reload latency: time from the write to the version being active (loaded_at in /status).
python3 - "$WORK" "$PORT" <<'EOF'
import json, sys, time, urllib.request, datetime, statistics
work, port = sys.argv[1], sys.argv[2]
def status():
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status") as r:
        return {j["name"]: j for j in json.load(r)["jobs"]}
lat = []
for i in range(1, 31):
    name = f"job{i:03d}"
    before = status()[name]["version"]
    t0 = time.time()
    with open(f"{work}/scripts/{name}.rhai", "w") as f:
        f.write(f'import "common" as c;\nlet x = c::keep({i});\nlog("edit {t0}");\n')
    while True:
        j = status()[name]
        if j["version"] != before:
            loaded = datetime.datetime.fromisoformat(j["loaded_at"]).timestamp()
            lat.append((loaded - t0) * 1000)
            break
        if time.time() - t0 > 5:
            print(f"reload of {name} not seen within 5 s"); sys.exit(1)
        time.sleep(0.02)
    time.sleep(0.15)
lat.sort()
print(f"reload latency over {len(lat)} edits: median {statistics.median(lat):.0f} ms, "
      f"p90 {lat[int(len(lat)*0.9)-1]:.0f} ms, max {lat[-1]:.0f} ms")
EOF
stop_daemon

# 3. Lateness of every-second jobs.
rm -rf "$WORK/.mtn"
write_config "* * * * * *"
start_daemon "$WORK" "$PORT"
echo "running ${JOBS} every-second jobs for ${SECS} s..."
sleep "$SECS"
rss_busy=$(vmrss "$DAEMON_PID")
stop_daemon
python3 - "$WORK" "$rss_busy" <<'EOF'
import json, sys, glob, datetime
work, rss = sys.argv[1], int(sys.argv[2])
late, status = [], {}
for f in glob.glob(f"{work}/.mtn/history/*.jsonl"):
    for line in open(f):
        e = json.loads(line)
        status[e["status"]] = status.get(e["status"], 0) + 1
        if e.get("scheduled"):
            s = datetime.datetime.fromisoformat(e["scheduled"]).timestamp()
            t = datetime.datetime.fromisoformat(e["start"]).timestamp()
            late.append((t - s) * 1000)
late.sort()
p = lambda q: late[min(len(late) - 1, int(len(late) * q))]
print(f"lateness over {len(late)} scheduled runs: p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {late[-1]:.1f} ms; "
      f"statuses {status}; RSS while busy {rss // 1024} MiB")
EOF
