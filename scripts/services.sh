#!/usr/bin/env bash
# Brings up what `make run` and `make test` need on a Debian 12 or 13 machine, as root or as a user
# who may use sudo, with or without systemd:
#
#   postgres  PostgreSQL on 127.0.0.1:5432 accepting user postgres, with databases tollgate and
#             tollgate_test; or, when DATABASE_URL is set, only a check that it answers.
#   redis     Redis on 127.0.0.1:6379; or, when REDIS_URL is set, only a check that it answers.
#   node      Node.js 20 or later and npm for the end-to-end clients (test/e2e/node).
#   go        a check that the Go toolchain is as recent as go.mod's go line (Go is the one
#             prerequisite this script does not install: Debian's is too old), and the CA
#             certificates Go needs to download modules, which a fresh container lacks.
#
# Servers that already answer are left alone; stopped ones are started; missing ones are
# installed from Debian's packages. Every privileged step goes through as_root. When something
# cannot be done, the script stops with one sentence saying what to do. It prints nothing but
# what it did.
#
# Loopback trust: a cluster that Debian's postgresql package creates asks for passwords on TCP.
# Only a cluster this script installed is changed to trust loopback connections, and the change
# carries a marker line so that a later run still knows the cluster is its own (say, after a
# reload that failed). A cluster that was there before is never edited.
set -euo pipefail

root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The paths and limits below are overridden only by test/deploy/services_test.go.
pg_etc=${TOLLGATE_PG_ETC:-/etc/postgresql}
systemd_dir=${TOLLGATE_SYSTEMD_DIR:-/run/systemd/system}
redis_dir=${TOLLGATE_REDIS_DIR:-/var/lib/redis}
tools_dir=${TOLLGATE_TOOLS_DIR:-$root_dir/.tools}
wait_seconds=${TOLLGATE_SERVICES_WAIT:-60}
ca_file=${TOLLGATE_CA_FILE:-/etc/ssl/certs/ca-certificates.crt}

# The Node.js release installed when the machine has none recent enough: the npm registry ships
# the official binary inside the package node-linux-<arch>, and npm itself as package npm (the
# version that Node.js 20 bundles). Debian's npm cannot serve that binary: its modules live in
# /usr/share/nodejs, which only Debian's own node searches.
node_version=20.20.2
node_major=20
npm_version=10.8.2
marker='# tollgate scripts/services.sh installed this cluster: loopback TCP connections are trusted'

# A Node.js this script installed earlier wins over the system's, as in the Makefile.
PATH="$tools_dir/node/bin:$PATH"
export PGCONNECT_TIMEOUT=5

