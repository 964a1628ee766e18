#!/bin/sh
# First start: a fresh data folder, root's password (root@localhost keeps socket login for the
# set-up; root@'%' is for TCP: the host on the container's address, and the container's own tools
# on 127.0.0.1, which --skip-name-resolve does not turn into "localhost"), and the
# seed database `shop` with 500 rows. Then the server in the foreground.
set -eu
if [ ! -d /var/lib/mysql/mysql ]; then
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
  mariadbd --user=mysql --skip-networking --socket=/run/mysqld/init.sock &
  pid=$!
  i=0
  until mariadb --socket=/run/mysqld/init.sock -uroot -e 'SELECT 1' >/dev/null 2>&1; do
    i=$((i + 1)); [ "$i" -lt 300 ] || exit 1; sleep 0.1
  done
  pw="$(printf '%s' "${MARIADB_ROOT_PASSWORD:?}" | sed "s/'/''/g")"
  mariadb --socket=/run/mysqld/init.sock -uroot <<SQL
ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('$pw');
CREATE USER root@'%' IDENTIFIED BY '$pw';
GRANT ALL ON *.* TO root@'%' WITH GRANT OPTION;
CREATE DATABASE shop;
USE shop;
CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL);
INSERT INTO shop.items SELECT seq, CONCAT('item ', seq) FROM seq_1_to_500;
SQL
  kill "$pid"
  wait "$pid" || true
fi
# No reverse DNS of clients: the container has no resolver to ask, and a lookup would stall every
# connection from the host until it timed out.
exec mariadbd --user=mysql --bind-address=0.0.0.0 --port=3306 --skip-name-resolve
