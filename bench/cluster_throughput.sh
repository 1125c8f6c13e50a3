#!/usr/bin/env bash
# Throughput of POST /v1/authorize with the store in PostgreSQL, against SQLite and across
# nodes, measured in the same run on the same machine:
#
#   sqlite   one release `mandate serve`, its own SQLite store (the zero-config default)
#   pg1      one node of a PostgreSQL-backed cluster (a fresh database), addressed directly
#   lb1      HAProxy (bench/cluster_haproxy.cfg, one thread) → that node alone: the hop's cost
#   lb2      the same HAProxy → two nodes on the database, round-robin
#
# All nodes: durable audit (every decision committed before the answer; on PostgreSQL
# into the node's own log), the example policies active, the agent's own access token,
# the detector off, the default info-level access log. Each target is driven by
# `wrk -t2 -cN -dDURATION --latency -s bench/post.lua` at each N in CONCURRENCY, REPEATS
# times, interleaved (repeat, then N, then target) so drift hits all alike. Reported:
# medians over the repeats of req/s, p50, p99, and CPU-µs per decision: utime+stime
# (/proc/<pid>/stat, all threads, before/after each run) of the serving node(s), of the
# PostgreSQL backends connected to the bench's database (pids from pg_stat_activity,
# read before and after; PostgreSQL's shared background processes — WAL writer,
# checkpointer — are not counted, other users share them), and of HAProxy, each divided
# by the requests wrk completed. wrk, HAProxy, PostgreSQL and the nodes share the cores.
#
#   bench/cluster_throughput.sh                 # DURATION=5 REPEATS=3 CONCURRENCY="16 64"
#   DURATION=10 REPEATS=5 bench/cluster_throughput.sh
#
# Prints a Markdown table (also written to OUT, default target/bench/cluster_throughput.md),
# stops everything it started and drops the database.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-5}"
REPEATS="${REPEATS:-3}"
CONCURRENCY="${CONCURRENCY:-16 64}"
WARMUP="${WARMUP:-2}"
OUT="${OUT:-target/bench/cluster_throughput.md}"

log() { echo "[cluster_throughput.sh] $*" >&2; }

# shellcheck source=bench/lib.sh
. bench/lib.sh
need_tools wrk jq curl psql haproxy

work="$(mktemp -d)"
haproxy_pid=""
cleanup() {
  local p
  for p in "${node_pid[@]}" $haproxy_pid; do kill "$p" 2>/dev/null || true; done
  for p in "${node_pid[@]}" $haproxy_pid; do wait "$p" 2>/dev/null || true; done
  drop_pg_db
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building the release binary (cargo may wait for the build lock)"
cargo build --release -q -p mandate

clk_tck="$(getconf CLK_TCK)"
# utime + stime of processes (all threads), in clock ticks; a process gone counts 0.
cpu_ticks() {
  local p s=0 t
  for p in "$@"; do
    t="$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }')" || t=0
    s=$((s + ${t:-0}))
  done
  echo "$s"
}
# The PostgreSQL backends serving the bench's database now.
pg_pids() { psql -tA "$PG_ADMIN_URL" -c "SELECT pid FROM pg_stat_activity WHERE datname = '$pg_db'"; }

new_pg_db
log "database $pg_db"
start_node "$work" 1 "$pg_url"
start_node "$work" 2 "$pg_url"
provision "${node_addr[1]}"
pg_agent="$agent" pg_secret="$secret"
start_node "$work" 3            # SQLite, a store of its own
provision "${node_addr[3]}"
sq_agent="$agent" sq_secret="$secret"
log "pg nodes ${node_addr[1]} ${node_addr[2]}, sqlite node ${node_addr[3]}"

lb1="127.0.0.1:$(free_port)"
lb2="127.0.0.1:$(free_port)"
LB1_BIND="$lb1" LB2_BIND="$lb2" NODE1="${node_addr[1]#http://}" NODE2="${node_addr[2]#http://}" \
  haproxy -f bench/cluster_haproxy.cfg -db >"$work/haproxy.out" 2>&1 &
haproxy_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://$lb2/" && break; sleep 0.05; done

body='{"action":"crm:read","resource":{"type":"Crm::Contact","id":"c-1","attributes":{"team":"sales"}},"context":{"data_class":"internal"}}'
token_of() { # addr agent secret
  curl -sf "$1/oauth/token" -u "$2:$3" -d grant_type=client_credentials | jq -r .access_token
}
for t in sqlite pg1 lb1 lb2; do
  case "$t" in
    sqlite) a="${node_addr[3]}" ;; pg1) a="${node_addr[1]}" ;; lb1) a="http://$lb1" ;; lb2) a="http://$lb2" ;;
  esac
  if [[ "$t" == sqlite ]]; then tok="$(token_of "$a" "$sq_agent" "$sq_secret")"; else tok="$(token_of "${node_addr[1]}" "$pg_agent" "$pg_secret")"; fi
  answer="$(curl -sf "$a/v1/authorize" -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' -d "$body")"
  [[ "$(jq -r .decision <<<"$answer")" == allow ]] || { log "$t did not allow: $answer"; exit 1; }
