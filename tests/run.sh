#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts private servers on free loopback ports,
# runs every test, stops the servers. This is the README's test command; .ci/run calls it.
#
# Each tests/env/NN-*.sh is sourced in order. A file installs its tools when missing, starts its
# server(s) in $MTN_TEST_TMP, exports the variables the tests read (e.g. MTN_TEST_PG_URL), and
# appends server PIDs to MTN_TEST_PIDS so they are stopped at the end. Tests that need a server
# fail (never skip) when its variable is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export MTN_REPO="$PWD"
# Installed tools (venvs, the MongoDB-compatible server) are kept between runs and between clones,
# so only the first run on a machine pays for them.
export MTN_TEST_ENV="${MTN_TEST_ENV:-${HOME:-$PWD}/.cache/mtn-test-env}"
export MTN_TEST_TMP="$(mktemp -d /tmp/mtn-test.XXXXXX)"
chmod 755 "$MTN_TEST_TMP"
export MTN_TEST_PIDS=""
# Functions an env file needs run before the PIDs are killed (e.g. stopping dockerd and unmounting).
MTN_TEST_CLEANUP=""
mkdir -p "$MTN_TEST_ENV"

cleanup() {
  for hook in $MTN_TEST_CLEANUP; do "$hook" || true; done
  for pid in $MTN_TEST_PIDS; do kill "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in $MTN_TEST_PIDS; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$MTN_TEST_TMP" 2>/dev/null || true
}
trap cleanup EXIT

# Debian packages, installed once for every env file that needs one.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    echo "tests/run.sh: installing ${missing[*]}" >&2
    # Wait for another apt (unattended upgrades, a parallel set-up) instead of failing at once.
    local lock=(-o DPkg::Lock::Timeout=900)
    if [ -z "${MTN_APT_UPDATED:-}" ]; then apt-get "${lock[@]}" update -qq >&2; export MTN_APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -qq "${missing[@]}" >&2
  fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() { # host port seconds
  local i
  for ((i = 0; i < ${3:-30} * 10; i++)); do
    if (echo >"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "tests/run.sh: nothing listening on $1:$2 after ${3:-30}s" >&2
  return 1
}

for f in tests/env/[0-9]*.sh; do
  [ -e "$f" ] || continue
  echo "tests/run.sh: $f" >&2
  # shellcheck source=/dev/null
  source "$f"
done

cargo build --quiet
cargo test --no-fail-fast "$@"
