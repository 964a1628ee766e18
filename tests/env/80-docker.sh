# A private Docker engine for tests/it/containers.rs (sourced by tests/run.sh): Debian's dockerd on
# its own socket, data root and exec root under $MTN_TEST_TMP, no iptables, no default bridge; a
# user-defined bridge network on a random 10.x subnet, so the host reaches containers on their
# addresses without publishing ports (and parallel runs do not collide).
# No registry is reachable here: the base image is a debootstrap of Debian trixie, made once and
# cached as a tarball under $MTN_TEST_ENV/docker (later runs only `docker import` it); the
# PostgreSQL 17, Redis, MariaDB and SecantusDB images are built with `docker build --network host`
# and cached with `docker save`, keyed by the hash of their folder's files (and copied binaries).
# Exports MTN_TEST_DOCKER_HOST, MTN_TEST_DOCKER_PG (container name), MTN_TEST_DOCKER_PG_PASSWORD,
# MTN_TEST_DOCKER_PG_MAJOR, MTN_TEST_DOCKER_PG_IP, MTN_TEST_DOCKER_REDIS, MTN_TEST_DOCKER_WEB,
# MTN_TEST_DOCKER_STOPPED, MTN_TEST_DOCKER_MARIADB (+ _PASSWORD: root's), MTN_TEST_DOCKER_MONGO (+ _USER,
# _PASSWORD; only when tests/env/60-mongo.sh built SecantusDB), and MTN_TEST_REDIS_URL (a private
# host redis-server with a password).
apt_install docker.io debootstrap redis-server redis-tools

docker_cache="$MTN_TEST_ENV/docker"
mkdir -p "$docker_cache"
docker_base="$docker_cache/debian-trixie-minbase.tar"
(
  # One set-up at a time builds the base; the others wait for it.
  flock 9
  if [ ! -s "$docker_base" ]; then
    echo "tests/env/80-docker.sh: debootstrap trixie (once, ~2 min)" >&2
    mirror="$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)"
    rootfs="$(mktemp -d "$docker_cache/rootfs.XXXXXX")"
    debootstrap --variant=minbase trixie "$rootfs" "${mirror:-http://deb.debian.org/debian}" >"$docker_cache/debootstrap.log" 2>&1
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$docker_base.tmp" . && mv "$docker_base.tmp" "$docker_base"
    rm -rf "$rootfs"
  fi
) 9>"$docker_cache/.lock"

docker_dir="$MTN_TEST_TMP/docker"
docker_net=""
mkdir -p "$docker_dir/data" "$docker_dir/exec"
setsid dockerd --data-root "$docker_dir/data" --exec-root "$docker_dir/exec" \
  --pidfile "$docker_dir/docker.pid" -H "unix://$docker_dir/docker.sock" \
  --storage-driver=overlay2 --iptables=false --ip6tables=false --bridge=none \
  >"$docker_dir/dockerd.log" 2>&1 </dev/null &
docker_pid=$!
MTN_TEST_PIDS="$MTN_TEST_PIDS $docker_pid"
export MTN_TEST_DOCKER_HOST="unix://$docker_dir/docker.sock"
# The CLI at /usr/local/bin may be older than the engine: speak the engine's API version.
dk() { DOCKER_HOST="$MTN_TEST_DOCKER_HOST" DOCKER_API_VERSION=1.41 docker "$@"; }

# Stopped before the PIDs are killed (tests/run.sh runs MTN_TEST_CLEANUP first): containers
# removed, dockerd ended with SIGTERM, and nothing it mounted left behind.
docker_cleanup() {
  dk rm -f $(dk ps -aq) >/dev/null 2>&1 || true
  [ -z "$docker_net" ] || dk network rm "$docker_net" >/dev/null 2>&1 || true
  kill -TERM "$docker_pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 150; i++)); do kill -0 "$docker_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$docker_pid" 2>/dev/null || true
  awk -v d="$docker_dir" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$docker_dir" 2>/dev/null || true
  rmdir /run/docker/plugins /run/docker 2>/dev/null || true
}
MTN_TEST_CLEANUP="${MTN_TEST_CLEANUP:-} docker_cleanup"

