#!/usr/bin/env bash
# Interop, relay role: messages handed to facteur's relay listener by
# Postfix's smtp-source, delivered by facteur to Postfix's smtp-sink on
# another loopback address (a domain literal, so no DNS is involved), and
# all counted at the sink, which dumps each message it takes into a file.
# Two sinks, on one port: 127.0.0.2 offers PIPELINING (facteur sends each
# envelope in one group) and takes N messages; 127.0.0.3 does not (-p:
# each command waits for its reply) and takes N_LOCKSTEP.
source "$(dirname "$0")/lib/facteur.bash"
[ -x "$SMTP_SOURCE" ] && [ -x "$SMTP_SINK" ] || { echo "interop: smtp-source and smtp-sink are required" >&2; exit 1; }
N=${N:-1000}
N_LOCKSTEP=${N_LOCKSTEP:-200}

P_SINK=$(free_ports 1 127.0.0.2 127.0.0.3)
sink() { # ip dir [smtp-sink flags]
  mkdir -m 777 "$work/$2"
  "$SMTP_SINK" -u nobody "${@:3}" -d "$work/$2/%H%M%S." "$1:$P_SINK" 256 >"$work/$2.out" 2>&1 &
  bg_pids+=($!)
}
sink 127.0.0.2 pipelining
sink 127.0.0.3 lockstep -p
: > "$work/users"
start_facteur relay.example.test "[outbound]
port = $P_SINK"

relay() { # ip messages dir
  local start accepted delivered left got
  start=$(date +%s.%N)
  "$SMTP_SOURCE" -s 20 -m "$2" -l 4096 -M relay.example.test -f source@example.test -t "someone@[$1]" "127.0.0.1:$P_RELAY"
  accepted=$(date +%s.%N)
  # Bounded wait for the queue to empty.
  for _ in $(seq 600); do
    left=$(queue_left)
    [ "$left" = "queue is empty" ] && break
    sleep 0.1
  done
  delivered=$(date +%s.%N)
  [ "$left" = "queue is empty" ] || fail "queue not empty 60s after the burst to $1: $left"
  got=$(ls "$work/$3" | wc -l)
  [ "$got" -eq "$2" ] || fail "smtp-sink on $1 ($3) holds $got messages, want $2"
  echo "interop: $2 messages relayed through facteur to smtp-sink on $1, $3 (accepted in $(echo "$accepted - $start" | bc)s, all at the sink after $(echo "$delivered - $start" | bc)s)"
}
relay 127.0.0.2 "$N" pipelining
relay 127.0.0.3 "$N_LOCKSTEP" lockstep
stop_facteur
echo "interop relay: ok"
