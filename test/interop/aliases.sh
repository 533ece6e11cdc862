#!/usr/bin/env bash
# Interop, aliases: swaks, a client that is not ours, sends to an alias of
# two local users, to a +tag, to an alias that leads nowhere, to a forged
# SRS address, and a message that has been here before (a mail loop).
# Forwarding to other domains needs their DNS, which interop has not:
# test/e2e/aliases_test.go covers it with a fake DNS and a fake MX.
# Needs: swaks (Debian package swaks); .ci/run installs it.
source "$(dirname "$0")/lib/facteur.bash"
command -v swaks >/dev/null || { echo "interop: swaks is required" >&2; exit 1; }

printf 'alice\nbob\n' > "$work/users"
printf 'team: alice, bob, alice\nghosts: nobody\n' > "$work/aliases"
start_facteur mx.example.test "[inbound]
check_senders = false"

new() { ls "$work/var/mail/$1/Maildir/new" 2>/dev/null | wc -l; }
swaks_to() { # to expected-reply [swaks flags]: the reply to the last command swaks sends must be expected-reply
  swaks --server 127.0.0.1 --port "$P_SMTP" --helo client.example.org --from sender@example.org --to "$1" "${@:3}" >"$work/swaks.out" 2>&1 || true
  grep -q "<\*\* $2\|<-  $2" "$work/swaks.out" || { cat "$work/swaks.out" >&2; fail "to $1: no reply $2"; }
}

swaks_to team@example.test "250 2.0.0 Ok: queued" --header "Subject: team"
[ "$(new alice)" = 1 ] && [ "$(new bob)" = 1 ] || fail "team: alice $(new alice), bob $(new bob) messages, want 1 each"
grep -q "^Delivered-To: team@example.test" "$work/var/mail/bob/Maildir/new/"* || fail "team: no Delivered-To in bob's copy"

swaks_to alice+news@example.test "250 2.0.0 Ok: queued" --header "Subject: tagged"
grep -l "Subject: tagged" "$work/var/mail/alice/Maildir/new/"* | xargs grep -q "^Delivered-To: alice+news@example.test" ||
  fail "+tag: no Delivered-To: alice+news@example.test"
echo "interop: swaks to an alias of two users and to a +tag delivered"

swaks_to ghosts@example.test "550 5.1.1"
swaks_to "SRS0=ABCDEF=AA=example.org=victim@mx.example.test" "550 5.1.1"
echo "interop: an alias to no one and a forged SRS address refused 550 5.1.1"

swaks_to team@example.test "554 5.4.6" --add-header "Delivered-To: team@example.test"
[ "$(new bob)" = 1 ] || fail "loop: bob has $(new bob) messages"
echo "interop: a message already delivered to the alias refused 554 5.4.6"

stop_facteur
echo "interop aliases: ok"