for ((i = 0; i < 300; i++)); do dk version >/dev/null 2>&1 && break; sleep 0.1; done
dk version >/dev/null || { cat "$docker_dir/dockerd.log" >&2; return 1; }

dk import - local/debian:trixie <"$docker_base" >/dev/null

# Load a cached image or build and cache it: NAME TAG DIR [FILE...]. The key hashes every file
# of DIR (its Dockerfile, scripts) and the extra FILEs, which are copied into the build context
# (a binary built on the host).
docker_image() {
  local name="$1" tag="$2" dir="$3" key
  shift 3
  key="$(cat "$dir"/* "$@" | sha256sum | cut -c1-16)"
  local tar="$docker_cache/$name-$key.tar"
  if [ -s "$tar" ]; then
    dk load -i "$tar" >/dev/null
  else
    echo "tests/env/80-docker.sh: building image $tag (once)" >&2
    local ctx="$dir"
    if (($#)); then
      ctx="$MTN_TEST_TMP/docker-context-$name"
      mkdir -p "$ctx" && cp "$dir"/* "$@" "$ctx/"
    fi
    dk build -q --network host -t "$tag" "$ctx" >&2
    dk save -o "$tar.tmp" "$tag" && mv "$tar.tmp" "$tar"
  fi
}
docker_image pg local/mtn-pg:17 tests/env/docker/pg
docker_image redis local/mtn-redis:8 tests/env/docker/redis
docker_image mariadb local/mtn-mariadb:trixie tests/env/docker/mariadb
# The MongoDB-compatible server of tests/env/60-mongo.sh (sourced before this file: it builds the
# binary and the pymongo that creates the first user), when it built; else no MongoDB container
# and its test fails on the missing variable.
docker_mongo_bin="$MTN_TEST_ENV/secantus/bin/secantusd-rs"
if [ -x "$docker_mongo_bin" ] && [ -n "${MTN_TEST_MONGO_PYTHON:-}" ]; then
  docker_image mongo local/mtn-secantus:trixie tests/env/docker/mongo "$docker_mongo_bin"
else
  echo "tests/env/80-docker.sh: no SecantusDB from tests/env/60-mongo.sh: no MongoDB container" >&2
  docker_mongo_bin=""
fi

docker_net="mtn-test-$$"
# A subnet another run (or the host) already uses is refused: try another.
for ((i = 0; i < 10; i++)); do
  docker_subnet="10.$((200 + RANDOM % 50)).$((RANDOM % 250)).0/24"
  dk network create --driver bridge --subnet "$docker_subnet" "$docker_net" >/dev/null 2>&1 && break
done
dk network inspect "$docker_net" >/dev/null

export MTN_TEST_DOCKER_PG=mtn_pg MTN_TEST_DOCKER_PG_MAJOR=17
export MTN_TEST_DOCKER_PG_PASSWORD="ctr-Secret-$RANDOM$RANDOM"
dk run -d --name "$MTN_TEST_DOCKER_PG" --network "$docker_net" --restart unless-stopped local/mtn-pg:17 >/dev/null
export MTN_TEST_DOCKER_REDIS=mtn_redis
dk run -d --name "$MTN_TEST_DOCKER_REDIS" --network "$docker_net" local/mtn-redis:8 >/dev/null
# A "web" container with a known log: 3 ERROR lines on stdout, 2 on stderr, 4 INFO lines.
export MTN_TEST_DOCKER_WEB=mtn_web
dk run -d --name "$MTN_TEST_DOCKER_WEB" --network "$docker_net" --restart unless-stopped local/debian:trixie \
  sh -c 'for i in 1 2 3; do echo "ERROR stdout $i"; echo "INFO request $i took 12ms"; done;
         for i in 1 2; do echo "ERROR stderr $i" >&2; done; echo "INFO slow request took 2300ms";
         exec sleep infinity' >/dev/null
export MTN_TEST_DOCKER_STOPPED=mtn_stopped
dk create --name "$MTN_TEST_DOCKER_STOPPED" local/debian:trixie true >/dev/null

# MariaDB (seed database `shop`, 500 rows in `items`) and SecantusDB, on the network only.
export MTN_TEST_DOCKER_MARIADB=mtn_mariadb
export MTN_TEST_DOCKER_MARIADB_PASSWORD="mdb-Secret-$RANDOM$RANDOM"
dk run -d --name "$MTN_TEST_DOCKER_MARIADB" --network "$docker_net" \
  -e MARIADB_ROOT_PASSWORD="$MTN_TEST_DOCKER_MARIADB_PASSWORD" local/mtn-mariadb:trixie >/dev/null
if [ -n "$docker_mongo_bin" ]; then
  dk run -d --name mtn_mongo --network "$docker_net" local/mtn-secantus:trixie >/dev/null
fi

for ((i = 0; i < 100; i++)); do dk exec "$MTN_TEST_DOCKER_PG" pg_isready -q 2>/dev/null && break; sleep 0.1; done
dk exec "$MTN_TEST_DOCKER_PG" psql -qX -U postgres \
  -c "ALTER USER postgres PASSWORD '$MTN_TEST_DOCKER_PG_PASSWORD'" >/dev/null
export MTN_TEST_DOCKER_PG_IP="$(dk inspect -f "{{(index .NetworkSettings.Networks \"$docker_net\").IPAddress}}" "$MTN_TEST_DOCKER_PG")"

docker_ip() { dk inspect -f "{{(index .NetworkSettings.Networks \"$docker_net\").IPAddress}}" "$1"; }
for ((i = 0; i < 300; i++)); do
  dk exec "$MTN_TEST_DOCKER_MARIADB" mariadb -uroot -N -e 'SELECT count(*) FROM shop.items' 2>/dev/null | grep -qx 500 && break
  sleep 0.1
done
dk exec "$MTN_TEST_DOCKER_MARIADB" mariadb -uroot -N -e 'SELECT count(*) FROM shop.items' | grep -qx 500 \
  || { dk logs "$MTN_TEST_DOCKER_MARIADB" >&2; return 1; }
# MongoDB: the first user is created while authentication is off, then the server restarts with it.
if [ -n "$docker_mongo_bin" ]; then
  mongo_ctr_ip="$(docker_ip mtn_mongo)"
  wait_port "$mongo_ctr_ip" 27017 30
  export MTN_TEST_DOCKER_MONGO_PASSWORD="mgo-Secret-$RANDOM$RANDOM"
  "$MTN_TEST_MONGO_PYTHON" - "$mongo_ctr_ip" "$MTN_TEST_DOCKER_MONGO_PASSWORD" <<'PY'
import sys, pymongo
c = pymongo.MongoClient(f"mongodb://{sys.argv[1]}:27017/", serverSelectionTimeoutMS=10000)
c.admin.command("createUser", "mtnadmin", pwd=sys.argv[2], roles=["root"])
PY
  dk exec mtn_mongo touch /data/auth
  dk restart -t 10 mtn_mongo >/dev/null
  wait_port "$mongo_ctr_ip" 27017 30
  export MTN_TEST_DOCKER_MONGO=mtn_mongo MTN_TEST_DOCKER_MONGO_USER=mtnadmin
fi

# Redis on the host too, with a password (redaction, INFO compared with redis-cli).
redis_port="$(free_port)"
export MTN_TEST_REDIS_PASSWORD="rds-Secret-$RANDOM$RANDOM"
mkdir -p "$MTN_TEST_TMP/redis"
redis-server --bind 127.0.0.1 --port "$redis_port" --requirepass "$MTN_TEST_REDIS_PASSWORD" \
  --save "" --dir "$MTN_TEST_TMP/redis" --daemonize no >"$MTN_TEST_TMP/redis.log" 2>&1 &
MTN_TEST_PIDS="$MTN_TEST_PIDS $!"
wait_port 127.0.0.1 "$redis_port" 30
export MTN_TEST_REDIS_URL="redis://:$MTN_TEST_REDIS_PASSWORD@127.0.0.1:$redis_port"
export MTN_TEST_REDIS_PORT="$redis_port"
