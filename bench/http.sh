#!/usr/bin/env bash
# Load test of POST /v1/authorize on loopback, against two yardsticks measured in the same
# run on the same machine:
#
#   mandate  release `mandate serve`, fresh data dir, the example CRM policies active,
#            the agent's own access token, durable audit (every decision committed to
#            SQLite before the answer), default config (info-level access log).
#   authzen  the same `mandate serve`, the same question as AuthZEN's Access Evaluation
#            (`POST /access/v1/evaluation`, the agent's own token, subject = the agent):
#            the same decision path and durable audit, a different wire.
#   opa      the same `mandate serve`, OPA's Data API on its `opa.listen` listener:
#            `POST /v1/data/crm/allow` with the agent's own token (verified, its subject
#            put into the input), a Rego rule equivalent to the CRM read policy, the
#            same durable audit (an `opa.decision` event before the answer).
#   hello    crates/mandate-http/examples/hello.rs: the same HTTP stack (axum + tokio,
#            same versions, features and runtime) parsing the same JSON body and
#            answering a decision-shaped JSON; no auth, policy or audit. The practical
#            ceiling.
#   cerbos   the Cerbos PDP from the npm package `cerbos` (version CERBOS_VERSION), disk
#            storage, a resource policy equivalent to examples/crm/policies.cedar's
#            contact rules, POST /api/check/resources; Cerbos's default config (its
#            decision audit log is off).
#
#   gateway  the same hello-world server as the upstream of Mandate's HTTP gateway (a
#            `[[gateway.routes]]` route in the same `mandate serve`): token verified and
#            stripped, a Cedar decision committed to the audit log before forwarding, an
#            upstream secret injected; its p50 minus hello's is the gateway's added latency.
#
# plus the token endpoint (client credentials, client_secret_basic, one client and secret,
# so after the first request the verified-secret cache spares the Argon2id check) at c=16.
#
# Each target is driven by `wrk -t2 -cN -dDURATION --latency` at each N in CONCURRENCY,
# REPEATS times, interleaved (repeat, then concurrency, then target) so that drift in a
# noisy machine hits all targets alike. Reported: medians over the repeats of req/s,
# p50, p99, and the server process's CPU time per request (utime+stime from
# /proc/<pid>/stat, all threads, before/after each run, divided by the requests wrk
# completed); ratios are medians of the per-repeat ratios (same repeat, same N).
# wrk and the server share the machine's cores: at high N they compete for CPU.
#
#   bench/http.sh                        # DURATION=5 REPEATS=3 CONCURRENCY="1 16 64"
#   DURATION=10 REPEATS=5 bench/http.sh
#   CERBOS_BIN=/path/to/cerbos bench/http.sh   # skip the npm install
#   SKIP_CERBOS=1 bench/http.sh
#
# Prints a Markdown table (also written to OUT, default target/bench/http.md) and stops
# everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-5}"
REPEATS="${REPEATS:-3}"
CONCURRENCY="${CONCURRENCY:-1 16 64}"
TOKEN_CONNECTIONS="${TOKEN_CONNECTIONS:-16}"
WARMUP="${WARMUP:-2}"
CERBOS_VERSION="${CERBOS_VERSION:-0.51.0}"
OUT="${OUT:-target/bench/http.md}"

log() { echo "[http.sh] $*" >&2; }

# shellcheck source=bench/lib.sh
. bench/lib.sh
need_tools wrk jq curl

bench_workdir

log "building release binaries (cargo may wait for the build lock)"
cargo build --release -q -p mandate
cargo build --release -q -p mandate-http --example hello

clk_tck="$(getconf CLK_TCK)"
# utime + stime of a process (all its threads), in clock ticks. The command name in
# field 2 may hold spaces; strip through its closing parenthesis first.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }


wait_for() { # file pattern
  for _ in $(seq 400); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}

# ---------------------------------------------------------------------------- hello
target/release/examples/hello >"$work/hello.out" 2>"$work/hello.err" &
hello_pid=$!
pids+=("$hello_pid")
wait_for "$work/hello.out" "http://" || { cat "$work/hello.err" >&2; exit 1; }
haddr="$(head -n1 "$work/hello.out")"

# Mandate's gateway fronts the same hello-world server (route /up → hello).
cat >"$work/mandate.toml" <<EOF
[gateway]
listen = "127.0.0.1:0"

