#!/usr/bin/env bash
# Interop, MTA-STS with a real web server: nginx serves, with the lines the
# README gives, the policy file `facteur dns records` prints (switched to
# enforce with the id it gives, as after testing), over HTTPS with a
# certificate of a throwaway CA made by openssl; NSD serves example.test
# with the records. `facteur dns check` finds the policy in force; a sending
# facteur that trusts the CA (SSL_CERT_FILE) fetches it from nginx and
# delivers under MTA-STS (tls=mta-sts) to the receiving facteur, whose
# certificate the CA signed for mx.example.test; mail for bad.example.test,
# whose policy names another MX, stays queued with the policy's reason.
source "$(dirname "$0")/lib/facteur.bash"
PATH=$PATH:/usr/sbin # nsd, nginx
for c in nsd nginx openssl swaks; do
  command -v "$c" >/dev/null || { echo "interop: $c is required (packages nsd, nginx-light, openssl, swaks)" >&2; exit 1; }
done
STS_IP=127.84.9.1 # port 443 of an address of its own (root, as in CI); the e2e tests use 127.84.0-2.x

# The throwaway CA, and its certificates for the MX and the policy servers.
pki="$work/pki"
mkdir "$pki"
(
  cd "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 2 -subj "/CN=facteur interop CA"
  cert() { # NAME SAN...
    local name=$1
    shift
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" -out "$name.csr" -subj "/CN=$name"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out "$name.pem" \
      -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$(printf 'DNS:%s,' "$@" | sed 's/,$//')")
  }
  cert mx mx.example.test
  cert sts mta-sts.example.test mta-sts.bad.example.test
) >"$pki/openssl.out" 2>&1 || { cat "$pki/openssl.out" >&2; fail "making the certificates"; }

# The receiving MX, with the CA's certificate, asking NSD (for dns check:
# its inbound checks, which NSD cannot answer for sender.test, are off).
read -r P_NSD < <(free_ports 1)
echo "bob" >"$work/users"
start_facteur mx.example.test "dns = \"127.0.0.1:$P_NSD\"
[inbound]
check_senders = false
[tls]
cert = \"$pki/mx.pem\"
key = \"$pki/mx.key\""
records=$(cd "$work" && ./facteur dns records --config facteur.toml example.test)
txt=$(grep '^_mta-sts\.example\.test\. IN TXT "v=STSv1; id=' <<<"$records") || fail "dns records printed no _mta-sts record"
enforce_id=$(grep -o 'and the id above to id=[0-9a-f]*' <<<"$records" | cut -d= -f2)
[ -n "$enforce_id" ] || fail "dns records gave no id for the enforce policy"
www="$work/www"
mkdir -p "$www/example.test/.well-known" "$www/bad/.well-known"
sed -n 's/^;     //p' <<<"$records" | sed 's/^mode: testing$/mode: enforce/' >"$www/example.test/.well-known/mta-sts.txt"
grep -qx 'mode: enforce' "$www/example.test/.well-known/mta-sts.txt" && grep -qx 'mx: mx.example.test' "$www/example.test/.well-known/mta-sts.txt" ||
  fail "unexpected policy file: $(cat "$www/example.test/.well-known/mta-sts.txt")"
printf 'version: STSv1\nmode: enforce\nmx: mx9.example.test\nmax_age: 86400\n' >"$www/bad/.well-known/mta-sts.txt"

dnsdir="$work/dns"
mkdir "$dnsdir"
{ zone_head; cat <<ZONE; } >"$dnsdir/example.test.zone"
${txt/id=*\"/id=$enforce_id\"}
mta-sts IN A $STS_IP
bad IN MX 10 mx.example.test.
_mta-sts.bad IN TXT "v=STSv1; id=1"
mta-sts.bad IN A $STS_IP
ZONE
start_nsd "$dnsdir" "$P_NSD" example.test.zone

# nginx: one server block per policy host, each with README's two lines.
ngx="$work/nginx"
mkdir "$ngx"
server_block() { # HOST ROOT
  cat <<CONF
  server {
    listen $STS_IP:443 ssl;
    server_name $1;
    ssl_certificate $pki/sts.pem;
    ssl_certificate_key $pki/sts.key;
    root $2;
    location = /.well-known/mta-sts.txt { default_type text/plain; }
  }
CONF
}
cat >"$ngx/nginx.conf" <<CONF
daemon off;
pid $ngx/nginx.pid;
error_log $ngx/error.log;
events {}
http {
  include /etc/nginx/mime.types;
  access_log $ngx/access.log;
$(server_block mta-sts.example.test "$www/example.test")
$(server_block mta-sts.bad.example.test "$www/bad")
}
CONF
nginx -c "$ngx/nginx.conf" -p "$ngx" >"$ngx/nginx.out" 2>&1 &
bg_pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/$STS_IP/443") 2>/dev/null && break; sleep 0.1; done
(exec 3<>"/dev/tcp/$STS_IP/443") 2>/dev/null || { cat "$ngx/nginx.out" "$ngx/error.log" >&2; fail "nginx did not start"; }

# dns check, as the operator runs it, fetches the policy from nginx.
check=$(cd "$work" && SSL_CERT_FILE="$pki/ca.pem" ./facteur dns check --config facteur.toml example.test || true)
grep -q "^ok    example.test MTA-STS: id=$enforce_id, mode: enforce, mx: mx.example.test, max_age: 604800$" <<<"$check" ||
  fail "dns check does not find the policy nginx serves:
$check"
echo "interop: dns check finds the enforce policy nginx serves"

# The sending facteur, in a folder of its own, trusting the CA.
start_sender "127.0.0.1:$P_NSD" SSL_CERT_FILE="$pki/ca.pem"

mailbox="$work/var/mail/bob/Maildir/new"
relay bob@example.test
for _ in $(seq 100); do [ -n "$(ls "$mailbox" 2>/dev/null)" ] && break; sleep 0.2; done
[ "$(ls "$mailbox" 2>/dev/null | wc -l)" -eq 1 ] || sender_fail "not delivered to the MX the policy names"
grep -q 'msg=delivery.*tls=mta-sts' "$work/sender.out" || sender_fail "delivered, but not under MTA-STS"
grep -q '"GET /.well-known/mta-sts.txt HTTP/1.1" 200' "$ngx/access.log" || sender_fail "nginx served no policy"
echo "interop: delivered under the MTA-STS policy fetched from nginx"

relay bob@bad.example.test
q=""
for _ in $(seq 100); do
  q=$(sender_queue)
  [[ $q == *"mta-sts enforce: mx.example.test"* ]] && break
  sleep 0.2
done
[[ $q == *"MX host mx.example.test does not match the policy (mx: mx9.example.test)"* ]] ||
  sender_fail "not held back by the policy of bad.example.test: $q"
sleep 2 # a retry, which must not go through either
[ "$(ls "$mailbox" | wc -l)" -eq 1 ] || fail "the MX got a message its domain's policy does not allow"
echo "interop: held in the queue for an MX the policy does not name"
stop_facteur
echo "interop mtasts: ok"
