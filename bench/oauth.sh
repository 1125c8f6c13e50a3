#!/usr/bin/env bash
# Load figures for the OAuth endpoints and /v1/authorize of a release `mandate serve` on
# loopback (authorize with the example CRM policies and durable audit), each as a
# ratio to GET /healthz measured on the same server in the same run (the machine is
# shared and noisy; ratios travel, absolute numbers do not).
#
#   bench/oauth.sh            # DURATION=10 CONNECTIONS=16 by default
#
# Prints a Markdown table. Stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-16}"

# shellcheck source=bench/lib.sh
. bench/lib.sh
need_tools wrk jq curl
cargo build --release -q -p mandate

work="$(mktemp -d)"
trap 'kill "$mandate_pid" 2>/dev/null; wait "$mandate_pid" 2>/dev/null; rm -rf "$work"' EXIT
start_mandate "$work"
addr="$maddr"
access="$(mandate_token)"

run() { # name, then wrk arguments
  local name="$1"; shift
  local out
  out="$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@")"
  local rps p50 p99
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  local non2xx
  non2xx="$(awk '/Non-2xx/ {print $5}' <<<"$out")"
  echo "$name|$rps|$p50|$p99|${non2xx:-0}"
}

rows=()
rows+=("$(run 'GET /healthz (baseline)' "$addr/healthz")")
rows+=("$(BODY="token=$access" AUTH="Bearer $admin" run 'POST /oauth/introspect (admin bearer)' -s bench/post.lua "$addr/oauth/introspect")")
rows+=("$(BODY="grant_type=client_credentials" AUTH="$basic" run 'POST /oauth/token (client_secret_basic; Argon2id once, then memo)' -s bench/post.lua "$addr/oauth/token")")
allow='{"action":"crm:read","resource":{"type":"Crm::Contact","id":"c-1","attributes":{"team":"sales"}},"context":{"data_class":"internal"}}'
rows+=("$(CT=application/json BODY="$allow" AUTH="Bearer $access" run 'POST /v1/authorize (allow, Cedar, durable audit)' -s bench/post.lua "$addr/v1/authorize")")

base="$(cut -d'|' -f2 <<<"${rows[0]}")"
echo
echo "Loopback, wrk -t2 -c$CONNECTIONS -d${DURATION}s, $(nproc) cores, release build."
echo
echo "| endpoint | requests/s | p50 | p99 | non-2xx | ratio to /healthz |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for r in "${rows[@]}"; do
  IFS='|' read -r name rps p50 p99 bad <<<"$r"
  ratio="$(awk -v a="$rps" -v b="$base" 'BEGIN { printf "%.4f", a / b }')"
  echo "| $name | $rps | $p50 | $p99 | $bad | $ratio |"
done
