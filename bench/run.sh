#!/usr/bin/env bash
# facteur against Postfix on this machine, side by side in one run.
#
#   bash bench/run.sh                  # as root, from anywhere in the repo
#   N=2000 REPS=3 bash bench/run.sh    # a quick run
#
# Knobs (environment):
#   N=20000     messages per throughput run          C=20     concurrent sessions
#   SIZE=4096   payload bytes (smtp-source -l)       REPS=3   interleaved repetitions
#   LAT_N=min(N,5000)  messages of each latency run (Go client, bench/loadgen)
#   IDLE=10000  idle connections held (bench/idleconns)
#   OSD_RELAY_N=min(N,1000)  messages of OpenSMTPD's relay runs (see there)
#   BIG=25000000 bytes of the one large message
#   PROFILE=1   also take a CPU profile of facteur during the first inbound
#               and relay runs (bench/results/<date>-{inbound,relay}.pprof,
#               PROFILE_SECONDS long, default 5)
#   STEPS="facteur_relay postfix_relay"  only these steps (default: all of
#               facteur_inbound postfix_inbound opensmtpd_inbound
#               facteur_inbound_file (inbound with sync = "file")
#               facteur_inbound_checked (inbound with SPF, DKIM and DMARC
#               checked against bench/dnsserve) facteur_relay
#               postfix_relay opensmtpd_relay ceiling memory); for profiling
#   TINY=1      the curves only (sessions starttls sizes queue_depth), each
#               in a tiny form that checks the harness, not the servers:
#               N=100, 20 sessions, one size, 100 queued messages, no
#               SETTLE, no OpenSMTPD; the table is not kept in
#               bench/results. CI runs it (bench/ci.sh).
#   The curves' own knobs are in bench/curves.sh.
#   KEEP=1      keep the work directory (configs, logs) under bench/.work
#   FS=journal  put the servers' data on a fresh ext4 with a journal (a
#               loop-mounted image in the work directory). This machine's
#               own ext4 has no journal, and without one ext4 checks every
#               recently deleted inode at each file creation, which makes
#               creating a file cost far more than on a usual server.
#   SETTLE=31   seconds of quiet before each measured run (0 with
#               FS=journal). Without a journal, a file created within 30 s
#               of many deletions in its block group pays for each of them
#               (see FS), so a run must not pay for the files the previous
#               run or this script deleted. For the same reason no run's
#               files are deleted before the end.
#
# What it does, in a private network namespace whose only interface is lo
# (unshare --net: nothing can leave the machine, no port can collide):
#   * installs postfix with apt-get when smtp-source/smtp-sink are missing,
#     and stops its packaged instance; creates the local user "bench";
#   * OpenSMTPD too, where apt can fetch it (OPENSMTPD=0 skips it), with
#     the backlog of its listen(2) raised from 5 to OSD_BACKLOG=1024 by
#     bench/listen-backlog.c (OSD_BACKLOG=0: as shipped; see that file): its
#     package conflicts with postfix's, so its .deb is downloaded and
#     unpacked under bench/.deps (its libraries installed with apt-get), its
#     privilege-separation users created, and its compiled-in paths
#     (/usr/libexec, /var/spool, /run) bind-mounted in the private mount
#     namespace only while it runs;
#   * builds facteur and the small Go tools under bench/;
#   * REPS times, interleaved facteur, Postfix, facteur, Postfix...:
#       inbound  smtp-source -s C -m N -l SIZE to bench@localhost; msgs/s
#                until the N-th file is in Maildir/new
#       relay    the same to the relay listener, delivered to smtp-sink -M N
#                on 127.0.0.2; msgs/s until smtp-sink has counted all N
#       (OpenSMTPD gets both, with its defaults: action maildir, and relay
#       host smtp://127.0.0.2)
#       latency  bench/loadgen: p50/p99 from the end of DATA to the 250
#       ceiling  smtp-sink alone under the same smtp-source load, and
#                bench/fsyncprobe on the data disk
#   * memory (facteur; once): IDLE idle connections, RSS before/after; one
#     BIG-byte message, peak RSS over the baseline while it is accepted;
#     Postfix gets the large message too (sum of PSS over its processes).
# The table (medians) goes to stdout and bench/results/<date>.md. Every
# server started is stopped on exit.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
PATH=$PATH:/usr/sbin:/sbin:/usr/local/go/bin
if [ "${TINY:-}" = 1 ]; then
  N=${N:-100} REPS=1 SETTLE=0 OPENSMTPD=0 STEPS=${STEPS:-sessions starttls sizes queue_depth}
  SESSIONS=${SESSIONS:-20} TLS_KEYS=${TLS_KEYS:-ecdsa} TLS_MODES=${TLS_MODES:-starttls/full smtps/resumed} SIZES=${SIZES:-4096} SIZE_MB=${SIZE_MB:-1}
  DD_MB=${DD_MB:-8} QUEUE_N=${QUEUE_N:-100} IDLE_CPU_SECS=${IDLE_CPU_SECS:-2} PF_LIMIT=${PF_LIMIT:-150}
fi
N=${N:-20000}; C=${C:-20}; SIZE=${SIZE:-4096}; REPS=${REPS:-3}
LAT_N=${LAT_N:-$((N < 5000 ? N : 5000))}
IDLE=${IDLE:-10000}; BIG=${BIG:-25000000}
OSD_RELAY_N=${OSD_RELAY_N:-$((N < 1000 ? N : 1000))}
TIMEOUT=${TIMEOUT:-600} # seconds any one run may take
log() { echo "[bench] $*" >&2; }

