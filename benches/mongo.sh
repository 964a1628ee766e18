#!/usr/bin/env bash
# Benchmark: dump_db of 1,000,000 small documents vs a bare driver cursor scan of the same
# collection (examples/mongo_scan.rs: same Rust driver, same batch size, no writing — the
# ceiling any dump can reach). mongodump cannot be installed on these machines, so the scan is
# the reference. Prints documents/second for both, the ratio (target >= 0.8) and mtn's peak RSS
# (target <= 64 MiB).
#
# Server: SecantusDB (tests/env/60-mongo.sh installs it under .test-env), started here on a free
# port with data in a temp folder. Seeding uses pymongo from .test-env/mongo-py.
#   bash benches/mongo.sh [DOCS]
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS="${1:-1000000}"
ENV_DIR="$PWD/.test-env"
SERVER="$ENV_DIR/secantus/bin/secantusd-rs"
PY="$ENV_DIR/mongo-py/bin/python"
[ -x "$SERVER" ] || { echo "missing $SERVER: run tests/run.sh once (tests/env/60-mongo.sh installs it)" >&2; exit 1; }
[ -x "$PY" ] || { echo "missing $PY: run tests/run.sh once" >&2; exit 1; }

cargo build --release --quiet --bin mtn --example mongo_scan
MTN="$PWD/target/release/mtn"
SCAN="$PWD/target/release/examples/mongo_scan"

TMP="$(mktemp -d /tmp/mtn-bench-mongo.XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$SERVER" --host 127.0.0.1 --port "$PORT" --storage-path "$TMP/data" --standalone \
  --log-file-max 64MB --cache-size 512M >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true; sleep 0.5; kill -9 $SERVER_PID 2>/dev/null || true; rm -rf "$TMP"' EXIT
for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
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

cat >"$TMP/dump.rhai" <<RHAI
let r = dump_db("$URL", #{ to: "$TMP/out", name: "bench.tar.gz" });
log(\`documents=\${r.documents} bytes=\${r.bytes} raw=\${r.raw_bytes} ms=\${r.duration_ms}\`);
RHAI

best_scan=""; best_dump=""; rss=0
for round in 1 2 3; do
  read -r scan_s _ < <(measure "$SCAN" "$URL" docs 1000)
  rm -rf "$TMP/out"
  read -r dump_s dump_rss < <(measure "$MTN" run "$TMP/dump.rhai" --allow-path "$TMP" -q)
  echo "round $round: scan ${scan_s}s, dump ${dump_s}s, dump peak RSS ${dump_rss} KiB" >&2
  best_scan=$(python3 -c "print(min($scan_s, ${best_scan:-1e9}))")
  best_dump=$(python3 -c "print(min($dump_s, ${best_dump:-1e9}))")
  rss=$(( dump_rss > rss ? dump_rss : rss ))
done
size=$(stat -c %s "$TMP/out/bench.tar.gz")
python3 - "$DOCS" "$best_scan" "$best_dump" "$rss" "$size" <<'PY'
import sys
n, scan, dump, rss, size = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(f"documents:              {n}")
print(f"driver cursor scan:     {n/scan:,.0f} docs/s ({scan:.2f} s, best of 3)")
print(f"mtn dump_db (.tar.gz):  {n/dump:,.0f} docs/s ({dump:.2f} s, best of 3, whole process incl. start-up)")
print(f"ratio dump/scan:        {scan/dump:.2f}  (target >= 0.80)")
print(f"mtn peak RSS:           {rss/1024:.1f} MiB  (target <= 64 MiB)")
print(f"archive size:           {size/1048576:.1f} MiB")
PY
