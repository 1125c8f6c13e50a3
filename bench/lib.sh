# Shared by the bench scripts (source it): start a release `mandate serve` on a fresh data
# dir under $1 and give it what the benchmarks drive: an agent inside a CRM boundary with
# a client secret, and the example CRM policies, active. Sets mandate_pid, maddr, admin,
# agent, secret and basic; mandate_token mints a fresh access token (they live 5 minutes).
# The caller stops mandate_pid. need_tools installs missing Debian packages first.

# Installs each named tool that is not on PATH from Debian (through sudo when not root).
# apt's chatter goes to stderr: the scripts' stdout is their Markdown table.
need_tools() {
  local tool sudo=""
  [[ "$(id -u)" -ne 0 ]] && sudo=sudo
  for tool in "$@"; do
    command -v "$tool" >/dev/null && continue
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq "$tool"; } >&2
  done
}

# bench_workdir: a fresh temporary dir in $work and an empty $pids; on exit (or ^C) every
# process in $pids is stopped and waited for, and $work removed.
bench_workdir() {
  work="$(mktemp -d)"
  pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}

start_mandate() {
  local work="$1"
  target/release/mandate serve --listen 127.0.0.1:0 --data-dir "$work/data" \
    >"$work/mandate.out" 2>"$work/mandate.err" &
  mandate_pid=$!
  for _ in $(seq 400); do grep -q "mandate agent register" "$work/mandate.out" && break; sleep 0.05; done
  grep -q "mandate agent register" "$work/mandate.out" || { cat "$work/mandate.err" >&2; return 1; }
  # `https://` when MANDATE_CONFIG gives the API listener a certificate (bench/tls.sh;
  # curl then trusts its CA through CURL_CA_BUNDLE).
  maddr="$(grep -o 'https\?://[0-9.:]*' "$work/mandate.out" | head -n1)"
  admin="$(grep -o 'mat_[A-Za-z0-9_-]*' "$work/mandate.out")"
  agent="$(curl -sf "$maddr/v1/agents" -H "Authorization: Bearer $admin" \
    -H 'Content-Type: application/json' \
    -d '{"name":"bench-bot","owner":"bench@example.com","labels":{"team":"sales"},
         "boundary":{"grants":[{"actions":["crm:*"],"resources":["Crm::Contact/*"],"data_classes":["internal"]}]}}' \
    | jq -r .id)"
  jq -n --rawfile p examples/crm/policies.cedar --rawfile s examples/crm/schema.cedarschema \
    '{policies: $p, schema_fragments: [$s]}' \
    | curl -sf "$maddr/v1/policies" -H "Authorization: Bearer $admin" \
        -H 'Content-Type: application/json' -d @- >/dev/null
  curl -sf -X POST "$maddr/v1/policies/1/activate" -H "Authorization: Bearer $admin" >/dev/null
  secret="$(curl -sf "$maddr/v1/agents/$agent/credentials" -H "Authorization: Bearer $admin" \
    -H 'Content-Type: application/json' -d '{"type":"client_secret"}' | jq -r .client_secret)"
  basic="Basic $(printf '%s:%s' "$agent" "$secret" | base64 -w0)"
}

mandate_token() {
  curl -sf "$maddr/oauth/token" -u "$agent:$secret" -d grant_type=client_credentials | jq -r .access_token
}

# ---------------------------------------------------------------------------- clusters
# Nodes on one PostgreSQL database (the cluster benches). PG_ADMIN_URL is the server's
# maintenance database (trust auth on loopback by default); new_pg_db makes a fresh
# database and sets pg_db and pg_url, drop_pg_db removes it. Every node gets the same
# issuer (tokens name it, so one node's tokens are good on the others), the same supplied
# admin token ($cluster_admin), the detector off (the hammering would look like an
# anomaly and suspend the agent) and the info-level access log of the default config.
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
cluster_admin="mat_bench_cluster_admin_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cluster_issuer="http://mandate.bench.invalid"

new_pg_db() {
  pg_db="mandate_bench_$(date +%s)_$$"
  psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE $pg_db" >&2
  pg_url="${PG_ADMIN_URL%/*}/$pg_db"
}

