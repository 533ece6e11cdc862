#!/usr/bin/env bash
# Plots the curves of one bench run: bash bench/plot.sh bench/results/<run>.md
# reads its raw "curve.*" lines and writes, beside it, <run>-sessions.png
# (msgs/s and p99 by concurrent sessions), <run>-sizes.png (MB/s stored by
# message size, with the disk's own rate) and <run>-queue.png (memory and
# drain rate by queue depth), for each server. Needs gnuplot (Debian:
# gnuplot-nox), installed when missing.
set -euo pipefail
run=${1:?usage: bash bench/plot.sh bench/results/<run>.md}
command -v gnuplot >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q gnuplot-nox >/dev/null; }
base=${run%.md}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -E '^curve\.' "$run" > "$tmp/raw" || { echo "plot: no curve in $run" >&2; exit 1; }

# table STEP MEASURE SERVER: "point value" lines of one series, by point.
table() {
  awk -v s="curve.$1." -v m=".$3.$2" 'index($1, s) == 1 && substr($1, length($1) - length(m) + 1) == m {
    p = substr($1, length(s) + 1); p = substr(p, 1, length(p) - length(m)); if (p ~ /^[0-9]+$/) print p, $2 }' "$tmp/raw" | sort -n
}
servers() { awk -v s="curve.$1." 'index($1, s) == 1 { n = split($1, f, "."); print f[n - 1] }' "$tmp/raw" | sort -u; }

# plot STEP MEASURE TITLE XLABEL YLABEL OUT [MORE]: one line per server, and
# MORE (gnuplot plot items) beside them.
plot() {
  local step=$1 measure=$2 title=$3 xlabel=$4 ylabel=$5 out=$6 more=${7:-} cmd="" srv
  for srv in $(servers "$step"); do
    table "$step" "$measure" "$srv" > "$tmp/$step.$measure.$srv"
    [ -s "$tmp/$step.$measure.$srv" ] || continue
    cmd+="${cmd:+, }'$tmp/$step.$measure.$srv' using 1:2 with linespoints title '${srv//_/ }'"
  done
  [ -n "$cmd" ] || return 0
  cmd+=${more:+, $more}
  gnuplot 2>/dev/null <<GP
set terminal pngcairo size 800,500 font ',11'
set output '$out'
set title '$title'
set xlabel '$xlabel'
set ylabel '$ylabel'
set logscale x
set grid
set key top left
set yrange [0:*]
set offsets graph 0, graph 0, graph 0.1, 0
plot $cmd
GP
  echo "plot: $out"
}

plot sessions rate "Concurrent sessions: messages stored per second" "concurrent sessions" "msgs/s" "$base-sessions.png"
plot sessions p99 "Concurrent sessions: p99 from the end of DATA to the 250" "concurrent sessions" "ms" "$base-sessions-p99.png"
disk=$(awk '$1 == "curve.sizes.disk_mb_s" { print $2 }' "$tmp/raw")
plot sizes mb_s "Message size: MB/s stored to Maildir" "message bytes" "MB/s" "$base-sizes.png" \
  "${disk:+$disk with lines dashtype 2 title 'the disk, synced 1 MiB writes'}"
plot queue_depth bytes_per_msg "Queue depth: memory per deferred message" "messages queued" "bytes" "$base-queue.png"
plot queue_depth first_s "Queue depth: restart to the first new message stored" "messages queued" "seconds" "$base-queue-restart.png"