[[gateway.routes]]
prefix = "/up"
upstream = "$haddr"
action = "bench:proxy"
resource_type = "Bench::Upstream"
resource_id = "{path.1}"
credential_secret = "upstream-key"
credential_header = "X-Api-Key"

[opa]
listen = "127.0.0.1:0"
EOF
export MANDATE_CONFIG="$work/mandate.toml"

# ---------------------------------------------------------------------------- Mandate
start_mandate "$work"
pids+=("$mandate_pid")
mandate_body='{"action":"crm:read","resource":{"type":"Crm::Contact","id":"c-1","attributes":{"team":"sales"}},"context":{"data_class":"internal"}}'
answer="$(curl -sf "$maddr/v1/authorize" -H "Authorization: Bearer $(mandate_token)" \
  -H 'Content-Type: application/json' -d "$mandate_body")"
[[ "$(jq -r .decision <<<"$answer")" == allow ]] || { log "Mandate did not allow: $answer"; exit 1; }
log "mandate $maddr: $answer"
authzen_body="$(jq -cn --arg a "$agent" '{subject: {type: "agent", id: $a}, action: {name: "crm:read"},
  resource: {type: "Crm::Contact", id: "c-1", properties: {team: "sales"}}, context: {data_class: "internal"}}')"
answer="$(curl -sf "$maddr/access/v1/evaluation" -H "Authorization: Bearer $(mandate_token)" \
  -H 'Content-Type: application/json' -d "$authzen_body")"
[[ "$(jq -r .decision <<<"$answer")" == true ]] || { log "AuthZEN did not allow: $answer"; exit 1; }
log "authzen $maddr/access/v1/evaluation: $answer"
answer="$(curl -sf "$haddr/v1/authorize" -H 'Content-Type: application/json' -d "$mandate_body")"
log "hello $haddr: $answer"

# The gateway: a policy version with the CRM policies plus the proxy action, the
# upstream secret, and an agent whose tokens are for the route's resource.
gaddr="$(grep -o 'gateway on http://[0-9.:]*' "$work/mandate.out" | sed 's/gateway on //')"
[[ -n "$gaddr" ]] || { log "no gateway line in $(cat "$work/mandate.out")"; exit 1; }
bench_schema='namespace Bench { entity Upstream; }
namespace Mandate { action "bench:proxy" in ["all"] appliesTo { principal: [Agent], resource: [Bench::Upstream] }; }'
bench_policy='
@id("bench-proxy")
permit (principal, action == Mandate::Action::"bench:proxy", resource);
'
jq -n --rawfile p examples/crm/policies.cedar --rawfile s examples/crm/schema.cedarschema \
  --arg b "$bench_schema" --arg q "$bench_policy" \
  '{policies: ($p + $q), schema_fragments: [$s, $b]}' \
  | curl -sf "$maddr/v1/policies" -H "Authorization: Bearer $admin" \
      -H 'Content-Type: application/json' -d @- | jq -r .version >"$work/gw-version"
curl -sf -X POST "$maddr/v1/policies/$(cat "$work/gw-version")/activate" \
  -H "Authorization: Bearer $admin" >/dev/null
curl -sf -X PUT "$maddr/v1/gateway/secrets/upstream-key" -H "Authorization: Bearer $admin" \
  -H 'Content-Type: application/json' -d '{"value":"bench-upstream-secret-0123456789"}'
gw_agent="$(jq -n --arg aud "$gaddr/up" '{name: "bench-gw", owner: "bench@example.com",
    boundary: {grants: [{actions: ["bench:*"], resources: ["Bench::Upstream/*"]}], audiences: [$aud]}}' \
  | curl -sf "$maddr/v1/agents" -H "Authorization: Bearer $admin" \
      -H 'Content-Type: application/json' -d @- | jq -r .id)"
gw_secret="$(curl -sf "$maddr/v1/agents/$gw_agent/credentials" -H "Authorization: Bearer $admin" \
  -H 'Content-Type: application/json' -d '{"type":"client_secret"}' | jq -r .client_secret)"