log() { printf 'services: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

# What a user who cannot become root can do instead; each ensure_* sets it.
instead=

# as_root WHY CMD...: runs one privileged step, directly as root or else through sudo (which
# asks for the user's password when its policy wants one).
as_root() {
  local why=$1
  shift
  if [[ $(id -u) == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "$why needs root and sudo is not installed: run this as root, install sudo, or $instead."
  fi
}

apt_install() {
  command -v apt-get >/dev/null ||
    die "$* must be installed and this machine has no apt-get: install them yourself, or $instead."
  as_root "installing $*" apt-get update -qq ||
    die "apt-get update failed (see above): fix the package sources, or $instead."
  log "installing $* from Debian's packages"
  # sudo resets the environment, so the frontend goes through env.
  as_root "installing $*" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
    die "installing $* from Debian's packages failed (see above): install them yourself, or $instead."
}

# wait_for CMD...: polls CMD until it succeeds, for at most wait_seconds.
wait_for() {
  local deadline=$((SECONDS + wait_seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

pg_ready() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }

# pg_trusted: whether user postgres gets in over TCP without a password (-w: never prompt).
pg_trusted() { psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; }

# pg_cluster prints "VERSION NAME" of the newest Debian cluster configured for port 5432.
pg_cluster() {
  local conf dir
  while IFS= read -r conf; do
    [[ -f $conf ]] || continue
    if grep -Eq '^[[:space:]]*port[[:space:]]*=[[:space:]]*5432([^0-9]|$)' "$conf"; then
      dir=${conf%/postgresql.conf}
      dir=${dir#"$pg_etc"/}
      echo "${dir%/*} ${dir#*/}"
      return
    fi
  done < <(printf '%s\n' "$pg_etc"/*/*/postgresql.conf | sort -rV)
}

# pg_service ACTION VERSION NAME starts or reloads one cluster.
pg_service() {
  if [[ -d $systemd_dir ]]; then
    as_root "${1}ing PostgreSQL" systemctl "$1" "postgresql@$2-$3"
  else
    as_root "${1}ing PostgreSQL" pg_ctlcluster --skip-systemctl-redirect "$2" "$3" "$1"
  fi
}

# pg_ours VERSION NAME: whether this script installed the cluster (pg_hba.conf is readable by
# its owner and root only).
pg_ours() {
  local hba=$pg_etc/$1/$2/pg_hba.conf
  if [[ -r $hba ]]; then
    grep -qxF "$marker" "$hba"
  else
    as_root "reading $hba" grep -qxF "$marker" "$hba"
  fi
}

ensure_postgres() {
  if [[ -n ${DATABASE_URL:-} ]]; then
    if command -v psql >/dev/null; then
      wait_for psql -w "$DATABASE_URL" -Atqc 'select 1' ||
        die "cannot connect to DATABASE_URL: correct it, or unset it to use a local PostgreSQL."
    fi
    return
  fi
  instead="set DATABASE_URL to a PostgreSQL database you can use"
  local cluster=
  if ! pg_ready; then
    cluster=$(pg_cluster)
    if [[ -z $cluster ]]; then
      apt_install postgresql
      cluster=$(pg_cluster)
      [[ -n $cluster ]] ||
        die "no PostgreSQL cluster in $pg_etc listens on port 5432: create one with pg_createcluster, or $instead."
      # First thing after the install, so that a later run finds the marker whatever fails next.
      local hba=$pg_etc/${cluster/ //}/pg_hba.conf
      log "trusting loopback connections to the new cluster $cluster ($hba)"
      as_root "editing $hba" sed -i -e "1i $marker" \
        -e '1i host all all 127.0.0.1/32 trust' -e '1i host all all ::1/128 trust' "$hba"
    fi
    # On systemd hosts the package has already started the new cluster.
    if ! pg_ready; then
      log "starting PostgreSQL $cluster"
      # A cluster still starting up refuses to start again; pg_ready below decides.
      # shellcheck disable=SC2086 # "VERSION NAME" splits on purpose
      pg_service start $cluster || true
    fi
    wait_for pg_ready || die "PostgreSQL $cluster did not start: read its log in /var/log/postgresql."
  fi
  command -v psql >/dev/null || apt_install postgresql-client
  if ! pg_trusted; then
    [[ -n $cluster ]] || cluster=$(pg_cluster)
    # shellcheck disable=SC2086
    if [[ -z $cluster ]] || ! pg_ours $cluster; then
      die "PostgreSQL on 127.0.0.1:5432 asks user postgres for a password: set DATABASE_URL to a database you can use."
    fi
    log "reloading PostgreSQL $cluster to trust loopback connections"
    # shellcheck disable=SC2086
    pg_service reload $cluster || die "reloading PostgreSQL $cluster failed (see above): $instead."
    wait_for pg_trusted ||
      die "PostgreSQL $cluster still asks for a password after a reload: check $pg_etc/${cluster/ //}/pg_hba.conf, or $instead."
  fi
  local db
  for db in tollgate tollgate_test; do
    if [[ $(psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc "select 1 from pg_database where datname = '$db'") != 1 ]]; then
      log "creating database $db"
      psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -qc "create database $db" >/dev/null
    fi
  done
}

# redis_ping prints what Redis on 127.0.0.1:6379 answers to PING; NOAUTH means it wants a password.
redis_ping() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null || true; }
redis_up() { [[ $(redis_ping) == PONG ]]; }

ensure_redis() {
  if [[ -n ${REDIS_URL:-} ]]; then
    if command -v redis-cli >/dev/null; then
      wait_for redis_url_up || die "cannot reach REDIS_URL: correct it, or unset it to use a local Redis."
    fi
    return
  fi
  instead="set REDIS_URL to a Redis you can use"
  case $(redis_ping) in
    PONG) return ;;
    NOAUTH*) die "Redis on 127.0.0.1:6379 asks for a password: $instead." ;;
  esac
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server
    # On systemd hosts the package has started it.
    redis_up && return
  fi
  log "starting Redis"
  if [[ -d $systemd_dir ]]; then
    as_root "starting Redis" systemctl start redis-server || die "starting Redis failed (see above): $instead."
  else
    as_root "starting Redis" mkdir -p "$redis_dir"
    as_root "starting Redis" redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
      --save '' --appendonly no --dir "$redis_dir" --logfile "$redis_dir/tollgate-dev.log" ||
      die "starting Redis failed (see above): $instead."
  fi
  wait_for redis_up || die "Redis did not start on 127.0.0.1:6379: read its log in $redis_dir or /var/log/redis."
}

redis_url_up() { [[ $(redis-cli -u "$REDIS_URL" ping 2>/dev/null) == PONG ]]; }

node_ok() {
  local v
  v=$(node --version 2>/dev/null) || return 1
  [[ $v =~ ^v([0-9]+)\. ]] && ((BASH_REMATCH[1] >= node_major))
}

ensure_node() {
  instead="install Node.js $node_major or later and npm yourself"
  local ours=$tools_dir/node
  if [[ -e $ours ]]; then
    node_ok && npm --version >/dev/null 2>&1 && return
    log "removing the incomplete Node.js in $ours"
    rm -rf "$ours"
    hash -r
  fi
  if ! command -v npm >/dev/null; then
    # Debian 12's nodejs is 18, which still runs npm to fetch a newer one; Debian 13's is 20.
    apt_install nodejs npm ca-certificates
  fi
  node_ok && return
  local arch
  case $(uname -m) in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "the end-to-end tests need Node.js $node_major or later, which this script can fetch only for x86_64 and arm64: install it yourself." ;;
  esac
  log "installing Node.js $node_version and npm $npm_version into $ours (npm packages node-linux-$arch, npm)"
  mkdir -p "$tools_dir"
  # Global, for the trap: the half-done download goes whatever happens.
  tmp=$(mktemp -d "$tools_dir/node-install.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  if ! npm install --prefix "$tmp" --ignore-scripts --no-save --no-package-lock --no-audit --no-fund \
    --loglevel=error "node-linux-$arch@$node_version" "npm@$npm_version" >"$tools_dir/npm-install.log" 2>&1; then
    die "fetching node-linux-$arch@$node_version from the npm registry failed (npm's output is in $tools_dir/npm-install.log): $instead."
  fi
  rm -f "$tools_dir/npm-install.log"
  # The layout of Node.js's own distribution: npm under lib/node_modules, linked from bin.
  mv "$tmp/node_modules/node-linux-$arch" "$tmp/node"
  mkdir -p "$tmp/node/lib/node_modules"
  mv "$tmp/node_modules/npm" "$tmp/node/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$tmp/node/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$tmp/node/bin/npx"
  mv "$tmp/node" "$ours"
  hash -r
  if ! node_ok || ! npm --version >/dev/null 2>&1; then
    die "the Node.js installed into $ours does not run here: $instead."
  fi
}

# version_at_least HAVE WANT: dotted versions, compared number by number.
version_at_least() {
  local -a have want
  IFS=. read -ra have <<<"$1"
  IFS=. read -ra want <<<"$2"
  local i
  for i in 0 1 2; do
    if ((${have[i]:-0} != ${want[i]:-0})); then
      ((${have[i]:-0} > ${want[i]:-0}))
      return
    fi
  done
}

ensure_go() {
  # First, since even `go env` may download the toolchain that go.mod asks for.
  instead="install Debian's ca-certificates yourself"
  [[ -e $ca_file ]] || apt_install ca-certificates
  local want have
  want=$(sed -n 's/^go \([0-9][0-9.]*\)$/\1/p' "$root_dir/go.mod")
  # GOVERSION is the toolchain that builds, after any switch that GOTOOLCHAIN allows.
  have=$(cd "$root_dir" && go env GOVERSION 2>/dev/null) || have=
  have=${have#go}
  have=${have%%[!0-9.]*}
  if [[ -z $have ]] || ! version_at_least "$have" "$want"; then
    die "this project needs Go $want or later (the go line of go.mod)${have:+, and go on PATH is $have}: install it and put its bin directory on PATH."
  fi
}

for what in "$@"; do
  case $what in
    postgres) ensure_postgres ;;
    redis) ensure_redis ;;
    node) ensure_node ;;
    go) ensure_go ;;
    *)
      log "unknown service $what (want postgres, redis, node or go)"
      exit 2
      ;;
  esac
done
