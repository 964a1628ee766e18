#!/usr/bin/env bash
# 1 GiB upload to a private OpenSSH server on loopback (tests/env/85-sftp.sh's): mtn `upload`
# to sftp:// vs OpenSSH's `sftp put` and `scp`, with the peak RSS of each (GNU time), and the
# ratio the issue sets (mtn <= 1.0x sftp, RSS <= 100 MiB). Random data, so nothing compresses.
# Usage: bash benches/sftp.sh   (needs the release build: cargo build --release; run as root)
set -euo pipefail
cd "$(dirname "$0")/.."
export MTN_REPO="$PWD" MTN_TEST_ENV="${MTN_TEST_ENV:-${HOME:-$PWD}/.cache/mtn-test-env}"
export MTN_TEST_TMP="$(mktemp -d /tmp/mtn-bench.XXXXXX)" MTN_TEST_PIDS=""
chmod 755 "$MTN_TEST_TMP"
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then apt-get install -y -qq "${missing[@]}" >&2; fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for ((i = 0; i < ${3:-30} * 10; i++)); do (echo >"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
cleanup() { for p in $MTN_TEST_PIDS; do kill "$p" 2>/dev/null || true; done; sleep 0.5; rm -rf "$MTN_TEST_TMP"; }
trap cleanup EXIT
apt_install time
# shellcheck source=/dev/null
source tests/env/85-sftp.sh

MTN="${MTN_BIN:-$PWD/target/release/mtn}"
[ -x "$MTN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
MIB="${MIB:-1024}"
DATA="$MTN_TEST_TMP/data"; mkdir -p "$DATA"
head -c "$((MIB * 1048576))" /dev/urandom >"$DATA/big.bin"
REMOTE="$MTN_TEST_SFTP_DIR"
SSHOPTS=(-o "UserKnownHostsFile=$MTN_TEST_SFTP_KNOWN_HOSTS" -o StrictHostKeyChecking=yes -o BatchMode=yes -i "$MTN_TEST_SFTP_KEY")
URL="sftp://$MTN_TEST_SFTP_USER@127.0.0.1:$MTN_TEST_SFTP_PORT$REMOTE/mtn/"
cat >"$DATA/up.rhai" <<RHAI
let r = upload("big.bin", "$URL", #{ ssh_key: "$MTN_TEST_SFTP_KEY", known_hosts: "$MTN_TEST_SFTP_KNOWN_HOSTS" });
RHAI
secs() { python3 -c 'import sys,time; print("%.2f" % (time.time()-float(sys.argv[1])))' "$1"; }
now() { python3 -c 'import time; print(time.time())'; }
rss() { awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}' "$1"; }
cd "$DATA"
# Warm the page cache so every tool reads from memory.
cat big.bin >/dev/null
t=$(now); echo "put big.bin $REMOTE/sftp.bin" | /usr/bin/time -v sftp -q -b - "${SSHOPTS[@]}" -P "$MTN_TEST_SFTP_PORT" "$MTN_TEST_SFTP_USER@127.0.0.1" 2>"$DATA/ts.txt" >/dev/null; T_SFTP=$(secs "$t")
t=$(now); /usr/bin/time -v scp -q "${SSHOPTS[@]}" -P "$MTN_TEST_SFTP_PORT" big.bin "$MTN_TEST_SFTP_USER@127.0.0.1:$REMOTE/scp.bin" 2>"$DATA/tc.txt"; T_SCP=$(secs "$t")
t=$(now); /usr/bin/time -v "$MTN" run -q up.rhai 2>"$DATA/tm.txt"; T_MTN=$(secs "$t")
want=$(sha256sum big.bin | cut -d' ' -f1)
got=$(sha256sum "$REMOTE/mtn/big.bin" | cut -d' ' -f1)
[ "$want" = "$got" ] || { echo "mtn's copy differs" >&2; exit 1; }
grep -q "$want" "$REMOTE/mtn/big.bin.sha256"
python3 - "$MIB" "$T_SFTP" "$T_SCP" "$T_MTN" "$(rss "$DATA/ts.txt")" "$(rss "$DATA/tc.txt")" "$(rss "$DATA/tm.txt")" <<'PY'
import sys
mib, ts, tc, tm, rs, rc, rm = map(float, sys.argv[1:])
mb = mib * 1.048576
print(f"{int(mib)} MiB over SFTP on loopback (OpenSSH server)")
print(f"sftp put           {ts:7.2f} s  {mb/ts:7.1f} MB/s   peak RSS {rs/1024:6.1f} MiB")
print(f"scp                {tc:7.2f} s  {mb/tc:7.1f} MB/s   peak RSS {rc/1024:6.1f} MiB")
print(f"mtn upload         {tm:7.2f} s  {mb/tm:7.1f} MB/s   peak RSS {rm/1024:6.1f} MiB (sha256 + sidecar included)")
print(f"ratio vs sftp      {tm/ts:7.2f}x  (target <= 1.0)")
print(f"ratio vs scp       {tm/tc:7.2f}x")
PY
