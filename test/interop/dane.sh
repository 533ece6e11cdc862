#!/usr/bin/env bash
# Interop, DANE with a real validating resolver: the zone example.test is
# signed by ldns-signzone and served by NSD; Unbound, with the zone's key as
# its trust anchor, validates it and sets the AD bit; a sending facteur asks
# that Unbound (on loopback, so it believes the AD bit) and relays to a
# receiving facteur, the MX of example.test, whose TLSA record is the one
# `facteur dns records` prints. Delivered under DANE (tls=dane in the log);
# to bad.example.test, whose MX host has a TLSA record of another key, the
# message stays queued with DANE's reason and the MX never gets it.
source "$(dirname "$0")/lib/facteur.bash"
PATH=$PATH:/usr/sbin # nsd, unbound
for c in nsd unbound ldns-keygen ldns-signzone drill swaks; do
  command -v "$c" >/dev/null || { echo "interop: $c is required (packages nsd, unbound, ldnsutils, swaks)" >&2; exit 1; }
done

# The receiving MX; its first start makes its self-signed certificate.
echo "bob" > "$work/users"
start_facteur mx.example.test ""
rec=$(cd "$work" && ./facteur dns records --config facteur.toml example.test | grep ' IN TLSA ') ||
  fail "dns records printed no TLSA record"

read -r P_NSD P_UNBOUND < <(free_ports 2)
dnsdir="$work/dns"
mkdir "$dnsdir"
{ zone_head; cat <<ZONE; } >"$dnsdir/example.test.zone"
$rec
bad IN MX 10 mx2.example.test.
mx2 IN A 127.0.0.1
_25._tcp.mx2 IN TLSA 3 1 1 $(printf '%064d' 0)
ZONE
(
  cd "$dnsdir"
  zsk=$(ldns-keygen -a ECDSAP256SHA256 example.test)
  ksk=$(ldns-keygen -a ECDSAP256SHA256 -k example.test)
  ldns-signzone example.test.zone "$zsk" "$ksk"
  cp "$ksk.ds" anchor
) || fail "signing the zone"

start_nsd "$dnsdir" "$P_NSD" example.test.zone.signed
# A validating resolver as README describes, with a private trust anchor
# and the zone's server as a stub; test. is otherwise one of Unbound's
# default local (empty) zones.
cat >"$dnsdir/unbound.conf" <<CONF
server:
  interface: 127.0.0.1
  port: $P_UNBOUND
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$dnsdir"
  pidfile: "$dnsdir/unbound.pid"
  use-syslog: no
  logfile: ""
  do-not-query-localhost: no
  access-control: 127.0.0.0/8 allow
  module-config: "validator iterator"
  trust-anchor-file: "$dnsdir/anchor"
  local-zone: "test." nodefault
  val-log-level: 2
remote-control:
  control-enable: no
stub-zone:
  name: "example.test."
  stub-addr: 127.0.0.1@$P_NSD
CONF
unbound -c "$dnsdir/unbound.conf" >"$dnsdir/unbound.out" 2>&1 &
bg_pids+=($!)
ad=""
for _ in $(seq 50); do
  ad=$(drill -D -p "$P_UNBOUND" @127.0.0.1 _25._tcp.mx.example.test TLSA 2>/dev/null | grep '^;; flags:' || true)
  [[ $ad == *" ad "* ]] && break
  sleep 0.1
done
[[ $ad == *" ad "* ]] || { cat "$dnsdir"/*.out "$dnsdir/nsd.log" >&2; fail "Unbound did not validate the TLSA record: ${ad:-no answer}"; }
echo "interop: Unbound validates the signed zone served by NSD (AD set on the TLSA answer)"

# The sending facteur, in a folder of its own, asking Unbound.
start_sender "127.0.0.1:$P_UNBOUND"

mailbox="$work/var/mail/bob/Maildir/new"
relay bob@example.test
for _ in $(seq 100); do [ -n "$(ls "$mailbox" 2>/dev/null)" ] && break; sleep 0.2; done
[ "$(ls "$mailbox" 2>/dev/null | wc -l)" -eq 1 ] || sender_fail "not delivered to the MX whose TLSA record matches"
grep -q 'msg=delivery.*tls=dane' "$work/sender.out" || sender_fail "delivered, but not under DANE"
echo "interop: delivered under DANE to the MX whose validated TLSA record matches its certificate"

relay bob@bad.example.test
q=""
for _ in $(seq 100); do
  q=$(sender_queue)
  [[ $q == *"dane: mx2.example.test"* ]] && break
  sleep 0.2
done
[[ $q == *"dane: mx2.example.test"*"no TLSA record"* ]] || sender_fail "not held back by the mismatching TLSA record: $q"
sleep 2 # a retry, which must not go through either
[ "$(ls "$mailbox" | wc -l)" -eq 1 ] || fail "the MX got a message its TLSA record does not allow"
echo "interop: held in the queue for a TLSA record that matches nothing: $(grep -o 'dane: .*' <<<"$q")"
stop_facteur
echo "interop dane: ok"
