#!/usr/bin/env bash
# CI: the curves of bench/run.sh in their tiny form (TINY=1: 100 messages,
# 20 sessions, one size, 100 queued), so that no step rots. It checks that
# each step printed its table with a figure in every cell, not the figures
# themselves: a shared CI machine measures nothing. As root, offline once
# Postfix is installed (.ci/run installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp); trap 'rm -f "$out" "$out"-*.png' EXIT
TINY=1 bash bench/run.sh >"$out"
fail() { echo "bench/ci.sh: $*" >&2; cat "$out" >&2; exit 1; }
# rows title: the table rows under the "### title" heading
rows() { awk -v t="### $1" '$0 == t { on = 1; next } /^###|^```/ { on = 0 } on && /^\| [^-]/ && !/^\| (sessions|key|message bytes|queued) \|/' "$out"; }
for t in "Concurrent sessions:3" "TLS on every connection:4" "Message size:2" "Queue depth:2"; do
  title=${t%:*} want=${t##*:}
  got=$(rows "$title" | wc -l)
  [ "$got" -eq "$want" ] || fail "\"$title\": $got rows, want $want"
  # An empty cell, or a division by nothing, is a step that measured nothing.
  if rows "$title" | grep -qiE '\|\s*\||nan|inf'; then fail "\"$title\": an empty cell or no figure"; fi
done
bash bench/plot.sh "$out" >/dev/null
for p in sessions sizes queue; do [ -s "$out-$p.png" ] || fail "bench/plot.sh made no $p plot"; done
echo "bench/ci.sh: the four curves ran (TINY), and plot"
