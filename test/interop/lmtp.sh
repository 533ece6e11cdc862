#!/usr/bin/env bash
# Interop, LMTP: facteur delivers local mail to a real Dovecot over LMTP
# ([delivery] lmtp). A private Dovecot listens on a unix socket only, with
# a passwd-file userdb: alice and carol have no quota, bob a tiny one. A
# message to alice and bob from carol: alice gets it once, bob's full
# mailbox refuses it alone, and carol gets one bounce carrying Dovecot's
# 5.2.2 reply. With Dovecot stopped, facteur still answers 250 and keeps
# the message queued; once Dovecot is back it is delivered, once.
source "$(dirname "$0")/lib/facteur.bash"
command -v doveadm >/dev/null && command -v dovecot >/dev/null && [ -x /usr/lib/dovecot/lmtp ] && command -v swaks >/dev/null \
  || { echo "interop: dovecot-core, dovecot-lmtpd and swaks are required" >&2; exit 1; }

# Dovecot delivers as nobody: the mail root is nobody's.
mkdir -p "$work/mail" "$work/dovecot/run" "$work/dovecot/state"
chown 65534:65534 "$work/mail"
cat > "$work/dovecot/passwd" <<PASSWD
alice::65534:65534::$work/mail/alice::
bob::65534:65534::$work/mail/bob::userdb_quota_rule=*:bytes=100
carol::65534:65534::$work/mail/carol::
PASSWD
cat > "$work/dovecot/dovecot.conf" <<CONF
protocols = lmtp
base_dir = $work/dovecot/run
state_dir = $work/dovecot/state
log_path = $work/dovecot/dovecot.log
default_internal_user = root
default_login_user = root
ssl = no
mail_location = maildir:~/Maildir
mail_plugins = \$mail_plugins quota
passdb {
  driver = passwd-file
  args = $work/dovecot/passwd
}
userdb {
  driver = passwd-file
  args = $work/dovecot/passwd
}
service lmtp {
  unix_listener $work/dovecot/lmtp {
    mode = 0666
  }
}
plugin {
  quota = maildir:User quota
}
CONF
conf="$work/dovecot/dovecot.conf"
start_dovecot() {
  dovecot -c "$conf" </dev/null >/dev/null 2>&1 || fail "dovecot did not start: $(tail -3 "$work/dovecot/dovecot.log")"
  for _ in $(seq 50); do [ -S "$work/dovecot/lmtp" ] && return; sleep 0.1; done
  fail "no LMTP socket: $(tail -3 "$work/dovecot/dovecot.log")"
}
stop_dovecot() {
  timeout 10 doveadm -c "$conf" stop >/dev/null 2>&1 || true
  for _ in $(seq 50); do [ -S "$work/dovecot/lmtp" ] || return 0; sleep 0.1; done
}
trap 'stop_dovecot; cleanup' EXIT

# subjects USER: the subjects in USER's INBOX, one a line.
subjects() {
  doveadm -c "$conf" fetch -u "$1" 'hdr.subject' mailbox INBOX all 2>"$work/fetch.err" | sed -n 's/^hdr.subject: //p'
}
# wait_count USER N: until USER's INBOX holds N messages.
wait_count() {
  for _ in $(seq 100); do [ "$(subjects "$1" | grep -c .)" = "$2" ] && return; sleep 0.2; done
  fail "$1 has $(subjects "$1" | grep -c .) messages, want $2: $(cat "$work/fetch.err")"
}
send() { # TO SUBJECT
  swaks --server 127.0.0.1 --port "$P_SMTP" --from carol@example.test --to "$1" --header "Subject: $2" \
    >"$work/swaks.out" 2>&1 || { cat "$work/swaks.out" >&2; fail "swaks to $1"; }
  grep -q '<- *250 .*queued as' "$work/swaks.out" || { cat "$work/swaks.out" >&2; fail "no 250 for $2"; }
}

printf 'alice\nbob\ncarol\n' > "$work/users"
# SPF, DKIM and DMARC need the senders' DNS, which interop has not: test/e2e/auth_test.go covers them.
start_facteur mx.example.test "[delivery]
lmtp = \"unix:$work/dovecot/lmtp\"
[outbound]
min_backoff = \"1s\"
max_backoff = \"2s\"
[inbound]
check_senders = false"
start_dovecot

send alice@example.test,bob@example.test "to alice and bob"
wait_count alice 1
wait_count carol 1
[ "$(subjects alice)" = "to alice and bob" ] || fail "alice: $(subjects alice)"
[ "$(subjects bob | grep -c .)" = 0 ] || fail "bob, over quota, has: $(subjects bob)"
doveadm -c "$conf" fetch -u carol 'body' mailbox INBOX all >"$work/bounce.txt" 2>&1
grep -q 'Final-Recipient: rfc822; bob@example.test' "$work/bounce.txt" && grep -q 'Status: 5.2.2' "$work/bounce.txt" \
  && grep -q 'Diagnostic-Code: smtp; 552 5.2.2' "$work/bounce.txt" || { cat "$work/bounce.txt" >&2; fail "carol's bounce lacks bob's 5.2.2"; }
grep -q 'Final-Recipient: rfc822; alice@example.test' "$work/bounce.txt" && fail "the bounce names alice, who got the message"
echo "interop: Dovecot stored alice's copy, refused bob's over quota (5.2.2), and carol got one bounce"

stop_dovecot
send alice@example.test "while Dovecot is down"
for _ in $(seq 50); do grep -q 'connection failed' <(cd "$work" && ./facteur queue --config facteur.toml list) && break; sleep 0.2; done
(cd "$work" && ./facteur queue --config facteur.toml list) | grep -q 'connection failed' || fail "the message is not queued: $(queue_left)"
echo "interop: with Dovecot down, 250 and queued: $(queue_left)"
start_dovecot
wait_count alice 2
for _ in $(seq 50); do [ "$(queue_left)" = "queue is empty" ] && break; sleep 0.2; done
[ "$(queue_left)" = "queue is empty" ] || fail "queue: $(queue_left)"
sleep 3 # past a retry: a second copy would show now
[ "$(subjects alice | grep -c 'while Dovecot is down')" = 1 ] || fail "alice: $(subjects alice)"
[ "$(subjects carol | grep -c .)" = 1 ] || fail "carol: $(subjects carol)"
echo "interop: once Dovecot was back the message was delivered once"
echo "interop lmtp: ok"
