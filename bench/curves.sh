# How the cost grows: the four curves of bench/run.sh, each a step of its
# own, each facteur and Postfix in the same run. Sourced by run.sh inside
# its namespace (lo only), after its helpers; every server runs on a fresh
# directory, and each step appends its table to $WORK/curves.md and its raw
# figures, as "curve.<step>.<point>.<server>.<measure> value", to $RESULTS.
#
#   sessions     bench/loadgen at SESSIONS concurrent sessions (default
#                "10 100 1000 10000"), max(SESS_N, 2 x sessions) messages
#                each (SESS_N default N), one connection per message, the
#                connections spread over 127.0.0.1-50: msgs/s until the
#                last is in the Maildir, p50/p99 from the end of DATA to the
#                250 and from the connect to the 250, peak memory. Postfix
#                as installed (default_process_limit 100) and with
#                default_process_limit = PF_LIMIT (default 1000).
#                SESS_SERVERS picks among "facteur postfix postfix_raised"
#                (default all three), e.g. facteur alone while iterating.
#   starttls     bench/loadgen, TLS_N messages (default min(N, 5000)), C
#                sessions, a connection each: STARTTLS on the smtp port and
#                TLS from the first byte on the smtps one, with every
#                handshake a full one and with a shared client session
#                cache (tickets), for each key of TLS_KEYS (default "ecdsa
#                rsa": P-256 and RSA 2048, made by openssl, the same for
#                both servers; Postfix with smtpd_tls_security_level = may
#                and smtpd_tls_wrappermode on its smtps). msgs/s, CPU per
#                message, resumed handshakes, key exchange. TLS_MODES picks
#                among "starttls/full starttls/resumed smtps/full
#                smtps/resumed" (default all four). TLS_GROUPS: the key
#                exchanges the client offers (loadgen -groups); default
#                X25519, the same one on both servers (offered Go's
#                defaults, facteur picks X25519MLKEM768, which Postfix with
#                OpenSSL 3.0 lacks); "go": Go's defaults.
#
# PROFILE=1 also keeps, in bench/results/<date>-<time>-<name>.pprof,
# facteur's CPU profile over PROFILE_SECONDS (default 5) of the sessions
# and starttls points, its heap (and the runtime's MemStats, in
# <name>-memstats.txt) PROFILE_SECONDS into each sessions point, and its
# heap with the deepest queue deferred.
#   sizes        messages of SIZES bytes (default 4 KiB, 100 KiB, 1 MiB,
#                10 MiB), C sessions, SIZE_MB MB of them per size and server
#                (default 1024, at least C messages, at most N): MB/s until
#                the last is in the Maildir, against the disk's own rate of
#                1 MiB O_DSYNC writes (dd, DD_MB MB, default 512); peak
#                memory.
#   queue_depth  for each of QUEUE_N (default "10000 100000"), that many
#                4 KiB messages relayed to smtp-sink on 127.0.0.2 answering
#                4xx to every RCPT (smtp-sink -r RCPT), retries an hour
#                apart; then memory above the idle server's, CPU over
#                IDLE_CPU_SECS (default 60) idle, the time to list the
#                queue, a restart: the time until a new local message is
#                stored and until the whole queue is loaded, and with
#                smtp-sink accepting, the drain rate after a flush
#                (facteur queue flush, postqueue -f). QUEUE_SERVERS (default
#                "facteur postfix") picks the servers: "facteur" alone
#                skips Postfix's quarter of an hour at 100,000. From
#                QUEUE_DIRECT messages on (default 1000000) facteur's spool
#                is filled by bench/queuefill through the queue's own API
#                (enqueued and deferred with no server running: half an
#                hour of SMTP fill spared), and the memory and idle CPU are
#                measured after the restart, once the queue is loaded;
#                Postfix is not run there (its SMTP fill would take over an
#                hour). QUEUE_DRAIN_MAX (default 1000000): no drain above it.

