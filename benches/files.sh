#!/usr/bin/env bash
# Files benchmarks: mtn (release build) against the tools it replaces, on identical data.
#   1. delete_older_than on 100,000 files in 1,000 dirs  vs  find DIR -type f -mtime +30 -delete
#   2. rotate of 1,000 × 1 MiB logs with compress        vs  logrotate -f (gzip -6)
#   3. compress of a 1 GiB file                           vs  gzip -6 and pigz -6
# Usage: bash benches/files.sh [workdir]   (needs ~4 GiB free; default workdir: a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
apt_install pigz logrotate
bench_mtn
if [ -n "${1:-}" ]; then W=$1; mkdir -p "$W"; on_exit "rm -rf '$W'"; else bench_tmp W; fi

# ---- 1. delete_older_than ------------------------------------------------------------
make_tree() { # dir: 1,000 dirs × 100 files, 60 of each 100 older than 31 days
  python3 - "$1" <<'PY'
import os, sys, time
root = sys.argv[1]
old = time.time() - 40 * 86400
for d in range(1000):
    p = os.path.join(root, f"d{d:04}")
    os.makedirs(p)
    for f in range(100):
        fp = os.path.join(p, f"f{f:03}.bak")
        with open(fp, "w") as fh:
            fh.write("x")
        if f < 60:
            os.utime(fp, (old, old))
PY
}
if [ -z "${SKIP_DELETE:-}" ]; then
echo "== delete_older_than: 100,000 files in 1,000 dirs (60,000 old)"
make_tree "$W/find"; make_tree "$W/mtn"
cat > "$W/del.rhai" <<EOR
let r = delete_older_than("$W/mtn", "30d", #{ recursive: true, keep_at_least: 0 });
print(\`deleted \${r.deleted.len()}\`);
EOR
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
t0=$EPOCHREALTIME; find "$W/find" -type f -mtime +30 -delete; t1=$EPOCHREALTIME
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
t2=$EPOCHREALTIME; "$MTN" run -q --allow-path "$W" "$W/del.rhai"; t3=$EPOCHREALTIME
left_find=$(find "$W/find" -type f | wc -l); left_mtn=$(find "$W/mtn" -type f | wc -l)
[ "$left_find" = "$left_mtn" ] || { echo "MISMATCH: find left $left_find, mtn left $left_mtn"; exit 1; }
F=$(secs $t0 $t1); M=$(secs $t2 $t3)
echo "find -delete: ${F}s   mtn: ${M}s   ratio: $(ratio $M $F)   (both left $left_mtn files)"
rm -rf "$W/find" "$W/mtn"
fi

# ---- 2. rotate ---------------------------------------------------------------------------
make_logs() {
  python3 - "$1" <<'PY'
import os, sys, random
root = sys.argv[1]; os.makedirs(root)
random.seed(1)
words = [f"w{i}" for i in range(5000)]
line_src = [" ".join(random.choice(words) for _ in range(12)) for _ in range(4000)]
for i in range(1000):
    with open(os.path.join(root, f"app{i:04}.log"), "w") as fh:
        n = 0; j = i
        while n < 1 << 20:
            l = f"2026-11-22T03:00:{j%60:02} INFO req={j} {line_src[j % 4000]}\n"
            fh.write(l); n += len(l); j += 7
PY
}
echo "== rotate: 1,000 x 1 MiB logs, rotate 7 + compress"
make_logs "$W/lr"; make_logs "$W/mt"
printf '%s/lr/*.log {\n  rotate 7\n  compress\n}\n' "$W" > "$W/lr.conf"
cat > "$W/rot.rhai" <<EOR
let r = rotate("$W/mt/*.log", #{ keep: 7, compress: true });
print(\`rotated \${r.rotated.len()} compressed \${r.compressed.len()}\`);
EOR
sync
t0=$EPOCHREALTIME; logrotate -f -s "$W/lr.state" "$W/lr.conf"; t1=$EPOCHREALTIME
sync
t2=$EPOCHREALTIME; "$MTN" run -q --allow-path "$W" "$W/rot.rhai"; t3=$EPOCHREALTIME
szl=$(du -sb "$W/lr" | cut -f1); szm=$(du -sb "$W/mt" | cut -f1)
[ "$(ls "$W/lr" | sed 's/\.gz$//' | sort | md5sum)" = "$(ls "$W/mt" | sed 's/\.gz$//' | sort | md5sum)" ] || { echo "MISMATCH in rotated names"; exit 1; }
L=$(secs $t0 $t1); M=$(secs $t2 $t3)
echo "logrotate -f: ${L}s   mtn: ${M}s   ratio: $(ratio $M $L)   (sizes $szl vs $szm bytes, $(ratio $szm $szl)x)"
rm -rf "$W/lr" "$W/mt"

# ---- 3. compress ---------------------------------------------------------------------------
echo "== compress: 1 GiB file, level 6"
python3 - "$W/big" <<'PY'
import sys, random
random.seed(2)
words = [f"{w}" for w in ("select insert update delete from where join user order id name email created status value table index".split())]
with open(sys.argv[1], "w") as fh:
    n = 0; i = 0
    chunk = []
    while n < 1 << 30:
        l = f"{i}\t{random.choice(words)}\t{random.randint(0, 10**6)}\tuser{random.randint(0, 50000)}@example.com\t2026-11-{random.randint(1,28):02}\n"
        chunk.append(l); n += len(l); i += 1
        if len(chunk) == 100000:
            fh.write("".join(chunk)); chunk = []
    fh.write("".join(chunk))
PY
cat > "$W/c.rhai" <<EOR
let r = compress("$W/big", #{ level: 6, keep: true });
print(\`ratio \${r.ratio}\`);
EOR
cat "$W/big" > /dev/null
t0=$EPOCHREALTIME; gzip -6 -c "$W/big" > "$W/big.gzip.gz"; t1=$EPOCHREALTIME
t2=$EPOCHREALTIME; pigz -6 -c "$W/big" > "$W/big.pigz.gz"; t3=$EPOCHREALTIME
t4=$EPOCHREALTIME; "$MTN" run -q --allow-path "$W" "$W/c.rhai"; t5=$EPOCHREALTIME
gunzip -t "$W/big.gz"
G=$(secs $t0 $t1); P=$(secs $t2 $t3); M=$(secs $t4 $t5)
sg=$(stat -c %s "$W/big.gzip.gz"); sp=$(stat -c %s "$W/big.pigz.gz"); sm=$(stat -c %s "$W/big.gz")
echo "gzip -6: ${G}s ($sg B)   pigz -6: ${P}s ($sp B)   mtn: ${M}s ($sm B)"
echo "mtn/gzip time: $(ratio $M $G)   mtn/pigz time: $(ratio $M $P)   mtn/gzip size: $(ratio $sm $sg)"
