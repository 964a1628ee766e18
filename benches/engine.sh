#!/usr/bin/env bash
# Engine benchmark: `mtn run` of a trivial script (median wall time, peak RSS) and `mtn check` of a
# 2,000-line script. Targets: run ≤ 10 ms and ≤ 15 MiB; check ≤ 50 ms.
# Compared with the shell it replaces: `bash -c true` for start-up cost.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
apt_install hyperfine time
bench_mtn
bench_tmp W bench-engine
echo 'let x = 1 + 1; log(`x = ${x}`);' > "$W/trivial.rhai"
python3 - "$W/big.rhai" <<'PY'
import sys
lines = []
for i in range(200):
    lines += [f"fn step_{i}(x) {{",
              f"    let y = x + {i};",
              f"    if y % 2 == 0 {{ log(`even ${{y}}`); }} else {{ warn(`odd ${{y}}`); }}",
              f"    let t = duration(\"{i}m\");",
              f"    let m = #{{ a: y, b: t, c: [1, 2, 3] }};",
              f"    m.a + m.c.len()",
              "}",
              f"let r_{i} = step_{i}({i});",
              f"assert(r_{i} > 0, \"step {i}\");",
              ""]
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY
echo "script lines: $(wc -l < "$W/big.rhai")"
hyperfine -N --warmup 5 --runs 50 --export-json "$W/run.json" "$MTN run -q $W/trivial.rhai" "bash -c true" >/dev/null
hyperfine -N --warmup 3 --runs 30 --export-json "$W/check.json" "$MTN check -q $W/big.rhai" >/dev/null
# Peak RSS of 11 runs: most of it is binary pages the kernel maps around each fault, which varies
# with the page cache's state from run to run, so one run is not a measure.
RSS=""
for _ in $(seq 11); do
  RSS="$RSS $( { /usr/bin/time -v "$MTN" run -q "$W/trivial.rhai" >/dev/null; } 2>&1 | awk '/Maximum resident/ {print $6}')"
done
python3 - "$W/run.json" "$W/check.json" "$RSS" "$MTN" <<'PY'
import json, os, statistics, sys
run = json.load(open(sys.argv[1]))["results"]
chk = json.load(open(sys.argv[2]))["results"]
rss_all = sorted(int(x) for x in sys.argv[3].split())
rss = statistics.median(rss_all)
mtn_ms = run[0]["median"] * 1000
bash_ms = run[1]["median"] * 1000
print(f"mtn run trivial:   median {mtn_ms:.1f} ms (target <= 10 ms); bash -c true {bash_ms:.1f} ms; ratio {mtn_ms / bash_ms:.1f}x")
print(f"mtn run peak RSS:  median {rss / 1024:.1f} MiB of 11 runs, {rss_all[0] / 1024:.1f}-{rss_all[-1] / 1024:.1f} (target <= 15 MiB)")
print(f"binary size:       {os.path.getsize(sys.argv[4]) / 1e6:.1f} MB (target <= 20 MB)")
print(f"mtn check 2,000 lines: median {chk[0]['median'] * 1000:.1f} ms (target <= 50 ms)")
PY
