#!/usr/bin/env bash
# Suspend → CAEP `session-revoked` SET accepted by a push receiver (issue 23's target:
# p99 ≤ 1 s). A release `mandate serve` with one `ssf` export sink pushing to the PyJWT
# receiver of the e2e tests (crates/mandate/tests/interop/ssf_receiver.py: it verifies
# each SET against Mandate's JWKS before accepting it). bench/ssf_latency.py suspends
# COUNT agents PACE_MS apart, twice in the same run:
#
#   quiet   nothing else running;
#   loaded  `wrk -t2 -c16` driving `POST /v1/authorize` on the same server meanwhile.
#
# Each row gives the SET's latency (from the suspend call's answer to the receiver's
# verified arrival) and, as the same run's baseline, the suspend call's own latency.
#
#   bench/ssf_latency.sh                  # COUNT=200 PACE_MS=20
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT="${COUNT:-200}"
PACE_MS="${PACE_MS:-20}"
ISSUER="http://mandate.bench.invalid"

log() { echo "[ssf_latency.sh] $*" >&2; }

# shellcheck source=bench/lib.sh
. bench/lib.sh
need_tools wrk jq curl

bench_workdir

# The receiver's PyJWT, pinned as the e2e tests pin it.
venv=target/ssf-bench-venv
if ! "$venv/bin/python" -c "import jwt; assert jwt.__version__ == '2.15.1'" 2>/dev/null; then
  log "installing PyJWT into $venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q PyJWT==2.15.1 cryptography==50.0.2 cffi==2.1.1 pycparser==3.12 >&2
fi
log "building the release binary (cargo may wait for the build lock)"
cargo build --release -q -p mandate

"$venv/bin/python" crates/mandate/tests/interop/ssf_receiver.py "$work/jwks-url" "$ISSUER" \
  >"$work/rx.out" 2>"$work/rx.err" &
pids+=("$!")
for _ in $(seq 100); do [[ -s "$work/rx.out" ]] && break; sleep 0.1; done
rx_url="$(jq -r .url <"$work/rx.out")"
rx_calls="$(jq -r .calls <"$work/rx.out")"

mkdir -p "$work/m"
printf '[[export.sinks]]\nname = "caep"\ntype = "ssf"\nurl = "%s"\n' "$rx_url" >"$work/m/mandate.toml"
# The detector off: a burst of suspensions and decisions is what it is for, not a bench.
MANDATE_CONFIG="$work/m/mandate.toml" MANDATE_ISSUER="$ISSUER" MANDATE_DETECT_ENABLED=false \
  start_mandate "$work/m"
pids+=("$mandate_pid")
printf '%s/.well-known/jwks.json' "$maddr" >"$work/jwks-url"
token="$(mandate_token)"

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
"$venv/bin/python" bench/ssf_latency.py "$maddr" "$admin" "$rx_calls" "$COUNT" "$PACE_MS" quiet \
  | tee "$work/results" >&2

body='{"action":"crm:read","resource":{"type":"Crm::Contact","id":"c-1","attributes":{"team":"sales"}},"context":{"data_class":"internal"}}'
answer="$(curl -sf "$maddr/v1/authorize" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d "$body")"
[[ "$(jq -r .decision <<<"$answer")" == allow ]] || { log "the load would not be allowed: $answer"; exit 1; }
# wrk runs past the last suspension (registering, then COUNT × (pace + the call)).
wrk_secs=$((COUNT * (PACE_MS + 40) / 1000 + 10))
CT=application/json BODY="$body" AUTH="Bearer $token" \
  wrk -t2 -c16 -d"${wrk_secs}s" -s bench/post.lua "$maddr/v1/authorize" >"$work/wrk.out" &
wrk_pid=$!
pids+=("$wrk_pid")
sleep 1
"$venv/bin/python" bench/ssf_latency.py "$maddr" "$admin" "$rx_calls" "$COUNT" "$PACE_MS" loaded \
  | tee -a "$work/results" >&2
wait "$wrk_pid"
rps="$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.out")"

echo
echo "$COUNT suspensions ${PACE_MS} ms apart per row, one PyJWT push receiver on loopback, $(date -u +%F) (load average before: $load_before)."
echo
echo "| run | SETs verified | SET p50 | SET p90 | SET p99 | SET max | suspend call p50 | suspend call p99 |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
jq -r '"| \(.label) | \(.sets_verified)/\(.suspended) | \(.set_ms.p50) ms | \(.set_ms.p90) ms | \(.set_ms.p99) ms | \(.set_ms.max) ms | \(.suspend_api_ms.p50) ms | \(.suspend_api_ms.p99) ms |"' "$work/results"
echo
echo "During \`loaded\`, \`wrk -t2 -c16\` drove $rps decisions/s (\`POST /v1/authorize\`, allowed) on the same server."
