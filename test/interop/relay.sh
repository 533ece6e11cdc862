#!/usr/bin/env bash
# Interop, relay role: 1000 messages handed to facteur's relay listener by
# Postfix's smtp-source, delivered by facteur to Postfix's smtp-sink on
# another loopback address (a domain literal, so no DNS is involved), and
# all counted at the sink, which dumps each message it takes into a file.
set -euo pipefail
cd "$(dirname "$0")/../.."
SMTP_SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
SMTP_SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)
[ -x "$SMTP_SOURCE" ] && [ -x "$SMTP_SINK" ] || { echo "interop: smtp-source and smtp-sink are required" >&2; exit 1; }
N=${N:-1000}

work=$(mktemp -d)
pid="" sink=""
cleanup() { for p in $pid $sink; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "interop: FAIL: $*" >&2; [ -f "$work/facteur.out" ] && tail -20 "$work/facteur.out" >&2; exit 1; }

go build -o "$work/facteur" ./cmd/facteur
port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "${1:-127.0.0.1}"; }
P_SMTP=$(port); P_SMTPS=$(port); P_RELAY=$(port); P_SINK=$(port 127.0.0.2)
cat > "$work/facteur.toml" <<CONF
hostname = "relay.example.test"
domains = ["example.test"]
data_dir = "var"
[listen]
smtp = ["127.0.0.1:$P_SMTP"]
smtps = ["127.0.0.1:$P_SMTPS"]
relay = ["127.0.0.1:$P_RELAY"]
[outbound]
port = $P_SINK
[log]
level = "warn"
CONF
: > "$work/users"

chmod 755 "$work"; mkdir -m 777 "$work/sink"
"$SMTP_SINK" -u nobody -d "$work/sink/%H%M%S." "127.0.0.2:$P_SINK" 256 >"$work/sink.out" 2>&1 &
sink=$!
(cd "$work" && exec ./facteur serve --config facteur.toml) >"$work/facteur.out" 2>&1 &
pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$P_RELAY) 2>/dev/null && break; sleep 0.1; done

start=$(date +%s.%N)
"$SMTP_SOURCE" -s 20 -m "$N" -l 4096 -M relay.example.test -f source@example.test -t "someone@[127.0.0.2]" "127.0.0.1:$P_RELAY"
accepted=$(date +%s.%N)
# Bounded wait for the queue to empty.
for _ in $(seq 600); do
  left=$(cd "$work" && ./facteur queue --config facteur.toml list | tail -1)
  [ "$left" = "queue is empty" ] && break
  sleep 0.1
done
delivered=$(date +%s.%N)
[ "$left" = "queue is empty" ] || fail "queue not empty 60s after the burst: $left"
got=$(ls "$work/sink" | wc -l)
[ "$got" -eq "$N" ] || fail "smtp-sink holds $got messages, want $N"
echo "interop: $N messages relayed through facteur to smtp-sink (accepted in $(echo "$accepted - $start" | bc)s, all at the sink after $(echo "$delivered - $start" | bc)s)"
kill -TERM "$pid"; wait "$pid" || fail "exit status $? after SIGTERM"; pid=""
echo "interop relay: ok"
