# MongoDB-wire-compatible server for tests/it/mongo.rs: SecantusDB (no MongoDB server or mongo
# tools can be installed on these machines), plus pymongo's `bson` as an independent reader.
# Exports MTN_TEST_MONGO_URL (no database in the path), MTN_TEST_MONGO_PYTHON,
# MTN_TEST_MONGO_COMPACT (1 when the server supports compact).

mongo_bin="$MTN_TEST_ENV/secantus/bin/secantusd-rs"
mongo_py_server="$MTN_TEST_ENV/secantus-py/bin/secantusd-py"
if [ ! -x "$mongo_bin" ] && [ ! -x "$mongo_py_server" ]; then
  apt_install cmake
  echo "tests/env/60-mongo.sh: building secantus-mdb (several minutes)" >&2
  if ! cargo install secantus-mdb --version 0.5.3-beta.196 --locked --ignore-rust-version \
      --root "$MTN_TEST_ENV/secantus" >&2; then
    echo "tests/env/60-mongo.sh: cargo install failed; using the Python server (no compact)" >&2
    python3 -m venv "$MTN_TEST_ENV/secantus-py" >&2
    "$MTN_TEST_ENV/secantus-py/bin/pip" install -q SecantusDB==0.7.0b3 >&2
  fi
fi

if [ ! -x "$MTN_TEST_ENV/mongo-py/bin/python" ] || ! "$MTN_TEST_ENV/mongo-py/bin/python" -c 'import bson, pymongo' 2>/dev/null; then
  apt_install python3-venv
  python3 -m venv "$MTN_TEST_ENV/mongo-py" >&2
  "$MTN_TEST_ENV/mongo-py/bin/pip" install -q 'pymongo==4.10.1' >&2
fi
export MTN_TEST_MONGO_PYTHON="$MTN_TEST_ENV/mongo-py/bin/python"

mongo_port="$(free_port)"
mkdir -p "$MTN_TEST_TMP/mongo"
if [ -x "$mongo_bin" ]; then
  "$mongo_bin" --host 127.0.0.1 --port "$mongo_port" --storage-path "$MTN_TEST_TMP/mongo" \
    --standalone --log-file-max 16MB --cache-size 256M >"$MTN_TEST_TMP/mongo.log" 2>&1 &
  export MTN_TEST_MONGO_COMPACT=1
else
  "$mongo_py_server" --host 127.0.0.1 --port "$mongo_port" --storage-path :memory: \
    >"$MTN_TEST_TMP/mongo.log" 2>&1 &
  export MTN_TEST_MONGO_COMPACT=0
fi
MTN_TEST_PIDS="$MTN_TEST_PIDS $!"
wait_port 127.0.0.1 "$mongo_port" 30
export MTN_TEST_MONGO_URL="mongodb://127.0.0.1:$mongo_port"

# A second server with authentication (SCRAM-SHA-256) for the auth-failure test; its first
# user is created through the localhost exception.
if [ -x "$mongo_bin" ]; then
  mongo_auth_port="$(free_port)"
  "$mongo_bin" --host 127.0.0.1 --port "$mongo_auth_port" --storage-path "$MTN_TEST_TMP/mongo-auth" \
    --standalone --auth --log-file-max 16MB --cache-size 64M >"$MTN_TEST_TMP/mongo-auth.log" 2>&1 &
  MTN_TEST_PIDS="$MTN_TEST_PIDS $!"
  wait_port 127.0.0.1 "$mongo_auth_port" 30
  "$MTN_TEST_MONGO_PYTHON" - "$mongo_auth_port" <<'PY'
import sys, pymongo
c = pymongo.MongoClient(f"mongodb://127.0.0.1:{sys.argv[1]}/", serverSelectionTimeoutMS=5000)
c.admin.command("createUser", "mtnadmin", pwd="RightPw-123", roles=["root"])
PY
  export MTN_TEST_MONGO_AUTH_URL="mongodb://mtnadmin:RightPw-123@127.0.0.1:$mongo_auth_port"
fi