gateway_token() {
  curl -sf "$maddr/oauth/token" -u "$gw_agent:$gw_secret" -d grant_type=client_credentials \
    --data-urlencode "resource=$gaddr/up" | jq -r .access_token
}
answer="$(curl -sf "$gaddr/up/v1/authorize" -H "Authorization: Bearer $(gateway_token)" \
  -H 'Content-Type: application/json' -d "$mandate_body")" \
  || { log "the gateway did not forward: $(tail -n3 "$work/mandate.err")"; exit 1; }
log "gateway $gaddr/up → hello: $answer"

# OPA's Data API: the CRM read rule in Rego, put through OPA's Policy API (a new version
# keeping the Cedar policies above), asked with the agent's own token.
oaddr="$(grep -o 'OPA-compatible API (Data, Policy, Health) on http://[0-9.:]*' "$work/mandate.out" | sed 's/.* on //')"
[[ -n "$oaddr" ]] || { log "no OPA line in $(cat "$work/mandate.out")"; exit 1; }
crm_rego='package crm

default allow := false

allow if {
    input.action == "crm:read"
    input.subject.labels.team == input.resource.team
    input.context.data_class in {"public", "internal"}
}
'
curl -sf -X PUT "$oaddr/v1/policies/crm.rego" -H "Authorization: Bearer $admin" \
  --data-binary "$crm_rego" >/dev/null
opa_body='{"input":{"action":"crm:read","resource":{"type":"Crm::Contact","id":"c-1","team":"sales"},"context":{"data_class":"internal"}}}'
answer="$(curl -sf "$oaddr/v1/data/crm/allow" -H "Authorization: Bearer $(mandate_token)" \
  -H 'Content-Type: application/json' -d "$opa_body")"
[[ "$(jq -r .result <<<"$answer")" == true ]] || { log "the Data API did not allow: $answer"; exit 1; }
log "opa $oaddr/v1/data/crm/allow: $answer"

# ---------------------------------------------------------------------------- Cerbos
# The contact rules of examples/crm/policies.cedar, in Cerbos terms: the agent is a
# principal with role `agent` and attributes team, labels (["k=v"]) and status; the
# contact carries team, data_class and source_ip (Cerbos has no request context
# outside principal/resource attributes and aux data).
cerbos_body='{"requestId":"bench","includeMeta":true,
  "principal":{"id":"agt_bench","roles":["agent"],"attr":{"team":"sales","labels":[],"status":"active"}},
  "resources":[{"resource":{"kind":"contact","id":"c-1","attr":{"team":"sales","data_class":"internal"}},"actions":["read"]}]}'
