# Sourced by every stub. The simulated machine lives under $STUB_ROOT (laid out by
# services_test.go): state/ holds what is installed, running and trusted; log gets one line per
# call, "# cmd args" when run as root and "$ cmd args" otherwise.
set -euo pipefail
state=$STUB_ROOT/state
pg_etc=$STUB_ROOT/etc/postgresql
uid=${STUB_UID:-$(<"$state/uid")}
name=${0##*/}

log_call() {
  local who='$'
  [[ $uid == 0 ]] && who='#'
  printf '%s %s %s\n' "$who" "$name" "$*" >>"$STUB_ROOT/log"
}

need_root() {
  if [[ $uid != 0 ]]; then
    echo "$name: permission denied (are you root?)" >&2
    exit 100
  fi
}

has_systemd() { [[ -d $STUB_ROOT/run/systemd/system ]]; }

# provide CMD...: what a package puts on PATH.
provide() {
  local c
  for c; do ln -sf "$STUB_ROOT/testdata/stubs/$c" "$STUB_ROOT/bin/$c"; done
}

# pg_cluster_exists VERSION NAME
pg_cluster_exists() {
  if [[ ! -f $pg_etc/$1/$2/postgresql.conf ]]; then
    echo "Error: specified cluster '$1 $2' does not exist" >&2
    exit 1
  fi
}

# pg_load_hba VERSION NAME: PostgreSQL reads pg_hba.conf when it starts and reloads; the first
# host line for 127.0.0.1 decides how a TCP login from there is authenticated.
pg_load_hba() {
  local type db user addr m method=''
  while read -r type db user addr m _; do
    if [[ $type == host && $addr == 127.0.0.1/32 ]]; then
      method=$m
      break
    fi
  done <"$pg_etc/$1/$2/pg_hba.conf"
  echo "${method:-reject}" >"$state/pg_auth"
}