drop_pg_db() {
  [[ -n "${pg_db:-}" ]] && psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >&2 || true
}

# start_node WORK N [STORE_URL]: `mandate serve` number N, data dir $WORK/node$N, its store
# STORE_URL (PostgreSQL) or, without one, its own SQLite file. Nodes after the first on one
# database get a copy of node 1's store key (store.key), which opens the shared signing keys.
# LISTEN (default 127.0.0.1:0) is the address it listens on. Sets node_pid[N] and node_addr[N].
declare -a node_pid node_addr
start_node() {
  local work="$1" n="$2" url="${3:-}" dir="$1/node$2"
  if [[ -n "$url" && "$n" != 1 && -f "$work/node1/store.key" && ! -d "$dir" ]]; then
    mkdir -p -m 700 "$dir" && cp -a "$work/node1/store.key" "$dir/store.key"
  fi
  env ${url:+MANDATE_STORE_URL="$url"} MANDATE_BOOTSTRAP_TOKEN="$cluster_admin" \
    MANDATE_ISSUER="$cluster_issuer" MANDATE_DETECT_ENABLED=false \
    target/release/mandate serve --listen "${LISTEN:-127.0.0.1:0}" --data-dir "$dir" \
    >"$work/node$n.out" 2>"$work/node$n.err" &
  node_pid[$n]=$!
  for _ in $(seq 400); do grep -q "mandate agent register" "$work/node$n.out" && break; sleep 0.05; done
  grep -q "mandate agent register" "$work/node$n.out" || { cat "$work/node$n.err" >&2; return 1; }
  node_addr[$n]="$(grep -o 'http://[0-9.:]*' "$work/node$n.out" | head -n1)"
}

# provision ADDR: on the node at ADDR (admin $cluster_admin), the CRM, MCP and billing
# example policies (one version, active) and an agent in a CRM boundary with a client
# secret. Sets agent and secret.
provision() {
  local addr="$1" auth="Authorization: Bearer $cluster_admin"
  agent="$(curl -sf "$addr/v1/agents" -H "$auth" -H 'Content-Type: application/json' \
    -d '{"name":"bench-bot","owner":"bench@example.com","labels":{"team":"sales"},
         "boundary":{"grants":[{"actions":["crm:*"],"resources":["Crm::Contact/*"],"data_classes":["internal"]}]}}' \
    | jq -r .id)"
  jq -n --rawfile c examples/crm/policies.cedar --rawfile cs examples/crm/schema.cedarschema \
    --rawfile m examples/mcp/policies.cedar --rawfile ms examples/mcp/schema.cedarschema \
    --rawfile b examples/billing/policies.cedar --rawfile bs examples/billing/schema.cedarschema \
    '{policies: ($c + "\n" + $m + "\n" + $b), schema_fragments: [$cs, $ms, $bs]}' \
    | curl -sf "$addr/v1/policies" -H "$auth" -H 'Content-Type: application/json' -d @- >/dev/null
  curl -sf -X POST "$addr/v1/policies/1/activate" -H "$auth" >/dev/null
  secret="$(curl -sf "$addr/v1/agents/$agent/credentials" -H "$auth" \
    -H 'Content-Type: application/json' -d '{"type":"client_secret"}' | jq -r .client_secret)"
  [[ -n "$agent" && "$agent" != null && -n "$secret" && "$secret" != null ]]
}

# bench_client_and_binary: the cluster benches' Python client (asyncio + aiohttp
# $AIOHTTP_VERSION, in a venv under target/, installed once) and the release binary. Sets
# venv.
bench_client_and_binary() {
  venv=target/bench-venv
  if ! "$venv/bin/python" -c "import aiohttp; assert aiohttp.__version__ == '$AIOHTTP_VERSION'" 2>/dev/null; then
    log "installing aiohttp $AIOHTTP_VERSION into $venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q "aiohttp==$AIOHTTP_VERSION" >&2
  fi
  log "building the release binary (cargo may wait for the build lock)"
  cargo build --release -q -p mandate
}

# A TCP port nothing on 127.0.0.1 listens on now (for servers that cannot report a
# port 0 choice: Cerbos, HAProxy, a test receiver).
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  return 1
}