[ "$(id -u)" = 0 ] || { echo "bench/run.sh needs root (apt-get, unshare, a Postfix instance)" >&2; exit 2; }

# ---- outside the namespace: install, build, then re-enter ------------------
if [ -z "${FACTEUR_BENCH_NS:-}" ]; then
  if ! [ -x /usr/sbin/smtp-source ] || ! [ -x /usr/sbin/smtp-sink ] || ! [ -x /usr/sbin/postfix ]; then
    log "installing postfix (smtp-source, smtp-sink) with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # "No configuration": the bench runs its own instance; the packaged one
    # is not wanted and must not hold port 25.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -q >/dev/null
    apt-get install -y -q postfix >/dev/null
  fi
  # Only the packaged instance's own stop commands: nothing else is touched.
  if [ -f /etc/postfix/main.cf ] && postfix status >/dev/null 2>&1; then
    log "stopping the packaged Postfix instance"; postfix stop >/dev/null 2>&1 || true
  fi
  for t in unshare:util-linux ip:iproute2 ss:iproute2 curl:curl openssl:openssl; do
    command -v "${t%%:*}" >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${t#*:}" >/dev/null; }
  done
  OSD=$BENCH/.deps/opensmtpd
  if [ "${OPENSMTPD:-1}" = 1 ] && ! [ -x "$OSD/usr/sbin/smtpd" ]; then
    log "fetching OpenSMTPD (apt-get download; unpacked under bench/.deps, not installed)"
    mkdir -p "$BENCH/.deps/dl" && chmod 777 "$BENCH/.deps/dl" # apt's _apt user writes there
    if (cd "$BENCH/.deps/dl" && rm -f opensmtpd_*.deb && apt-get download -q opensmtpd >/dev/null 2>&1); then
      deb=$(echo "$BENCH"/.deps/dl/opensmtpd_*.deb)
      # Its shared libraries, from its own Depends line.
      libs=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' | grep -E '^(lib|zlib)' || true)
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q $libs >/dev/null
      rm -rf "$OSD" && dpkg-deb -x "$deb" "$OSD" && dpkg-deb -f "$deb" Version > "$OSD/VERSION"
    else
      log "OpenSMTPD cannot be fetched here: measuring without it"
    fi
  fi
  if [ "${OPENSMTPD:-1}" = 1 ] && [ -x "$OSD/usr/sbin/smtpd" ]; then
    # What its postinst would do: privilege-separation users and the
    # compiled-in empty chroot directory.
    install -d -m 755 /var/lib/opensmtpd /var/lib/opensmtpd/empty
    for u in opensmtpd opensmtpq; do
      getent group $u >/dev/null || groupadd --system $u
      id $u >/dev/null 2>&1 || useradd --system -g $u -d /var/lib/opensmtpd/empty -s /usr/sbin/nologin $u
    done
    if [ "${OSD_BACKLOG:-1024}" != 0 ]; then
      command -v gcc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc libc6-dev >/dev/null
      gcc -O2 -shared -fPIC -o "$BENCH/.deps/listen-backlog.so" "$BENCH/listen-backlog.c" -ldl
    fi
    export OSD OSD_BACKLOG=${OSD_BACKLOG:-1024}
  else
    export OSD=""
  fi
  command -v go >/dev/null || { echo "bench/run.sh: go is needed to build facteur (https://go.dev/dl/)" >&2; exit 2; }
  id bench >/dev/null 2>&1 || useradd -m -s /bin/bash bench
  mkdir -p "$BENCH/.work" "$BENCH/results"
  WORK=$(mktemp -d "$BENCH/.work/run.XXXXXX")
  chmod 755 "$WORK"
  log "building facteur and the bench tools into $WORK/bin"
  (cd "$ROOT" && go build -o "$WORK/bin/" ./cmd/facteur ./bench/loadgen ./bench/idleconns ./bench/fsyncprobe ./bench/dnsserve ./bench/queuefill)
  # The tree as built: an edit made while the bench runs must not mark it.
  FACTEUR_VERSION=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo '?')
  export N C SIZE REPS LAT_N IDLE BIG TIMEOUT WORK OSD_RELAY_N FACTEUR_VERSION
  export TINY=${TINY:-} SESSIONS=${SESSIONS:-} SESS_N=${SESS_N:-} SESS_SERVERS=${SESS_SERVERS:-} PF_LIMIT=${PF_LIMIT:-} TLS_N=${TLS_N:-} TLS_KEYS=${TLS_KEYS:-} TLS_MODES=${TLS_MODES:-} TLS_GROUPS=${TLS_GROUPS:-}
  export SIZES=${SIZES:-} SIZE_MB=${SIZE_MB:-} DD_MB=${DD_MB:-} QUEUE_N=${QUEUE_N:-} IDLE_CPU_SECS=${IDLE_CPU_SECS:-}
  export STEPS=${STEPS:-} PROFILE=${PROFILE:-} PROFILE_SECONDS=${PROFILE_SECONDS:-} KEEP=${KEEP:-} FS=${FS:-}
  export SETTLE=${SETTLE:-$([ "${FS:-}" = journal ] && echo 0 || echo 31)}
  exec unshare --net --mount --propagation private -- env FACTEUR_BENCH_NS=1 bash "$BENCH/run.sh"
