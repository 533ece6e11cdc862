#!/usr/bin/env bash
# Interop, several MX hosts on one Maildir root: two facteur processes with
# the same hostname, each PID 1 in a PID namespace of its own (as in two
# containers), each loaded by Postfix's smtp-source with 2,000 messages to
# the same user at once. Every message is in new/, complete, under a name
# of its own: 4,000 files, 2,000 from each host, none lost or replaced.
# Needs: smtp-source (Debian package postfix), unshare (util-linux), root
# for the PID namespaces; .ci/run runs as root and installs smtp-source.
source "$(dirname "$0")/lib/facteur.bash"
[ -x "$SMTP_SOURCE" ] || { echo "interop: smtp-source is required" >&2; exit 1; }
command -v unshare >/dev/null && [ "$(id -u)" = 0 ] || { echo "interop: unshare and root are required" >&2; exit 1; }

per_host=${PER_HOST:-2000} # PER_HOST=20 for a quick run
shared="$work/shared"
declare -A port upid src

# start HOST: a data_dir of its own, the shared Maildir root, one user.
start() {
  local dir="$work/$1" p
  mkdir -p "$dir"
  printf 'alice\n' > "$dir/users"
  write_config "$dir" mx.example.test example.test warn "maildir_root = \"$shared\"
[inbound]
check_senders = false"
  p=${CONF_PORTS[0]}
  port[$1]=$p
  # --kill-child: should this script die, the lib's cleanup kills unshare
  # and the kernel takes its child, facteur, with it.
  (cd "$dir" && exec unshare --pid --fork --kill-child --mount-proc ../facteur serve --config facteur.toml) >"$dir/facteur.out" 2>&1 &
  upid[$1]=$!
  bg_pids+=($!)
  wait_port "$p" && return
  tail -20 "$dir/facteur.out" >&2
  fail "$1 did not start"
}

# stop HOST: SIGTERM to facteur itself (PID 1 of its namespace, its real
# PID is unshare's child); unshare exits with its status.
stop() {
  local child
  child=$(pgrep -P "${upid[$1]}") || fail "$1: no facteur under unshare"
  kill -TERM "$child"
  wait "${upid[$1]}" || { tail -20 "$work/$1/facteur.out" >&2; fail "$1: exit status $? after SIGTERM"; }
}

start a
start b
for h in a b; do
  "$SMTP_SOURCE" -s 20 -m "$per_host" -l 4096 -M mx.example.test -f "source-$h@example.org" -t alice@example.test \
    "127.0.0.1:${port[$h]}" >"$work/source-$h.out" 2>&1 &
  src[$h]=$!
done
for h in a b; do
  wait "${src[$h]}" || { cat "$work/source-$h.out" >&2; fail "smtp-source against $h"; }
done
stop a
stop b

# One pass over the files: each is complete (facteur's header, then
# smtp-source's with a Message-Id of its own, then the body all share), no
# Message-Id is there twice, and each name has PID 1 and the random part of
# the host its Return-Path says delivered it.
python3 - "$shared/alice/Maildir" "$per_host" <<'PY' || fail "shared store"
import collections, os, re, sys
maildir, per_host = sys.argv[1], int(sys.argv[2])
name = re.compile(r"^\d+\.M\d+P1R([0-9a-f]{16})Q\d+\.mx\.example\.test$")
tmp = os.listdir(os.path.join(maildir, "tmp"))
if tmp:
    sys.exit("files left in tmp/: %s" % tmp[:5])
files = os.listdir(os.path.join(maildir, "new"))
randoms, counts, bodies, ids = collections.defaultdict(set), collections.Counter(), collections.Counter(), set()
for f in files:
    m = name.match(f)
    if not m:
        sys.exit("name %r is not <s>.M<us>P1R<16 hex>Q<n>.mx.example.test" % f)
    data = open(os.path.join(maildir, "new", f), "rb").read()
    first, _, rest = data.partition(b"\r\n")
    sender = re.fullmatch(rb"Return-Path: <source-([ab])@example\.org>", first)
    if not sender:
        sys.exit("%s starts with %r" % (f, first))
    host = sender.group(1).decode()
    randoms[host].add(m.group(1))
    counts[host] += 1
    # smtp-source's message: its header, with a Message-Id of its own for
    # each message, and a body the same for all.
    _, _, body = rest.partition(b"\r\n\r\n")
    msgid = re.search(rb"\r\nMessage-Id: (<[^>]+>)\r\n", rest)
    if not msgid or not body.endswith(b"\r\n"):
        sys.exit("%s is incomplete: %d bytes" % (f, len(data)))
    ids.add((host, msgid.group(1)))
    bodies[body] += 1
if len(files) != 2 * per_host or counts != {"a": per_host, "b": per_host}:
    sys.exit("%d files in new/, by host %s; want %d from each" % (len(files), dict(counts), per_host))
if len(ids) != len(files):
    sys.exit("%d distinct Message-Ids in %d files: a message was stored twice, or replaced another" % (len(ids), len(files)))
if len(bodies) != 1 or len(next(iter(bodies))) < 4000:
    sys.exit("bodies differ or are short: %s" % sorted((len(b), n) for b, n in bodies.items())[:10])
# Both hosts are PID 1 with one hostname: only the random part sets their names apart.
if any(len(r) != 1 for r in randoms.values()) or randoms["a"] == randoms["b"]:
    sys.exit("random parts by host: %s; want one per host, not the same" % dict(randoms))
print("interop: %d files in new/, %d from each host, all complete, names of PID 1 with random parts %s and %s"
      % (len(files), per_host, *randoms["a"], *randoms["b"]))
PY
echo "interop shared-store: ok"
