#!/usr/bin/env bash
# POST /v1/authorize over TLS (kept-alive connections) against plain HTTP, in the same run
# on the same machine (issue 25's target: TLS ≥ 0.8 × plain):
#
#   plain  release `mandate serve` as bench/http.sh's `mandate` target: a fresh data dir,
#          the example CRM policies active, the agent's own access token, durable audit.
#   tls    a second, identical `mandate serve` (its own data dir) whose API listener has
#          `[tls]`: a P-256 certificate of a CA made here (with the openssl CLI: the
#          bench's tool; Mandate itself is rustls with ring), TLS 1.3 as negotiated by wrk.
#
# Each is driven by `wrk -t2 -cN -dDURATION --latency` (its connections stay open, so the
# handshake is paid once per connection; the per-request cost is the record layer) at each
# N in CONCURRENCY, REPEATS times, interleaved (repeat, concurrency, target; the order
# of the two flips every repeat) so drift hits both alike. Reported: medians of req/s, p50, p99 and the server's CPU time per request;
# the ratio is the median of per-repeat tls/plain req/s ratios (same repeat, same N).
#
#   bench/tls.sh                         # DURATION=5 REPEATS=3 CONCURRENCY="1 16 64"
#   SKIP_BUILD=1 bench/tls.sh            # use the release binary as it is
#   SKIP_BUILD=1 BIN=path/to/mandate bench/tls.sh   # another binary (the table says which)
#
# Prints a Markdown table (also written to OUT, default target/bench/tls.md) and stops
# everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-5}"
REPEATS="${REPEATS:-3}"
CONCURRENCY="${CONCURRENCY:-1 16 64}"
WARMUP="${WARMUP:-2}"
OUT="${OUT:-target/bench/tls.md}"
BIN="${BIN:-${CARGO_TARGET_DIR:-target}/release/mandate}"

log() { echo "[tls.sh] $*" >&2; }

# shellcheck source=bench/lib.sh
. bench/lib.sh
need_tools wrk jq curl openssl

bench_workdir

if [[ -z "${SKIP_BUILD:-}" ]]; then
  log "building the release binary (cargo may wait for the build lock)"
  cargo build --release -q -p mandate
fi
# lib.sh starts target/release/mandate.
mkdir -p target/release
[[ target/release/mandate -ef "$BIN" ]] || cp "$BIN" target/release/mandate
build="release build"
[[ "$BIN" == */release/mandate ]] || build="binary \`$BIN\`"

clk_tck="$(getconf CLK_TCK)"
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# ---------------------------------------------------------------------------- certificate
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=bench-ca -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$work/san.ext"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -extfile "$work/san.ext" -out "$work/tls.crt" 2>/dev/null
chmod 600 "$work/tls.key"
cat >"$work/tls.toml" <<EOF
[tls]
cert_file = "$work/tls.crt"
key_file = "$work/tls.key"
EOF