CURVES="sessions starttls sizes queue_depth"
SESSIONS=${SESSIONS:-10 100 1000 10000}
SESS_N=${SESS_N:-$N}
PF_LIMIT=${PF_LIMIT:-1000}
SESS_SERVERS=${SESS_SERVERS:-facteur postfix postfix_raised}
TLS_N=${TLS_N:-$((N < 5000 ? N : 5000))}
TLS_KEYS=${TLS_KEYS:-ecdsa rsa}
TLS_MODES=${TLS_MODES:-starttls/full starttls/resumed smtps/full smtps/resumed}
TLS_GROUPS=${TLS_GROUPS:-X25519}
SIZES=${SIZES:-4096 102400 1048576 10485760}
SIZE_MB=${SIZE_MB:-1024}
DD_MB=${DD_MB:-512}
QUEUE_N=${QUEUE_N:-10000 100000}
IDLE_CPU_SECS=${IDLE_CPU_SECS:-60}
QUEUE_SERVERS=${QUEUE_SERVERS:-facteur postfix}
QUEUE_DIRECT=${QUEUE_DIRECT:-1000000}
QUEUE_DRAIN_MAX=${QUEUE_DRAIN_MAX:-1000000}
# facteur's connection limits must not be what a curve measures.
MAXCONN=$IDLE
for c in $SESSIONS; do [ "$c" -gt "$MAXCONN" ] && MAXCONN=$c; done
P_SMTPS=2465 P_PF_SMTPS=2665

curve_record() { record "curve.$1" "$2"; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; } # kB -> MB

# point server dir n loadgen-args...: one load against a fresh server (for
# Postfix: with PF_MAIN/PF_MASTER as the caller set them), until the n
# messages loadgen got a 250 for are in the Maildir. Sets P_RATE (msgs/s),
# P_CPU (ms per message), P_MEM (peak kB: facteur's RSS, Postfix's sum of
# PSS, sampled every SAMPLE_EVERY s, default 0.1), P_OUT (loadgen's line),
# P_SECS.
point() {
  local srv=$1 d=$2 n=$3 port mdir sid key t0 t2 c0 c2 got
  shift 3
  case $srv in
    facteur) start_facteur "$d" "${F_TOML:-}$(curve_pprof)"; sid=$(sid_of "$FPID"); key=Rss
             port=$P_SMTP mdir=$d/maildirs/bench/Maildir ;;
    *) start_postfix "$d" 0; sid=$PF_SID; key=Pss; port=$P_PF mdir=$d/maildirs/bench ;;
  esac
  [ "${PORT_TLS:-}" = 1 ] && { [ "$srv" = facteur ] && port=$P_SMTPS || port=$P_PF_SMTPS; wait_port 127.0.0.1 "$port"; }
  sampler "$sid" "$key" "$d/peak" "${SAMPLE_EVERY:-0.1}"
  sync
  c0=$(cpu_ms "$sid"); t0=$(now)
  [ "$srv" = facteur ] && curve_profile "${d##*/c-}" profile "?seconds=${PROFILE_SECONDS:-5}" "${P_HEAP:+heap}"
  # A session error is counted, not fatal: Postfix as installed may not
  # take 10,000 connections at once.
  "$BIN/loadgen" -addr "127.0.0.1:$port" -n "$n" -to bench@localhost "$@" >"$d/loadgen" 2>&1 || log "$srv: $(tail -1 "$d/loadgen")"
  P_OUT=$(head -1 "$d/loadgen")
  got=$(sed -n 's/^msgs=\([0-9]*\).*/\1/p' <<<"$P_OUT")
  [ "${got:-0}" -gt 0 ] || { log "$srv: no message got through: $(cat "$d/loadgen")"; exit 1; }
  t2=$(N=$got wait_maildir "$mdir")
  c2=$(cpu_ms "$sid")
  stop_sampler; profile_wait
  P_SECS=$(elapsed "$t0" "$t2")
  P_RATE=$(rate "$got" "$t0" "$t2")
  P_CPU=$(per_msg "$c0" "$c2" "$got")
  P_MEM=$(cat "$d/peak")
  case $srv in facteur) stop_facteur ;; *) stop_postfix ;; esac
}
# With PROFILE=1, facteur serves net/http/pprof, and curve_profile name
# kind [query [then]] saves /debug/pprof/<kind> in the background, and
# /debug/pprof/<then> once that is done (profile_wait waits for both).
curve_pprof() { [ -n "$PROFILE" ] && printf '\n[debug]\npprof = "127.0.0.1:%s"\n' "$P_PPROF"; return 0; }
curve_profile() {
  [ -n "$PROFILE" ] || return 0
  {
    curl -s -o "$BENCH/results/$STAMP-$1.pprof" "http://127.0.0.1:$P_PPROF/debug/pprof/$2${3:-}"
    [ -z "${4:-}" ] || curl -s -o "$BENCH/results/$STAMP-$1-$4.pprof" "http://127.0.0.1:$P_PPROF/debug/pprof/$4"
    # Its text form ends with the runtime's MemStats (StackInuse...).
    [ "${4:-}" != heap ] || curl -s "http://127.0.0.1:$P_PPROF/debug/pprof/heap?debug=1" | sed -n '/^# runtime.MemStats/,$p' > "$BENCH/results/$STAMP-$1-memstats.txt"
  } &
  PROF=$!
}
STAMP=$(date +%Y-%m-%d-%H%M)
lg() { sed -En "s/(^|.* )$1=([^ ]*).*/\2/p" <<<"$P_OUT"; } # a field of loadgen's line

