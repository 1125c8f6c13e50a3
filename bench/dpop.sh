#!/usr/bin/env bash
# POST /v1/authorize with a DPoP-bound token against the same agent's plain bearer token,
# in the same run on the same server (issue 25's target: DPoP ≥ 0.7 × bearer).
#
# One release `mandate serve` as bench/http.sh's `mandate` target (fresh data dir, the
# example CRM policies active, durable audit, default config) except for
# `dpop.replay_cache_size` (REPLAY_CACHE_SIZE, default 2,000,000): the default 100,000
# remembers a 61 s window of proofs only up to ~1,640 proofs/s, and past that refuses
# them (`dpop_cache_full`, fail closed) — the bench measures the per-request cost, not
# that ceiling (REPLAY_CACHE_SIZE=100000 shows it).
#
# wrk cannot replay a DPoP request (each needs a fresh proof), so the load client is
# crates/mandate-http/examples/dpop_load.rs: N kept-alive HTTP/1.1 connections sending
# back to back, proofs signed per request by the client (Ed25519), rounds alternating
# bearer and dpop (the order flips every round). Reported: medians over REPEATS of req/s,
# p50, p99, the server's and the client's CPU time per request; the ratio is the median
# of per-round dpop/bearer req/s ratios (same round, same N), and the server-side ratio
# is bearer/dpop server CPU-µs per request (what the ratio would be if the server had
# the cores to itself: the client's signing competes with it on this machine).
#
#   bench/dpop.sh                        # DURATION=5 REPEATS=3 CONCURRENCY="16 64" WARMUP=2
#   SKIP_BUILD=1 bench/dpop.sh           # use the release binaries as they are
#
# Prints a Markdown table (also written to OUT, default target/bench/dpop.md) and stops
# everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-5}"
REPEATS="${REPEATS:-3}"
CONCURRENCY="${CONCURRENCY:-16 64}"
WARMUP="${WARMUP:-2}"
REPLAY_CACHE_SIZE="${REPLAY_CACHE_SIZE:-2000000}"
OUT="${OUT:-target/bench/dpop.md}"
RELEASE="${CARGO_TARGET_DIR:-target}/release"

log() { echo "[dpop.sh] $*" >&2; }

# shellcheck source=bench/lib.sh
. bench/lib.sh
need_tools jq curl

bench_workdir

if [[ -z "${SKIP_BUILD:-}" ]]; then
  log "building the release binaries (cargo may wait for the build lock)"
  cargo build --release -q -p mandate --bin mandate
  cargo build --release -q -p mandate-http --example dpop_load
fi
# lib.sh starts target/release/mandate.
mkdir -p target/release
[[ target/release/mandate -ef "$RELEASE/mandate" ]] || cp "$RELEASE/mandate" target/release/mandate

cat >"$work/mandate.toml" <<EOF
[dpop]
replay_cache_size = $REPLAY_CACHE_SIZE
EOF
MANDATE_CONFIG="$work/mandate.toml" start_mandate "$work"
pids+=("$mandate_pid")
log "mandate $maddr (pid $mandate_pid), agent $agent"

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
"$RELEASE/examples/dpop_load" --url "$maddr" --client-id "$agent" --secret "$secret" \
  --server-pid "$mandate_pid" --connections "$CONCURRENCY" --duration "$DURATION" \
  --rounds "$REPEATS" --warmup "$WARMUP" --clk-tck "$(getconf CLK_TCK)" >"$work/results"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------------------- report
# $work/results: mode n round rps p50_us p99_us server_cpu client_cpu errors requests
median() { sort -g | awk '{ a[NR] = $1 } END {
  if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -v t="$1" -v n="$2" -v c="$3" '$1 == t && $2 == n { print $c }' "$work/results"; }
med() { col "$1" "$2" "$3" | median; }
ratio() { # a b n column -> median over rounds of a's column / b's column
  awk -v a="$1" -v b="$2" -v n="$3" -v c="$4" '
    $2 == n && $1 == a { x[$3] = $c } $2 == n && $1 == b { y[$3] = $c }
    END { for (r in x) if (r in y && y[r] > 0) print x[r] / y[r] }' "$work/results" | median; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "nan" || v == "") print "n/a"; else printf f, v }'; }
ms() { awk -v v="$1" 'BEGIN { if (v == "nan" || v == "") print "n/a"; else printf "%.2f", v / 1000 }'; }
sum_errors() { col "$1" "$2" 9 | awk '{ s += $1 } END { print s + 0 }'; }
{
  echo "Loopback, crates/mandate-http/examples/dpop_load.rs (N kept-alive HTTP/1.1 connections," \
    "2 client threads), ${DURATION}s runs, medians of $REPEATS rounds, $(nproc) cores shared by the" \
    "client and the server, release build, \`dpop.replay_cache_size = $REPLAY_CACHE_SIZE\`," \
    "$(date -u +%Y-%m-%d) (load average before: $load_before; after: $load_after)."
  echo
  echo "| \`POST /v1/authorize\` | N | requests/s | p50 ms | p99 ms | server CPU-µs/req | client CPU-µs/req | errors | DPoP × bearer | server-side |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for n in $CONCURRENCY; do
    for t in bearer dpop; do
      x="—" y="—"
      if [[ "$t" == dpop ]]; then
        x="$(fmt "$(ratio dpop bearer "$n" 4)" "%.3f")"
        y="$(fmt "$(ratio bearer dpop "$n" 7)" "%.3f")"
      fi
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$n" \
        "$(fmt "$(med "$t" "$n" 4)" "%.0f")" "$(ms "$(med "$t" "$n" 5)")" "$(ms "$(med "$t" "$n" 6)")" \
        "$(fmt "$(med "$t" "$n" 7)" "%.0f")" "$(fmt "$(med "$t" "$n" 8)" "%.0f")" \
        "$(sum_errors "$t" "$n")" "$x" "$y"
    done
  done
  echo
  top="$(awk '{ print $NF }' <<<"$CONCURRENCY")"
  r="$(ratio dpop bearer "$top" 4)"
  verdict="$(awk -v v="$r" 'BEGIN { if (v == "nan" || v == "") print "not measured"; else if (v + 0 >= 0.7) print "met"; else print "missed" }')"
  echo "Target: DPoP-bound /v1/authorize ≥ 0.7 × bearer at N=$top: $(fmt "$r" "%.3f") — $verdict" \
    "(server CPU per request, bearer/DPoP: $(fmt "$(ratio bearer dpop "$top" 7)" "%.3f"))."
} >"$work/table.md"

mkdir -p "$(dirname "$OUT")"
cp "$work/table.md" "$OUT"
echo
cat "$work/table.md"
