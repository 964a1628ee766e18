#!/bin/sh
# SecantusDB on every address of the container; --auth once /data/auth exists.
set -eu
auth=""
[ ! -e /data/auth ] || auth="--auth"
exec /usr/local/bin/secantusd-rs --host 0.0.0.0 --port 27017 --storage-path /data/db \
  --standalone $auth --log-file-max 16MB --cache-size 128M