done

to_us() { awk -v v="$1" 'BEGIN {
  n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
  if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1000000; else m = 0
  printf "%.1f", n * m }'; }

# run TARGET N REP: one wrk run, one line appended to $work/results:
#   target n rep rps p50_us p99_us node_cpu_us pg_cpu_us lb_cpu_us errors requests
run() {
  local target="$1" n="$2" rep="$3" url tok nodes=() lb=() pgs=()
  case "$target" in
    sqlite) url="${node_addr[3]}"; nodes=("${node_pid[3]}"); tok="$(token_of "$url" "$sq_agent" "$sq_secret")" ;;
    pg1) url="${node_addr[1]}"; nodes=("${node_pid[1]}") ;;
    lb1) url="http://$lb1"; nodes=("${node_pid[1]}"); lb=("$haproxy_pid") ;;
    lb2) url="http://$lb2"; nodes=("${node_pid[1]}" "${node_pid[2]}"); lb=("$haproxy_pid") ;;
  esac
  [[ "$target" != sqlite ]] && { tok="$(token_of "${node_addr[1]}" "$pg_agent" "$pg_secret")"; mapfile -t pgs < <(pg_pids); }
  local n0 p0 l0 n1 p1 l1 out
  n0="$(cpu_ticks "${nodes[@]}")"; p0="$(cpu_ticks "${pgs[@]}")"; l0="$(cpu_ticks "${lb[@]}")"
  out="$(CT=application/json BODY="$body" AUTH="Bearer $tok" \
    wrk -t2 -c"$n" -d"${DURATION}s" --latency -s bench/post.lua "$url/v1/authorize")"
  n1="$(cpu_ticks "${nodes[@]}")"; p1="$(cpu_ticks "${pgs[@]}")"; l1="$(cpu_ticks "${lb[@]}")"
  [[ "$rep" == warmup ]] && return
  local rps p50 p99 reqs non2xx sockerr errors
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p50="$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
  p99="$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
  reqs="$(awk '/ requests in / {print $1}' <<<"$out")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  sockerr="$(awk '/Socket errors/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' <<<"$out")"
  errors=$(( ${non2xx:-0} + ${sockerr:-0} ))
  per() { awk -v a="$1" -v b="$2" -v hz="$clk_tck" -v r="$reqs" \
    'BEGIN { if (r > 0) printf "%.1f", (b - a) * 1000000 / hz / r; else print "nan" }'; }
  echo "$target $n $rep $rps $p50 $p99 $(per "$n0" "$n1") $(per "$p0" "$p1") $(per "$l0" "$l1") $errors $reqs" >>"$work/results"
  log "$target c=$n rep=$rep: $rps req/s, p50 ${p50}us, p99 ${p99}us, CPU-us/req node $(per "$n0" "$n1") pg $(per "$p0" "$p1") haproxy $(per "$l0" "$l1"), errors $errors"
}

