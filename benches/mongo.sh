#!/usr/bin/env bash
# Benchmark: dump_db of 1,000,000 small documents vs a bare driver cursor scan of the same
# collection (examples/mongo_scan.rs: same Rust driver, same batch size, no writing — the
# ceiling any dump can reach). mongodump cannot be installed on these machines, so the scan is
# the reference. Prints documents/second for both, the ratio (target >= 0.8) and mtn's peak RSS
# (target <= 64 MiB).
#
# Server: SecantusDB (tests/env/60-mongo.sh installs it under ~/.cache/mtn-test-env), started here on a free
# port with data in a temp folder. Seeding uses pymongo from ~/.cache/mtn-test-env/mongo-py.
#   bash benches/mongo.sh [DOCS]
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS="${1:-1000000}"
ENV_DIR="${MTN_TEST_ENV:-${HOME:-$PWD}/.cache/mtn-test-env}"
SERVER="$ENV_DIR/secantus/bin/secantusd-rs"
PY="$ENV_DIR/mongo-py/bin/python"
[ -x "$SERVER" ] || { echo "missing $SERVER: run tests/run.sh once (tests/env/60-mongo.sh installs it)" >&2; exit 1; }
[ -x "$PY" ] || { echo "missing $PY: run tests/run.sh once" >&2; exit 1; }

# shellcheck source=benches/lib.sh
source benches/lib.sh
cargo build --release --quiet --example mongo_scan
bench_mtn
SCAN="$PWD/target/release/examples/mongo_scan"

bench_tmp TMP bench-mongo
PORT="$(free_port)"
"$SERVER" --host 127.0.0.1 --port "$PORT" --storage-path "$TMP/data" --standalone \
  --log-file-max 64MB --cache-size 512M >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
on_exit 'kill $SERVER_PID 2>/dev/null || true; sleep 0.5; kill -9 $SERVER_PID 2>/dev/null'
wait_port 127.0.0.1 "$PORT" 10
URL="mongodb://127.0.0.1:$PORT/bench"

echo "seeding $DOCS documents..." >&2
"$PY" - "$URL" "$DOCS" <<'PY'
import sys, datetime, pymongo
from bson import ObjectId
url, n = sys.argv[1], int(sys.argv[2])
c = pymongo.MongoClient(url)
coll = c.get_default_database()["docs"]
coll.drop()
base = datetime.datetime(2024, 1, 1)
batch = []
for i in range(n):
    batch.append({"_id": ObjectId(), "i": i, "name": f"user{i}", "score": i * 0.5,
                  "active": i % 2 == 0, "at": base + datetime.timedelta(seconds=i)})
    if len(batch) == 10000:
        coll.insert_many(batch, ordered=False); batch = []
if batch:
    coll.insert_many(batch, ordered=False)
print(f"seeded {coll.estimated_document_count()} documents", file=sys.stderr)
PY

# Peak RSS of a child process, measured by python (no GNU time needed).
measure() { # prints "seconds peak_kib" for the command given
  python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
dt = time.monotonic() - t
if r.returncode != 0:
    sys.stderr.write(r.stdout + r.stderr); sys.exit(r.returncode)
print(f"{dt:.3f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
PY
}

# Five forms: the default .tar.gz (gzip level 6), the .tar.gz at level 1, mongodump's own
# default output (a directory of uncompressed .bson files), and the zstd archive (.tar.zst) at
# its default level (1) and at zstd's usual level 3.
variant_opts() {
  case "$1" in
    archive6) echo '#{ to: "'"$TMP"'/out", name: "bench.tar.gz" }' ;;
    archive1) echo '#{ to: "'"$TMP"'/out", name: "bench.tar.gz", level: 1 }' ;;
    directory) echo '#{ to: "'"$TMP"'/out", name: "bench", format: "directory" }' ;;
    zstd) echo '#{ to: "'"$TMP"'/out", name: "bench.tar.zst", compress: "zstd" }' ;;
    zstd3) echo '#{ to: "'"$TMP"'/out", name: "bench.tar.zst", compress: "zstd:3" }' ;;
  esac
}

best() { python3 -c "import sys; print(min(float(x) for x in sys.argv[1:]))" "$@"; }

scans=()
declare -A times rss
VARIANTS="archive6 archive1 directory zstd zstd3"
for v in $VARIANTS; do times[$v]=""; rss[$v]=0; done
for round in 1 2 3; do
  read -r s _ < <(measure "$SCAN" "$URL" docs 1000)
  scans+=("$s")
  for v in $VARIANTS; do
    rm -rf "$TMP/out"
    echo "let r = dump_db(\"$URL\", $(variant_opts $v)); assert(r.documents == $DOCS, \"short dump\");" >"$TMP/dump.rhai"
    read -r t m < <(measure "$MTN" run "$TMP/dump.rhai" --allow-path "$TMP" -q)
    times[$v]="${times[$v]} $t"
    (( m > rss[$v] )) && rss[$v]=$m
    echo "round $round: scan ${s}s, $v ${t}s, peak RSS ${m} KiB" >&2
  done
done
scan=$(best "${scans[@]}")
echo "documents: $DOCS (best of 3 runs each; whole mtn process including start-up)"
printf '%-34s %12s docs/s  %6.2f s\n' "driver cursor scan (ceiling)" "$(python3 -c "print(f'{$DOCS/$scan:,.0f}')")" "$scan"
for v in $VARIANTS; do
  t=$(best ${times[$v]})
  python3 -c "
n, t, s, r = $DOCS, $t, $scan, ${rss[$v]}
label = {'archive6': 'dump_db .tar.gz (level 6, default)', 'archive1': 'dump_db .tar.gz (level: 1)', 'directory': 'dump_db directory (.bson, like mongodump)', 'zstd': 'dump_db .tar.zst (zstd, level 1)', 'zstd3': 'dump_db .tar.zst (zstd:3)'}['$v']
print(f'{label:34} {n/t:12,.0f} docs/s  {t:6.2f} s  ratio {s/t:.2f}  peak RSS {r/1024:.1f} MiB')
"
done