# ---------------------------------------------------------------------------- servers
body='{"action":"crm:read","resource":{"type":"Crm::Contact","id":"c-1","attributes":{"team":"sales"}},"context":{"data_class":"internal"}}'
mkdir -p "$work/plain" "$work/tls"
start_mandate "$work/plain"
pids+=("$mandate_pid")
plain_pid="$mandate_pid" plain_addr="$maddr" plain_agent="$agent" plain_secret="$secret"
MANDATE_CONFIG="$work/tls.toml" CURL_CA_BUNDLE="$work/ca.pem" start_mandate "$work/tls"
pids+=("$mandate_pid")
tls_pid="$mandate_pid" tls_addr="$maddr" tls_agent="$agent" tls_secret="$secret"
[[ "$tls_addr" == https://* ]] || { log "the TLS server is not on https: $tls_addr"; exit 1; }

token() { # target -> a fresh access token of that server's agent
  if [[ "$1" == tls ]]; then
    curl -sf --cacert "$work/ca.pem" "$tls_addr/oauth/token" -u "$tls_agent:$tls_secret" \
      -d grant_type=client_credentials | jq -r .access_token
  else
    curl -sf "$plain_addr/oauth/token" -u "$plain_agent:$plain_secret" \
      -d grant_type=client_credentials | jq -r .access_token
  fi
}
for t in plain tls; do
  addr="$plain_addr"; [[ "$t" == tls ]] && addr="$tls_addr"
  answer="$(curl -sf --cacert "$work/ca.pem" "$addr/v1/authorize" -H "Authorization: Bearer $(token "$t")" \
    -H 'Content-Type: application/json' -d "$body")"
  [[ "$(jq -r .decision <<<"$answer")" == allow ]] || { log "$t did not allow: $answer"; exit 1; }
  log "$t $addr: $answer"
done
log "TLS: $(curl -sv --cacert "$work/ca.pem" "$tls_addr/.well-known/jwks.json" -o /dev/null 2>&1 \
  | grep -o 'SSL connection using [^ ]* / [^ ]*' | head -n1)"

# ---------------------------------------------------------------------------- runs
to_us() { awk -v v="$1" 'BEGIN {
  n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
  if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1000000; else m = 0
  printf "%.1f", n * m }'; }

# run TARGET N REP: one wrk run, one line appended to $work/results:
#   target n rep rps p50_us p99_us cpu_us_per_req errors requests
run() {
  local target="$1" n="$2" rep="$3" pid url
  local threads=$((n < 2 ? n : 2))
  if [[ "$target" == tls ]]; then pid="$tls_pid" url="$tls_addr/v1/authorize"
  else pid="$plain_pid" url="$plain_addr/v1/authorize"; fi
  local auth t0 t1 out
  auth="Bearer $(token "$target")"
  t0="$(cpu_ticks "$pid")"
  out="$(CT=application/json BODY="$body" AUTH="$auth" \
    wrk -t"$threads" -c"$n" -d"${DURATION}s" --latency -s bench/post.lua "$url")"
  t1="$(cpu_ticks "$pid")"
  [[ "$rep" == warmup ]] && return
  local rps p50 p99 reqs non2xx sockerr cpu
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p50="$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
  p99="$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
  reqs="$(awk '/ requests in / {print $1}' <<<"$out")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  sockerr="$(awk '/Socket errors/ {gsub(/,/, ""); print $4 + $6 + $8 + $10}' <<<"$out")"
  cpu="$(awk -v a="$t0" -v b="$t1" -v hz="$clk_tck" -v r="$reqs" \
    'BEGIN { if (r > 0) printf "%.1f", (b - a) * 1000000 / hz / r; else print "nan" }')"
  echo "$target $n $rep $rps $p50 $p99 $cpu $(( ${non2xx:-0} + ${sockerr:-0} )) $reqs" >>"$work/results"
  log "$target c=$n rep=$rep: $rps req/s, p50 ${p50}us, p99 ${p99}us, ${cpu} CPU-us/req, errors $(( ${non2xx:-0} + ${sockerr:-0} ))"
}

: >"$work/results"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
for t in plain tls; do DURATION="$WARMUP" run "$t" 16 warmup; done
for rep in $(seq "$REPEATS"); do
  # The order flips every repeat, so whichever goes second in a pair (warmer caches, a
  # drift in the machine's speed) is not always the same target.
  order=(plain tls); (( rep % 2 == 0 )) && order=(tls plain)
  for n in $CONCURRENCY; do
    for t in "${order[@]}"; do run "$t" "$n" "$rep"; done
  done
done

# ---------------------------------------------------------------------------- report
median() { sort -g | awk '{ a[NR] = $1 } END {
  if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -v t="$1" -v n="$2" -v c="$3" '$1 == t && $2 == n { print $c }' "$work/results"; }
med() { col "$1" "$2" "$3" | median; }
ratio() {
  awk -v a="$1" -v b="$2" -v n="$3" '
    $2 == n && $1 == a { x[$3] = $4 } $2 == n && $1 == b { y[$3] = $4 }
    END { for (r in x) if (r in y && y[r] > 0) print x[r] / y[r] }' "$work/results" | median; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "nan" || v == "") print "n/a"; else printf f, v }'; }
ms() { awk -v v="$1" 'BEGIN { if (v == "nan" || v == "") print "n/a"; else printf "%.2f", v / 1000 }'; }
sum_errors() { col "$1" "$2" 8 | awk '{ s += $1 } END { print s + 0 }'; }
{
  echo "Loopback, \`wrk -t2 -cN -d${DURATION}s --latency\` (\`-t1\` at N=1), kept-alive connections," \
    "medians of $REPEATS runs, $(nproc) cores shared by wrk and both servers, $build," \
    "$(date -u +%Y-%m-%d) (load average before the runs: $load_before)."
  echo
  echo "| \`POST /v1/authorize\` | N | requests/s | p50 ms | p99 ms | server CPU-µs/req | errors | TLS × plain |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for n in $CONCURRENCY; do
    for t in plain tls; do
      x="—"; [[ "$t" == tls ]] && x="$(fmt "$(ratio tls plain "$n")" "%.3f")"
      printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$n" \
        "$(fmt "$(med "$t" "$n" 4)" "%.0f")" "$(ms "$(med "$t" "$n" 5)")" "$(ms "$(med "$t" "$n" 6)")" \
        "$(fmt "$(med "$t" "$n" 7)" "%.0f")" "$(sum_errors "$t" "$n")" "$x"
    done
  done
  echo
  top="$(awk '{ print $NF }' <<<"$CONCURRENCY")"
  r="$(ratio tls plain "$top")"
  verdict="$(awk -v v="$r" 'BEGIN { if (v == "nan" || v == "") print "not measured"; else if (v + 0 >= 0.8) print "met"; else print "missed" }')"
  echo "Target: /v1/authorize over TLS ≥ 0.8 × plain HTTP at N=$top: $(fmt "$r" "%.3f") — $verdict."
} >"$work/table.md"

mkdir -p "$(dirname "$OUT")"
cp "$work/table.md" "$OUT"
echo
cat "$work/table.md"
