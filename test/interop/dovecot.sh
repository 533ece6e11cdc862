#!/usr/bin/env bash
# Interop, Maildir: Dovecot reads what facteur delivered. Messages sent
# with swaks and smtp-source are listed by doveadm with the right subjects,
# and flagging one makes Dovecot rename it to <facteur's name>:2,S, so the
# file names are ones a Maildir reader parses.
source "$(dirname "$0")/lib/facteur.bash"
command -v doveadm >/dev/null && command -v dovecot >/dev/null && command -v swaks >/dev/null \
  || { echo "interop: dovecot-core and swaks are required" >&2; exit 1; }

printf 'alice\n' > "$work/users"
# SPF, DKIM and DMARC need the senders' DNS, which interop has not: test/e2e/auth_test.go covers them.
start_facteur mx.example.test 'maildir_root = "mail"
[inbound]
check_senders = false'
for s in first second "trois é"; do
  swaks --server 127.0.0.1 --port "$P_SMTP" --from a@example.org --to alice@example.test \
    --header "Subject: $s" >"$work/swaks.out" 2>&1 || { cat "$work/swaks.out" >&2; fail "swaks"; }
done
"$SMTP_SOURCE" -s 5 -m 50 -l 2048 -M mx.example.test -f a@example.org -t alice@example.test "127.0.0.1:$P_SMTP"
stop_facteur

# Dovecot refuses to open mail as root: give the Maildir to nobody, and run
# a private instance that listens nowhere, only for doveadm's user lookups.
maildir="$work/mail/alice/Maildir"
chown -R 65534:65534 "$work/mail"
mkdir -p "$work/dovecot/run" "$work/dovecot/state"
cat > "$work/dovecot/dovecot.conf" <<CONF
protocols =
base_dir = $work/dovecot/run
state_dir = $work/dovecot/state
log_path = $work/dovecot/dovecot.log
default_internal_user = root
default_login_user = root
ssl = no
mail_location = maildir:$work/mail/%u/Maildir
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=$work/mail/%u
}
CONF
conf="$work/dovecot/dovecot.conf"
dovecot -c "$conf" </dev/null >/dev/null 2>&1 || fail "dovecot did not start: $(tail -3 "$work/dovecot/dovecot.log")"
stop_dovecot() { timeout 10 doveadm -c "$conf" stop >/dev/null 2>&1 || true; }
trap 'stop_dovecot; cleanup' EXIT
for _ in $(seq 50); do [ -S "$work/dovecot/run/auth-userdb" ] && break; sleep 0.1; done

doveadm -c "$conf" fetch -u alice 'hdr.subject' mailbox INBOX all >"$work/fetch.out" 2>&1 || { cat "$work/fetch.out" >&2; fail "doveadm fetch"; }
n=$(grep -c '^hdr.subject:' "$work/fetch.out")
[ "$n" = 53 ] || { cat "$work/fetch.out" >&2; fail "Dovecot sees $n messages, want 53"; }
for s in first second "trois é"; do
  grep -qx "hdr.subject: $s" "$work/fetch.out" || fail "Dovecot does not show subject '$s'"
done
echo "interop: Dovecot lists the 53 messages facteur delivered"

doveadm -c "$conf" flags add -u alice "\\Seen" mailbox INBOX header subject first >"$work/flags.out" 2>&1 || { cat "$work/flags.out" >&2; fail "doveadm flags"; }
# Dovecot records the flag in the file name, after the name facteur gave.
flagged=$(ls "$maildir/cur" "$maildir/new" | grep ':2,S$' || true)
[ "$(echo "$flagged" | grep -c .)" = 1 ] || fail "want one file named <name>:2,S, got: $flagged"
[[ "$flagged" =~ ^[0-9]+\.M[0-9]+P[0-9]+R[0-9a-f]{16}Q[0-9]+\.mx\.example\.test:2,S$ ]] || fail "unexpected name $flagged"
echo "interop: Dovecot flagged a message: $flagged"
echo "interop dovecot: ok"