# ---- sessions ---------------------------------------------------------------
sessions() {
  # Per network namespace: the client's ports, not the servers', are what
  # 10,000 sessions with a connection per message run out of.
  sysctl -qw net.ipv4.ip_local_port_range="1024 65000"
  {
    echo
    echo "### Concurrent sessions"
    echo
    echo "bench/loadgen, one connection per message over 127.0.0.1-50, ${SIZE}-byte messages to a local Maildir; max(SESS_N=$SESS_N, 2 x sessions) messages per point."
    echo "Latency: from the end of DATA to the 250, and from the start of the connect to the 250 (waiting for a free server process shows there)."
    echo
    echo "| sessions | server | msgs/s | p50 ms | p99 ms | connect to 250, p50 / p99 ms | peak memory MB | errors |"
    echo "|---|---|---|---|---|---|---|---|"
  } >> "$WORK/curves.md"
  local c n srv label
  for c in $SESSIONS; do
    n=$((SESS_N > 2 * c ? SESS_N : 2 * c))
    for srv in $SESS_SERVERS; do
      label=$srv PF_MAIN=""
      case $srv in
        postfix) PF_MAIN="" label="Postfix (default_process_limit 100)" ;;
        postfix_raised) PF_MAIN="default_process_limit = $PF_LIMIT" label="Postfix (default_process_limit $PF_LIMIT)" ;;
      esac
      log "sessions: $c, $srv, $n messages"
      # Up to PF_LIMIT Postfix processes: memory sampled once a second.
      P_HEAP=1 SAMPLE_EVERY=$([ "$c" -ge 1000 ] && echo 1 || echo 0.1) point "$srv" "$DATA/c-sess-$c-$srv" "$n" -c "$c" -size "$SIZE" -src 50
      local k=sessions.$c.$srv
      curve_record "$k.rate" "$P_RATE"; curve_record "$k.p50" "$(lg p50_ms)"; curve_record "$k.p99" "$(lg p99_ms)"
      curve_record "$k.conn_p50" "$(lg conn_p50_ms)"; curve_record "$k.conn_p99" "$(lg conn_p99_ms)"
      curve_record "$k.mem_kb" "$P_MEM"; curve_record "$k.errors" "$(lg errors)"
      echo "| $c | $label | $P_RATE | $(lg p50_ms) | $(lg p99_ms) | $(lg conn_p50_ms) / $(lg conn_p99_ms) | $(mb "$P_MEM") | $(lg errors) |" >> "$WORK/curves.md"
    done
  done
  PF_MAIN=""
}

