#!/usr/bin/env bash
# Interop, inbound role: well-known clients against the real binary.
#   swaks over plain SMTP, STARTTLS (verifying the generated certificate)
#   and implicit TLS; Postfix's smtp-source for a 1000-message burst.
# Needs: swaks, smtp-source (Debian packages swaks, postfix); .ci/run
# installs them. Exits non-zero on the first failed check.
source "$(dirname "$0")/lib/facteur.bash"
command -v swaks >/dev/null && [ -x "$SMTP_SOURCE" ] || { echo "interop: swaks and smtp-source are required" >&2; exit 1; }

printf 'alice\nbench\n' > "$work/users"
# SPF, DKIM and DMARC need the senders' DNS, which interop has not: test/e2e/auth_test.go covers them.
start_facteur mx.example.test "[inbound]
check_senders = false"

new() { ls "$work/var/mail/$1/Maildir/new" 2>/dev/null | wc -l; }
cert="$work/var/tls/cert.pem"

swaks_run() { swaks --server 127.0.0.1 --helo client.example.org --from sender@example.org --to alice@example.test "$@" >"$work/swaks.out" 2>&1 || { cat "$work/swaks.out" >&2; fail "swaks $*"; }; }
swaks_run --port "$P_SMTP" --header "Subject: plain"
[ "$(new alice)" = 1 ] || fail "plain: $(new alice) messages"
swaks_run --port "$P_SMTP" --tls --tls-verify --tls-ca-path "$cert" --tls-sni mx.example.test --header "Subject: starttls"
grep -q "TLS started" "$work/swaks.out" || fail "STARTTLS not negotiated"
swaks_run --port "$P_SMTPS" --tls-on-connect --tls-verify --tls-ca-path "$cert" --tls-sni mx.example.test --header "Subject: smtps"
[ "$(new alice)" = 3 ] || fail "after TLS: $(new alice) messages"
grep -l "Subject: starttls" "$work/var/mail/alice/Maildir/new/"* | xargs grep -q "with ESMTPS" || fail "STARTTLS message not marked ESMTPS"
echo "interop: swaks plain, STARTTLS and implicit TLS delivered"

# No open relay, as swaks sees it.
if swaks --server 127.0.0.1 --port "$P_SMTP" --from a@example.org --to victim@elsewhere.org >"$work/swaks.out" 2>&1; then fail "relayed to elsewhere.org"; fi
grep -q "<\*\* 550 5.7.1" "$work/swaks.out" || fail "relay attempt not refused with 550 5.7.1"

"$SMTP_SOURCE" -s 20 -m 1000 -l 4096 -M mx.example.test -f source@example.org -t bench@example.test "127.0.0.1:$P_SMTP"
[ "$(new bench)" = 1000 ] || fail "smtp-source: $(new bench) of 1000 messages in new/"
[ -z "$(ls "$work/var/mail/bench/Maildir/tmp")" ] || fail "smtp-source: files left in tmp/"
echo "interop: smtp-source burst of 1000 messages delivered"

stop_facteur
echo "interop inbound: ok"
