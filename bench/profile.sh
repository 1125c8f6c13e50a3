#!/usr/bin/env bash
# Where a release `mandate serve` spends its time under load: the same server and request
# as bench/http.sh's Mandate row (bench/lib.sh's setup, POST /v1/authorize, durable
# audit), driven by `wrk -t2 -cN`, while one of two tools watches the server process:
#
#   bench/profile.sh             # MODE=perf: `perf record` for DURATION s, then the share of
#                                #   samples per thread and the top symbols
#   MODE=strace bench/profile.sh # `strace -c -f` for DURATION s: system calls per request
#                                #   (strace slows the server several times over; read
#                                #   the counts, not the times)
#
# Knobs: N (connections, default 64), DURATION (seconds watched, default 8), PERF_ARGS (e.g.
# "--call-graph dwarf,16384"), KEEP (a path: keep perf.data there). Stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${MODE:-perf}"
N="${N:-64}"
DURATION="${DURATION:-8}"

# shellcheck source=bench/lib.sh
. bench/lib.sh
need_tools wrk jq curl
command -v "$MODE" >/dev/null || { echo "$MODE not found (Debian: linux-perf or strace)" >&2; exit 2; }
cargo build --release -q -p mandate

work="$(mktemp -d)"
wrk_pid=""
trap 'kill $wrk_pid "$mandate_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
start_mandate "$work"
export BODY='{"action":"crm:read","resource":{"type":"Crm::Contact","id":"c-1","attributes":{"team":"sales"}},"context":{"data_class":"internal"}}'
export CT=application/json
AUTH="Bearer $(mandate_token)"
export AUTH

# Two seconds of warm-up before and after the measured window.
wrk -t2 -c"$N" -d"$((DURATION + 4))s" -s bench/post.lua "$maddr/v1/authorize" >"$work/wrk.out" &
wrk_pid=$!
sleep 2
case "$MODE" in
  perf)
    # shellcheck disable=SC2086 # PERF_ARGS is a list of flags
    perf record -F 1999 ${PERF_ARGS:-} -p "$mandate_pid" -o "$work/perf.data" \
      -- sleep "$DURATION" >/dev/null 2>&1
    ;;
  strace)
    timeout -s INT "$DURATION" strace -c -f -p "$mandate_pid" -o "$work/strace.txt" 2>/dev/null || true
    ;;
  *) echo "MODE must be perf or strace" >&2; exit 2 ;;
esac
wait "$wrk_pid"
wrk_pid=""
echo "wrk -t2 -c$N over $((DURATION + 4)) s: $(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.out") req/s"
if [[ "$MODE" == perf ]]; then
  echo "--- share of samples per thread"
  perf report -i "$work/perf.data" --sort comm --stdio 2>/dev/null | grep '%'
  echo "--- top symbols (share of all samples)"
  perf report -i "$work/perf.data" --sort comm,dso,sym --stdio --no-children 2>/dev/null \
    | grep '%' | head -40
  if [[ -n "${KEEP:-}" ]]; then cp "$work/perf.data" "$KEEP"; fi
else
  # Requests in the traced window: one writev answers one request.
  reqs="$(awk '$NF == "writev" {print $4}' "$work/strace.txt")"
  echo "--- system calls per request (${reqs:-?} answers in the window)"
  awk -v r="${reqs:-0}" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && r > 0 {
      printf "%-16s %9d  %.3f per request\n", $NF, $4, $4 / r }' "$work/strace.txt"
fi
