#!/usr/bin/env bash
# The in-process cost of a change on the token and decision paths: the criterion benches
# `mandate-http/benches/tokens.rs` (`mandate-server` before issue 20) (issue, verify, cache hit) and `decide.rs`
# (100 policies, 1,000 agents, each caller path) run on two checkouts of this repository,
# interleaved (old, new, old, new) so that drift on a shared machine hits both alike.
# Compare the `time:` medians of the same bench between the two trees of one round.
#
#   git worktree add /tmp/old <commit> && bench/compare.sh /tmp/old
#   bench/compare.sh /tmp/old /path/to/new        # NEW defaults to this checkout
#
# Copying this checkout's target/release into the old one first spares most of its build.
set -euo pipefail
OLD=${1:?usage: bench/compare.sh OLD_CHECKOUT [NEW_CHECKOUT]}
NEW=${2:-$(cd "$(dirname "$0")/.." && pwd)}
args=(--warm-up-time 1 --measurement-time 4 --noplot)
# The benches' package: mandate-http, called mandate-server in checkouts before issue 20.
pkg() { if [ -d "$1/crates/mandate-http" ]; then echo mandate-http; else echo mandate-server; fi; }
for tree in "$OLD" "$NEW"; do
  (cd "$tree" && cargo bench -q -p "$(pkg "$tree")" --bench tokens --bench decide --no-run >&2)
done
for round in 1 2; do
  for tree in "$OLD" "$NEW"; do
    echo "== round $round: $tree ($(git -C "$tree" rev-parse --short HEAD))"
    (cd "$tree" && cargo bench -q -p "$(pkg "$tree")" --bench tokens -- "${args[@]}" 2>/dev/null \
      | grep -E "^token/|time:")
    (cd "$tree" && cargo bench -q -p "$(pkg "$tree")" --bench decide -- "decide/100p/1000a" \
      "${args[@]}" 2>/dev/null | grep -E "^decide/|time:")
  done
done
