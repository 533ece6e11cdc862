#!/usr/bin/env bash
# Interop, spam: a real rspamd checks what the MX listener receives.
#   GTUBE is refused with 550 5.7.1, rspamd's own words; a clean message
#   lands in the inbox with rspamd's X-Spam headers; the add-header test
#   pattern lands in Maildir/.Junk/new; with rspamd stopped a message is
#   taken (rspamd_on_error = "accept") or deferred with 451 4.7.1
#   ("tempfail").
# rspamd runs privately: Debian's configuration with our overrides, its
# own folders under $work, one worker on a free loopback port, no Redis,
# no DNS beyond a dead loopback address.
# Needs: rspamd, swaks (Debian packages); .ci/run installs them.
source "$(dirname "$0")/lib/facteur.bash"
command -v rspamd >/dev/null && command -v swaks >/dev/null || { echo "interop: rspamd and swaks are required" >&2; exit 1; }

rs="$work/rspamd"
P_RSPAMD=$(free_ports 1)
mkdir -p "$rs/local.d" "$rs/override.d" "$rs/db" "$rs/run" "$rs/log"
echo "bind_socket = \"127.0.0.1:$P_RSPAMD\"; count = 1;" > "$rs/local.d/worker-normal.inc"
for w in controller proxy fuzzy; do echo "enabled = false;" > "$rs/override.d/worker-$w.inc"; done
cat > "$rs/local.d/options.inc" <<'CONF'
dns { nameserver = ["127.0.0.1:1"]; timeout = 1s; retransmits = 1; }
# The GTUBE variants that ask for "add header" and "rewrite subject".
enable_test_patterns = true;
# Hyperscan's compilation would make the start take half a minute.
disable_hyperscan = true;
CONF
# X-Spam headers for every verdict, also for our loopback client.
cat > "$rs/local.d/milter_headers.conf" <<'CONF'
use = ["x-spamd-result", "x-spam-status", "x-spam-level"];
skip_local = false;
CONF
echo 'type = "file"; level = "warning";' > "$rs/local.d/logging.inc"
# As root, rspamd wants an account to run its workers as.
as=()
if [ "$(id -u)" = 0 ]; then chown -R _rspamd:_rspamd "$rs"; as=(-u _rspamd -g _rspamd); fi

rspamd_pid=""
start_rspamd() {
  rspamd -f "${as[@]}" -c /etc/rspamd/rspamd.conf --var="LOCAL_CONFDIR=$rs" --var="DBDIR=$rs/db" \
    --var="RUNDIR=$rs/run" --var="LOGDIR=$rs/log" >"$rs/out" 2>&1 &
  rspamd_pid=$!
  bg_pids+=("$rspamd_pid")
  for _ in $(seq 600); do
    python3 -c "import urllib.request as u, sys; sys.exit(u.urlopen(sys.argv[1], timeout=1).read().strip() != b'pong')" \
      "http://127.0.0.1:$P_RSPAMD/ping" 2>/dev/null && return
    kill -0 "$rspamd_pid" 2>/dev/null || { cat "$rs/out" >&2; fail "rspamd exited"; }
    sleep 0.1
  done
  tail -5 "$rs/log/rspamd.log" >&2
  fail "rspamd not answering on 127.0.0.1:$P_RSPAMD after 60s"
}
stop_rspamd() { kill "$rspamd_pid"; wait "$rspamd_pid" 2>/dev/null || true; }

printf 'alice\n' > "$work/users"
# SPF, DKIM and DMARC need the senders' DNS, which interop has not: test/e2e/auth_test.go covers them.
start_rspamd
start_facteur mx.example.test "[inbound]
check_senders = false
rspamd = \"http://127.0.0.1:$P_RSPAMD\""

box="$work/var/mail/alice/Maildir"
count() { ls "$box/$1" 2>/dev/null | wc -l; }
send() { swaks --server 127.0.0.1 --port "$P_SMTP" --helo client.example.org --from sender@example.org --to alice@example.test "$@" >"$work/swaks.out" 2>&1; }
gtube='XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'

if send --header "Subject: gtube" --body "$gtube"; then fail "GTUBE accepted"; fi
grep -q '<\*\* 550 5.7.1 Gtube pattern' "$work/swaks.out" || { cat "$work/swaks.out" >&2; fail "GTUBE not refused with 550 5.7.1 and rspamd's message"; }
[ "$(count new)" = 0 ] && [ "$(count .Junk/new)" = 0 ] || fail "GTUBE stored"
echo "interop: rspamd refused GTUBE: $(grep '<\*\* 550' "$work/swaks.out")"

send --header "Subject: clean" --body "Hello Alice, the minutes of the meeting are attached below." || { cat "$work/swaks.out" >&2; fail "clean message refused"; }
[ "$(count new)" = 1 ] || fail "clean: $(count new) messages in new/, want 1"
grep -q '^X-Spam-Status: No, score=' "$box"/new/* || { cat "$box"/new/*; fail "clean message without rspamd's X-Spam-Status"; }
grep -q '^X-Spamd-Result: default: False' "$box"/new/* || fail "clean message without X-Spamd-Result"
echo "interop: clean message in the inbox with $(grep '^X-Spam-Status' "$box"/new/*)"

send --header "Subject: junk" --body "${gtube/#X/Y}" || { cat "$work/swaks.out" >&2; fail "add-header pattern refused"; }
[ "$(count .Junk/new)" = 1 ] || fail "add header: $(count .Junk/new) messages in .Junk/new, want 1"
grep -q "^X-Spam: Yes" "$box"/.Junk/new/* || { cat "$box"/.Junk/new/*; fail "junk message without X-Spam: Yes"; }
[ -z "$(find "$box/tmp" "$box/.Junk/tmp" -type f)" ] || fail "files left in tmp/"
echo "interop: add-header verdict stored in .Junk/new"

stop_rspamd
send --header "Subject: while down" --body "rspamd is stopped" || { cat "$work/swaks.out" >&2; fail "rspamd down, on error accept: refused"; }
[ "$(count new)" = 2 ] || fail "rspamd down: $(count new) messages in new/, want 2"
grep -q 'rspamd gave no verdict' "$work/facteur.out" || fail "no warning logged while rspamd is down"
stop_facteur

start_facteur mx.example.test "[inbound]
check_senders = false
rspamd = \"http://127.0.0.1:$P_RSPAMD\"
rspamd_on_error = \"tempfail\""
if send --header "Subject: while down" --body "rspamd is stopped"; then fail "rspamd down, on error tempfail: accepted"; fi
grep -q '<\*\* 451 4.7.1' "$work/swaks.out" || { cat "$work/swaks.out" >&2; fail "rspamd down, on error tempfail: not 451 4.7.1"; }
[ "$(count new)" = 2 ] || fail "tempfail stored a message"
stop_facteur
echo "interop: rspamd stopped: accepted with on_error accept, 451 4.7.1 with tempfail"
echo "interop rspamd: ok"