cerbos_why=""
cerbos_pid=""
start_cerbos() {
  [[ -n "${SKIP_CERBOS:-}" ]] && { cerbos_why="SKIP_CERBOS set"; return 1; }
  local bin="${CERBOS_BIN:-}"
  if [[ -z "$bin" ]]; then
    command -v npm >/dev/null || { cerbos_why="npm not found (set CERBOS_BIN)"; return 1; }
    log "npm install cerbos@$CERBOS_VERSION"
    if ! npm install --prefix "$work/npm" --no-audit --no-fund --loglevel=error \
        "cerbos@$CERBOS_VERSION" >"$work/npm.log" 2>&1; then
      cerbos_why="npm install cerbos@$CERBOS_VERSION failed: $(tail -n1 "$work/npm.log")"
      return 1
    fi
    bin="$(find "$work/npm/node_modules/@cerbos" -type f -name 'cerbos-*' -perm -u+x 2>/dev/null | head -n1)"
    [[ -n "$bin" ]] || { cerbos_why="the npm package holds no PDP binary for $(uname -sm)"; return 1; }
  fi
  mkdir -p "$work/cerbos/policies"
  cat >"$work/cerbos/policies/crm_roles.yaml" <<'EOF'
apiVersion: api.cerbos.dev/v1
derivedRoles:
  name: crm_roles
  definitions:
    - name: team_member
      parentRoles: ["agent"]
      condition:
        match:
          expr: has(request.principal.attr.team) && request.principal.attr.team == request.resource.attr.team
EOF
  cat >"$work/cerbos/policies/contact.yaml" <<'EOF'
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  version: default
  resource: contact
  importDerivedRoles: ["crm_roles"]
  rules:
    - name: team-reads-contacts
      actions: ["read"]
      effect: EFFECT_ALLOW
      derivedRoles: ["team_member"]
    - name: team-writes-contacts
      actions: ["write"]
      effect: EFFECT_ALLOW
      derivedRoles: ["team_member"]
      condition:
        match:
          expr: '"access=write" in request.principal.attr.labels'
    - name: secret-needs-clearance
      actions: ["*"]
      effect: EFFECT_DENY
      roles: ["*"]
      condition:
        match:
          all:
            of:
              - expr: has(request.resource.attr.data_class) && request.resource.attr.data_class == "secret"
              - expr: '!("clearance=secret" in request.principal.attr.labels)'
    - name: writes-from-office
      actions: ["write"]
      effect: EFFECT_DENY
      roles: ["*"]
      condition:
        match:
          none:
            of:
              - expr: has(request.resource.attr.source_ip) && request.resource.attr.source_ip.inIPAddrRange("10.0.0.0/8")
    - name: active-agents-only
      actions: ["*"]
      effect: EFFECT_DENY
      roles: ["*"]
      condition:
        match:
          expr: request.principal.attr.status != "active"
EOF
  local http grpc
  http="$(free_port)" && grpc="$(free_port)" || { cerbos_why="no free port"; return 1; }
  cat >"$work/cerbos/config.yaml" <<EOF
server:
  httpListenAddr: "127.0.0.1:$http"
  grpcListenAddr: "127.0.0.1:$grpc"
storage:
  driver: disk
  disk:
    directory: "$work/cerbos/policies"
    watchForChanges: false
EOF
  CERBOS_NO_TELEMETRY=1 "$bin" server --config="$work/cerbos/config.yaml" --log-level=warn \
    --debug-listen-addr="127.0.0.1:$(free_port)" \
    >"$work/cerbos.out" 2>"$work/cerbos.err" &
  cerbos_pid=$!
  pids+=("$cerbos_pid")
  caddr="http://127.0.0.1:$http"
  local ok=""
  for _ in $(seq 200); do
    kill -0 "$cerbos_pid" 2>/dev/null || break
    curl -sf "$caddr/_cerbos/health" >/dev/null 2>&1 && { ok=1; break; }
    sleep 0.05
  done
  if [[ -z "$ok" ]]; then
    cerbos_why="the Cerbos PDP did not start: $(tail -n2 "$work/cerbos.out" "$work/cerbos.err" | tr '\n' ' ')"
    return 1
  fi
  local a
  a="$(curl -sf "$caddr/api/check/resources" -H 'Content-Type: application/json' -d "$cerbos_body")"
  if [[ "$(jq -r '.results[0].actions.read' <<<"$a")" != EFFECT_ALLOW ]]; then
    cerbos_why="Cerbos did not allow the equivalent request: $a"
    return 1
  fi
  log "cerbos $caddr ($("$bin" --version | head -n1)): $a"
  cerbos_version="$("$bin" --version | head -n1)"
}
cerbos_version=""
targets=(hello mandate authzen opa gateway)
if start_cerbos; then targets+=(cerbos); else log "Cerbos not measured: $cerbos_why"; fi

# ---------------------------------------------------------------------------- runs
# Latency as wrk prints it (245.00us, 2.76ms, 1.02s) in microseconds.
to_us() { awk -v v="$1" 'BEGIN {
  n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
  if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1000000; else m = 0
  printf "%.1f", n * m }'; }

