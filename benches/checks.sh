#!/usr/bin/env bash
# Benchmark: 500 local HTTP endpoints, each answering after 50 ms.
#   mtn http_check_all (concurrency 200)  vs  a shell loop of `curl -fsS`  vs  `xargs -P 16 curl`.
# Usage: bash benches/checks.sh [N=500] [DELAY_MS=50] [CONCURRENCY=200]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
DELAY_MS=${2:-50}
CONC=${3:-200}

cargo build --release --quiet
MTN="$PWD/target/release/mtn"
TMP=$(mktemp -d /tmp/mtn-bench-checks.XXXXXX)
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# A keep-alive HTTP/1.1 server (asyncio): every request is answered after DELAY_MS.
cat >"$TMP/server.py" <<'PY'
import asyncio, sys
port, delay = int(sys.argv[1]), int(sys.argv[2]) / 1000
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            await asyncio.sleep(delay)
            body = b"ok " + path
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()
asyncio.run(main())
PY
python3 "$TMP/server.py" "$PORT" "$DELAY_MS" &
SERVER_PID=$!
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

for i in $(seq 0 $((N - 1))); do echo "http://127.0.0.1:$PORT/e/$i"; done >"$TMP/urls.txt"
cat >"$TMP/bench.rhai" <<'RHAI'
let targets = [];
for i in 0..vars.n { targets.push(`http://127.0.0.1:${vars.port}/e/${i}`); }
let t0 = now();
let results = http_check_all(targets, #{ concurrency: vars.conc, timeout: "30s" });
let ok = results.filter(|r| r.ok).len();
print(`MTN_RESULT ok=${ok} inner_s=${now() - t0}`);
assert(ok == targets.len(), `${targets.len() - ok} checks failed`);
RHAI

secs() { python3 -c "print(f'{$2 - $1:.3f}')"; }

t0=$EPOCHREALTIME
"$MTN" run "$TMP/bench.rhai" --set n="$N" --set port="$PORT" --set conc="$CONC" >"$TMP/mtn.out" 2>&1 || { cat "$TMP/mtn.out"; exit 1; }
t1=$EPOCHREALTIME
mtn_s=$(secs "$t0" "$t1")
inner=$(grep -o 'inner_s=[0-9.]*' "$TMP/mtn.out" | cut -d= -f2)

t0=$EPOCHREALTIME
xargs -P 16 -n 1 curl -fsS -o /dev/null <"$TMP/urls.txt"
t1=$EPOCHREALTIME
xargs_s=$(secs "$t0" "$t1")

t0=$EPOCHREALTIME
while read -r u; do curl -fsS -o /dev/null "$u"; done <"$TMP/urls.txt"
t1=$EPOCHREALTIME
loop_s=$(secs "$t0" "$t1")

echo "endpoints=$N delay=${DELAY_MS}ms mtn_concurrency=$CONC ($(nproc) CPUs)"
printf '%-40s %8ss\n' "mtn http_check_all (whole process)" "$mtn_s"
printf '%-40s %8ss\n' "  of which http_check_all itself" "$inner"
printf '%-40s %8ss\n' "xargs -P 16 curl -fsS" "$xargs_s"
printf '%-40s %8ss\n' "shell loop of curl -fsS" "$loop_s"
python3 -c "print(f'mtn vs xargs -P 16: {$xargs_s / $mtn_s:.1f}x faster;  vs shell loop: {$loop_s / $mtn_s:.1f}x faster')"
