# Sourced by the interop scripts: build facteur, run it on free loopback
# ports with a throwaway config, and clean everything up on exit.
#   start_facteur HOSTNAME EXTRA_TOML   sets P_SMTP P_SMTPS P_RELAY P_SUBMIT, $pid
#   fail MESSAGE                        prints the log tail and exits 1
#   free_port [IP...]                   a TCP port free on each IP a moment ago
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

free_port() { # [IP...]: free on each IP; below the ephemeral range, which outgoing connections use
  python3 - "${@:-127.0.0.1}" <<'PY'
import random, socket, sys
def free(ip, p):
    s = socket.socket()
    try:
        s.bind((ip, p))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    p = random.randint(10000, 32000)
    if all(free(ip, p) for ip in sys.argv[1:]):
        print(p)
        break
PY
}

go build -o "$work/facteur" ./cmd/facteur

start_facteur() {
  P_SMTP=$(free_port); P_SMTPS=$(free_port); P_RELAY=$(free_port); P_SUBMIT=$(free_port)
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
