# Sourced by the interop scripts: build facteur, run it on free loopback
# ports with a throwaway config, and clean everything up on exit.
#   start_facteur HOSTNAME EXTRA_TOML   sets P_SMTP P_SMTPS P_RELAY P_SUBMIT, $pid
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

start_facteur() {
  read -r P_SMTP P_SMTPS P_RELAY P_SUBMIT < <(free_ports 4)
  cat > "$work/facteur.toml" <<CONF
hostname = "$1"
domains = ["example.test"]
data_dir = "var"
run_as_root = true
$2
[listen]
smtp = ["127.0.0.1:$P_SMTP"]
smtps = ["127.0.0.1:$P_SMTPS"]
relay = ["127.0.0.1:$P_RELAY"]
submission = ["127.0.0.1:$P_SUBMIT"]
[log]
level = "warn"
CONF
  (cd "$work" && exec ./facteur serve --config facteur.toml) >"$work/facteur.out" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$P_SMTP") 2>/dev/null && return; sleep 0.1; done
  fail "facteur did not start"
}

stop_facteur() {
  kill -TERM "$pid"
  wait "$pid" || fail "exit status $? after SIGTERM"
  pid=""
}

queue_left() { (cd "$work" && ./facteur queue --config facteur.toml list | tail -1); }
