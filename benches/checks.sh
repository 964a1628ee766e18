#!/usr/bin/env bash
# Benchmark: 500 local HTTP endpoints, each answering after 50 ms.
#   mtn http_check_all (concurrency 200)  vs  a shell loop of `curl -fsS`  vs  `xargs -P 16 curl`.
# Usage: bash benches/checks.sh [N=500] [DELAY_MS=50] [CONCURRENCY=200]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
DELAY_MS=${2:-50}
CONC=${3:-200}

# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_mtn
bench_tmp TMP bench-checks
PORT=$(free_port)
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
on_exit "kill $!"
wait_port 127.0.0.1 "$PORT" 5

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

t=$EPOCHREALTIME
"$MTN" run "$TMP/bench.rhai" --set n="$N" --set port="$PORT" --set conc="$CONC" >"$TMP/mtn.out" 2>&1 || { cat "$TMP/mtn.out"; exit 1; }
mtn_s=$(since "$t" 3)
inner=$(grep -o 'inner_s=[0-9.]*' "$TMP/mtn.out" | cut -d= -f2)

t=$EPOCHREALTIME
xargs -P 16 -n 1 curl -fsS -o /dev/null <"$TMP/urls.txt"
xargs_s=$(since "$t" 3)

t=$EPOCHREALTIME
while read -r u; do curl -fsS -o /dev/null "$u"; done <"$TMP/urls.txt"
loop_s=$(since "$t" 3)

echo "endpoints=$N delay=${DELAY_MS}ms mtn_concurrency=$CONC ($(nproc) CPUs)"
printf '%-40s %8ss\n' "mtn http_check_all (whole process)" "$mtn_s"
printf '%-40s %8ss\n' "  of which http_check_all itself" "$inner"
printf '%-40s %8ss\n' "xargs -P 16 curl -fsS" "$xargs_s"
printf '%-40s %8ss\n' "shell loop of curl -fsS" "$loop_s"
python3 -c "print(f'mtn vs xargs -P 16: {$xargs_s / $mtn_s:.1f}x faster;  vs shell loop: {$loop_s / $mtn_s:.1f}x faster')"