fi

# ---- inside: lo only, private mounts ---------------------------------------
ip link set lo up
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' > "$WORK/resolv.conf"
mount --bind "$WORK/resolv.conf" /etc/resolv.conf # no resolver can leave lo
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
BIN=$WORK/bin
source "$BENCH/curves.sh"
# DATA holds the servers' queues and Maildirs.
DATA=$WORK
if [ "${FS:-}" = journal ]; then
  # Mounted in this private namespace: it goes away with it.
  truncate -s 8G "$WORK/fs.img"
  mkfs.ext4 -q -F "$WORK/fs.img"
  mkdir "$WORK/disk"
  mount -o loop "$WORK/fs.img" "$WORK/disk"
  chmod 755 "$WORK/disk"
  DATA=$WORK/disk
fi
SMTP_SOURCE=/usr/sbin/smtp-source SMTP_SINK=/usr/sbin/smtp-sink
P_SMTP=2525 P_RELAY=2587 P_PF=2625 P_SINK=2526 P_PPROF=6060 P_DNS=2553
DATE=$(date +%Y-%m-%d)
RESULTS=$WORK/results.txt # one "key value" line per measurement
: > "$RESULTS"

PIDS=()        # background processes we started (each its own session)
PF_ETC=""      # running Postfix instance, if any
OSD_PID=""     # running OpenSMTPD, if any
cleanup() {
  set +e
  [ -n "$PF_ETC" ] && postfix -c "$PF_ETC" stop >/dev/null 2>&1
  [ -n "$OSD_PID" ] && stop_opensmtpd
  for p in "${PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  [ "$DATA" != "$WORK" ] && umount "$DATA"
  if [ -z "$KEEP" ]; then rm -rf "$WORK"; else log "work directory kept: $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # host port
  for _ in $(seq 300); do
    ss -Htln | awk '{ print $4 }' | grep -qxF "$1:$2" && return 0
    sleep 0.05
  done
  log "nothing listening on $1:$2"; return 1
}
record() { echo "$1 $2" >> "$RESULTS"; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", n / (b - a) }'; }

# Sum of RSS or PSS (kB) of the processes of session $1 (smaps_rollup).
mem_kb() { # sid Rss|Pss
  local f l pid k v u sum=0
  for f in /proc/[0-9]*/stat; do
    { read -r l < "$f"; } 2>/dev/null || continue
    l=${l##*) }; set -- $l
    [ "${4:-}" = "$SID" ] || continue
    pid=${f#/proc/}; pid=${pid%/stat}
    while read -r k v u; do [ "$k" = "$MEMKEY:" ] && { sum=$((sum + v)); break; }; done 2>/dev/null < "/proc/$pid/smaps_rollup" || true
  done
  echo $sum
}
# Peak of mem_kb over samples every $4 s (default 0.1), into file $3, until
# killed. A sample reads every process's smaps_rollup: with a thousand
# Postfix processes, sampling often would load the machine it measures.
sampler() { # sid Rss|Pss file [seconds]
  ( SID=$1 MEMKEY=$2; peak=0; trap 'echo $peak > "$3"; exit 0' TERM
    while :; do v=$(mem_kb); [ "$v" -gt "$peak" ] && peak=$v && echo $peak > "$3"; sleep "${4:-0.1}"; done ) &
  SAMPLER=$!
}
stop_sampler() { kill -TERM "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; }
# CPU time (ms) of the processes of session $1 so far, with that of the
# children they reaped: its growth over a run is what the server spent on it,
# a figure the disk's noise hardly touches.
cpu_ms() { # sid
  local sid=$1 f l sum=0
  for f in /proc/[0-9]*/stat; do
    { read -r l < "$f"; } 2>/dev/null || continue
    l=${l##*) }; set -- $l
    [ "${4:-}" = "$sid" ] || continue
    sum=$((sum + ${12} + ${13} + ${14} + ${15})) # utime stime cutime cstime
  done
  echo $((sum * 1000 / CLK_TCK))
}
CLK_TCK=$(getconf CLK_TCK)
per_msg() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.3f", (b - a) / n }'; } # ms0 ms1 count
sid_of() { local l; read -r l < "/proc/$1/stat"; l=${l##*) }; set -- $l; echo "$4"; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; } # pid VmRSS|VmHWM

# ---- facteur ----------------------------------------------------------------
FPID=""
# The curves (bench/curves.sh) add to the config through F_LISTEN (lines of
# [listen]), F_LIMITS ([limits]) and F_OUTBOUND ([outbound]).
start_facteur() { # dir [extra toml] [extra top-level toml]
  local d=$1
  mkdir -p "$d"
  echo bench > "$d/users"
  cat > "$d/facteur.toml" <<EOF
# Throwaway bench config: defaults except ports, limits for the bench, log level.
${3:-}
hostname = "bench.localdomain"
domains = ["localhost"]
data_dir = "var"
maildir_root = "maildirs"
users_file = "users"
run_as_root = true # the bench runs as root; facteur would otherwise switch to user "facteur"
[listen]
smtp = ["127.0.0.1:$P_SMTP"]
relay = ["127.0.0.1:$P_RELAY"]
${F_LISTEN:-smtps = []}
[limits]
max_connections = $((MAXCONN + 1000))
max_connections_per_ip = $((MAXCONN + 1000))
${F_LIMITS:-}
[outbound]
port = $P_SINK
${F_OUTBOUND:-}
[inbound]
# Off but in facteur_inbound_checked, which brings a DNS for the senders.
check_senders = ${CHECK_SENDERS:-false}
[log]
level = "info"
file = "facteur.log"
${2:-}
EOF
  launch_facteur "$d"
  wait_port 127.0.0.1 "$P_SMTP" || { tail "$d/facteur.out" "$d/facteur.log" >&2; exit 1; }
  wait_port 127.0.0.1 "$P_RELAY"
}
# launch_facteur starts facteur on the config start_facteur wrote in dir,
# without waiting for it to listen.
launch_facteur() { # dir
  (cd "$1" && exec setsid "$BIN/facteur" serve --config facteur.toml) >>"$1/facteur.out" 2>&1 &
  FPID=$!; PIDS+=("$FPID")
}
stop_facteur() {
  kill -TERM "$FPID" 2>/dev/null || true; wait "$FPID" 2>/dev/null || true
  PIDS=("${PIDS[@]/$FPID}"); FPID=""
}

# ---- Postfix: a private instance in the run directory -----------------------
start_postfix() { # dir relay(0/1)
  local d=$1
  mkdir -p "$d/etc" "$d/spool" "$d/data"
  chown postfix "$d/data"
  install -d -m 700 -o bench -g bench "$d/maildirs/bench" "$d/maildirs/bench/tmp" "$d/maildirs/bench/new" "$d/maildirs/bench/cur"
  chmod 755 "$d/maildirs"
  cat > "$d/etc/main.cf" <<EOF
# Bench instance: Postfix defaults (fsync of queue files, process limits,
# in_flow_delay...) except paths, ports and Maildir delivery for "bench".
compatibility_level = 3.6
queue_directory = $d/spool
data_directory = $d/data
daemon_directory = $(postconf -dh daemon_directory)
command_directory = $(postconf -dh command_directory)
shlib_directory = $(postconf -dh shlib_directory)
meta_directory = $(postconf -dh meta_directory)
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.localdomain
mydomain = localdomain
myorigin = \$myhostname
mydestination = localhost, \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
home_mailbox =
# A trailing "/" means Maildir <dir>/<user>/, delivered by local(8).
mail_spool_directory = $d/maildirs/
biff = no
maillog_file = $d/maillog
maillog_file_prefixes = $d
EOF
  [ "$2" = 1 ] && echo "relayhost = [127.0.0.2]:$P_SINK" >> "$d/etc/main.cf"
  # The curves' additions (bench/curves.sh): main.cf lines, master.cf lines.
  [ -n "${PF_MAIN:-}" ] && echo "$PF_MAIN" >> "$d/etc/main.cf"
  # The stock internal services with chroot off, and smtpd on the bench port.
  cat > "$d/etc/master.cf" <<EOF
127.0.0.1:$P_PF inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
smtp       unix  - - n -  - smtp
relay      unix  - - n -  - smtp
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
local      unix  - n n -  - local
virtual    unix  - n n -  - virtual
lmtp       unix  - - n -  - lmtp
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
${PF_MASTER:-}
EOF
  postfix -c "$d/etc" check >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; exit 1; }
  PF_ETC=$d/etc
  postfix -c "$d/etc" start >"$d/start.log" 2>&1 || { cat "$d/start.log" "$d/maillog" >&2; exit 1; }
  wait_port 127.0.0.1 "$P_PF"
  local mpid; for _ in $(seq 100); do [ -s "$d/spool/pid/master.pid" ] && break; sleep 0.05; done
  read -r mpid < "$d/spool/pid/master.pid"
  PF_SID=$(sid_of "$mpid")
}
stop_postfix() { postfix -c "$PF_ETC" stop >/dev/null 2>&1 || true; PF_ETC=""; }

# ---- OpenSMTPD: the unpacked package, its fixed paths bind-mounted ----------
P_OSD=2725
OSD_MOUNTS=()
start_opensmtpd() { # dir relay(0/1)
  local d=$1 m
  mkdir -p "$d/spool" "$d/run"
  install -d -m 755 "$d/maildirs"
  install -d -m 700 -o bench -g bench "$d/maildirs/bench" "$d/maildirs/bench/tmp" "$d/maildirs/bench/new" "$d/maildirs/bench/cur"
  for m in "$OSD/usr/libexec:/usr/libexec" "$d/spool:/var/spool" "$d/run:/run"; do
    mount --bind "${m%%:*}" "${m#*:}"; OSD_MOUNTS+=("${m#*:}")
  done
  {
    echo "# Bench instance: OpenSMTPD defaults (queue on disk) but for the port,"
    echo "# and Maildir delivery for \"bench\" or relaying everything to smtp-sink."
    echo "listen on lo port $P_OSD hostname bench.localdomain"
    echo "action \"local\" maildir \"$d/maildirs/%{user.username}\""
    echo "action \"relay\" relay host smtp://127.0.0.2:$P_SINK"
    if [ "$2" = 1 ]; then echo 'match from local for any action "relay"'
    else echo 'match from local for local action "local"'; fi
  } > "$d/smtpd.conf"
  "$OSD/usr/sbin/smtpd" -n -f "$d/smtpd.conf" >"$d/check.log" 2>&1 || { cat "$d/check.log" >&2; exit 1; }
  local preload=""
  [ "$OSD_BACKLOG" != 0 ] && preload=$ROOT/bench/.deps/listen-backlog.so
  LD_PRELOAD=$preload LISTEN_BACKLOG=$OSD_BACKLOG setsid "$OSD/usr/sbin/smtpd" -d -f "$d/smtpd.conf" >"$d/log" 2>&1 &
  OSD_PID=$!; PIDS+=("$OSD_PID")
  wait_port 127.0.0.1 "$P_OSD" || { tail "$d/log" >&2; exit 1; }
}
stop_opensmtpd() {
  local m
  kill -TERM "$OSD_PID" 2>/dev/null || true; wait "$OSD_PID" 2>/dev/null || true
  PIDS=("${PIDS[@]/$OSD_PID}"); OSD_PID=""
  for m in "${OSD_MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m"; done
  OSD_MOUNTS=()
}

# ---- smtp-sink ----------------------------------------------------------------
SINK=""
start_sink() { # ip port [-M N]
  setsid "$SMTP_SINK" -u nobody "${@:3}" "$1:$2" 1024 >"$WORK/sink.log" 2>&1 &
  SINK=$!; PIDS+=("$SINK")
  wait_port "$1" "$2"
}
wait_sink() { # bounded wait for smtp-sink -M N to exit
  local deadline=$((${EPOCHSECONDS} + TIMEOUT))
  while kill -0 "$SINK" 2>/dev/null; do
    [ "$EPOCHSECONDS" -lt "$deadline" ] || { log "smtp-sink did not get all messages in ${TIMEOUT}s"; return 1; }
    sleep 0.02
  done
  wait "$SINK" 2>/dev/null || true
}
stop_sink() { kill -TERM "$SINK" 2>/dev/null || true; wait "$SINK" 2>/dev/null || true; PIDS=("${PIDS[@]/$SINK}"); SINK=""; }

source_load() { # port rcpt
  "$SMTP_SOURCE" -s "$C" -m "$N" -l "$SIZE" -M bench.localdomain -f source@localhost -t "$2" 127.0.0.1:"$1" \
    >"$WORK/smtp-source.log" 2>&1 || { log "smtp-source failed"; tail -5 "$WORK/smtp-source.log" >&2; return 1; }
}
wait_maildir() { # dir: until N files are in new/; prints the time of the last rename
  local deadline=$((${EPOCHSECONDS} + TIMEOUT)) n
  while n=$(find "$1/new" -type f | wc -l); [ "$n" -lt "$N" ]; do
    [ "$EPOCHSECONDS" -lt "$deadline" ] || { log "only $n/$N in $1/new after ${TIMEOUT}s"; return 1; }
    sleep 0.1
  done
  stat -c %.6Y "$1/new"
}
profile() { # name seconds: CPU profile of facteur, in the background
  [ -n "$PROFILE" ] || return 0
  curl -s -o "$BENCH/results/$DATE-$1.pprof" "http://127.0.0.1:$P_PPROF/debug/pprof/profile?seconds=${PROFILE_SECONDS:-$2}" &
  PROF=$!
}
profile_wait() { [ -n "$PROFILE" ] && [ -n "${PROF:-}" ] && { wait "$PROF" || true; PROF=""; }; return 0; }
pprof_toml() { [ -n "$PROFILE" ] && [ "$1" = 1 ] && printf '[debug]\npprof = "127.0.0.1:%s"\n' "$P_PPROF"; return 0; }

# ---- one measurement each ---------------------------------------------------
# latency name port dir: bench/loadgen's p50/p99 from the end of DATA to
# the 250. A session error fails the bench, except for OpenSMTPD with
# OSD_BACKLOG=0, whose backlog of 5 resets some of C concurrent connects:
# its latency is then that of the sessions that got in.
latency() {
  if ! "$BIN/loadgen" -addr 127.0.0.1:$2 -n "$LAT_N" -c "$C" -size "$SIZE" -to bench@localhost > "$3/lat" 2>&1; then
    [ "$1" = opensmtpd ] || { cat "$3/lat"; exit 1; }
    log "OpenSMTPD latency run: $(tail -1 "$3/lat")"
  fi
  record lat_errors.$1 "$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' "$3/lat")"
  record lat50.$1 "$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' "$3/lat")"
  record lat99.$1 "$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' "$3/lat")"
}
facteur_inbound() { # rep
  local d=$DATA/f-in-$1 t0 t2 c0 c2
  start_facteur "$d" "$(pprof_toml "$1")"
  sampler "$(sid_of "$FPID")" Rss "$d/peak"
  sync
  profile inbound 5
  c0=$(cpu_ms "$(sid_of "$FPID")"); t0=$(now)
  source_load "$P_SMTP" bench@localhost
  t2=$(wait_maildir "$d/maildirs/bench/Maildir")
  c2=$(cpu_ms "$(sid_of "$FPID")")
  stop_sampler; profile_wait
  record inbound.facteur "$(rate "$N" "$t0" "$t2")"
  record inbound_cpu.facteur "$(per_msg "$c0" "$c2" "$N")"
  record inbound_mem.facteur "$(status_kb "$FPID" VmHWM)"
  latency facteur "$P_SMTP" "$d"
  stop_facteur
}
# The same with sync = "file" (an fsync per file and per directory instead
# of the shared syncfs): what the default buys, in the same run.
facteur_inbound_file() { # rep
  local d=$DATA/f-in-file-$1 t0 t2
  start_facteur "$d" "" 'sync = "file"'
  sync
  t0=$(now)
  source_load "$P_SMTP" bench@localhost
  t2=$(wait_maildir "$d/maildirs/bench/Maildir")
  record inbound_file.facteur "$(rate "$N" "$t0" "$t2")"
  stop_facteur
}
# The same with SPF, DKIM and DMARC checked, against bench/dnsserve on
# loopback: SPF of localhost (smtp-source's sender) allows 127.0.0.1, its
# DMARC asks p=reject; the messages are unsigned (dkim=none), so every
# message costs the three lookups, no cache, and passes by aligned SPF.
facteur_inbound_checked() { # rep
  local d=$DATA/f-in-checked-$1 t0 t2 c0 c2 dns
  setsid "$BIN/dnsserve" -addr "127.0.0.1:$P_DNS" -txt "localhost=v=spf1 ip4:127.0.0.1 -all" \
    -txt "_dmarc.localhost=v=DMARC1; p=reject" >"$WORK/dnsserve.log" 2>&1 &
  dns=$!; PIDS+=("$dns")
  wait_port 127.0.0.1 "$P_DNS"
  CHECK_SENDERS=true start_facteur "$d" "" "dns = \"127.0.0.1:$P_DNS\""
  sync
  c0=$(cpu_ms "$(sid_of "$FPID")"); t0=$(now)
  source_load "$P_SMTP" bench@localhost
  t2=$(wait_maildir "$d/maildirs/bench/Maildir")
  c2=$(cpu_ms "$(sid_of "$FPID")")
  record inbound_checked.facteur "$(rate "$N" "$t0" "$t2")"
  record inbound_checked_cpu.facteur "$(per_msg "$c0" "$c2" "$N")"
  stop_facteur
  kill -TERM "$dns" 2>/dev/null; wait "$dns" 2>/dev/null; PIDS=("${PIDS[@]/$dns}")
}
facteur_relay() {
  local d=$DATA/f-relay-$1 t0 t2 c0 c2
  start_sink 127.0.0.2 "$P_SINK" -M "$N"
  start_facteur "$d" "$(pprof_toml "$1")"
  sampler "$(sid_of "$FPID")" Rss "$d/peak"
  sync
  profile relay 5
  c0=$(cpu_ms "$(sid_of "$FPID")"); t0=$(now)
  source_load "$P_RELAY" "bench@[127.0.0.2]"
  wait_sink; t2=$(now)
  c2=$(cpu_ms "$(sid_of "$FPID")")
  stop_sampler; profile_wait
  record relay.facteur "$(rate "$N" "$t0" "$t2")"
  record relay_cpu.facteur "$(per_msg "$c0" "$c2" "$N")"
  record relay_mem.facteur "$(status_kb "$FPID" VmHWM)"
  stop_facteur; stop_sink
}
# The other servers, each several processes: start_<name> dir relay(0/1)
# sets <name>'s session id, stop_<name> stops it.
other_sid() { case $1 in postfix) echo "$PF_SID" ;; opensmtpd) sid_of "$OSD_PID" ;; esac; }
other_inbound() { # name dir port
  local t0 t2 c0 c2
  start_$1 "$2" 0
  sampler "$(other_sid "$1")" Pss "$2/peak"
  sync
  c0=$(cpu_ms "$(other_sid "$1")"); t0=$(now)
  source_load "$3" bench@localhost
  t2=$(wait_maildir "$2/maildirs/bench")
  c2=$(cpu_ms "$(other_sid "$1")")
  stop_sampler
  record inbound.$1 "$(rate "$N" "$t0" "$t2")"
  record inbound_cpu.$1 "$(per_msg "$c0" "$c2" "$N")"
  record inbound_mem.$1 "$(cat "$2/peak")"
  latency "$1" "$3" "$2"
  stop_$1
}
other_relay() { # name dir port messages
  local t0 t2 c0 c2 N=$4
  start_sink 127.0.0.2 "$P_SINK" -M "$N"
  start_$1 "$2" 1
  sampler "$(other_sid "$1")" Pss "$2/peak"
  sync
  c0=$(cpu_ms "$(other_sid "$1")"); t0=$(now)
  source_load "$3" bench@relay.test
  wait_sink; t2=$(now)
  c2=$(cpu_ms "$(other_sid "$1")")
  stop_sampler
  record relay.$1 "$(rate "$N" "$t0" "$t2")"
  record relay_cpu.$1 "$(per_msg "$c0" "$c2" "$N")"
  record relay_mem.$1 "$(cat "$2/peak")"
  stop_$1; stop_sink
}
postfix_inbound() { other_inbound postfix "$DATA/p-in-$1" "$P_PF"; }
postfix_relay() { other_relay postfix "$DATA/p-relay-$1" "$P_PF" "$N"; }
opensmtpd_inbound() { other_inbound opensmtpd "$DATA/o-in-$1" "$P_OSD"; }
# OpenSMTPD relays to smtp-sink over one session at about 15 msgs/s here
# (stalls of tens of ms per message between its client and smtp-sink, not
# chased further), so it relays OSD_RELAY_N messages, not N: its rate is
# still messages per second, but 20,000 would take over 20 minutes a run.
opensmtpd_relay() { other_relay opensmtpd "$DATA/o-relay-$1" "$P_OSD" "$OSD_RELAY_N"; }
ceiling() {
  local t0 t1
  start_sink 127.0.0.1 "$P_SMTP"
  t0=$(now); source_load "$P_SMTP" bench@localhost; t1=$(now)
  stop_sink
  record sink "$(rate "$N" "$t0" "$t1")"
  local p; p=$("$BIN/fsyncprobe" -dir "$DATA" -n 2000)
  record dsync "$(sed 's/.*dsync_per_s=\([0-9]*\).*/\1/' <<<"$p")"
  record deliver "$(sed 's/.*deliver_per_s=\([0-9]*\).*/\1/' <<<"$p")"
}
memory() {
  local d=$DATA/f-mem before after out
  start_facteur "$d"
  sleep 0.5
  before=$(status_kb "$FPID" VmRSS)
  coproc IDLEC { exec "$BIN/idleconns" -addr 127.0.0.1:$P_SMTP -n "$IDLE"; }
  read -r out <&"${IDLEC[0]}"
  sleep 1
  after=$(status_kb "$FPID" VmRSS)
  log "idle connections: $out; facteur RSS ${before} kB -> ${after} kB"
  record idle_conns "$(awk '{ print $2 }' <<<"$out")"
  record idle_before "$before"; record idle_after "$after"
  kill -TERM "$IDLEC_PID" 2>/dev/null || true; wait "$IDLEC_PID" 2>/dev/null || true
  # Wait until the server has let them all go.
  for _ in $(seq 100); do [ "$(ss -Htn state established "sport = :$P_SMTP" | wc -l)" -eq 0 ] && break; sleep 0.1; done
  sleep 0.5
  before=$(status_kb "$FPID" VmRSS)
  echo 5 > "/proc/$FPID/clear_refs" # VmHWM := VmRSS
  "$BIN/loadgen" -addr 127.0.0.1:$P_SMTP -n 1 -c 1 -size "$BIG" -to bench@localhost >"$d/big" || { cat "$d/big"; exit 1; }
  record big.facteur "$(( $(status_kb "$FPID" VmHWM) - before ))"
  stop_facteur
  rm -rf "$d"

  d=$DATA/p-mem
  start_postfix "$d" 0
  postconf -c "$d/etc" -e "message_size_limit = $((BIG + 1000000))" && postfix -c "$d/etc" reload >/dev/null 2>&1
  sleep 1
  SID=$PF_SID MEMKEY=Pss; before=$(mem_kb)
  sampler "$PF_SID" Pss "$d/peak"
  "$BIN/loadgen" -addr 127.0.0.1:$P_PF -n 1 -c 1 -size "$BIG" -to bench@localhost >"$d/big" || { cat "$d/big"; exit 1; }
  wait_maildir_n1 "$d/maildirs/bench"
  stop_sampler
  record big.postfix "$(( $(cat "$d/peak") - before ))"
  stop_postfix
  rm -rf "$d"
}
wait_maildir_n1() { local N=1; wait_maildir "$1" >/dev/null; }

# ---- the run ----------------------------------------------------------------
log "N=$N C=$C SIZE=$SIZE REPS=$REPS LAT_N=$LAT_N IDLE=$IDLE BIG=$BIG SETTLE=$SETTLE"
STEPS=${STEPS:-facteur_inbound postfix_inbound opensmtpd_inbound facteur_inbound_file facteur_inbound_checked facteur_relay postfix_relay opensmtpd_relay ceiling memory $CURVES}
for r in $(seq 1 "$REPS"); do
  for step in $STEPS; do
    case " memory $CURVES " in
      *" $step "*) continue ;; # once, after the repetitions
    esac
    case $step in
      opensmtpd_*) [ -n "$OSD" ] || continue ;;
    esac
    log "rep $r/$REPS: $step"
    sleep "$SETTLE"
    $step "$r"
  done
done
case " $STEPS " in *" memory "*) log "memory"; memory ;; esac
for step in $CURVES; do
  case " $STEPS " in *" $step "*) log "curve: $step"; sleep "$SETTLE"; $step ;; esac
