#!/usr/bin/env bash
# 1 GiB file to SeaweedFS on loopback: mtn `upload` vs `aws s3 cp` vs `rclone copy`, with the
# peak RSS of each (GNU time). Starts its own SeaweedFS like tests/env/30-s3.sh does.
# Usage: bash benches/storage.sh   (builds the release binary unless MTN_BIN is set)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_mtn
apt_install time
bench_env tests/env/30-s3.sh

DATA="$MTN_TEST_TMP/data"; mkdir -p "$DATA"
head -c 1073741824 /dev/urandom >"$DATA/big.bin"
export AWS_ACCESS_KEY_ID=$MTN_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$MTN_TEST_S3_SECRET_KEY
export AWS_REGION=us-east-1 AWS_ENDPOINT_URL=$MTN_TEST_S3_ENDPOINT
unset AWS_CA_BUNDLE
cat >"$DATA/up.rhai" <<RHAI
let r = upload("big.bin", "s3://$MTN_TEST_S3_BUCKET/bench/mtn/");
log(\`uploaded \${r.bytes} bytes in \${r.duration_ms} ms\`);
RHAI
cat >"$MTN_TEST_TMP/rclone.conf" <<CONF
[s3]
type = s3
provider = Other
access_key_id = $MTN_TEST_S3_ACCESS_KEY
secret_access_key = $MTN_TEST_S3_SECRET_KEY
endpoint = $MTN_TEST_S3_ENDPOINT
region = us-east-1
force_path_style = true
CONF

# measure NAME CMD...: wall seconds and peak RSS (MiB), best of 2 runs.
declare -A SECS RSS
measure() {
  local name=$1; shift
  local best="" bestrss=""
  for _ in $(seq 1 "${BENCH_RUNS:-2}"); do
    local s=$EPOCHREALTIME t
    ( cd "$DATA" && /usr/bin/time -f "%M" -o "$MTN_TEST_TMP/rss" "$@" >/dev/null 2>"$MTN_TEST_TMP/err" ) \
      || { cat "$MTN_TEST_TMP/err" >&2; exit 1; }
    t=$(since "$s" 3)
    local r; r=$(( $(cat "$MTN_TEST_TMP/rss") / 1024 ))
    if [ -z "$best" ] || (( $(echo "$t < $best" | bc) )); then best=$t; fi
    if [ -z "$bestrss" ] || (( r > bestrss )); then bestrss=$r; fi
  done
  SECS[$name]=$best; RSS[$name]=$bestrss
  printf '%-8s %7.2f s  %6d MiB peak RSS\n' "$name" "$best" "$bestrss"
}

measure mtn "$MTN" run up.rhai
measure aws /usr/bin/aws --endpoint-url "$MTN_TEST_S3_ENDPOINT" s3 cp --only-show-errors big.bin "s3://$MTN_TEST_S3_BUCKET/bench/aws/big.bin"
measure rclone rclone --config "$MTN_TEST_TMP/rclone.conf" copy --ignore-times big.bin "s3:$MTN_TEST_S3_BUCKET/bench/rclone/"

faster=${SECS[aws]}; if (( $(echo "${SECS[rclone]} < $faster" | bc) )); then faster=${SECS[rclone]}; fi
ratio=$(echo "scale=2; ${SECS[mtn]} / $faster" | bc)
echo "mtn / faster of (aws, rclone) = ${ratio}x (target <= 1.0); mtn peak RSS ${RSS[mtn]} MiB (target <= 100)"
