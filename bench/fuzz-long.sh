#!/usr/bin/env bash
# The long fuzz run (issue 25, "proof under fire"): every cargo-fuzz target in fuzz/ runs
# until it has executed FUZZ_LONG_RUNS inputs (default 10 million, the goal) or for
# FUZZ_LONG_SECONDS (default 1800), whichever comes first, from its corpus in
# fuzz/corpus/<target>. New inputs that reach new code are kept there and the corpus is
# minimized afterwards (`cargo fuzz cmin`), so commit fuzz/corpus/ after a run: the next
# run, and CI's brief one (.ci/fuzz), start from what this one found.
#
# Prints one line per target and a table at the end: executions, seconds, executions per
# second, and whether the goal was met; the table is also written to
# target/fuzz-long/report.tsv. Any crash, panic or failed property fails the script after
# every target has run (the input is in fuzz/artifacts/<target>/).
#
#   bench/fuzz-long.sh                      # every target
#   FUZZ_LONG_SECONDS=600 bench/fuzz-long.sh jwk client_assertion
#
# Needs a nightly toolchain and cargo-fuzz (.ci/fuzz installs both). One libFuzzer
# process at a time: on a shared machine the per-second numbers are what one core gave.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${FUZZ_LONG_SECONDS:-1800}"
runs="${FUZZ_LONG_RUNS:-10000000}"
for v in "$secs" "$runs"; do
  if ! [[ "$v" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz-long: FUZZ_LONG_SECONDS and FUZZ_LONG_RUNS must be positive whole numbers" >&2
    exit 2
  fi
done
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz-long: needs cargo-fuzz on a nightly toolchain (run .ci/fuzz once to install them)" >&2
  exit 2
fi

cargo +nightly fuzz build --release
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

out="target/fuzz-long"
mkdir -p "$out"
report="$out/report.tsv"
printf 'target\texecutions\tseconds\texec_per_s\tgoal_met\n' >"$report"
failed=()
below=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  log="$out/$t.log"
  start=$(date +%s)
  status=ok
  if ! cargo +nightly fuzz run --release "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -runs="$runs" -print_final_stats=1 >"$log" 2>&1; then
    status=FAILED
    failed+=("$t")
  fi
  # libFuzzer's own count and time (`Done N runs in S second(s)`), not the wall time
  # around it, which includes any build cargo fuzz does first.
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -n 1)
  execs="${execs:-0}"
  elapsed=$(grep -Eo '^Done [0-9]+ runs in [0-9]+ second' "$log" | grep -Eo '[0-9]+ second' | grep -Eo '[0-9]+' | tail -n 1)
  elapsed="${elapsed:-$(( $(date +%s) - start ))}"
  rate=$(( execs / (elapsed > 0 ? elapsed : 1) ))
  met=no
  if [ "$execs" -ge "$runs" ]; then met=yes; else below+=("$t"); fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$execs" "$elapsed" "$rate" "$met" >>"$report"
  echo "fuzz-long: $t $status: $execs executions in ${elapsed}s (${rate}/s), goal ${runs}: $met"
  if [ "$status" = FAILED ]; then
    grep -m 1 -A 2 'panicked at' "$log" || tail -n 25 "$log"
  else
    # Keep the corpus small: only inputs that add coverage stay.
    cargo +nightly fuzz cmin --release "$t" "fuzz/corpus/$t" >>"$log" 2>&1 || true
    # cmin keeps inputs by coverage and may drop the named, hand-made seeds
    # (fuzz/examples/seeds.rs writes them): they stay, for the reader.
    git checkout -q -- "fuzz/corpus/$t" 2>/dev/null || true
  fi
done

echo
column -t -s $'\t' "$report" 2>/dev/null || cat "$report"
echo "fuzz-long: targets failing: ${#failed[@]}; below the goal of ${runs} executions: ${#below[@]}${below[*]:+ (${below[*]})}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz-long: failing targets: ${failed[*]} (reproduce: cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>)" >&2
  exit 1
fi
