# Private MariaDB server for the db tests (sourced by tests/run.sh).
# Exports MTN_TEST_MY_URL (root with a password over TCP), MTN_TEST_MY_PASSWORD, MTN_TEST_MY_PORT.
apt_install mariadb-server mariadb-client
export MTN_TEST_MY_PORT="$(free_port)"
export MTN_TEST_MY_PASSWORD="my-Secret-$RANDOM$RANDOM"
MY_DIR="$MTN_TEST_TMP/my"
mkdir -p "$MY_DIR"
chown mysql: "$MY_DIR" 2>/dev/null || true
mariadb-install-db --no-defaults --user=mysql --datadir="$MY_DIR/data" --auth-root-authentication-method=normal \
  --skip-test-db >"$MY_DIR.install.log" 2>&1
chown -R mysql: "$MY_DIR" 2>/dev/null || true
mariadbd --no-defaults --user=mysql --datadir="$MY_DIR/data" --socket="$MY_DIR/sock" --port="$MTN_TEST_MY_PORT" \
  --bind-address=127.0.0.1 --pid-file="$MY_DIR/pid" --skip-log-bin --innodb-buffer-pool-size=64M \
  --innodb-log-file-size=16M --log-error="$MY_DIR/error.log" &
MTN_TEST_PIDS="$MTN_TEST_PIDS $!"
wait_port 127.0.0.1 "$MTN_TEST_MY_PORT" 60
for _ in $(seq 50); do
  mariadb --no-defaults --socket="$MY_DIR/sock" -uroot -e "SELECT 1" >/dev/null 2>&1 && break
  sleep 0.2
done
mariadb --no-defaults --socket="$MY_DIR/sock" -uroot \
  -e "ALTER USER 'root'@'localhost' IDENTIFIED BY '${MTN_TEST_MY_PASSWORD}'; CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '${MTN_TEST_MY_PASSWORD}'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;"
export MTN_TEST_MY_URL="mysql://root:${MTN_TEST_MY_PASSWORD}@127.0.0.1:${MTN_TEST_MY_PORT}/mysql"
