#!/usr/bin/env bash
# Interop, DANE for our own host: the TLSA record `facteur dns records`
# prints for the certificate facteur serves is judged by OpenSSL's own DANE
# check (s_client -dane_tlsa_rrdata) over STARTTLS on the smtp port, as a
# sender using DANE would: it must match, and a record of another key must
# not (else the check proves nothing).
source "$(dirname "$0")/lib/facteur.bash"
command -v openssl >/dev/null || { echo "interop: openssl is required" >&2; exit 1; }

: > "$work/users"
start_facteur mx.example.test "" # the first start makes the self-signed certificate
rec=$(cd "$work" && ./facteur dns records --config facteur.toml example.test | grep ' IN TLSA ') ||
  fail "dns records printed no TLSA record"
[[ $rec == "_25._tcp.mx.example.test. IN TLSA 3 1 1 "* ]] || fail "unexpected TLSA record: $rec"
rrdata=${rec#* IN TLSA }

dane() { # rrdata -> OpenSSL's verdict on the smtp port's certificate
  openssl s_client -connect "127.0.0.1:$P_SMTP" -starttls smtp -verify_return_error \
    -dane_tlsa_domain mx.example.test -dane_tlsa_rrdata "$1" </dev/null >"$work/s_client.out" 2>&1
}
dane "$rrdata" || { cat "$work/s_client.out" >&2; fail "OpenSSL refused the certificate with the printed TLSA record"; }
grep -q "^Verification: OK" "$work/s_client.out" || { cat "$work/s_client.out" >&2; fail "no 'Verification: OK'"; }
grep -q "DANE TLSA 3 1 1 .*matched EE certificate" "$work/s_client.out" ||
  { cat "$work/s_client.out" >&2; fail "OpenSSL did not match the record to the EE certificate"; }
echo "interop: OpenSSL matches '$rrdata' with facteur's certificate"

other="3 1 1 $(printf '%064d' 0)"
if dane "$other"; then fail "OpenSSL accepted a TLSA record of another key"; fi
echo "interop: OpenSSL refuses a record of another key"
stop_facteur
echo "interop tlsa: ok"