done

# ---- the table --------------------------------------------------------------
{
  echo "## facteur vs Postfix, $DATE"
  echo
  echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r),"
  echo "data disk $(df -T "$DATA" | awk 'NR == 2 { print $2 " on " $1 }')$([ "${FS:-}" = journal ] && echo ", a fresh loop-mounted image with a journal (FS=journal)"). facteur $FACTEUR_VERSION, Postfix $(postconf -dh mail_version), OpenSMTPD $([ -n "$OSD" ] && cat "$OSD/VERSION" || echo "not measured"), $(go version | awk '{ print $3 }')."
  echo
  echo "\`N=$N C=$C SIZE=$SIZE REPS=$REPS SETTLE=$SETTLE$([ "${FS:-}" = journal ] && echo " FS=journal") bash bench/run.sh\`: medians of $REPS interleaved runs (min-max in brackets); one connection per message (smtp-source default)."
  echo
} > "$WORK/table.md"
grep -qvE '^curve\.' "$RESULTS" && awk -v N="$N" -v C="$C" -v SIZE="$SIZE" -v LAT_N="$LAT_N" -v IDLE="$IDLE" -v BIG="$BIG" '
  { v[$1, ++n[$1]] = $2 }
  function med(k,    a, i, j, m, x) {
    m = n[k]; if (!m) return ""
    for (i = 1; i <= m; i++) a[i] = v[k, i] + 0
    for (i = 2; i <= m; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
    return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  function rng(k,    i, lo, hi, x) {
    if (n[k] < 2) return ""
    lo = hi = v[k, 1] + 0
    for (i = 2; i <= n[k]; i++) { x = v[k, i] + 0; if (x < lo) lo = x; if (x > hi) hi = x }
    return sprintf(" (%s-%s)", fmt(lo), fmt(hi))
  }
  function fmt(x) { return (x >= 100 || x == int(x)) ? sprintf("%.0f", x) : sprintf("%.2f", x) }
  function cell(k) { return n[k] ? fmt(med(k)) rng(k) : "-" }
  function ratio(a, b) { return (n[a] && n[b] && med(b) > 0) ? sprintf("%.2f", med(a) / med(b)) : "-" }
  function row(what, k) { printf "| %s | %s | %s | %s | %s | %s |\n", what, cell(k ".facteur"), cell(k ".postfix"), cell(k ".opensmtpd"), ratio(k ".facteur", k ".postfix"), ratio(k ".facteur", k ".opensmtpd") }
  function pct(a, b) { return (n[a] && n[b]) ? sprintf("%.0f %%", 100 * med(a) / med(b)) : "-" }
  END {
    print "| measure | facteur | Postfix | OpenSMTPD | facteur / Postfix | facteur / OpenSMTPD |"
    print "|---|---|---|---|---|---|"
    row("inbound to Maildir, msgs/s (" N " x " SIZE " B, " C " sessions)", "inbound")
    if (n["inbound_file.facteur"]) printf "| the same, facteur with sync = \"file\" | %s | | | %s | |\n", cell("inbound_file.facteur"), ratio("inbound_file.facteur", "inbound.postfix")
    if (n["inbound_checked.facteur"]) printf "| the same, facteur checking SPF, DKIM, DMARC (loopback DNS) | %s | | | %s | |\n", cell("inbound_checked.facteur"), ratio("inbound_checked.facteur", "inbound.postfix")
    row("relay to smtp-sink, msgs/s", "relay")
    row("inbound: CPU per message, ms (every process of the server)", "inbound_cpu")
    if (n["inbound_checked_cpu.facteur"]) printf "| the same, facteur checking SPF, DKIM, DMARC | %s | | | | |\n", cell("inbound_checked_cpu.facteur")
    row("relay: CPU per message, ms", "relay_cpu")
    row("time to 250 after DATA, p50 ms (" LAT_N " msgs)", "lat50")
    row("time to 250 after DATA, p99 ms", "lat99")
    printf "| inbound, %% of the smtp-sink ceiling | %s | %s | %s | | |\n", pct("inbound.facteur", "sink"), pct("inbound.postfix", "sink"), pct("inbound.opensmtpd", "sink")
    printf "| relay, %% of the smtp-sink ceiling | %s | %s | %s | | |\n", pct("relay.facteur", "sink"), pct("relay.postfix", "sink"), pct("relay.opensmtpd", "sink")
    # facteur: peak RSS of its one process (VmHWM); Postfix: peak of the sum
    # of PSS over its processes (RSS would count shared pages 50 times).
    for (k in n) if (k ~ /_mem\./) { m = 0; for (i = 1; i <= n[k]; i++) v[k, i] = sprintf("%.1f", v[k, i] / 1024) }
    row("peak memory under inbound load, MB", "inbound_mem")
    row("peak memory under relay load, MB", "relay_mem")
    printf "| one %.0f MB message: extra peak memory, MB | %.1f | %.1f | - | %.2f | |\n", BIG / 1e6, med("big.facteur") / 1024, med("big.postfix") / 1024, (med("big.postfix") > 0 ? med("big.facteur") / med("big.postfix") : 0)
    printf "| %d idle connections (%d held): RSS before -> after, MB | %.1f -> %.1f | not measured (one process per session, 100 at most by default) | - | | |\n", IDLE, med("idle_conns"), med("idle_before") / 1024, med("idle_after") / 1024
    printf "| ceiling: smtp-sink alone, msgs/s | %s | | | | |\n", cell("sink")
    printf "| ceiling: 4 KiB O_DSYNC writes/s on the data disk | %s | | | | |\n", cell("dsync")
    printf "| ceiling: serial Maildir-style deliveries/s (write, fsync, rename, dir fsync) | %s | | | | |\n", cell("deliver")
  }' "$RESULTS" >> "$WORK/table.md"
grep -qvE '^curve\.' "$RESULTS" && cat >> "$WORK/table.md" <<'EOF'

facteur memory is its process's peak RSS (VmHWM); Postfix's and OpenSMTPD's are the peak of the sum of PSS over its
processes, sampled every 0.1 s. Time to 250 is measured by bench/loadgen from the end of the data to the
reply, C sessions, one connection per message. OpenSMTPD's listen(2) backlog is raised from 5 to
OSD_BACKLOG (bench/listen-backlog.c, 0 = as shipped), and its relay runs carry OSD_RELAY_N messages
(about 15 msgs/s: one session, stalls of tens of ms per message with smtp-sink). Raw figures: the lines below.
EOF
[ -s "$WORK/curves.md" ] && cat "$WORK/curves.md" >> "$WORK/table.md"
{ echo; echo '```'; cat "$RESULTS"; echo '```'; } >> "$WORK/table.md"
cat "$WORK/table.md"
if [ -z "$TINY" ]; then
  OUT=$BENCH/results/$(date +%Y-%m-%d-%H%M).md
  cp "$WORK/table.md" "$OUT"
  log "written to ${OUT#$ROOT/}"
fi