# ---- starttls -----------------------------------------------------------------
# make_cert kind dir: a self-signed certificate for bench.localdomain.
make_cert() {
  local alg
  case $1 in
    ecdsa) alg=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
    rsa) alg=(-newkey rsa:2048) ;;
  esac
  mkdir -p "$2"
  openssl req -x509 -nodes "${alg[@]}" -keyout "$2/key.pem" -out "$2/cert.pem" -days 2 \
    -subj /CN=bench.localdomain -addext subjectAltName=DNS:bench.localdomain 2>/dev/null
  chmod 644 "$2/key.pem" # Postfix's smtpd reads it after dropping privileges
}
starttls() {
  {
    echo
    echo "### TLS on every connection"
    echo
    echo "bench/loadgen, $TLS_N messages of $SIZE bytes, $C sessions, one connection (and handshake) per message, to a local Maildir."
    echo "\"full\": no client session cache, every handshake a full one; \"resumed\": one tls.ClientSessionCache shared by the sessions (TLS 1.3 tickets)."
    echo "Postfix: smtpd_tls_security_level = may, smtpd_tls_wrappermode = yes on its smtps, tlsmgr running; both servers with the same key and certificate."
    echo "Key exchanges offered: $([ "$TLS_GROUPS" = go ] && echo "the Go client's defaults (X25519MLKEM768, X25519, P-256...)" || echo "$TLS_GROUPS, the same on both servers"); CPU per message counts every process of the server."
    echo
    echo "| key | port | handshakes | server | msgs/s | CPU per message, ms | resumed / handshakes | key exchange | p99 ms |"
    echo "|---|---|---|---|---|---|---|---|---|"
  } >> "$WORK/curves.md"
  local kind m mode res srv cert args k
  for kind in $TLS_KEYS; do
    cert=$WORK/tls-$kind
    make_cert "$kind" "$cert"
    for m in $TLS_MODES; do
      mode=${m%/*} res=${m#*/}
      args=(-c "$C" -size "$SIZE")
      [ "$mode" = starttls ] && args+=(-starttls) || args+=(-tls)
      [ "$res" = resumed ] && args+=(-resume)
      [ "$TLS_GROUPS" != go ] && args+=(-groups "$TLS_GROUPS")
      for srv in facteur postfix; do
        log "starttls: $kind, $mode, $res, $srv"
        PORT_TLS=$([ "$mode" = smtps ] && echo 1 || echo 0) \
        F_LISTEN="smtps = [\"127.0.0.1:$P_SMTPS\"]" \
        F_TOML=$(printf '[tls]\ncert = "%s"\nkey = "%s"\n' "$cert/cert.pem" "$cert/key.pem") \
        PF_MAIN=$(printf 'smtpd_tls_security_level = may\nsmtpd_tls_chain_files = %s, %s\n' "$cert/key.pem" "$cert/cert.pem") \
        PF_MASTER=$(printf '127.0.0.1:%s inet n - n - - smtpd -o smtpd_tls_wrappermode=yes\ntlsmgr unix - - n 1000? 1 tlsmgr\n' "$P_PF_SMTPS") \
          point "$srv" "$DATA/c-tls-$kind-$mode-$res-$srv" "$TLS_N" "${args[@]}"
        k=starttls.$kind.$mode.$res.$srv
        curve_record "$k.rate" "$P_RATE"; curve_record "$k.cpu_ms" "$P_CPU"
        curve_record "$k.resumed" "$(lg resumed)"; curve_record "$k.handshakes" "$(lg handshakes)"
        curve_record "$k.p99" "$(lg p99_ms)"
        echo "| $kind | $mode | $res | $srv | $P_RATE | $P_CPU | $(lg resumed) / $(lg handshakes) | $(lg group) | $(lg p99_ms) |" >> "$WORK/curves.md"
      done
    done
  done
}

