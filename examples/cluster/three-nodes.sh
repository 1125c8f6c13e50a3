#!/usr/bin/env bash
# Three `mandate serve` nodes on one PostgreSQL database behind HAProxy, on this machine
# (docs/cluster.md, "Three nodes on one machine"). Clients use http://127.0.0.1:8080.
# Usage: three-nodes.sh [PATH-TO-MANDATE] (default: `mandate` on the PATH).
# Needs: `haproxy` and `psql` (Debian packages
# haproxy, postgresql-client), a PostgreSQL you may create a database on (PG_ADMIN_URL).
# Ctrl-C stops everything; the data dirs stay in $WORK for the next start.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-mandate}"
work="${WORK:-./cluster-data}"
admin_url="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="${DB_NAME:-mandate_cluster}"
store="${admin_url%/*}/$db"

mkdir -p -m 700 "$work"
# The database, once.
psql -qAt "$admin_url" -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
  psql -q "$admin_url" -c "CREATE DATABASE $db"
# One admin token for the cluster, made once, kept 0600 (every node accepts it: the
# bootstrap token lives in the store).
if [[ ! -f "$work/admin-token" ]]; then
  (umask 077 && head -c 32 /dev/urandom | base64 | tr -d '/+=\n' > "$work/admin-token")
fi

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM

start() { # start N: node N on port 808N, its own data dir, its own node id
  local n="$1"
  mkdir -p -m 700 "$work/node$n"
  MANDATE_ISSUER=http://127.0.0.1:8080 \
    "$bin" serve --store "$store" --node-id "node-$n" --listen "127.0.0.1:808$n" \
    --data-dir "$work/node$n" --bootstrap-token-file "$work/admin-token" \
    >"$work/node$n.log" 2>&1 &
  pids+=($!)
}

start 1
# The first node on the store makes the store key; the others need a copy of it (it opens
# the signing keys and gateway secrets every node shares).
for _ in $(seq 100); do [[ -f "$work/node1/store.key" ]] && break; sleep 0.1; done
[[ -f "$work/node1/store.key" ]] || { cat "$work/node1.log" >&2; exit 1; }
for n in 2 3; do
  [[ -f "$work/node$n/store.key" ]] || { mkdir -p -m 700 "$work/node$n" &&
    cp -p "$work/node1/store.key" "$work/node$n/store.key"; }
  start "$n"
done
haproxy -f "$here/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=($!)

for _ in $(seq 100); do
  curl -sf http://127.0.0.1:8080/readyz >/dev/null && break; sleep 0.1
done
echo "cluster up: http://127.0.0.1:8080 (admin token in $work/admin-token)"
echo "  MANDATE_ADDR=http://127.0.0.1:8080 MANDATE_TOKEN=\$(cat $work/admin-token) $bin cluster status"
wait
