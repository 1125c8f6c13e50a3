#!/usr/bin/env bash
# `POST /v1/authorize` with no export sink, with dead sinks, and with a live sink, in the
# same run (issue 23: "a slow or dead sink never slows or blocks a decision"):
#
#   none   release `mandate serve`, the CRM example policies, the agent's own token,
#          durable audit, no `[[export.sinks]]`;
#   dead   the same, with two sinks whose receivers are down (syslog over TCP and a
#          webhook, each to a loopback port nothing listens on): they fail and back off;
#   live   the same, with a file sink writing every decision as OCSF (or LIVE_FORMAT;
#          JSON Lines, fsync per batch): the export's own CPU shares the machine with
#          the decisions.
#
# Each target is driven by `wrk -t2 -cN -dDURATION` at each N in CONCURRENCY, REPEATS
# times, interleaved (repeat, then N, then target). Reported: medians of req/s, p50 and
# p99, and the medians of the per-repeat ratios to `none`.
#
#   bench/export.sh                       # DURATION=5 REPEATS=3 CONCURRENCY="16 64"
#   LIVE_FORMAT=jsonl bench/export.sh     # the live sink's format (default ocsf)
#   LIVE_SINK=syslog bench/export.sh      # the live sink: a syslog TCP sink to a loopback
#                                         # reader that discards (default: file)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-5}"
REPEATS="${REPEATS:-3}"
CONCURRENCY="${CONCURRENCY:-16 64}"
LIVE_FORMAT="${LIVE_FORMAT:-ocsf}"
LIVE_SINK="${LIVE_SINK:-file}"

log() { echo "[export.sh] $*" >&2; }

# shellcheck source=bench/lib.sh
. bench/lib.sh
need_tools wrk jq curl

bench_workdir

log "building the release binary (cargo may wait for the build lock)"
cargo build --release -q -p mandate


declare -A addr token
# start NAME CONFIG: a server with CONFIG (empty: none), its address and a token.
start() {
  mkdir -p "$work/$1"
  if [[ -n "$2" ]]; then
    printf '%s\n' "$2" >"$work/$1/mandate.toml"
    export MANDATE_CONFIG="$work/$1/mandate.toml"
  else
    unset MANDATE_CONFIG
  fi
  start_mandate "$work/$1"
  pids+=("$mandate_pid")
  addr[$1]="$maddr"
  token[$1]="$(mandate_token)"
  unset MANDATE_CONFIG
}

start none ""
printf '%s' 'a-webhook-secret-of-32-characters' >"$work/hook.secret"
start dead "[[export.sinks]]
name = \"dead-syslog\"
type = \"syslog\"
address = \"127.0.0.1:$(free_port)\"
format = \"ocsf\"

[[export.sinks]]
name = \"dead-webhook\"
type = \"webhook\"
url = \"http://127.0.0.1:$(free_port)/siem\"
secret_file = \"$work/hook.secret\""
if [[ "$LIVE_SINK" == syslog ]]; then
  # A loopback syslog reader that counts the lines it discards.
  sport="$(free_port)"
  python3 -c "
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $sport)); s.listen(4)
n = 0
while True:
    c, _ = s.accept()
    while True:
        b = c.recv(1 << 16)
        if not b: break
        n += b.count(b' mandate - ')
        open('$work/syslog.count', 'w').write(str(n))
" &
  pids+=("$!")
  sleep 0.5
  start live "[[export.sinks]]
name = \"archive\"
type = \"syslog\"
format = \"$LIVE_FORMAT\"
address = \"127.0.0.1:$sport\""
else
  start live "[[export.sinks]]
name = \"archive\"
type = \"file\"
format = \"$LIVE_FORMAT\"
path = \"$work/live/audit.jsonl\""
fi

body='{"action":"crm:read","resource":{"type":"Crm::Contact","id":"c-1","attributes":{"team":"sales"}},"context":{"data_class":"internal"}}'
for t in none dead live; do
  answer="$(curl -sf "${addr[$t]}/v1/authorize" -H "Authorization: Bearer ${token[$t]}" \
    -H 'Content-Type: application/json' -d "$body")"
  [[ "$(jq -r .decision <<<"$answer")" == allow ]] || { log "$t did not allow: $answer"; exit 1; }
done
status="$(curl -sf "${addr[dead]}/v1/export" -H "Authorization: Bearer $(grep -o 'mat_[A-Za-z0-9_-]*' "$work/dead/mandate.out")")"
log "dead sinks: $(jq -c '[.sinks[] | {name, lag, last_error}]' <<<"$status")"

: >"$work/results"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for rep in $(seq "$REPEATS"); do
  for n in $CONCURRENCY; do
    for t in none dead live; do
      out="$(CT=application/json BODY="$body" AUTH="Bearer ${token[$t]}" \
        wrk -t2 -c"$n" -d"${DURATION}s" --latency -s bench/post.lua "${addr[$t]}/v1/authorize")"
      rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
      p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
      p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
      echo "$t $n $rep $rps $p50 $p99" >>"$work/results"
      log "$t c=$n rep=$rep: $rps req/s, p50 $p50, p99 $p99"
    done
  done
done
if [[ "$LIVE_SINK" == syslog ]]; then
  lived="$(cat "$work/syslog.count" 2>/dev/null || echo 0)"
else
  lived="$(wc -l <"$work/live/audit.jsonl")"
fi

median() { sort -g | awk '{a[NR] = $1} END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo
echo "Loopback, \`wrk -t2 -cN -d${DURATION}s\`, medians of $REPEATS runs, $(date -u +%F) (load average before: $load_before)."
echo
echo "| sinks | N | requests/s | p50 (repeat 1) | p99 (repeat 1) | × none |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for n in $CONCURRENCY; do
  for t in none dead live; do
    rps="$(awk -v t="$t" -v n="$n" '$1 == t && $2 == n {print $4}' "$work/results" | median)"
    p50="$(awk -v t="$t" -v n="$n" '$1 == t && $2 == n {print $5}' "$work/results" | head -n1)"
    p99="$(awk -v t="$t" -v n="$n" '$1 == t && $2 == n {print $6}' "$work/results" | head -n1)"
    ratio="$(for rep in $(seq "$REPEATS"); do
      awk -v t="$t" -v n="$n" -v r="$rep" '$2 == n && $3 == r && $1 == "none" {b = $4} $2 == n && $3 == r && $1 == t {x = $4} END {printf "%.3f\n", x / b}' "$work/results"
    done | median)"
    printf '| %s | %s | %.0f | %s | %s | %s |\n' "$t" "$n" "$rps" "$p50" "$p99" "$ratio"
  done
done
echo
echo "The live sink wrote $lived $LIVE_FORMAT records during the runs."
