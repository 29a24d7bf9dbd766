#!/usr/bin/env bash
# Patroni acceptance suite: three Patroni 3.0.2 + PostgreSQL 15 nodes on
# loopback, with a 3-member store (etcd 3.4 or synod) as Patroni's `etcd3`
# DCS (etcd's HTTP/JSON gateway on the client port).
#
#   runuser -u postgres -- Tests/acceptance/patroni-suite.sh --target etcd
#   runuser -u postgres -- Tests/acceptance/patroni-suite.sh --target synod [--synod-bin PATH]
#
# Must not run as root (PostgreSQL refuses to); run it as `postgres` or any
# other unprivileged user that can read the repository and the binaries.
#
# Options:
#   --target etcd|synod   which store to start (default: synod)
#   --synod-bin PATH      synod binary (default: $SYNOD_BIN or <repo>/.build/debug/synod)
#   --only "N N ..."      run only these of the checks 2, 3, 4 (1, the bootstrap,
#                         5, patronictl throughout, and 6, store errors in the
#                         Patroni logs, always run)
#   --keep                keep the temp dir even when everything passes
#   -h|--help
#
# Environment: SYNOD_BIN, ETCD_BIN (default: etcd), ETCDCTL_BIN (default: etcdctl),
#   PG_BIN (default: /usr/lib/postgresql/15/bin), PATRONI_BIN (default: patroni),
#   PATRONICTL_BIN (default: patronictl), PATRONI_TTL (default 15),
#   PATRONI_LOOP_WAIT (default 2), PATRONI_RETRY_TIMEOUT (default 5),
#   STARTUP_TIMEOUT (seconds, default 30), LOG_LEVEL (store, default info).
#
# Output is TAP-like: "ok - name" / "not ok - name" (+ command, expected,
# actual), and a final line "acceptance: N passed, M failed".
# Exit status: 0 if everything passed, 1 otherwise (2: cannot run).

set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PATRONI_BIN=${PATRONI_BIN:-patroni}
PATRONICTL_BIN=${PATRONICTL_BIN:-patronictl}
TTL=${PATRONI_TTL:-15}
LOOP_WAIT=${PATRONI_LOOP_WAIT:-2}
RETRY_TIMEOUT=${PATRONI_RETRY_TIMEOUT:-5}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-120}

parse_options "$@"

if [ "$(id -u)" -eq 0 ]; then
  echo "patroni-suite.sh: refusing to run as root: PostgreSQL will not run as root." >&2
  echo "Run it as an unprivileged user that can read the repository, e.g.:" >&2
  echo "  runuser -u postgres -- $0 --target $TARGET" >&2
  exit 2
fi
for b in "$PG_BIN/postgres" "$PG_BIN/initdb" "$PG_BIN/pg_rewind" "$PG_BIN/pg_basebackup" "$PG_BIN/psql"; do
  [ -x "$b" ] || { echo "$b not found; apt-get install -y postgresql (PostgreSQL 15) or set PG_BIN" >&2; exit 2; }
done
for b in "$PATRONI_BIN" "$PATRONICTL_BIN"; do
  command -v "$b" >/dev/null || { echo "$b not found; apt-get install -y patroni" >&2; exit 2; }