# ---- sizes ----------------------------------------------------------------------
sizes() {
  # The disk's own rate for synced sequential writes, in the same run.
  local out disk
  out=$(dd if=/dev/zero of="$DATA/dd.img" bs=1M count="$DD_MB" oflag=dsync 2>&1 | tail -1)
  disk=$(awk -v s="$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^s,?$/ || $i == "s,") print $(i - 1) }' <<<"$out" | head -1)" -v m="$DD_MB" 'BEGIN { printf "%.1f", m * 1048576 / s / 1e6 }')
  rm -f "$DATA/dd.img"
  curve_record sizes.disk_mb_s "$disk"
  {
    echo
    echo "### Message size"
    echo
    echo "bench/loadgen, $C sessions, a connection per message, to a local Maildir; about SIZE_MB=$SIZE_MB MB per size and server (at least $C messages, at most N=$N)."
    echo "The disk's own rate in the same run: $disk MB/s of 1 MiB O_DSYNC writes (dd oflag=dsync, $DD_MB MiB)."
    echo
    echo "| message bytes | server | messages | MB/s stored | % of the disk's rate | peak memory MB |"
    echo "|---|---|---|---|---|---|"
  } >> "$WORK/curves.md"
  local s n srv mbs k
  for s in $SIZES; do
    n=$((SIZE_MB * 1048576 / s)); n=$((n < C ? C : n)); n=$((n > N ? N : n))
    for srv in facteur postfix; do
      log "sizes: $s bytes, $srv, $n messages"
      F_LIMITS="max_message_bytes = $((2 * s + 1048576))" PF_MAIN="message_size_limit = $((2 * s + 1048576))" \
        point "$srv" "$DATA/c-size-$s-$srv" "$n" -c "$C" -size "$s"
      mbs=$(awk -v n="$(lg msgs)" -v s="$s" -v t="$P_SECS" 'BEGIN { printf "%.1f", n * s / t / 1e6 }')
      k=sizes.$s.$srv
      curve_record "$k.mb_s" "$mbs"; curve_record "$k.mem_kb" "$P_MEM"; curve_record "$k.rate" "$P_RATE"
      echo "| $s | $srv | $n | $mbs | $(awk -v a="$mbs" -v b="$disk" 'BEGIN { printf "%.0f %%", 100 * a / b }') | $(mb "$P_MEM") |" >> "$WORK/curves.md"
    done
  done
}

