#!/usr/bin/env bash
# Interop, authenticated submission: swaks logs in with AUTH PLAIN and
# AUTH LOGIN over STARTTLS on the submission port and over implicit TLS on
# the smtps port, relays to smtp-sink on 127.0.0.2, and is refused with a
# wrong password, without AUTH, and with someone else's sender address.
source "$(dirname "$0")/lib/facteur.bash"
command -v swaks >/dev/null && [ -x "$SMTP_SINK" ] || { echo "interop: swaks and smtp-sink are required" >&2; exit 1; }

P_SINK=$(free_ports 1 127.0.0.2)
mkdir -m 777 "$work/sink"
"$SMTP_SINK" -u nobody -d "$work/sink/%H%M%S." "127.0.0.2:$P_SINK" 64 >"$work/sink.out" 2>&1 &
bg_pids+=($!)
printf 'alice\nbob\n' > "$work/users"
# The password file the server will read (passwords_file's default, next
# to the config), made the way an operator does.
: > "$work/pw.toml"
printf 'pass word\npass word\n' | (cd "$work" && ./facteur passwd --config pw.toml alice) >/dev/null
start_facteur mx.example.test "[outbound]
port = $P_SINK"
cert="$work/var/tls/cert.pem"
tlsopts=(--tls-verify --tls-ca-path "$cert" --tls-sni mx.example.test)
sw() { swaks --server 127.0.0.1 --helo laptop.example.org --from alice@example.test --to "someone@[127.0.0.2]" "$@" >"$work/swaks.out" 2>&1; }

sw --port "$P_SUBMIT" --tls "${tlsopts[@]}" --auth PLAIN --auth-user alice --auth-password "pass word" \
  || { cat "$work/swaks.out" >&2; fail "AUTH PLAIN over STARTTLS"; }
sw --port "$P_SUBMIT" --tls "${tlsopts[@]}" --auth LOGIN --auth-user alice --auth-password "pass word" \
  || { cat "$work/swaks.out" >&2; fail "AUTH LOGIN over STARTTLS"; }
sw --port "$P_SMTPS" --tls-on-connect "${tlsopts[@]}" --auth PLAIN --auth-user alice --auth-password "pass word" \
  || { cat "$work/swaks.out" >&2; fail "AUTH PLAIN over implicit TLS"; }
echo "interop: swaks AUTH PLAIN and LOGIN over STARTTLS and implicit TLS accepted"

if sw --port "$P_SUBMIT" --tls "${tlsopts[@]}" --auth PLAIN --auth-user alice --auth-password wrong; then fail "wrong password accepted"; fi
grep -Eq "<[*~]\* 535 5.7.8" "$work/swaks.out" || fail "wrong password not refused with 535 5.7.8"
if sw --port "$P_SUBMIT" --tls "${tlsopts[@]}"; then fail "relayed without AUTH"; fi
grep -Eq "<[*~]\* 530 5.7.0" "$work/swaks.out" || fail "no AUTH not refused with 530 5.7.0"
if sw --port "$P_SUBMIT" --tls "${tlsopts[@]}" --auth PLAIN --auth-user alice --auth-password "pass word" --from bob@example.test; then
  fail "alice sent as bob"
fi
grep -Eq "<[*~]\* 553 5.7.1" "$work/swaks.out" || fail "forged sender not refused with 553 5.7.1"
echo "interop: wrong password, missing AUTH and forged sender refused"

for _ in $(seq 100); do [ "$(queue_left)" = "queue is empty" ] && break; sleep 0.1; done
[ "$(ls "$work/sink" | wc -l)" -eq 3 ] || fail "smtp-sink holds $(ls "$work/sink" | wc -l) messages, want 3"
stop_facteur
echo "interop submission: ok"
