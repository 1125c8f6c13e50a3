#!/usr/bin/env bash
# Kill-switch propagation across a cluster (issue 21's target: p99 ≤ 100 ms on loopback,
# no allow after the bound). A fresh PostgreSQL database, NODES release `mandate serve`
# nodes on it (distinct ports and data dirs; same issuer and admin token; detector off),
# the example policies and one agent (team=sales, crm:* on Crm::Contact/*), then
# bench/cluster_killswitch.py runs TRIALS trials of each kind in KINDS:
#
#   suspend  POST /v1/agents/{id}/suspend        (the next trial resumes it first)
#   contain  POST /v1/agents/{id}/contain        (6 agents in turn, each resumed and given
#                                                 a fresh token over a second after its
#                                                 containment: iat is in whole seconds)
#   mandate  POST /v1/mandates/{id}/revoke       (each trial a fresh mandate, no user, and
#                                                 its exchanged token)
#   token    POST /v1/tokens/{jti}/revoke        (each trial a fresh token)
#
# every kill called on node 1 while CONNS keep-alive connections per node hammer
# POST /v1/authorize on each other node with the trial's token. What is measured, exactly,
# is in bench/cluster_killswitch.py's docstring: per trial, the time from the kill's
# answer to the answer of the last allow whose request was sent after it.
#
#   bench/cluster_killswitch.sh                       # TRIALS=1000 NODES=3 CONNS=2
#   TRIALS=50 KINDS=suspend,token bench/cluster_killswitch.sh
#
# The client is Python asyncio + aiohttp (pinned below) in a venv under target/.
# Prints a Markdown section (also written to OUT, default target/bench/cluster_killswitch.md),
# stops everything it started and drops the database.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS="${TRIALS:-1000}"
NODES="${NODES:-3}"
CONNS="${CONNS:-2}"
KINDS="${KINDS:-suspend,contain,mandate,token}"
OBSERVE_MS="${OBSERVE_MS:-200}"
BOUND_MS="${BOUND_MS:-100}"
OUT="${OUT:-target/bench/cluster_killswitch.md}"
AIOHTTP_VERSION="3.11.18"

log() { echo "[cluster_killswitch.sh] $*" >&2; }

# shellcheck source=bench/lib.sh
. bench/lib.sh
need_tools jq curl psql

work="$(mktemp -d)"
cleanup() {
  local p
  for p in "${node_pid[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${node_pid[@]}"; do wait "$p" 2>/dev/null || true; done
  drop_pg_db
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_client_and_binary

new_pg_db
log "database $pg_db"
for n in $(seq "$NODES"); do
  start_node "$work" "$n" "$pg_url"
  log "node $n: ${node_addr[$n]} (pid ${node_pid[$n]})"
done
provision "${node_addr[1]}"
log "agent $agent"

nodes="$(IFS=,; echo "${node_addr[*]}")"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
rc=0
"$venv/bin/python" bench/cluster_killswitch.py --nodes "$nodes" --admin "$cluster_admin" \
  --agent "$agent" --secret "$secret" --trials "$TRIALS" --kinds "$KINDS" --conns "$CONNS" \
  --observe-ms "$OBSERVE_MS" --bound-ms "$BOUND_MS" >"$work/result.md" || rc=$?

{
  echo "Loopback, $NODES release nodes on one PostgreSQL $(psql -tA "$PG_ADMIN_URL" -c 'SHOW server_version') database," \
    "kills on node 1, $CONNS keep-alive connections per other node hammering \`POST /v1/authorize\`" \
    "(Python asyncio + aiohttp $AIOHTTP_VERSION), $(nproc) cores shared by all," \
    "$(date -u +%Y-%m-%d) (load average before: $load_before)." \
    "Propagation = time from the kill's answer to the answer of the last allow sent after it (0 if none);" \
    "\"allows after the bound\" = allows sent more than $BOUND_MS ms after the kill's answer."
  echo
  cat "$work/result.md"
} >"$work/table.md"
mkdir -p "$(dirname "$OUT")"
cp "$work/table.md" "$OUT"
echo
cat "$work/table.md"
exit "$rc"
