#!/usr/bin/env bash
# Interop, relay role: 1000 messages handed to facteur's relay listener by
# Postfix's smtp-source, delivered by facteur to Postfix's smtp-sink on
# another loopback address (a domain literal, so no DNS is involved), and
# all counted at the sink, which dumps each message it takes into a file.
source "$(dirname "$0")/lib/facteur.bash"
[ -x "$SMTP_SOURCE" ] && [ -x "$SMTP_SINK" ] || { echo "interop: smtp-source and smtp-sink are required" >&2; exit 1; }
N=${N:-1000}

P_SINK=$(free_port 127.0.0.2)
mkdir -m 777 "$work/sink"
"$SMTP_SINK" -u nobody -d "$work/sink/%H%M%S." "127.0.0.2:$P_SINK" 256 >"$work/sink.out" 2>&1 &
bg_pids+=($!)
: > "$work/users"
start_facteur relay.example.test "[outbound]
port = $P_SINK"

start=$(date +%s.%N)
"$SMTP_SOURCE" -s 20 -m "$N" -l 4096 -M relay.example.test -f source@example.test -t "someone@[127.0.0.2]" "127.0.0.1:$P_RELAY"
accepted=$(date +%s.%N)
# Bounded wait for the queue to empty.
for _ in $(seq 600); do
  left=$(queue_left)
  [ "$left" = "queue is empty" ] && break
  sleep 0.1
done
delivered=$(date +%s.%N)
[ "$left" = "queue is empty" ] || fail "queue not empty 60s after the burst: $left"
got=$(ls "$work/sink" | wc -l)
[ "$got" -eq "$N" ] || fail "smtp-sink holds $got messages, want $N"
echo "interop: $N messages relayed through facteur to smtp-sink (accepted in $(echo "$accepted - $start" | bc)s, all at the sink after $(echo "$delivered - $start" | bc)s)"
stop_facteur
echo "interop relay: ok"