# ---- queue_depth ------------------------------------------------------------------
# A 4xx to every RCPT: the destination is down for the day.
sink_defer() { start_sink 127.0.0.2 "$P_SINK" -r RCPT; }
# until cmd... prints a number >= want, bounded by TIMEOUT.
wait_count() { # want what cmd...
  local want=$1 what=$2 deadline=$((EPOCHSECONDS + TIMEOUT)) got
  shift 2
  while got=$("$@"); [ "${got:-0}" -lt "$want" ]; do
    [ "$EPOCHSECONDS" -lt "$deadline" ] || { log "only $got/$want $what after ${TIMEOUT}s"; exit 1; }
    sleep 0.5
  done
}
count_log() { grep -c "$2" "$1" || true; } # file pattern
count_files() { find "$1" -type f 2>/dev/null | wc -l; }
# first_local port maildir: sends one local message until it is taken, and
# waits for it in the Maildir; bounded by TIMEOUT.
first_local() {
  local deadline=$((EPOCHSECONDS + TIMEOUT))
  until "$BIN/loadgen" -addr "127.0.0.1:$1" -n 1 -c 1 -timeout 30s -to bench@localhost >/dev/null 2>&1; do
    [ "$EPOCHSECONDS" -lt "$deadline" ] || { log "no local message taken in ${TIMEOUT}s"; exit 1; }
    sleep 0.02
  done
  N=1 wait_maildir "$2" >/dev/null
}
log_epoch() { # the time= of a facteur log line, in seconds since the epoch
  date -d "$(sed -n 's/^time=\([^ ]*\) .*/\1/p' <<<"$1")" +%s.%N
}
queue_depth() {
  {
    echo
    echo "### Queue depth"
    echo
    echo "4 KiB messages relayed (smtp-source, $C sessions) to smtp-sink answering 4xx to every RCPT, retries 1 h apart"
    echo "(facteur min_backoff = max_backoff = \"1h\"; Postfix minimal_backoff_time = maximal_backoff_time = 1h)."
    echo "Memory: facteur's RSS, Postfix's sum of PSS, at the end of ${IDLE_CPU_SECS} s idle with all N deferred (Postfix's idle smtpd processes, which"
    echo "exit after max_idle = 100 s, count), minus the idle server's before the load. Idle CPU: over the same ${IDLE_CPU_SECS} s."
    echo "Restart: from starting the server to a new local message stored, and to the queue loaded (facteur's \"queue: loaded\" line;"
    echo "Postfix reads its deferred queue from disk at each queue run, it loads nothing). Drain: after flush, smtp-sink accepting."
    echo "From $QUEUE_DIRECT messages on, facteur's spool is filled by bench/queuefill (the queue's API with no server running; its rate"
    echo "in the last column), and the memory and idle CPU are measured after the restart, once the queue is loaded."
    echo
    echo "| queued | server | memory above idle, MB (bytes per message) | idle CPU, % of a core | queue list, s | restart: first new message, s | restart: queue loaded, s | drain, msgs/s | queue filled at, msgs/s |"
    echo "|---|---|---|---|---|---|---|---|---|"
  } >> "$WORK/curves.md"
  local qn srv first="" last=""
  for qn in $QUEUE_N; do
    for srv in $QUEUE_SERVERS; do
      if [ "$srv" = postfix ] && [ "$qn" -ge "$QUEUE_DIRECT" ]; then
        echo "| $qn | postfix | not run: its SMTP fill alone would take over an hour here | | | | | | |" >> "$WORK/curves.md"
        continue
      fi
      "queue_depth_$srv" "$qn"
    done
    first=${first:-$qn} last=$qn
  done
  # Between two depths the fixed part (heap the load grew, Postfix's
  # processes) cancels out: what is left is the cost of one more message.
  [ "$first" != "$last" ] || return 0
  echo >> "$WORK/curves.md"
  for srv in $QUEUE_SERVERS; do
    local a b
    a=$(awk -v k="curve.queue_depth.$first.$srv.full_kb" '$1 == k { print $2 }' "$RESULTS")
    b=$(awk -v k="curve.queue_depth.$last.$srv.full_kb" '$1 == k { print $2 }' "$RESULTS")
    per=$(awk -v a="$a" -v b="$b" -v n="$((last - first))" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
    curve_record "queue_depth.slope.$srv.bytes_per_msg" "$per"
    echo "$srv: $per bytes of memory per queued message from $first to $last queued." >> "$WORK/curves.md"
  done
}
# queue_row server qn base_kb full_kb cpu_ms list_s first_s loaded_s drain fill
queue_row() {
  local k=queue_depth.$2.$1 per pct
  per=$(awk -v a="$3" -v b="$4" -v n="$2" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')
  pct=$(awk -v ms="$5" -v s="$IDLE_CPU_SECS" 'BEGIN { printf "%.2f", ms / (s * 1000) * 100 }')
  curve_record "$k.base_kb" "$3"; curve_record "$k.full_kb" "$4"; curve_record "$k.bytes_per_msg" "$per"
  curve_record "$k.idle_cpu_pct" "$pct"; curve_record "$k.list_s" "$6"; curve_record "$k.first_s" "$7"
  curve_record "$k.loaded_s" "$8"; curve_record "$k.drain" "$9"; curve_record "$k.fill" "${10}"
  echo "| $2 | $1 | $(mb $(($4 - $3))) ($per) | $pct | $6 | $7 | $8 | $9 | ${10} |" >> "$WORK/curves.md"
}
queue_depth_facteur() {
  local qn=$1 d=$DATA/c-queue-$1-facteur base full c0 c1 t0 t1 t2 fill list drain=-
  sink_defer
  F_OUTBOUND=$'min_backoff = "1h"\nmax_backoff = "1h"' start_facteur "$d" "$(curve_pprof)"
  sleep 1
  base=$(status_kb "$FPID" VmRSS)
  if [ "$qn" -ge "$QUEUE_DIRECT" ]; then
    stop_facteur
    log "queue_depth: facteur, $qn messages deferred by bench/queuefill"
    t0=$(now)
    "$BIN/queuefill" -dir "$d/var/queue" -n "$qn" -to "bench@[127.0.0.2]" >"$d/queuefill.out"
    t1=$(now); fill=$(rate "$qn" "$t0" "$t1")
    facteur_restart "$d"
  else
    log "queue_depth: facteur, $qn messages behind a 4xx"
    t0=$(now)
    N=$qn source_load "$P_RELAY" "bench@[127.0.0.2]"
    wait_count "$qn" "deferred messages" count_log "$d/facteur.log" "queue: deferred"
    t1=$(now); fill=$(rate "$qn" "$t0" "$t1")
  fi
  c0=$(cpu_ms "$(sid_of "$FPID")"); sleep "$IDLE_CPU_SECS"; c1=$(cpu_ms "$(sid_of "$FPID")")
  full=$(status_kb "$FPID" VmRSS)
  curve_profile "queue-$qn-heap" heap; profile_wait
  t0=$(now); (cd "$d" && "$BIN/facteur" queue --config facteur.toml list >"$d/list"); t1=$(now)
  list=$(elapsed "$t0" "$t1")
  log "queue list: $(wc -l <"$d/list") lines in $list s"
  if [ "$qn" -lt "$QUEUE_DIRECT" ]; then
    stop_facteur
    facteur_restart "$d"
  fi
  if [ "$qn" -le "$QUEUE_DRAIN_MAX" ]; then
    stop_sink
    start_sink 127.0.0.2 "$P_SINK" -M "$qn"
    t0=$(now)
    (cd "$d" && "$BIN/facteur" queue --config facteur.toml flush >/dev/null)
    wait_sink; t2=$(now)
    drain=$(rate "$qn" "$t0" "$t2")
  fi
  stop_facteur
  queue_row facteur "$qn" "$base" "$full" $((c1 - c0)) "$list" "$R_FIRST" "$R_LOADED" "$drain" "$fill"
}
# facteur_restart dir: starts facteur on its spool and sets R_FIRST, the
# seconds until a new local message is stored, and R_LOADED, until the
# queue is loaded (its "queue: loaded" line).
facteur_restart() {
  local d=$1 t0 t1 line
  t0=$(now)
  launch_facteur "$d"
  first_local "$P_SMTP" "$d/maildirs/bench/Maildir"
  t1=$(now); R_FIRST=$(elapsed "$t0" "$t1")
  wait_count 1 "\"queue: loaded\" lines" count_log "$d/facteur.log" "queue: loaded"
  line=$(grep "queue: loaded" "$d/facteur.log" | tail -1)
  R_LOADED=$(elapsed "$t0" "$(log_epoch "$line")")
  log "restart: first local message after $R_FIRST s, queue loaded after $R_LOADED s ($line)"
}
queue_depth_postfix() {
  local qn=$1 d=$DATA/c-queue-$1-postfix base full c0 c1 t0 t1 t2 fill list first drain
  sink_defer
  PF_MAIN=$'minimal_backoff_time = 1h\nmaximal_backoff_time = 1h' start_postfix "$d" 1
  sleep 1
  SID=$PF_SID MEMKEY=Pss; base=$(mem_kb)
  log "queue_depth: Postfix, $qn messages behind a 4xx"
  t0=$(now)
  N=$qn source_load "$P_PF" bench@relay.test
  wait_count "$qn" "deferred messages" count_files "$d/spool/deferred"
  t1=$(now); fill=$(rate "$qn" "$t0" "$t1")
  c0=$(cpu_ms "$PF_SID"); sleep "$IDLE_CPU_SECS"; c1=$(cpu_ms "$PF_SID")
  SID=$PF_SID MEMKEY=Pss; full=$(mem_kb)
  t0=$(now); postqueue -c "$d/etc" -p >"$d/list"; t1=$(now)
  list=$(elapsed "$t0" "$t1")
  log "postqueue -p: $(tail -1 "$d/list") in $list s"
  local etc=$PF_ETC
  stop_postfix
  t0=$(now)
  PF_ETC=$etc
  postfix -c "$etc" start >"$d/start2.log" 2>&1 || { cat "$d/start2.log" >&2; exit 1; }
  first_local "$P_PF" "$d/maildirs/bench"
  t1=$(now); first=$(elapsed "$t0" "$t1")
  stop_sink
  start_sink 127.0.0.2 "$P_SINK" -M "$qn"
  t0=$(now)
  postqueue -c "$etc" -f
  wait_sink; t2=$(now)
  drain=$(rate "$qn" "$t0" "$t2")
  stop_postfix
  queue_row postfix "$qn" "$base" "$full" $((c1 - c0)) "$list" "$first" "-" "$drain" "$fill"
}
