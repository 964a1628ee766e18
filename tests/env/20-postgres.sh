# Private PostgreSQL cluster for the db tests (sourced by tests/run.sh).
# Exports MTN_TEST_PG_URL (superuser with a password, md5/scram over TCP), MTN_TEST_PG_PASSWORD,
# MTN_TEST_PG_PORT. initdb refuses root, so the cluster runs as the `postgres` user.
apt_install postgresql postgresql-client
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
export MTN_TEST_PG_PORT="$(free_port)"
export MTN_TEST_PG_PASSWORD="pg-Secret-$RANDOM$RANDOM"
PG_DIR="$MTN_TEST_TMP/pg"
mkdir -p "$PG_DIR" && chown postgres: "$PG_DIR"
printf '%s\n' "$MTN_TEST_PG_PASSWORD" >"$PG_DIR.pw" && chown postgres: "$PG_DIR.pw"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth-local=trust \
  --auth-host=scram-sha-256 --pwfile="$PG_DIR.pw" -E UTF8 >"$PG_DIR.initdb.log" 2>&1
rm -f "$PG_DIR.pw"
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
  -o "-p $MTN_TEST_PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50" start >/dev/null
MTN_TEST_PIDS="$MTN_TEST_PIDS $(head -1 "$PG_DIR/data/postmaster.pid")"
wait_port 127.0.0.1 "$MTN_TEST_PG_PORT" 30
export MTN_TEST_PG_URL="postgres://postgres:${MTN_TEST_PG_PASSWORD}@127.0.0.1:${MTN_TEST_PG_PORT}/postgres"
