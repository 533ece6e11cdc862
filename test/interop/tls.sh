#!/usr/bin/env bash
# Interop, TLS: testssl.sh against the STARTTLS port and the implicit-TLS
# port fails on any finding rated HIGH or CRITICAL, except the two that any
# self-signed test certificate has (no chain of trust, no CRL/OCSP URI);
# openssl s_client must be refused TLS 1.1 and get TLS 1.2 and 1.3.
source "$(dirname "$0")/lib/facteur.bash"
TESTSSL=$(command -v testssl || command -v testssl.sh || true)
[ -n "$TESTSSL" ] && command -v openssl >/dev/null || { echo "interop: testssl.sh and openssl are required" >&2; exit 1; }

: > "$work/users"
start_facteur mx.example.test ""

findings() { # json file -> HIGH/CRITICAL findings that are about the setup
  python3 - "$1" <<'PY'
import json, sys
inherent = {"cert_chain_of_trust", "cert_revocation"}  # self-signed test certificate
bad = []
for sr in json.load(open(sys.argv[1])).get("scanResult", []):
    for v in sr.values():
        if isinstance(v, list):
            bad += [f"{f['severity']} {f['id']}: {f.get('finding', '')}" for f in v
                    if isinstance(f, dict) and f.get("severity") in ("HIGH", "CRITICAL") and f["id"] not in inherent]
print("\n".join(bad))
PY
}

scan() { # name, then testssl's target arguments
  local name=$1; shift
  "$TESTSSL" --quiet --color 0 --warnings off -p -s -f -U -S --jsonfile-pretty "$work/$name.json" "$@" >"$work/$name.txt" 2>&1 || true
  [ -s "$work/$name.json" ] || { tail -20 "$work/$name.txt" >&2; fail "testssl.sh produced no result for $name"; }
  bad=$(findings "$work/$name.json")
  [ -z "$bad" ] || { echo "$bad" >&2; fail "testssl.sh: HIGH/CRITICAL findings on $name"; }
  echo "interop: testssl.sh on $name: no HIGH or CRITICAL finding"
}
scan starttls -t smtp "127.0.0.1:$P_SMTP"
scan smtps "127.0.0.1:$P_SMTPS"

s_client() { openssl s_client -connect "127.0.0.1:$P_SMTPS" "$@" </dev/null >"$work/s_client.out" 2>&1; }
# SECLEVEL=0: OpenSSL 3 refuses TLS 1.1 on its own side otherwise, and the
# check would pass whatever facteur does.
old=(-tls1_1 -cipher 'DEFAULT@SECLEVEL=0')
if s_client "${old[@]}"; then fail "TLS 1.1 handshake succeeded"; fi
s_client -tls1_2 || fail "TLS 1.2 refused"
s_client -tls1_3 || fail "TLS 1.3 refused"
openssl s_client -connect "127.0.0.1:$P_SMTP" -starttls smtp "${old[@]}" </dev/null >"$work/s_client.out" 2>&1 && fail "TLS 1.1 after STARTTLS succeeded"
echo "interop: openssl s_client: TLS 1.1 refused, 1.2 and 1.3 accepted"
stop_facteur
echo "interop tls: ok"