targets=(sqlite pg1 lb1 lb2)
: >"$work/results"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
start_s=$SECONDS
for t in "${targets[@]}"; do DURATION="$WARMUP" run "$t" 16 warmup; done
for rep in $(seq "$REPEATS"); do
  for n in $CONCURRENCY; do
    for t in "${targets[@]}"; do run "$t" "$n" "$rep"; done
  done
done

median() { sort -g | awk '{ a[NR] = $1 } END {
  if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
med() { awk -v t="$1" -v n="$2" -v c="$3" '$1 == t && $2 == n { print $c }' "$work/results" | median; }
ratio() { # a b n -> median over repeats of a's req/s / b's req/s
  awk -v a="$1" -v b="$2" -v n="$3" '
    $2 == n && $1 == a { x[$3] = $4 } $2 == n && $1 == b { y[$3] = $4 }
    END { for (r in x) if (r in y && y[r] > 0) print x[r] / y[r] }' "$work/results" | median; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "nan" || v == "") print "n/a"; else printf f, v }'; }
ms() { awk -v v="$1" 'BEGIN { if (v == "nan" || v == "") print "n/a"; else printf "%.2f", v / 1000 }'; }
errs() { awk -v t="$1" -v n="$2" '$1 == t && $2 == n { s += $10 } END { print s + 0 }' "$work/results"; }
label() {
  case "$1" in
    sqlite) echo 'one node, SQLite' ;;
    pg1) echo 'one node, PostgreSQL' ;;
    lb1) echo 'HAProxy → one PostgreSQL node' ;;
    lb2) echo 'HAProxy → two PostgreSQL nodes' ;;
  esac
}
{
  echo "Loopback, \`POST /v1/authorize\`, \`wrk -t2 -cN -d${DURATION}s --latency\`, medians of $REPEATS runs," \
    "$(nproc) cores shared by wrk, HAProxy $(haproxy -v | awk 'NR == 1 {print $3}'), PostgreSQL" \
    "$(psql -tA "$PG_ADMIN_URL" -c 'SHOW server_version') and the nodes, release build, $(date -u +%Y-%m-%d)" \
    "(load average before the runs: $load_before)."
  echo
  echo "| target | N | requests/s | p50 ms | p99 ms | node CPU-µs/req | PostgreSQL backends CPU-µs/req | HAProxy CPU-µs/req | errors |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for n in $CONCURRENCY; do
    for t in "${targets[@]}"; do
      pgc="$(fmt "$(med "$t" "$n" 8)" "%.0f")"; lbc="$(fmt "$(med "$t" "$n" 9)" "%.0f")"
      [[ "$t" == sqlite ]] && pgc="—"; [[ "$t" == sqlite || "$t" == pg1 ]] && lbc="—"
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(label "$t")" "$n" \
        "$(fmt "$(med "$t" "$n" 4)" "%.0f")" "$(ms "$(med "$t" "$n" 5)")" "$(ms "$(med "$t" "$n" 6)")" \
        "$(fmt "$(med "$t" "$n" 7)" "%.0f")" "$pgc" "$lbc" "$(errs "$t" "$n")"
    done
  done
  echo
  for n in $CONCURRENCY; do
    echo "N=$n: PostgreSQL / SQLite (one node) $(fmt "$(ratio pg1 sqlite "$n")" "%.2f");" \
      "two nodes / one behind HAProxy $(fmt "$(ratio lb2 lb1 "$n")" "%.2f");" \
      "HAProxy → one node / that node direct $(fmt "$(ratio lb1 pg1 "$n")" "%.2f")."
  done
} >"$work/table.md"

log "load runs took $((SECONDS - start_s))s"
mkdir -p "$(dirname "$OUT")"
cp "$work/table.md" "$OUT"
echo
cat "$work/table.md"
