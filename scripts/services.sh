#!/usr/bin/env bash
# Makes Postgres and Redis reachable for `make run` and `make test`: honours DATABASE_URL and
# REDIS_URL when given; otherwise starts the local servers when installed but stopped, and
# installs them from Debian's packages when missing. Creates the databases the project uses.
# Prints nothing on success but what it did.
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }

need_root() {
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null; then echo sudo; return; fi
    log "need root to $1"; exit 1
  fi
}

apt_install() {
  local sudo; sudo=$(need_root "install $*")
  log "installing $* from Debian's packages"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# wait_for CMD...: polls CMD with a deadline instead of sleeping a fixed time.
wait_for() {
  local deadline=$((SECONDS + 60))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then log "gave up waiting for: $*"; return 1; fi
    sleep 0.2
  done
}

ensure_postgres() {
  if [[ -n "${DATABASE_URL:-}" ]]; then
    command -v psql >/dev/null || apt_install postgresql-client
    wait_for psql "$DATABASE_URL" -c 'select 1'
    return
  fi
  local fresh=0
  if ! command -v pg_ctlcluster >/dev/null; then
    apt_install postgresql
    fresh=1
  fi
  local version; version=$(ls /etc/postgresql | sort -V | tail -n1)
  if ((fresh)); then
    # A fresh Debian cluster asks for passwords on TCP; the project's local servers trust
    # loopback, as on the project's machines.
    local hba=/etc/postgresql/$version/main/pg_hba.conf
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    sed -i -E 's/^(local\s+all\s+postgres\s+)\S+/\1trust/' "$hba"
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    ((fresh)) && pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
  fi
  wait_for pg_isready -h 127.0.0.1 -p 5432
  local db
  for db in tollgate tollgate_test; do
    if ! psql -h 127.0.0.1 -U postgres -Atc "select 1 from pg_database where datname = '$db'" | grep -q 1; then
      log "creating database $db"
      psql -h 127.0.0.1 -U postgres -qc "create database $db" >/dev/null
    fi
  done
}

ensure_redis() {
  if [[ -n "${REDIS_URL:-}" ]]; then
    command -v redis-cli >/dev/null || apt_install redis-tools
    wait_for redis-cli -u "$REDIS_URL" ping
    return
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    log "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
  fi
  wait_for redis-cli -h 127.0.0.1 -p 6379 ping
}

ensure_node() {
  if ! command -v npm >/dev/null; then apt_install nodejs npm; fi
}

for what in "$@"; do
  case "$what" in
    postgres) ensure_postgres ;;
    redis) ensure_redis ;;
    node) ensure_node ;;
    *) log "unknown service $what"; exit 2 ;;
  esac
done