done
[ "$(( TTL ))" -ge $(( LOOP_WAIT + 2 * RETRY_TIMEOUT )) ] || \
  { echo "PATRONI_TTL must be >= PATRONI_LOOP_WAIT + 2 * PATRONI_RETRY_TIMEOUT" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/synod-patroni.XXXXXX")
KEPT_NOTE="store logs: $WORK/s*.log, Patroni logs: $WORK/pg*.log, PostgreSQL logs: $WORK/pg*/log, patronictl samples: $WORK/patronictl-samples.log (stderr: patronictl-stderr.log)"
SUITE_START=$(date +%s)
SCOPE="synod-patroni-$$"

# ---------------------------------------------------------------- store members

NAMES=(s1 s2 s3)
NMAX=${#NAMES[@]}
declare -a CPORT PPORT PIDS CMDS EP CURL PURL
BG_PIDS=()
TOKEN="patroni-$$-$RANDOM"

# ports: 3 store client + 3 store peer + 3 PostgreSQL + 3 Patroni REST API
mapfile -t _ports < <(python3 "$HELPERS" freeports 12)
PGN=(pg1 pg2 pg3)
declare -a PG_PORT REST_PORT PAT_PID PAT_CFG PG_DATA C4_START C4_END
for i in 0 1 2; do
  CPORT[$i]=${_ports[$i]}
  PPORT[$i]=${_ports[$((i + 3))]}
  PG_PORT[$i]=${_ports[$((i + 6))]}
  REST_PORT[$i]=${_ports[$((i + 9))]}
  EP[$i]="127.0.0.1:${CPORT[$i]}"
  CURL[$i]="http://${EP[$i]}"
  PURL[$i]="http://127.0.0.1:${PPORT[$i]}"
  PAT_CFG[$i]="$WORK/${PGN[$i]}/patroni.yml"
  PG_DATA[$i]="$WORK/${PGN[$i]}/data"
  PAT_PID[$i]=""
done
ALL_EPS="${EP[0]},${EP[1]},${EP[2]}"
INITIAL_CLUSTER="s1=${PURL[0]},s2=${PURL[1]},s3=${PURL[2]}"

member_cmd() {
  local i=$1
  server_cmd --name "${NAMES[$i]}" --data-dir "$WORK/${NAMES[$i]}.data" \
    --listen-client-urls "${CURL[$i]}" --advertise-client-urls "${CURL[$i]}" \
    --listen-peer-urls "${PURL[$i]}" --initial-advertise-peer-urls "${PURL[$i]}" \
    --initial-cluster "$INITIAL_CLUSTER" --initial-cluster-state new \
    --initial-cluster-token "$TOKEN"
}

health() {
  run timeout 10 "$ETCDCTL_BIN" --endpoints="${EP[$1]}" --dial-timeout=1s --command-timeout=2s endpoint health
}

ectl() { timeout 20 "$ETCDCTL_BIN" --endpoints="${EPS:-$ALL_EPS}" --dial-timeout=2s --command-timeout=5s "$@"; }

# store_leader: sets STORE_LEADER to the index of the store member that
# `endpoint status` (over the live members) names as leader; returns 1 if none.
store_leader() {
  local i eps=""
  for i in 0 1 2; do member_alive "$i" && eps+="${eps:+,}${EP[$i]}"; done
  run ectl_eps "$eps" endpoint status -w json
  [ "$RC" -eq 0 ] || return 1
  STORE_LEADER=$(json '[e["Endpoint"] for e in d if e["Status"]["leader"] == e["Status"]["header"]["member_id"]]')
  for i in 0 1 2; do
    if [ "$STORE_LEADER" = "${EP[$i]}" ] || [ "$STORE_LEADER" = "${CURL[$i]}" ]; then STORE_LEADER=$i; return 0; fi
  done
  return 1
}
ectl_eps() { local EPS=$1; shift; ectl "$@"; }

# ---------------------------------------------------------------- Patroni nodes

write_patroni_config() {
  local i=$1 d="$WORK/${PGN[$i]}"
  mkdir -p "$d/log"
  chmod 700 "$d"
  cat >"${PAT_CFG[$i]}" <<EOF
scope: $SCOPE
namespace: /service/
name: ${PGN[$i]}

log:
  level: INFO
  format: '%(asctime)s %(levelname)s: %(message)s'

restapi:
  listen: 127.0.0.1:${REST_PORT[$i]}
  connect_address: 127.0.0.1:${REST_PORT[$i]}

etcd3:
  hosts:
  - ${EP[0]}
  - ${EP[1]}
  - ${EP[2]}
  protocol: http

bootstrap:
  dcs:
    ttl: $TTL
    loop_wait: $LOOP_WAIT
    retry_timeout: $RETRY_TIMEOUT
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: 'on'
        wal_log_hints: 'on'
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 128MB
  initdb:
  - encoding: UTF8
  - locale: C
  - data-checksums
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust

postgresql:
  listen: 127.0.0.1:${PG_PORT[$i]}
  connect_address: 127.0.0.1:${PG_PORT[$i]}
  data_dir: ${PG_DATA[$i]}
  bin_dir: $PG_BIN
  pgpass: $d/pgpass
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
  authentication:
    superuser:
      username: postgres
      password: patroni-suite-su
    replication:
      username: replicator
      password: patroni-suite-rep
  parameters:
    unix_socket_directories: '$d'
    logging_collector: 'on'
    log_directory: '$d/log'
    log_filename: 'postgresql.log'

watchdog:
  mode: 'off'
EOF
}

pat_log() { echo "$WORK/${PGN[$1]}.log"; }

start_patroni() {
  local i=$1
  echo "### $(date -u +%FT%TZ) start: $PATRONI_BIN ${PAT_CFG[$i]}" >>"$(pat_log "$i")"
  "$PATRONI_BIN" "${PAT_CFG[$i]}" >>"$(pat_log "$i")" 2>&1 &
  PAT_PID[$i]=$!
}

patroni_alive() { [ -n "${PAT_PID[$1]:-}" ] && kill -0 "${PAT_PID[$1]}" 2>/dev/null; }

# postmaster_pid I: the pid in node I's postmaster.pid, if that process runs
# with node I's data directory.
postmaster_pid() {
  local p
  p=$(head -n 1 "${PG_DATA[$1]}/postmaster.pid" 2>/dev/null) || return 1
  [ -n "$p" ] && tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF -- "${PG_DATA[$1]}" && echo "$p"
}

# our_strays: pids (of this user) of processes this run started that are still
# there: command lines naming the temp dir, or PostgreSQL processes titled with
# this run's cluster name (postgres: <scope>: ...); not the store members
# (lib.sh's cleanup stops those).
our_strays() {
  local p cmd
  for p in /proc/[0-9]*; do
    [ -O "$p" ] || continue
    p=${p#/proc/}
    [ "$p" = "$$" ] && continue
    [[ " ${PIDS[*]} " == *" $p "* ]] && continue
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
    case "$cmd" in
      *"$WORK/"*|"postgres: $SCOPE: "*) echo "$p" ;;
    esac
  done
}

stop_all_nodes() {
  local i p deadline
  touch "$WORK/.stop-sampler"
  for i in 0 1 2; do
    if patroni_alive "$i"; then kill -KILL "${PAT_PID[$i]}" 2>/dev/null; wait "${PAT_PID[$i]}" 2>/dev/null; fi
    PAT_PID[$i]=""
  done
  for i in 0 1 2; do
    p=$(postmaster_pid "$i") && kill -QUIT "$p" 2>/dev/null   # immediate shutdown, children too
  done
  deadline=$(( $(date +%s) + 5 ))
  while [ -n "$(our_strays)" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
  for p in $(our_strays); do kill -KILL "$p" 2>/dev/null; done
}

suite_cleanup() {
  local p
  stop_all_nodes
  for p in "${BG_PIDS[@]}"; do
    # the sampler stops by itself (stop file) after its current patronictl call
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  BG_PIDS=()
  cleanup
}

print_logs() {
  local i
  for i in 0 1 2; do
    echo "# ---- tail of ${NAMES[$i]} log ($WORK/${NAMES[$i]}.log), $(member_alive "$i" && echo alive || echo NOT RUNNING)"
    tail -n 15 "$WORK/${NAMES[$i]}.log" 2>/dev/null | indent
  done
  for i in 0 1 2; do
    echo "# ---- tail of ${PGN[$i]} Patroni log ($(pat_log "$i")), $(patroni_alive "$i" && echo alive || echo NOT RUNNING)"
    tail -n 25 "$(pat_log "$i")" 2>/dev/null | indent
  done
}

trap suite_cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- PostgreSQL / patronictl

# psql_at I SQL: one statement on node I over TCP (sets OUT/ERR/RC).
psql_at() {
  run env PGCONNECT_TIMEOUT=3 timeout 15 "$PG_BIN/psql" -h 127.0.0.1 -p "${PG_PORT[$1]}" -U postgres -d postgres \
    -XAtq -v ON_ERROR_STOP=1 -c "$2"
}

node_index() { local i; for i in 0 1 2; do [ "${PGN[$i]}" = "$1" ] && { echo "$i"; return 0; }; done; return 1; }

# plist: `patronictl list -f json`; on success ROLES holds one line per member,
# "name role state timeline", sorted.
plist() {
  ROLES=""
  run timeout 30 "$PATRONICTL_BIN" -c "${PAT_CFG[0]}" list -f json
  [ "$RC" -eq 0 ] || return 1
  ROLES=$(json 'sorted("%s %s %s %s" % (m.get("Member"), m.get("Role"), m.get("State"), m.get("TL", "-")) for m in d)')
  [ -n "$ROLES" ]
}

# plist_table: the human-readable `patronictl list` (for messages).
plist_table() { timeout 30 "$PATRONICTL_BIN" -c "${PAT_CFG[0]}" list 2>&1; }

pg_leader() { printf '%s\n' "$ROLES" | awk '$2 == "Leader" { print $1 }'; }
leader_count() { printf '%s\n' "$ROLES" | awk '$2 == "Leader"' | grep -c .; }
leader_tl() { printf '%s\n' "$ROLES" | awk '$2 == "Leader" { print $4 }'; }

# streaming_on I: number of streaming standbys in pg_stat_replication on node I.
streaming_on() {
  psql_at "$1" "select count(*) from pg_stat_replication where state = 'streaming'"
  [ "$RC" -eq 0 ] && echo "$OUT"
}

# cluster_ready [EXPECTED_LEADER]: patronictl list shows 3 members, one Leader
# (running, the expected one if given), two Replicas (streaming/running), and
# the leader's pg_stat_replication shows 2 streaming standbys. Sets LEADER.
cluster_ready() {
  plist || return 1
  [ "$(printf '%s\n' "$ROLES" | grep -c .)" -eq 3 ] || return 1
  [ "$(printf '%s\n' "$ROLES" | awk '$2 == "Leader" && $3 == "running"' | grep -c .)" -eq 1 ] || return 1
  [ "$(printf '%s\n' "$ROLES" | awk '$2 == "Replica" && ($3 == "streaming" || $3 == "running")' | grep -c .)" -eq 2 ] || return 1
  LEADER=$(pg_leader)
  [ -z "${1:-}" ] || [ "$LEADER" = "$1" ] || return 1
  [ "$(streaming_on "$(node_index "$LEADER")")" = 2 ]
}

# row_on I ID: the value of row ID of table acceptance on node I.
row_on() { psql_at "$1" "select v from acceptance where id = $2"; [ "$RC" -eq 0 ] && [ -n "$OUT" ]; }

# wait_row NAME I ID VALUE TIMEOUT
wait_row() {
  local name=$1 i=$2 id=$3 val=$4 t=$5
  if retry_until "$t" row_matches "$i" "$id" "$val"; then ok "$name"
  else not_ok "$name" "row $id = '$val' on ${PGN[$i]} within ${t}s" "$OUT"; fi
}
row_matches() { row_on "$1" "$2" && [ "$OUT" = "$3" ]; }

# log_size I: current size of node I's Patroni log (for "what was logged since").
log_size() { stat -c %s "$(pat_log "$1")" 2>/dev/null || echo 0; }
log_since() { tail -c +"$(( $2 + 1 ))" "$(pat_log "$1")" 2>/dev/null; }

# ---------------------------------------------------------------- check 5: patronictl sampler

# Runs `patronictl list -f json` every second until $WORK/.stop-sampler exists;
# one line per call: "<epoch> ok <members>" (member: name/role/state/TL) or
# "<epoch> FAIL <exit status> <output>".
sampler() {
  local out rc s
  while [ ! -e "$WORK/.stop-sampler" ]; do
    out=$(timeout 30 "$PATRONICTL_BIN" -c "${PAT_CFG[0]}" list -f json 2>"$WORK/.sampler.err"); rc=$?
    # patronictl logs the store members it could not reach before one answered
    # (stderr); that is not a failure of the call
    [ -s "$WORK/.sampler.err" ] && sed "s/^/$(date +%s) stderr: /" "$WORK/.sampler.err" >>"$WORK/patronictl-stderr.log"
    if [ "$rc" -eq 0 ] && s=$(printf '%s' "$out" | python3 "$HELPERS" json \
        '" ".join(sorted("%s/%s/%s/%s" % (m.get("Member"), m.get("Role"), m.get("State"), m.get("TL", "-")) for m in d))' 2>/dev/null); then
      echo "$(date +%s) ok $s"
    else
      echo "$(date +%s) FAIL $rc $(cat - "$WORK/.sampler.err" <<<"$out" | tr '\n' ' ' | cut -c1-600)"
    fi
    sleep 1
  done
}

# ---------------------------------------------------------------- checks

check_1() {
  local T="1 bootstrap" i t0
  for i in 0 1 2; do write_patroni_config "$i"; done
  t0=$(date +%s)
  for i in 0 1 2; do start_patroni "$i"; done
  sampler >"$WORK/patronictl-samples.log" 2>&1 &
  BG_PIDS+=($!)
  LAST_CMD="patronictl -c ${PAT_CFG[0]} list (every 0.2 s, up to ${BOOT_TIMEOUT}s) + pg_stat_replication on the leader"
  if retry_until "$BOOT_TIMEOUT" cluster_ready; then
    ok "$T: one Leader and two streaming Replicas in patronictl list ($(( $(date +%s) - t0 ))s)"
    ok "$T: pg_stat_replication on the leader ($LEADER) shows 2 streaming standbys"
  else
    RC=0; ERR=""
    not_ok "$T: one Leader and two streaming Replicas in patronictl list" \
      "3 members: 1 Leader running, 2 Replicas streaming; 2 streaming in pg_stat_replication" "$(plist_table)"
    print_logs
    return 1
  fi
  BOOT_LEADER=$LEADER
  echo "# patronictl list after bootstrap:"; plist_table | indent
  expect_out "$T: the store's leader key names the PostgreSQL leader" "$LEADER" \
    ectl get "/service/$SCOPE/leader" --print-value-only
  run ectl get "/service/$SCOPE/members/" --prefix --keys-only
  check "$T: three member keys in the store" "3" "$(printf '%s\n' "$OUT" | grep -c "^/service/$SCOPE/members/pg[123]$")"
  return 0
}

check_2() {
  local T="2 replication" i li
  li=$(node_index "$LEADER")
  psql_at "$li" "create table acceptance (id int primary key, v text); insert into acceptance values (1, 'written on $LEADER')"
  if [ "$RC" -eq 0 ]; then ok "$T: create table + insert on the leader ($LEADER)"
  else not_ok "$T: create table + insert on the leader ($LEADER)" "exit 0" "$OUT"; return 1; fi
  CHECK2_DONE=1
  for i in 0 1 2; do
    [ "$i" = "$li" ] && continue
    wait_row "$T: the row is on replica ${PGN[$i]}" "$i" 1 "written on $LEADER" 20
  done
}

# checks 3 and 4 use check 2's table and row: with --only, run check 2 first.
need_check_2() { [ -n "${CHECK2_DONE:-}" ] || { echo "# (check 2 first: checks 3 and 4 use its table)"; check_2; }; }

check_3() {
  local T="3 pg-failover" old oi pp t0 t_promoted new ni i rej
  need_check_2
  plist; old=$(pg_leader); oi=$(node_index "$old")
  pp=$(postmaster_pid "$oi")
  echo "# killing ${old}'s Patroni (pid ${PAT_PID[$oi]}) and postmaster (pid ${pp:-?}) with SIGKILL"
  t0=$(date +%s)
  kill -KILL "${PAT_PID[$oi]}" 2>/dev/null; wait "${PAT_PID[$oi]}" 2>/dev/null; PAT_PID[$oi]=""
  [ -n "$pp" ] && kill -KILL "$pp" 2>/dev/null
  # a replica must be promoted: leader key expires after at most TTL, the next
  # HA loop (woken by the watch, else after loop_wait) promotes.
  local limit=$(( TTL + 2 * LOOP_WAIT + 10 ))
  LAST_CMD="patronictl list until another member is Leader/running (limit ${limit}s)"
  if retry_until $(( limit + 20 )) new_leader_elected "$old"; then
    t_promoted=$(( $(date +%s) - t0 ))
    new=$(pg_leader); ni=$(node_index "$new")
    if [ "$t_promoted" -le "$limit" ]; then
      ok "$T: $new promoted ${t_promoted}s after $old was killed (TTL ${TTL}s, limit ${limit}s)"
    else
      RC=0; ERR=""
      not_ok "$T: a replica promoted within ${limit}s" "promotion within ${limit}s" "$new promoted after ${t_promoted}s"
    fi
  else
    RC=0; ERR=""
    not_ok "$T: a replica promoted within ${limit}s" "a Leader other than $old, running" "$(plist_table)"
    print_logs
    return 1
  fi
  psql_at "$ni" "select pg_is_in_recovery()"
  check "$T: $new is out of recovery" "f" "$OUT"
  row_on "$ni" 1
  check "$T: the row is on the new leader" "written on $BOOT_LEADER" "$OUT"
  psql_at "$ni" "insert into acceptance values (2, 'written on $new after failover')"
  check_cond "$T: a new write on $new works" "exit 0" "$RC" "$OUT"
  for i in 0 1 2; do
    [ "$i" = "$oi" ] || [ "$i" = "$ni" ] && continue
    wait_row "$T: the new row reaches the other replica ${PGN[$i]}" "$i" 2 "written on $new after failover" 30
  done

  echo "# restarting ${old}'s Patroni"
  start_patroni "$oi"
  LAST_CMD="patronictl list until $old is a streaming Replica of $new (limit 120s)"
  if retry_until 120 cluster_ready "$new"; then
    ok "$T: $old rejoined as a Replica; $new streams to 2 standbys"
  else
    RC=0; ERR=""
    not_ok "$T: $old rejoined as a Replica" "1 Leader ($new), 2 streaming Replicas" "$(plist_table)"
    print_logs
    return 1
  fi
  wait_row "$T: the post-failover row is on the rejoined $old" "$oi" 2 "written on $new after failover" 30
  rej=$(grep -oiE 'pg_rewind|rewind|reinitializ|bootstrap(ping)? from leader' "$(pat_log "$oi")" | sort -u | tr '\n' ',')
  echo "# how $old rejoined (Patroni log): ${rej:-no rewind/reinit logged}"
  echo "# patronictl list after the failover:"; plist_table | indent
}

new_leader_elected() {
  plist || return 1
  local l; l=$(pg_leader)
  [ -n "$l" ] && [ "$l" != "$1" ] && [ "$(leader_count)" -eq 1 ] && \
    printf '%s\n' "$ROLES" | awk -v l="$l" '$1 == l && $3 == "running"' | grep -q .
}

check_4() {
  local T="4 store-failover" li pl tl si sizes=() i wait_s new_lead demots
  need_check_2
  plist; pl=$(pg_leader); tl=$(leader_tl); li=$(node_index "$pl")
  if ! store_leader; then
    not_ok "$T: find the store leader" "endpoint status names a leader" "$OUT"
    return 1
  fi
  si=$STORE_LEADER
  for i in 0 1 2; do sizes[$i]=$(log_size "$i"); C4_START[$i]=${sizes[$i]}; done
  echo "# PostgreSQL leader: $pl (timeline $tl); killing the store leader ${NAMES[$si]} (${EP[$si]}, pid ${PIDS[$si]}) with SIGKILL"
  kill_member "$si" KILL
  wait_s=$(( TTL + 2 * LOOP_WAIT + 10 ))
  # meanwhile: writes through the PostgreSQL leader keep working
  local t_end=$(( $(date +%s) + wait_s )) n=0 wfail=0
  while [ "$(date +%s)" -lt "$t_end" ]; do
    n=$((n + 1))
    psql_at "$li" "insert into acceptance values ($((100 + n)), 'during store failover')" || true
    [ "$RC" -eq 0 ] || wfail=$((wfail + 1))
    sleep 1
  done
  if store_leader; then
    ok "$T: the 2 remaining store members elected ${NAMES[$STORE_LEADER]} as leader"
  else
    not_ok "$T: the 2 remaining store members elected a leader" "one of them is leader" "$OUT"
  fi
  plist
  LAST_CMD="patronictl list, ${wait_s}s after the store leader was killed"
  new_lead=$(pg_leader)
  check "$T: PostgreSQL leader unchanged ${wait_s}s later (TTL ${TTL}s)" "$pl timeline $tl" "$new_lead timeline $(leader_tl)"
  LAST_CMD="psql -h 127.0.0.1 -p ${PG_PORT[$li]} -c 'insert into acceptance ...' once a second since the kill"
  ERR=""
  check "$T: writes on $pl kept working during the store failover ($n tries)" "0 failed" "$wfail failed"
  demots=""
  for i in 0 1 2; do
    demots+=$(log_since "$i" "${sizes[$i]}" | grep -i 'demot' | sed "s/^/${PGN[$i]}: /")
  done
  LAST_CMD="grep -i demot in the Patroni logs since the kill"
  check "$T: no demotion logged by any Patroni" "" "$demots"
  LAST_CMD="patronictl list + pg_stat_replication"
  if retry_until 20 cluster_ready "$pl"; then ok "$T: still one Leader ($pl) and two streaming Replicas"
  else RC=0; ERR=""; not_ok "$T: still one Leader ($pl) and two streaming Replicas" "1 Leader, 2 streaming Replicas" "$(plist_table)"; fi

  echo "# restarting store member ${NAMES[$si]}"
  start_member "$si"
  if wait_healthy "$STARTUP_TIMEOUT" "$si"; then ok "$T: ${NAMES[$si]} restarted and healthy"
  else not_ok "$T: ${NAMES[$si]} restarted and healthy" "endpoint health ok" "$WAIT_MSG"; fi
  LAST_CMD="patronictl list + pg_stat_replication after the store member's restart"
  if retry_until 20 cluster_ready "$pl"; then ok "$T: still one Leader ($pl) after the store member's restart"
  else RC=0; ERR=""; not_ok "$T: still one Leader ($pl) after the store member's restart" "1 Leader, 2 streaming Replicas" "$(plist_table)"; fi
  for i in 0 1 2; do C4_END[$i]=$(log_size "$i"); done
}

# Patroni's log lines about trouble with the store: the watch stream
# (watchprefix/KVCache), lease grant/keep-alive (refresh_lease), requests that
# failed over to another member, the member list, "waiting on etcd".
DCS_TROUBLE='(ERROR|CRITICAL).*(watchprefix|KVCache|refresh_lease|lease|Request to server|list of machines|etcd|/v3)|waiting on etcd|Etcd is not responding'

# dcs_trouble_outside_check_4: such lines from all Patroni logs, leaving out
# what was logged between check 4's store kill and its end.
dcs_trouble_outside_check_4() {
  local i
  for i in 0 1 2; do
    if [ -n "${C4_START[$i]:-}" ] && [ -n "${C4_END[$i]:-}" ]; then
      { head -c "${C4_START[$i]}" "$(pat_log "$i")"; log_since "$i" "${C4_END[$i]}"; }
    else
      cat "$(pat_log "$i")"
    fi | grep -E "$DCS_TROUBLE" | cut -c1-300 | sed "s/^/${PGN[$i]}: /"
  done
}

check_5() {
  local T="5 patronictl" f="$WORK/patronictl-samples.log" total bad multi
  # one more sample after everything, then evaluate all of them
  LAST_CMD="patronictl -c ${PAT_CFG[0]} list (sampled every ~1 s during the run: $f)"
  total=$(grep -c . "$f")
  bad=$(grep -v '^[0-9]* ok ' "$f")
  RC=0; ERR=""
  check "$T: every patronictl list call succeeded ($total samples)" "" "$bad"
  multi=$(awk '/ ok / { n = 0; for (i = 3; i <= NF; i++) if ($i ~ /\/Leader\//) n++; if (n > 1) print }' "$f")
  check "$T: never two Leaders in a patronictl list" "" "$multi"
  plist
  LAST_CMD="patronictl list -f json"
  check "$T: final patronictl list: 1 Leader, 2 Replicas" "1 2" \
    "$(leader_count) $(printf '%s\n' "$ROLES" | awk '$2 == "Replica"' | grep -c .)"
}

check_6() {
  local T="6 store-errors"
  RC=0; ERR=""
  LAST_CMD="grep -E '$DCS_TROUBLE' in the Patroni logs (except during check 4's store failover)"
  check "$T: no errors about the store in the Patroni logs (watch, lease keep-alive, requests) outside check 4" "" \
    "$(dcs_trouble_outside_check_4)"
}

# ---------------------------------------------------------------- main

echo "# target: $TARGET${SYNOD_BIN:+ ($SYNOD_BIN)}"
echo "# temp dir: $WORK"
echo "# store endpoints: $ALL_EPS; PostgreSQL ports: ${PG_PORT[*]}; Patroni REST ports: ${REST_PORT[*]}"
echo "# Patroni scope $SCOPE, ttl $TTL, loop_wait $LOOP_WAIT, retry_timeout $RETRY_TIMEOUT"
for i in 0 1 2; do start_member "$i"; done
echo "# ${NAMES[0]} command: ${CMDS[0]}"
if wait_healthy "$STARTUP_TIMEOUT" 0 1 2; then
  ok "store start: 3 members healthy ($(( $(date +%s) - SUITE_START ))s)"
else
  LAST_CMD="etcdctl --endpoints=<each> endpoint health (timeout ${STARTUP_TIMEOUT}s)"
  ERR=""
  not_ok "store start: 3 members healthy" "endpoint health succeeds on all 3 members" "$WAIT_MSG"
  print_logs
  finish
fi

if check_1; then
  for n in 2 3 4; do
    if want "$n"; then
      echo "# --- check $n"
      "check_$n"
      for i in 0 1 2; do
        if [ -n "${PIDS[$i]:-}" ] && ! member_alive "$i"; then
          echo "# WARNING: store member ${NAMES[$i]} is no longer running"; PIDS[$i]=""
        fi
      done
    fi
  done
fi
echo "# --- check 5"
check_5
echo "# --- check 6"
check_6
[ "$FAIL" -gt 0 ] && print_logs
finish
