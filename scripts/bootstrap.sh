#!/usr/bin/env bash
# Machine setup for `make test` / `make demo` on Debian 12: installs whatever of the packages below is missing
# (libc6-dev too: gcc only recommends it, and the Cython build needs its headers).
#
# Idempotent and quiet: nothing is downloaded when everything is there (no `apt-get update` either); apt's output
# goes to $SHARDGATE_BOOTSTRAP_LOG, one line per step goes to the terminal. It starts no service: the test
# fixtures and the demo start their own servers (shardgate/localdb.py), so a policy-rc.d blocks package scripts
# from starting the stock postgresql/mariadb services while we install. Not root and something missing: it prints
# the command to run and exits 1.
set -euo pipefail

PACKAGES=(gcc libc6-dev python3-dev python3-venv
          postgresql-15 postgresql-client-15
          mariadb-server mariadb-client
          sysbench pgbouncer)
LOG=${SHARDGATE_BOOTSTRAP_LOG:-/tmp/shardgate-bootstrap.log}

say() { printf 'bootstrap: %s\n' "$*"; }
fail() {
  say "FAILED: $*"
  if [ -s "$LOG" ]; then
    say "last lines of $LOG:"
    tail -n 20 "$LOG" | sed 's/^/  | /'
  fi
  exit 1
}

installed() {  # dpkg says "install ok installed" only for a fully configured package
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  fail "this script needs Debian's dpkg and apt-get (Debian 12); install these by hand: ${PACKAGES[*]}"
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done

need_users=()
for user in postgres mysql; do
  id -u "$user" >/dev/null 2>&1 || need_users+=("$user")
done

if [ ${#missing[@]} -eq 0 ] && [ ${#need_users[@]} -eq 0 ]; then
  say "all ${#PACKAGES[@]} packages present, postgres and mysql users exist"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  [ ${#missing[@]} -gt 0 ] && say "missing packages: ${missing[*]}"
  [ ${#need_users[@]} -gt 0 ] && say "missing OS users: ${need_users[*]}"
  say "run as root:  sudo $0   (or: sudo apt-get install -y ${missing[*]:-})"
  exit 1
fi

: >"$LOG"
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef
          -o Dpkg::Options::=--force-confold)

if [ ${#missing[@]} -gt 0 ]; then
  # Keep package scripts from starting services (exit 101 = "action forbidden", see invoke-rc.d(8)).
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi

  say "apt-get update (missing: ${missing[*]})"
  apt-get "${apt_opts[@]}" update >>"$LOG" 2>&1 || fail "apt-get update"
  say "apt-get install ${missing[*]}"
  apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1 \
    || fail "apt-get install ${missing[*]}"
  for pkg in "${missing[@]}"; do
    installed "$pkg" || fail "$pkg is still not installed"
  done
fi

# The packages create these users; make sure of them anyway (a minimal image may have had them removed).
for user in postgres mysql; do
  if ! id -u "$user" >/dev/null 2>&1; then
    say "creating OS user $user"
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user" \
      >>"$LOG" 2>&1 || fail "useradd $user"
  fi
done

say "done (${#missing[@]} package(s) installed; log: $LOG)"
