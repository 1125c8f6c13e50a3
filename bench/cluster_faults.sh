#!/usr/bin/env bash
# "Nothing acked is lost" with the faults the e2e test cannot cause on a shared machine
# (issue 21): two release nodes on a fresh PostgreSQL database under load
# (bench/cluster_faults.py: CONNS connections per node on POST /v1/authorize, and tokens
# asked for on both), then, one after another:
#
#   1. kill -9 node 2, start it again (same data dir, node id and port);
#   2. pg_terminate_backend of every backend of the database;
#   3. PostgreSQL itself stopped for DOWN_SECS (pg_ctlcluster VERSION CLUSTER stop -m fast),
#      then started again.
#
# Then both nodes' logs are exported (`mandate audit export`) and verified (`mandate audit
# verify` with each node's checkpoint key), and every decision_id and token id a client
# was given must be in them; every decision sent after PostgreSQL stopped and answered
# before it started again must be a 503.
#
# THIS RESTARTS THE MACHINE'S POSTGRESQL: every other user of it (other test runs) sees
# its connections cut. Run it on a quiet machine. The e2e test
# crates/mandate/tests/e2e/cluster_faults.rs covers the same with the outage simulated by a TCP
# gate, which disturbs nobody.
#
#   bench/cluster_faults.sh                  # DOWN_SECS=2 CONNS=2
#   SKIP_PG_RESTART=1 bench/cluster_faults.sh  # steps 1 and 2 only: disturbs no one
set -euo pipefail
cd "$(dirname "$0")/.."
DOWN_SECS="${DOWN_SECS:-2}"
CONNS="${CONNS:-2}"
AIOHTTP_VERSION="3.11.18"

log() { echo "[cluster_faults.sh] $*" >&2; }
now() { date +%s.%N; }

# shellcheck source=bench/lib.sh
. bench/lib.sh
need_tools jq curl psql pg_ctlcluster

read -r pg_version pg_cluster < <(pg_lsclusters -h | awk 'NR == 1 { print $1, $2 }')
work="$(mktemp -d)"
load_pid=""
cleanup() {
  local p
  [[ -n "$load_pid" ]] && { touch "$work/stop"; wait "$load_pid" 2>/dev/null || true; }
  for p in "${node_pid[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${node_pid[@]}"; do wait "$p" 2>/dev/null || true; done
  pg_ctlcluster "$pg_version" "$pg_cluster" status >/dev/null 2>&1 || pg_ctlcluster "$pg_version" "$pg_cluster" start
  drop_pg_db
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_client_and_binary

new_pg_db
start_node "$work" 1 "$pg_url"
start_node "$work" 2 "$pg_url"
provision "${node_addr[1]}"
token="$(curl -sf "${node_addr[1]}/oauth/token" -u "$agent:$secret" -d grant_type=client_credentials | jq -r .access_token)"
log "nodes ${node_addr[1]} ${node_addr[2]}, PostgreSQL $pg_version/$pg_cluster, database $pg_db"

"$venv/bin/python" bench/cluster_faults.py load --nodes "${node_addr[1]},${node_addr[2]}" \
  --agent "$agent" --secret "$secret" --token "$token" --conns "$CONNS" \
  --stop "$work/stop" --out "$work/seen.jsonl" &
load_pid=$!

# Waits until node N has allowed a request sent after time T (from the load's record).
allows_after() {
  local n="$1" t="$2" what="$3"
  for _ in $(seq 400); do
    if tail -n 400 "$work/seen.jsonl" 2>/dev/null | jq -e --argjson n "$((n - 1))" --argjson t "$t" \
        'select(.node == $n and .sent > $t and .decision_id != null)' >/dev/null 2>&1; then
      log "node $n allows again after $what"
      return 0
    fi
    sleep 0.05
  done
  log "node $n never allowed again after $what"; return 1
}

allows_after 1 0 "the start"; allows_after 2 0 "the start"
sleep 1
log "1. kill -9 node 2"
kill -9 "${node_pid[2]}"; wait "${node_pid[2]}" 2>/dev/null || true
sleep 0.3
t="$(now)"
LISTEN="${node_addr[2]#http://}" start_node "$work" 2 "$pg_url"
allows_after 2 "$t" "its restart"

sleep 0.5
log "2. pg_terminate_backend of every backend of $pg_db"
t="$(now)"
psql -qtA "$PG_ADMIN_URL" -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '$pg_db'" >&2
allows_after 1 "$t" "pg_terminate_backend"; allows_after 2 "$t" "pg_terminate_backend"

sleep 0.5
if [[ -n "${SKIP_PG_RESTART:-}" ]]; then
  log "3. skipped (SKIP_PG_RESTART)"
  down=0 up=0
else
  log "3. PostgreSQL stopped for ${DOWN_SECS}s"
  pg_ctlcluster "$pg_version" "$pg_cluster" stop -m fast
  down="$(now)"
  sleep "$DOWN_SECS"
  up="$(now)"
  pg_ctlcluster "$pg_version" "$pg_cluster" start
  allows_after 1 "$up" "the restart"; allows_after 2 "$up" "the restart"
fi
sleep 0.3
touch "$work/stop"; wait "$load_pid"; load_pid=""

exports=()
for n in 1 2; do
  MANDATE_ADDR="${node_addr[$n]}" MANDATE_TOKEN="$cluster_admin" \
    target/release/mandate audit export --out "$work/node$n.jsonl" >&2
  key="$(MANDATE_ADDR="${node_addr[$n]}" MANDATE_TOKEN="$cluster_admin" \
    target/release/mandate audit checkpoint --json | jq -r .public_key)"
  log "node $n: $(target/release/mandate audit verify "$work/node$n.jsonl" --public-key "$key")"
  exports+=("$work/node$n.jsonl")
done
restart="PostgreSQL $pg_version stopped ${DOWN_SECS}s and started"
[[ -n "${SKIP_PG_RESTART:-}" ]] && restart="no PostgreSQL restart (SKIP_PG_RESTART)"
echo "Faults under load, $(date -u +%Y-%m-%d): kill -9 and restart of node 2, pg_terminate_backend of" \
  "every backend, $restart; both nodes' exported logs verify."
echo
"$venv/bin/python" bench/cluster_faults.py check --seen "$work/seen.jsonl" --down "$down" --up "$up" "${exports[@]}"
