#!/usr/bin/env bash
# 1 GiB upload to a private OpenSSH server on loopback (tests/env/85-sftp.sh's): mtn `upload`
# to sftp:// vs OpenSSH's `sftp put` and `scp`, with the peak RSS of each (GNU time), and the
# ratio the issue sets (mtn <= 1.0x sftp, RSS <= 100 MiB). Random data, so nothing compresses.
# OpenSSH negotiates chacha20-poly1305 by default, mtn AES-256-GCM when the CPU has AES
# instructions (src/host/storage/sftp/conn.rs); `sftp -c aes256-gcm` is the like-for-like line.
# mtn fsyncs the file on the server before renaming it (overlapped with the transfer, see
# docs/storage.md); `sftp put -f` is OpenSSH's upload with that same durability.
# Usage: bash benches/sftp.sh   (builds the release binary unless MTN_BIN is set; run as root)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_mtn
apt_install time
bench_env tests/env/85-sftp.sh

MIB="${MIB:-1024}"
DATA="$MTN_TEST_TMP/data"; mkdir -p "$DATA"
head -c "$((MIB * 1048576))" /dev/urandom >"$DATA/big.bin"
REMOTE="$MTN_TEST_SFTP_DIR"
SSHOPTS=(-o "UserKnownHostsFile=$MTN_TEST_SFTP_KNOWN_HOSTS" -o StrictHostKeyChecking=yes -o BatchMode=yes -i "$MTN_TEST_SFTP_KEY")
URL="sftp://$MTN_TEST_SFTP_USER@127.0.0.1:$MTN_TEST_SFTP_PORT$REMOTE/mtn/"
cat >"$DATA/up.rhai" <<RHAI
let r = upload("big.bin", "$URL", #{ ssh_key: "$MTN_TEST_SFTP_KEY", known_hosts: "$MTN_TEST_SFTP_KNOWN_HOSTS" });
RHAI
cd "$DATA"
# Warm the page cache so every tool reads from memory; `sync` before each run so none starts with
# the previous one's gigabyte still being written out on the server's disk.
cat big.bin >/dev/null
sync
t=$EPOCHREALTIME; echo "put big.bin $REMOTE/sftp.bin" | /usr/bin/time -v sftp -q -b - "${SSHOPTS[@]}" -P "$MTN_TEST_SFTP_PORT" "$MTN_TEST_SFTP_USER@127.0.0.1" 2>"$DATA/ts.txt" >/dev/null; T_SFTP=$(since "$t")
sync
t=$EPOCHREALTIME; echo "put -f big.bin $REMOTE/sftp-f.bin" | /usr/bin/time -v sftp -q -b - "${SSHOPTS[@]}" -P "$MTN_TEST_SFTP_PORT" "$MTN_TEST_SFTP_USER@127.0.0.1" 2>"$DATA/tf.txt" >/dev/null; T_SFTPF=$(since "$t")
sync
t=$EPOCHREALTIME; echo "put big.bin $REMOTE/sftp-gcm.bin" | /usr/bin/time -v sftp -q -b - -c aes256-gcm@openssh.com "${SSHOPTS[@]}" -P "$MTN_TEST_SFTP_PORT" "$MTN_TEST_SFTP_USER@127.0.0.1" 2>"$DATA/tg.txt" >/dev/null; T_GCM=$(since "$t")
sync
t=$EPOCHREALTIME; /usr/bin/time -v scp -q "${SSHOPTS[@]}" -P "$MTN_TEST_SFTP_PORT" big.bin "$MTN_TEST_SFTP_USER@127.0.0.1:$REMOTE/scp.bin" 2>"$DATA/tc.txt"; T_SCP=$(since "$t")
sync
t=$EPOCHREALTIME; /usr/bin/time -v "$MTN" run -q up.rhai 2>"$DATA/tm.txt"; T_MTN=$(since "$t")
want=$(sha256sum big.bin | cut -d' ' -f1)
got=$(sha256sum "$REMOTE/mtn/big.bin" | cut -d' ' -f1)
[ "$want" = "$got" ] || { echo "mtn's copy differs" >&2; exit 1; }
grep -q "$want" "$REMOTE/mtn/big.bin.sha256"
python3 - "$MIB" "$T_SFTP" "$T_GCM" "$T_SCP" "$T_MTN" "$(rss "$DATA/ts.txt")" "$(rss "$DATA/tg.txt")" "$(rss "$DATA/tc.txt")" "$(rss "$DATA/tm.txt")" "$T_SFTPF" "$(rss "$DATA/tf.txt")" <<'PY'
import sys
mib, ts, tg, tc, tm, rs, rg, rc, rm, tf, rf = map(float, sys.argv[1:])
mb = mib * 1.048576
print(f"{int(mib)} MiB over SFTP on loopback (OpenSSH server)")
print(f"sftp put           {ts:7.2f} s  {mb/ts:7.1f} MB/s   peak RSS {rs/1024:6.1f} MiB")
print(f"sftp put -f        {tf:7.2f} s  {mb/tf:7.1f} MB/s   peak RSS {rf/1024:6.1f} MiB (fsync on the server, as mtn)")
print(f"sftp put aes-gcm   {tg:7.2f} s  {mb/tg:7.1f} MB/s   peak RSS {rg/1024:6.1f} MiB (-c aes256-gcm@openssh.com)")
print(f"scp                {tc:7.2f} s  {mb/tc:7.1f} MB/s   peak RSS {rc/1024:6.1f} MiB")
print(f"mtn upload         {tm:7.2f} s  {mb/tm:7.1f} MB/s   peak RSS {rm/1024:6.1f} MiB (sha256 + sidecar included)")
print(f"ratio vs sftp      {tm/ts:7.2f}x  (target <= 1.0)")
print(f"ratio vs sftp -f    {tm/tf:7.2f}x  (same durability)")
print(f"ratio vs sftp gcm  {tm/tg:7.2f}x  (same cipher)")
print(f"ratio vs scp       {tm/tc:7.2f}x")
PY
