# The test environment's shell helpers, one copy for tests/run.sh and benches/lib.sh (sourced from
# the repository root, never run). The env files tests/env/NN-*.sh call apt_install, free_port and
# wait_port, and read MTN_REPO, MTN_TEST_ENV and MTN_TEST_TMP; they append the PIDs of the servers
# they start to MTN_TEST_PIDS and the functions to run before those are killed to MTN_TEST_CLEANUP.

# env_init PREFIX: the variables above, with a new temporary folder /tmp/PREFIX.XXXXXX. Installed
# tools (venvs, the MongoDB-compatible server) are kept in MTN_TEST_ENV between runs and between
# clones, so only the first run on a machine pays for them.
env_init() {
  export MTN_REPO="$PWD"
  export MTN_TEST_ENV="${MTN_TEST_ENV:-${HOME:-$PWD}/.cache/mtn-test-env}"
  MTN_TEST_TMP="$(mktemp -d "/tmp/$1.XXXXXX")"
  export MTN_TEST_TMP
  # World-readable: the servers that run as their own user (PostgreSQL) keep their data here.
  chmod 755 "$MTN_TEST_TMP"
  export MTN_TEST_PIDS=""
  MTN_TEST_CLEANUP=""
  mkdir -p "$MTN_TEST_ENV"
}

# env_source FILE...: start the servers of these env files, in order.
env_source() {
  local f
  for f in "$@"; do
    [ -e "$f" ] || continue
    echo "tests/env: $f" >&2
    # shellcheck source=/dev/null
    source "$f"
  done
}

# env_cleanup: the env files' cleanup functions (e.g. stopping dockerd and unmounting), then their
# servers (TERM, then KILL after half a second), then the temporary folder.
env_cleanup() {
  local hook pid
  for hook in $MTN_TEST_CLEANUP; do "$hook" || true; done
  for pid in $MTN_TEST_PIDS; do kill "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in $MTN_TEST_PIDS; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$MTN_TEST_TMP" 2>/dev/null || true
}

# apt_install PKG...: Debian packages, installed once for every env file that needs one.
apt_install() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    echo "tests/env: installing ${missing[*]}" >&2
    # Wait for another apt (unattended upgrades, a parallel set-up) instead of failing at once.
    local lock=(-o DPkg::Lock::Timeout=900)
    if [ -z "${MTN_APT_UPDATED:-}" ]; then apt-get "${lock[@]}" update -qq >&2; export MTN_APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -qq "${missing[@]}" >&2
  fi
}

# free_port: a TCP port on loopback that nothing listens on now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port HOST PORT [SECONDS=30]: until something accepts connections there, or fail saying so.
wait_port() {
  local i
  for ((i = 0; i < ${3:-30} * 10; i++)); do
    if (echo >"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "tests/env: nothing listening on $1:$2 after ${3:-30}s" >&2
  return 1
}
