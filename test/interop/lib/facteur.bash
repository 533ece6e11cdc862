# Sourced by the interop scripts: build facteur, run it on free loopback
# ports with a throwaway config, and clean everything up on exit.
#   start_facteur HOSTNAME EXTRA_TOML   sets P_SMTP P_SMTPS P_RELAY P_SUBMIT, $pid
#   start_sender DNS [VAR=VALUE...]     a second facteur relaying to the first (see there)
#   start_nsd DIR PORT ZONEFILE          NSD serving example.test
#   fail MESSAGE                        prints the log tail and exits 1
#   free_ports COUNT [IP...]            COUNT distinct TCP ports, free on each IP a moment ago
#   queue_left                          last line of `facteur queue list`
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
SMTP_SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
SMTP_SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)

work=$(mktemp -d)
chmod 755 "$work" # smtp-sink runs as nobody and writes below it
pid=""
bg_pids=()
cleanup() {
  for p in $pid "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "interop: FAIL: $*" >&2; [ -f "$work/facteur.out" ] && tail -20 "$work/facteur.out" >&2; exit 1; }

free_ports() { # COUNT [IP...]: COUNT distinct ports, each free on every IP; the probes stay bound
  # until all are picked, so no two come out the same. Below the ephemeral range, which outgoing
  # connections use.
  python3 - "$@" <<'PY'
import random, socket, sys
count, ips = int(sys.argv[1]), sys.argv[2:] or ["127.0.0.1"]
held = []
def take(p):
    socks = []
    for ip in ips:
        s = socket.socket()
        try:
            s.bind((ip, p))
        except OSError:
            s.close()
            for s in socks:
                s.close()
            return False
        socks.append(s)
    held.extend(socks)
    return True
ports = []
for _ in range(200 * count):
    if len(ports) == count:
        break
    p = random.randint(10000, 32000)
    if p not in ports and take(p):
        ports.append(p)
if len(ports) < count:
    sys.exit("free_ports: no %d ports free on %s" % (count, ips))
print(*ports)
PY
}

go build -o "$work/facteur" ./cmd/facteur

# write_config DIR HOSTNAME DOMAIN LEVEL EXTRA: DIR/facteur.toml on four free ports,
# given back in CONF_PORTS (smtp smtps relay submission); EXTRA comes before
# [listen], so it may hold top-level keys and whole sections.
write_config() {
  read -r -a CONF_PORTS < <(free_ports 4)
  cat > "$1/facteur.toml" <<CONF
hostname = "$2"
domains = ["$3"]
data_dir = "var"
run_as_root = true
$5
[listen]
smtp = ["127.0.0.1:${CONF_PORTS[0]}"]
smtps = ["127.0.0.1:${CONF_PORTS[1]}"]
relay = ["127.0.0.1:${CONF_PORTS[2]}"]
submission = ["127.0.0.1:${CONF_PORTS[3]}"]
[log]
level = "$4"
CONF
}

wait_port() { # PORT: wait until something listens on it
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done
  return 1
}

start_facteur() {
  write_config "$work" "$1" example.test warn "$2"
  read -r P_SMTP P_SMTPS P_RELAY P_SUBMIT <<<"${CONF_PORTS[*]}"
  (cd "$work" && exec ./facteur serve --config facteur.toml) >"$work/facteur.out" 2>&1 &
  pid=$!
  wait_port "$P_SMTP" || fail "facteur did not start"
}

# start_sender DNS [VAR=VALUE...]: a second facteur, sender.test in
# $work/sender, asking DNS and delivering to the first one's smtp port,
# retrying within seconds; the VARs are put in its environment. Then:
#   relay ADDRESS    a message from alice@sender.test through its relay port
#   sender_queue     its `facteur queue list`
#   sender_fail MSG  fail with its log tail
start_sender() {
  local dns=$1; shift
  mkdir "$work/sender"
  : >"$work/sender/users"
  write_config "$work/sender" sender.test sender.test info "dns = \"$dns\"
[outbound]
port = $P_SMTP
min_backoff = \"1s\"
max_backoff = \"2s\""
  S_RELAY=${CONF_PORTS[2]}
  (cd "$work/sender" && exec env "$@" ../facteur serve --config facteur.toml) >"$work/sender.out" 2>&1 &
  bg_pids+=($!)
  wait_port "$S_RELAY" || sender_fail "the sender did not start"
}
# zone_head: the start of the example.test zone NSD serves: SOA, NS, and
# its MX mx.example.test on 127.0.0.1.
zone_head() {
  cat <<'ZONE'
$ORIGIN example.test.
$TTL 300
@ IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 300
@ IN NS ns.example.test.
ns IN A 127.0.0.1
@ IN MX 10 mx.example.test.
mx IN A 127.0.0.1
ZONE
}

# start_nsd DIR PORT ZONEFILE: NSD serving example.test from DIR/ZONEFILE on
# 127.0.0.1:PORT, in the foreground of a background job, its files in DIR.
start_nsd() {
  cat >"$1/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.1@$2
  username: ""
  chroot: ""
  zonesdir: "$1"
  database: ""
  zonelistfile: "$1/zone.list"
  xfrdfile: "$1/xfrd.state"
  pidfile: "$1/nsd.pid"
  logfile: "$1/nsd.log"
remote-control:
  control-enable: no
zone:
  name: "example.test"
  zonefile: "$3"
CONF
  nsd -d -c "$1/nsd.conf" >"$1/nsd.out" 2>&1 &
  bg_pids+=($!)
}

sender_fail() { tail -20 "$work/sender.out" >&2; fail "$@"; }
sender_queue() { (cd "$work/sender" && ../facteur queue --config facteur.toml list); }
relay() { swaks --silent 2 --server "127.0.0.1:$S_RELAY" --helo client.test --from alice@sender.test --to "$1" >/dev/null ||
  sender_fail "the sender's relay refused a message to $1"; }

stop_facteur() {
  kill -TERM "$pid"
  wait "$pid" || fail "exit status $? after SIGTERM"
  pid=""
}

queue_left() { (cd "$work" && ./facteur queue --config facteur.toml list | tail -1); }