# run TARGET N REP: one wrk run, one line appended to $work/results:
#   target n rep rps p50_us p99_us cpu_us_per_req errors requests
run() {
  local target="$1" n="$2" rep="$3" pid url script_env=()
  local threads=$((n < 2 ? n : 2))
  case "$target" in
    mandate) pid="$mandate_pid"; url="$maddr/v1/authorize"
      script_env=(CT=application/json BODY="$mandate_body" AUTH="Bearer $(mandate_token)") ;;
    authzen) pid="$mandate_pid"; url="$maddr/access/v1/evaluation"
      script_env=(CT=application/json BODY="$authzen_body" AUTH="Bearer $(mandate_token)") ;;
    opa) pid="$mandate_pid"; url="$oaddr/v1/data/crm/allow"
      script_env=(CT=application/json BODY="$opa_body" AUTH="Bearer $(mandate_token)") ;;
    hello) pid="$hello_pid"; url="$haddr/v1/authorize"
      script_env=(CT=application/json BODY="$mandate_body") ;;
    cerbos) pid="$cerbos_pid"; url="$caddr/api/check/resources"
      script_env=(CT=application/json BODY="$cerbos_body") ;;
    gateway) pid="$mandate_pid"; url="$gaddr/up/v1/authorize"
      script_env=(CT=application/json BODY="$mandate_body" AUTH="Bearer $(gateway_token)") ;;
    token) pid="$mandate_pid"; url="$maddr/oauth/token"
      script_env=(BODY="grant_type=client_credentials" AUTH="$basic") ;;
  esac
  local t0 t1 out
  t0="$(cpu_ticks "$pid")"
  out="$(env -u AUTH -u BODY -u CT "${script_env[@]}" wrk -t"$threads" -c"$n" -d"${DURATION}s" --latency -s bench/post.lua "$url")"
  t1="$(cpu_ticks "$pid")"
  [[ "$rep" == warmup ]] && return
  local rps p50 p99 reqs non2xx sockerr
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p50="$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
  p99="$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
  reqs="$(awk '/ requests in / {print $1}' <<<"$out")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  sockerr="$(awk '/Socket errors/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' <<<"$out")"
  local cpu
  cpu="$(awk -v a="$t0" -v b="$t1" -v hz="$clk_tck" -v r="$reqs" \
    'BEGIN { if (r > 0) printf "%.1f", (b - a) * 1000000 / hz / r; else print "nan" }')"
  echo "$target $n $rep $rps $p50 $p99 $cpu $(( ${non2xx:-0} + ${sockerr:-0} )) $reqs" >>"$work/results"
  log "$target c=$n rep=$rep: $rps req/s, p50 ${p50}us, p99 ${p99}us, ${cpu} CPU-us/req, errors $(( ${non2xx:-0} + ${sockerr:-0} ))"
}

: >"$work/results"
start_s=$SECONDS
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for t in "${targets[@]}"; do
  log "warm-up $t (${WARMUP}s at c=16)"
  DURATION="$WARMUP" run "$t" 16 warmup
done
for rep in $(seq "$REPEATS"); do
  for n in $CONCURRENCY; do
    for t in "${targets[@]}"; do run "$t" "$n" "$rep"; done
  done
done
for rep in $(seq "$REPEATS"); do run token "$TOKEN_CONNECTIONS" "$rep"; done

# ---------------------------------------------------------------------------- report
median() { sort -g | awk '{ a[NR] = $1 } END {
  if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { # target n column -> values, one per repeat
  awk -v t="$1" -v n="$2" -v c="$3" '$1 == t && $2 == n { print $c }' "$work/results"; }
med() { col "$1" "$2" "$3" | median; }
ratio() { # a b n -> median over repeats of a's req/s / b's req/s
  awk -v a="$1" -v b="$2" -v n="$3" '
    $2 == n && $1 == a { x[$3] = $4 } $2 == n && $1 == b { y[$3] = $4 }
    END { for (r in x) if (r in y && y[r] > 0) print x[r] / y[r] }' "$work/results" | median; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "nan" || v == "") print "n/a"; else printf f, v }'; }
ms() { awk -v v="$1" 'BEGIN { if (v == "nan" || v == "") print "n/a"; else printf "%.2f", v / 1000 }'; }
thousands() { awk -v v="$1" 'BEGIN {
  if (v == "nan" || v == "") { print "n/a"; exit }
  s = sprintf("%.0f", v); o = ""
  while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
  print s o }'; }
sum_errors() { col "$1" "$2" 8 | awk '{ s += $1 } END { print s + 0 }'; }

label() {
  case "$1" in
    mandate) echo 'Mandate `POST /v1/authorize` (Cedar, durable audit)' ;;
    authzen) echo 'Mandate `POST /access/v1/evaluation` (AuthZEN, same path and audit)' ;;
    opa) echo 'Mandate `POST /v1/data/crm/allow` (OPA Data API, Rego, same audit)' ;;
    hello) echo 'hello-world (axum, same stack)' ;;
    cerbos) echo "Cerbos \`POST /api/check/resources\`" ;;
    gateway) echo 'Mandate HTTP gateway → hello-world (decision + durable audit + forward)' ;;
    token) echo 'Mandate `POST /oauth/token` (`client_secret_basic`, one client)' ;;
  esac
}

have_cerbos=""; [[ " ${targets[*]} " == *" cerbos "* ]] && have_cerbos=1
{
  echo "Loopback, \`wrk -t2 -cN -d${DURATION}s --latency\` (\`-t1\` at N=1), medians of $REPEATS runs," \
    "$(nproc) cores shared by wrk and the server, release build, $(date -u +%Y-%m-%d)" \
    "(load average before the runs: $load_before)."
  [[ -n "$cerbos_version" ]] && echo "Cerbos $cerbos_version (npm \`cerbos@$CERBOS_VERSION\`)."
  [[ -z "$have_cerbos" ]] && echo "Cerbos not measured: $cerbos_why."
  echo
  echo "| target | N | requests/s | p50 ms | p99 ms | server CPU-µs/req | errors | × hello | × Cerbos |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for n in $CONCURRENCY; do
    for t in mandate authzen opa gateway hello cerbos; do
      [[ " ${targets[*]} " == *" $t "* ]] || continue
      xh="$(fmt "$(ratio "$t" hello "$n")" "%.3f")"
      if [[ -n "$have_cerbos" ]]; then xc="$(fmt "$(ratio "$t" cerbos "$n")" "%.2f")"; else xc="n/a"; fi
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(label "$t")" "$n" \
        "$(thousands "$(med "$t" "$n" 4)")" "$(ms "$(med "$t" "$n" 5)")" "$(ms "$(med "$t" "$n" 6)")" \
        "$(fmt "$(med "$t" "$n" 7)" "%.0f")" "$(sum_errors "$t" "$n")" "$xh" "$xc"
    done
  done
  n="$TOKEN_CONNECTIONS"
  printf '| %s | %s | %s | %s | %s | %s | %s | — | — |\n' "$(label token)" "$n" \
    "$(thousands "$(med token "$n" 4)")" "$(ms "$(med token "$n" 5)")" "$(ms "$(med token "$n" 6)")" \
    "$(fmt "$(med token "$n" 7)" "%.0f")" \
    "$(sum_errors token "$n")"
  echo
  top="$(awk '{ print $NF }' <<<"$CONCURRENCY")"
  verdict() { awk -v v="$1" -v t="$2" 'BEGIN { if (v == "nan" || v == "") print "not measured"; else if (v + 0 >= t + 0) print "met"; else print "missed" }'; }
  r="$(ratio mandate hello "$top")"
  echo "Targets: /v1/authorize ≥ 0.5 × hello-world at N=$top: $(fmt "$r" "%.3f") — $(verdict "$r" 0.5);"
  r="$(ratio authzen mandate "$top")"
  echo "AuthZEN evaluation ≥ 0.8 × /v1/authorize at N=$top: $(fmt "$r" "%.3f") — $(verdict "$r" 0.8);"
  r="$(ratio opa mandate "$top")"
  echo "Data API ≥ 0.8 × /v1/authorize at N=$top: $(fmt "$r" "%.3f") — $(verdict "$r" 0.8);"
  if [[ -n "$have_cerbos" ]]; then
    r="$(ratio mandate cerbos "$top")"
    echo "≥ 10 × Cerbos at N=$top: $(fmt "$r" "%.2f") — $(verdict "$r" 10);"
  else
    echo "≥ 10 × Cerbos at N=$top: not measured ($cerbos_why);"
  fi
  r="$(med token "$TOKEN_CONNECTIONS" 4)"
  echo "token endpoint ≥ 5,000 tokens/s: $(thousands "$r") — $(verdict "$r" 5000);"
  first="$(awk '{ print $1 }' <<<"$CONCURRENCY")"
  gw="$(med gateway "$first" 5)"; he="$(med hello "$first" 5)"
  over="$(awk -v g="$gw" -v h="$he" 'BEGIN { if (g == "nan" || h == "nan") print "nan"; else print g - h }')"
  below="$(awk -v o="$over" 'BEGIN { if (o == "nan") print "not measured"; else if (o < 1000) print "met"; else print "missed" }')"
  echo "gateway p50 overhead over hello-world at N=$first < 1 ms: $(ms "$over") ms — $below."
} >"$work/table.md"

log "load runs took $((SECONDS - start_s))s"
mkdir -p "$(dirname "$OUT")"
cp "$work/table.md" "$OUT"
echo
cat "$work/table.md"
