#!/usr/bin/env bash
# Acceptance suite: start a real 3-member cluster (etcd 3.4 or synod) on
# loopback and drive it with etcdctl (ETCDCTL_API=3).
#
#   Tests/acceptance/etcdctl-suite.sh --target etcd
#   Tests/acceptance/etcdctl-suite.sh --target synod [--synod-bin PATH]
#
# Options:
#   --target etcd|synod   which server to start (default: synod)
#   --synod-bin PATH      synod binary (default: $SYNOD_BIN or <repo>/.build/debug/synod)
#   --only "N N ..."      run only these test numbers (e.g. --only "1 5 12")
#   --keep                keep the temp dir even when everything passes
#   -h|--help
#
# Environment: SYNOD_BIN, ETCD_BIN (default: etcd), ETCDCTL_BIN (default: etcdctl),
#   STARTUP_TIMEOUT (seconds, default 30), LOG_LEVEL (default info).
#
# Output is TAP-like: "ok - name" / "not ok - name" (+ command, expected,
# actual), and a final line "acceptance: N passed, M failed".
# Exit status: 0 if everything passed, 1 otherwise.

set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"

parse_options "$@"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/synod-acceptance.XXXXXX")
KEPT_NOTE="member logs: $WORK/n*.log"
SUITE_START=$(date +%s)

# ---------------------------------------------------------------- running commands

# (reporting, run, expect_out, expect_error_line, json, retry_until, now_ms: lib.sh)

# ectl ARGS...: etcdctl against $EPS (default: all three endpoints).
ectl() {
  timeout 20 "$ETCDCTL_BIN" --endpoints="${EPS:-$ALL_EPS}" --dial-timeout=2s --command-timeout=5s "$@"
}
# ectl_at ENDPOINTS ARGS...
ectl_at() { local EPS=$1; shift; ectl "$@"; }

# expect_contains NAME SUBSTRING CMD...: command succeeds and stdout contains SUBSTRING.
expect_contains() {
  local name=$1 exp=$2; shift 2
  run "$@"
  if [ "$RC" -eq 0 ] && [[ "$OUT" == *"$exp"* ]]; then ok "$name"; else not_ok "$name" "exit 0, output containing: $exp" "$OUT"; fi
}

# expect_error NAME SUBSTRING CMD...: command fails and stdout+stderr contains SUBSTRING.
expect_error() {
  local name=$1 exp=$2; shift 2
  run "$@"
  if [ "$RC" -ne 0 ] && [[ "$OUT$ERR" == *"$exp"* ]]; then ok "$name"; else not_ok "$name" "non-zero exit, error containing: $exp" "$OUT${ERR:+
[stderr] $ERR}"; fi
}

# ---------------------------------------------------------------- cluster management

# Members 0-2 (n1 n2 n3) form the initial cluster; 3 and 4 (n4, n5) are
# spares that the membership tests (13+) add with `member add` and start
# with --initial-cluster-state existing.
NAMES=(n1 n2 n3 n4 n5)
NMAX=${#NAMES[@]}
declare -a CPORT PPORT PIDS CMDS EP CURL PURL ICLUSTER ISTATE
BG_PIDS=()
TOKEN="acceptance-$$-$RANDOM"

mapfile -t _ports < <(python3 "$HELPERS" freeports $((2 * NMAX + 1)))
for i in $(seq 0 $((NMAX - 1))); do
  CPORT[$i]=${_ports[$i]}
  PPORT[$i]=${_ports[$((i + NMAX))]}
  EP[$i]="127.0.0.1:${CPORT[$i]}"
  CURL[$i]="http://${EP[$i]}"
  PURL[$i]="http://127.0.0.1:${PPORT[$i]}"
done
# a free port nobody listens on (second peer URL in test 15)
SPARE_PURL="http://127.0.0.1:${_ports[$((2 * NMAX))]}"
ALL_EPS="${EP[0]},${EP[1]},${EP[2]}"
INITIAL_CLUSTER="n1=${PURL[0]},n2=${PURL[1]},n3=${PURL[2]}"
# MEMBERS: indices of the current (voting or learner) cluster members.
MEMBERS=(0 1 2)

# member_cmd I: prints the command line (one arg per line) for member I.
# --initial-cluster / --initial-cluster-state come from ICLUSTER[I] / ISTATE[I]
# (default: the 3-member $INITIAL_CLUSTER and "new"); a member joining an
# existing cluster gets ISTATE=existing and ICLUSTER=current members + itself.
member_cmd() {
  local i=$1
  local common=(--name "${NAMES[$i]}" --data-dir "$WORK/${NAMES[$i]}.data"
    --listen-client-urls "${CURL[$i]}" --advertise-client-urls "${CURL[$i]}"
    --listen-peer-urls "${PURL[$i]}" --initial-advertise-peer-urls "${PURL[$i]}"
    --initial-cluster "${ICLUSTER[$i]:-$INITIAL_CLUSTER}" --initial-cluster-state "${ISTATE[$i]:-new}"
    --initial-cluster-token "$TOKEN")
  server_cmd "${common[@]}"
}

print_logs() {
  local i
  for i in $(seq 0 $((NMAX - 1))); do
    [ -e "$WORK/${NAMES[$i]}.log" ] || continue
    echo "# ---- tail of ${NAMES[$i]} log ($WORK/${NAMES[$i]}.log), pid ${PIDS[$i]:-none}, $(member_alive "$i" && echo alive || echo NOT RUNNING)"
    tail -n 30 "$WORK/${NAMES[$i]}.log" 2>/dev/null | indent
  done
}

# health I: one `endpoint health` call for member I (used by wait_healthy, lib.sh).
health() {
  run timeout 10 "$ETCDCTL_BIN" --endpoints="${EP[$1]}" --dial-timeout=1s --command-timeout=2s endpoint health
}

trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tests

# 1. put/get
test_01() {
  local T=01-put-get
  expect_out "$T: put prints OK" "OK" ectl put t01/foo bar
  expect_out "$T: get prints key and value" $'t01/foo\nbar' ectl get t01/foo
  expect_out "$T: get --print-value-only" "bar" ectl get t01/foo --print-value-only
  expect_out "$T: get of a missing key prints nothing" "" ectl get t01/missing
  expect_out "$T: overwrite prints OK" "OK" ectl put t01/foo baz
  expect_out "$T: get after overwrite" $'t01/foo\nbaz' ectl get t01/foo
  expect_out "$T: value with spaces via argument" "OK" ectl put t01/sp "hello world"
  expect_out "$T: get value with spaces" "hello world" ectl get t01/sp --print-value-only
  run ectl get t01/foo -w json
  check "$T: get -w json decodes key/value, count 1, version 2" \
    "t01/foo baz 1 2" "$(json '"%s %s %s %s" % (b64d(d["kvs"][0]["key"]), b64d(d["kvs"][0]["value"]), d["count"], d["kvs"][0]["version"])')"
}

# 2. prefix and range
test_02() {
  local T=02-prefix-range k
  for k in a1 a2 a3 b1; do run ectl put "t02/$k" "v-$k"; done
  check "$T: setup puts" "OK" "$OUT"
  expect_out "$T: get --prefix lists 3 keys in order" \
    $'t02/a1\nv-a1\nt02/a2\nv-a2\nt02/a3\nv-a3' ectl get t02/a --prefix
  expect_out "$T: get KEY RANGE_END is half-open" $'t02/a1\nv-a1\nt02/a2\nv-a2' ectl get t02/a1 t02/a3
  # etcdctl 3.4 prints an empty line after each key with --keys-only
  expect_out "$T: --keys-only" $'t02/a1\n\nt02/a2\n\nt02/a3\n\nt02/b1' ectl get t02/ --prefix --keys-only
  expect_out "$T: --limit 2" $'t02/a1\nv-a1\nt02/a2\nv-a2' ectl get t02/a --prefix --limit 2
  run ectl get t02/a --prefix --limit 2 -w json
  check "$T: --limit 2 -w json: count is total (3), 2 kvs, more=true" "3 2 True" \
    "$(json '"%s %s %s" % (d.get("count", 0), len(d.get("kvs", [])), d.get("more", False))')"
  # etcdctl 3.4 has no --count-only (added in 3.5): count comes from the json header.
  run ectl get t02/ --prefix --keys-only -w json
  check "$T: -w json count over prefix" "4" "$(json 'd.get("count", 0)')"
  expect_out "$T: --sort-by=KEY --order=DESCEND" $'t02/b1\n\nt02/a3\n\nt02/a2\n\nt02/a1' \
    ectl get t02/ --prefix --keys-only --sort-by=KEY --order=DESCEND
  expect_out "$T: --from-key" $'t02/a3\n\nt02/b1' ectl get t02/a3 --from-key --keys-only --limit 2
  expect_out "$T: --sort-by=VALUE --order=DESCEND --limit 1" $'t02/b1\nv-b1' \
    ectl get t02/ --prefix --sort-by=VALUE --order=DESCEND --limit 1
}

# 3. revisions and compaction
test_03() {
  local T=03-revisions R1 R2
  run ectl put t03/k v1 -w json; R1=$(json 'd["header"]["revision"]')
  run ectl put t03/k v2 -w json; R2=$(json 'd["header"]["revision"]')
  check "$T: put -w json returns header.revision, incremented by one per put" "$((R1 + 1))" "$R2"
  run ectl get t03/k -w json
  check "$T: create_revision/mod_revision/version after 2 puts" "$R1 $R2 2" \
    "$(json '"%s %s %s" % (d["kvs"][0]["create_revision"], d["kvs"][0]["mod_revision"], d["kvs"][0]["version"])')"
  check "$T: header.revision of get equals the latest revision (no writes in between)" "$R2" "$(json 'd["header"]["revision"]')"
  expect_out "$T: get --rev=R1 returns v1" $'t03/k\nv1' ectl get t03/k --rev="$R1"
  expect_out "$T: get --rev=R2 returns v2" $'t03/k\nv2' ectl get t03/k --rev="$R2"
  expect_out "$T: get --rev before creation returns nothing" "" ectl get t03/k --rev="$((R1 - 1))"
  expect_error "$T: get --rev in the future fails" "required revision is a future revision" \
    ectl get t03/k --rev=$((R2 + 1000000))
  expect_out "$T: compact R2" "compacted revision $R2" ectl compact "$R2"
  expect_error "$T: get --rev=R1 after compaction fails" "required revision has been compacted" \
    ectl get t03/k --rev="$R1"
  expect_out "$T: get --rev=R2 (the compaction revision) still works" $'t03/k\nv2' ectl get t03/k --rev="$R2"
  expect_error "$T: compacting again at R2 fails" "required revision has been compacted" ectl compact "$R2"
  expect_out "$T: current get unaffected by compaction" "v2" ectl get t03/k --print-value-only
}

# 4. delete
test_04() {
  local T=04-delete k
  run ectl put t04/foo bar
  expect_out "$T: del foo prints 1" "1" ectl del t04/foo
  expect_out "$T: deleted key is gone" "" ectl get t04/foo
  for k in a1 a2 a3 b1; do run ectl put "t04/$k" x; done
  expect_out "$T: del --prefix prints 3" "3" ectl del t04/a --prefix
  expect_out "$T: only b1 left" "t04/b1" ectl get t04/ --prefix --keys-only
  run ectl put t04/p pv
  expect_out "$T: del --prev-kv prints count and previous kv" $'1\nt04/p\npv' ectl del t04/p --prev-kv
  expect_out "$T: deleting a missing key prints 0" "0" ectl del t04/missing
  for k in r1 r2 r3; do run ectl put "t04/$k" x; done
  expect_out "$T: del KEY RANGE_END" "2" ectl del t04/r1 t04/r3
  run ectl put t04/v v1 -w json; local R=$(json 'd["header"]["revision"]')
  run ectl del t04/v -w json
  check "$T: del -w json: deleted=1, revision advanced by one" "1 $((R + 1))" \
    "$(json '"%s %s" % (d.get("deleted", 0), d["header"]["revision"])')"
  run ectl del t04/v -w json
  check "$T: del of missing key does not advance the revision" "$((R + 1))" "$(json 'd["header"]["revision"]')"
}

# 5. txn
test_05() {
  local T=05-txn
  run ectl put t05/k v1; run ectl put t05/k v2
  printf '%s\n' 'value("t05/k") = "v2"' '' 'put t05/res yes' '' 'put t05/res no' '' >"$WORK/txn1"
  expect_out "$T: value compare true -> SUCCESS + put" $'SUCCESS\n\nOK' ectl txn --interactive=false <"$WORK/txn1"
  expect_out "$T: success branch wrote" "yes" ectl get t05/res --print-value-only
  printf '%s\n' 'value("t05/k") = "zz"' '' 'put t05/res yes' '' 'put t05/res no' 'get t05/k' '' >"$WORK/txn2"
  expect_out "$T: value compare false -> FAILURE + put + get" $'FAILURE\n\nOK\n\nt05/k\nv2' \
    ectl txn --interactive=false <"$WORK/txn2"
  expect_out "$T: failure branch wrote" "no" ectl get t05/res --print-value-only
  printf '%s\n' 'mod("t05/k") > "0"' 'version("t05/k") = "2"' 'create("t05/missing") = "0"' '' \
    'put t05/multi ok' 'del t05/res' 'get t05/k' '' 'put t05/multi bad' '' >"$WORK/txn3"
  expect_out "$T: mod/version/create compares -> SUCCESS + put,del,get" $'SUCCESS\n\nOK\n\n1\n\nt05/k\nv2' \
    ectl txn --interactive=false <"$WORK/txn3"
  expect_out "$T: txn results visible" $'t05/k\nv2\nt05/multi\nok' ectl get t05/ --prefix
  printf '%s\n' 'version("t05/k") = "3"' '' 'put t05/x yes' '' 'put t05/x no' '' >"$WORK/txn4"
  run ectl txn --interactive=false -w json <"$WORK/txn4"
  check "$T: false version compare, -w json: succeeded false, 1 response" "False 1" \
    "$(json '"%s %s" % (d.get("succeeded", False), len(d.get("responses", [])))')"
  expect_out "$T: failure branch of json txn wrote" "no" ectl get t05/x --print-value-only
  printf '%s\n' 'create("t05/k") < "1"' '' '' 'put t05/y fb' '' >"$WORK/txn5"
  expect_out "$T: create < compare false, empty success branch -> FAILURE" $'FAILURE\n\nOK' \
    ectl txn --interactive=false <"$WORK/txn5"
  printf '%s\n' 'value("t05/k") != "v1"' 'mod("t05/k") < "1000000"' '' 'put t05/z s' '' '' >"$WORK/txn6"
  expect_out "$T: != and < compares -> SUCCESS" $'SUCCESS\n\nOK' ectl txn --interactive=false <"$WORK/txn6"
  printf '%s\n' '' 'put t05/nocmp ok' '' '' >"$WORK/txn7"
  expect_out "$T: txn without compares runs success branch" $'SUCCESS\n\nOK' ectl txn --interactive=false <"$WORK/txn7"
}

# start_watch FILE ARGS...: start `etcdctl watch ARGS` in the background, writing to FILE.
start_watch() {
  local f=$1; shift
  timeout 60 "$ETCDCTL_BIN" --endpoints="$ALL_EPS" --dial-timeout=2s watch "$@" >"$f" 2>"$f.err" &
  BG_PIDS+=($!)
  WATCH_PID=$!
}
stop_watch() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

# wait_watch_ready FILE SENTINEL_PREFIX: put fresh sentinel keys until one shows up in FILE.
wait_watch_ready() {
  local f=$1 s=$2 n=0 deadline=$(( $(date +%s) + 10 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    n=$((n + 1))
    ectl put "$s$n" ready >/dev/null 2>&1
    sleep 0.3
    grep -q "^$s" "$f" && return 0
  done
  return 1
}

# wait_lines FILE N TIMEOUT: wait until FILE has >= N lines.
wait_lines() {
  local deadline=$(( $(date +%s) + $3 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    [ "$(wc -l <"$1")" -ge "$2" ] && return 0
    sleep 0.2
  done
  return 1
}

# wait_grep FILE REGEX TIMEOUT: wait until a line of FILE matches REGEX.
wait_grep() {
  local deadline=$(( $(date +%s) + $3 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    grep -q -- "$2" "$1" && return 0
    sleep 0.2
  done
  return 1
}

# 6. watch
test_06() {
  local T=06-watch f R
  f="$WORK/watch1"
  start_watch "$f" t06/w --prefix; local wp=$WATCH_PID
  LAST_CMD="etcdctl watch t06/w --prefix (+ sentinel puts)"
  if wait_watch_ready "$f" t06/w-ready-; then ok "$T: watch --prefix established"; else
    not_ok "$T: watch --prefix established" "sentinel PUT seen by watcher" "$(cat "$f" "$f.err")"; fi
  ectl put t06/w1 a >/dev/null; ectl put t06/w2 b >/dev/null; ectl del t06/w1 >/dev/null
  wait_grep "$f" '^DELETE$' 10
  sleep 0.3
  stop_watch "$wp"
  LAST_CMD="etcdctl watch t06/w --prefix; put t06/w1 a; put t06/w2 b; del t06/w1"
  check "$T: PUT w1, PUT w2, DELETE w1 in order" \
    $'PUT\nt06/w1\na\nPUT\nt06/w2\nb\nDELETE\nt06/w1' "$(python3 "$HELPERS" strip-watch t06/w-ready- "$f")"

  # history replay from an old revision
  run ectl put t06/h v1 -w json; R=$(json 'd["header"]["revision"]')
  ectl put t06/h v2 >/dev/null; ectl put t06/other x >/dev/null; ectl put t06/h v3 >/dev/null
  f="$WORK/watch2"
  start_watch "$f" t06/h --rev="$R"; local wr=$WATCH_PID
  wait_lines "$f" 9 10; sleep 0.3
  stop_watch "$wr"
  LAST_CMD="etcdctl watch t06/h --rev=$R"
  check "$T: watch --rev=R replays history" $'PUT\nt06/h\nv1\nPUT\nt06/h\nv2\nPUT\nt06/h\nv3' "$(cat "$f")"

  # --prev-kv
  f="$WORK/watch3"
  start_watch "$f" t06/p --prefix --prev-kv; local wpk=$WATCH_PID
  LAST_CMD="etcdctl watch t06/p --prefix --prev-kv"
  if wait_watch_ready "$f" t06/p-ready-; then ok "$T: watch --prev-kv established"; else
    not_ok "$T: watch --prev-kv established" "sentinel PUT seen by watcher" "$(cat "$f" "$f.err")"; fi
  ectl put t06/p1 a >/dev/null; ectl put t06/p1 b >/dev/null; ectl del t06/p1 >/dev/null
  wait_grep "$f" '^DELETE$' 10; sleep 0.3
  stop_watch "$wpk"
  LAST_CMD="etcdctl watch t06/p --prefix --prev-kv; put t06/p1 a; put t06/p1 b; del t06/p1"
  check "$T: --prev-kv prints previous kv before the new one" \
    $'PUT\nt06/p1\na\nPUT\nt06/p1\na\nt06/p1\nb\nDELETE\nt06/p1\nb\nt06/p1' \
    "$(python3 "$HELPERS" strip-watch t06/p-ready- "$f")"

  # -w json: the PUT type is omitted (enum 0), DELETE is "type":1; kvs carry revisions
  f="$WORK/watch4"
  run ectl put t06/j v1 -w json; R=$(json 'd["header"]["revision"]')
  ectl del t06/j >/dev/null
  start_watch "$f" t06/j --rev="$R" -w json; local wj=$WATCH_PID
  wait_grep "$f" '"type":1' 10; sleep 0.3
  stop_watch "$wj"
  LAST_CMD="etcdctl watch t06/j --rev=$R -w json"
  check "$T: watch -w json events (type, key, mod_revision)" "0 t06/j $R|1 t06/j $((R + 1))" \
    "$(python3 "$HELPERS" jsonlines '"|".join("%s %s %s" % (e.get("type", 0), b64d(e["kv"]["key"]), e["kv"]["mod_revision"]) for r in d for e in r.get("Events", r.get("events", [])))' "$f" 2>&1)"

  # watching from a compacted revision: the server cancels the watch
  run ectl put t06/c v1 -w json; R=$(json 'd["header"]["revision"]')
  ectl put t06/c v2 >/dev/null
  run ectl compact $((R + 1))
  run timeout 10 "$ETCDCTL_BIN" --endpoints="$ALL_EPS" watch t06/c --rev="$R"
  if [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && [[ "$OUT$ERR" == *"required revision has been compacted"* ]]; then
    ok "$T: watch from a compacted revision is canceled"
  else
    not_ok "$T: watch from a compacted revision is canceled" \
      "exit != 0 (not a timeout), 'watch was canceled (etcdserver: mvcc: required revision has been compacted)'" "$OUT$ERR"
  fi
}

# 7. leases
test_07() {
  local T=07-lease ID SID i gone
  run ectl lease grant 60
  ID=$(printf '%s' "$OUT" | sed -n 's/^lease \([0-9a-f]*\) granted with TTL(60s)$/\1/p')
  check_cond "$T: lease grant 60 prints 'lease <hex> granted with TTL(60s)'" \
    "lease <hex id> granted with TTL(60s)" "$([ -n "$ID" ]; echo $?)" "$OUT"
  expect_out "$T: put --lease" "OK" ectl put --lease="$ID" t07/lk v
  run ectl lease timetolive "$ID" --keys
  check_cond "$T: timetolive --keys lists the key" "lease $ID granted with TTL(60s), remaining(5x/60s), attached keys([t07/lk])" \
    "$([[ "$OUT" =~ ^lease\ $ID\ granted\ with\ TTL\(60s\),\ remaining\(([0-9]+)s\),\ attached\ keys\(\[t07/lk\]\)$ ]] && [ "${BASH_REMATCH[1]}" -ge 50 ] && [ "${BASH_REMATCH[1]}" -le 60 ]; echo $?)" "$OUT"
  run ectl lease timetolive "$ID"
  check_cond "$T: timetolive without --keys" "lease $ID granted with TTL(60s), remaining(Ns)" \
    "$([[ "$OUT" =~ ^lease\ $ID\ granted\ with\ TTL\(60s\),\ remaining\([0-9]+s\)$ ]]; echo $?)" "$OUT"
  run ectl get t07/lk -w json
  check "$T: key carries the lease id" "$ID" "$(json 'hexid(d["kvs"][0]["lease"])')"
  run ectl lease list
  check_cond "$T: lease list contains ID" "found N leases / $ID" \
    "$([[ "$OUT" =~ ^found\ [0-9]+\ leases ]] && printf '%s\n' "$OUT" | grep -qx "$ID"; echo $?)" "$OUT"
  expect_out "$T: keep-alive --once" "lease $ID keepalived with TTL(60)" ectl lease keep-alive --once "$ID"
  expect_out "$T: lease revoke" "lease $ID revoked" ectl lease revoke "$ID"
  expect_out "$T: key gone after revoke" "" ectl get t07/lk
  run ectl lease timetolive "$ID"
  check "$T: timetolive of revoked lease" "lease $ID already expired" "$OUT"
  run ectl lease list
  check_cond "$T: revoked lease not listed" "list without $ID" "$(printf '%s\n' "$OUT" | grep -qx "$ID"; [ $? -ne 0 ]; echo $?)" "$OUT"

  # expiry
  run ectl lease grant 2
  SID=$(printf '%s' "$OUT" | sed -n 's/^lease \([0-9a-f]*\) granted with TTL(2s)$/\1/p')
  check_cond "$T: lease grant 2" "lease <hex id> granted with TTL(2s)" "$([ -n "$SID" ]; echo $?)" "$OUT"
  ectl put --lease="$SID" t07/short v >/dev/null 2>&1
  expect_out "$T: key with short lease exists" "v" ectl get t07/short --print-value-only
  local t0; t0=$(now_ms); gone=1
  for i in $(seq 1 40); do
    run ectl get t07/short
    if [ "$RC" -eq 0 ] && [ -z "$OUT" ]; then gone=0; break; fi
    sleep 0.25
  done
  local dt=$(( $(now_ms) - t0 ))
  LAST_CMD="ectl get t07/short (polled for 10s after granting a 2s lease)"
  check_cond "$T: key with expired lease disappears (after ${dt}ms)" "empty output within 10s" "$gone" "$OUT"
  check_cond "$T: key does not disappear before the TTL" ">= ~1500ms" "$([ "$dt" -ge 1000 ]; echo $?)" "${dt}ms"
  expect_out "$T: timetolive of expired lease" "lease $SID already expired" ectl lease timetolive "$SID"
  expect_error "$T: put with expired lease fails" "requested lease not found" ectl put --lease="$SID" t07/short2 v
}

# 8. member list
test_08() {
  local T=08-member-list i
  run ectl member list -w json
  check "$T: 3 members" "3" "$(json 'len(d["members"])')"
  check "$T: names n1,n2,n3" "n1 n2 n3" "$(json '" ".join(sorted(m.get("name", "") for m in d["members"]))')"
  for i in 0 1 2; do
    check "$T: ${NAMES[$i]} peer/client URLs" "${PURL[$i]} ${CURL[$i]}" \
      "$(json '" ".join([",".join(m.get("peerURLs", [])) + " " + ",".join(m.get("clientURLs", [])) for m in d["members"] if m.get("name") == "'"${NAMES[$i]}"'"])')"
  done
  check "$T: member IDs are distinct and non-zero" "3" "$(json 'len(set(m["ID"] for m in d["members"] if m.get("ID")))')"
  check "$T: header has cluster_id and member_id" "true" "$(json 'bool(d["header"].get("cluster_id")) and bool(d["header"].get("member_id"))')"
  run ectl member list
  local exp=""
  for i in 0 1 2; do exp+="started, ${NAMES[$i]}, ${PURL[$i]}, ${CURL[$i]}, false"$'\n'; done
  check "$T: simple format: '<hex id>, started, name, peer, client, false'" "${exp%$'\n'}" \
    "$(printf '%s\n' "$OUT" | sed -n 's/^[0-9a-f]\{1,16\}, //p' | sort)"
}

# endpoint_status ENDPOINTS: run `endpoint status -w json` (sets OUT).
# 9. endpoint status / health
test_09() {
  local T=09-endpoint-status ok_rev=1 i
  expect_out "$T: endpoint health on all 3" \
    "$(for i in 0 1 2; do echo "${EP[$i]} is healthy"; done | sort)" \
    bash -c 'set -o pipefail; "$@" 2>&1 | sed "s/: successfully committed proposal: took = .*//" | sort' _ \
    timeout 20 "$ETCDCTL_BIN" --endpoints="$ALL_EPS" endpoint health
  run ectl member list -w json
  local ids; ids=$(json 'sorted(m["ID"] for m in d["members"])')
  ectl put t09/x y >/dev/null
  for i in $(seq 1 25); do
    run ectl endpoint status -w json
    [ "$(json 'len(set(e["Status"]["header"]["revision"] for e in d))')" = 1 ] && { ok_rev=0; break; }
    sleep 0.2
  done
  check "$T: 3 entries" "3" "$(json 'len(d)')"
  check "$T: Endpoint fields" "$(printf '%s\n' "${EP[@]:0:3}")" "$(json '[e["Endpoint"] for e in d]')"
  check "$T: exactly one leader id, reported by all" "1" "$(json 'len(set(e["Status"]["leader"] for e in d))')"
  check "$T: leader is one of the members (header.member_id)" "1" \
    "$(json 'len([e for e in d if e["Status"]["header"]["member_id"] == e["Status"]["leader"]])')"
  check "$T: member ids in status headers match member list" "$ids" "$(json 'sorted(e["Status"]["header"]["member_id"] for e in d)')"
  check_cond "$T: all same revision eventually" "one distinct revision" "$ok_rev" "$OUT"
  check "$T: raft_term > 0 (header and raftTerm)" "true" \
    "$(json 'all(e["Status"]["header"].get("raft_term", 0) > 0 and e["Status"].get("raftTerm", 0) > 0 for e in d)')"
  check "$T: same cluster_id everywhere" "1" "$(json 'len(set(e["Status"]["header"]["cluster_id"] for e in d))')"
  check "$T: version string present" "true" "$(json 'all(bool(e["Status"].get("version")) for e in d)')"
  run ectl_at "${EP[0]}" endpoint status --cluster -w json
  check "$T: --cluster (discovers endpoints via MemberList) gives 3 entries" "$(printf '%s\n' "${CURL[@]:0:3}" | sort)" \
    "$(json 'sorted(e["Endpoint"] for e in d)')"
  run ectl endpoint status
  check "$T: simple format has 7+ comma-separated fields per endpoint and one leader (true)" "3 1" \
    "$(printf '%s\n' "$OUT" | awk -F', ' 'NF>=7{n++} $5=="true"{l++} END{print n+0, l+0}')"
}

# 10. serializable reads on every member
test_10() {
  local T=10-serializable i
  ectl put t10/foo bar >/dev/null
  for i in 0 1 2; do
    retry_until 5 _get_s "${EP[$i]}" t10/foo bar
    check "$T: get --consistency=s on ${NAMES[$i]}" "bar" "$OUT"
  done
}
_get_s() { run ectl_at "$1" get "$2" --consistency=s --print-value-only; [ "$RC" -eq 0 ] && [ "$OUT" = "$3" ]; }

# 11. errors
test_11() {
  local T=11-errors
  expect_error "$T: put with empty key fails" "key is not provided" ectl put "" v
  expect_error "$T: revoke of an unknown lease fails" "requested lease not found" ectl lease revoke 1234abcd
  expect_error "$T: keep-alive of an unknown lease fails" "requested lease not found" ectl lease keep-alive --once 1234abcd
  # 1.75 MiB: above etcd's --max-request-bytes default (1.5 MiB) but below etcdctl's
  # client-side send limit (2 MiB), so the *server* must reject it.
  head -c $((1792 * 1024)) /dev/zero | tr '\0' x >"$WORK/big"
  expect_error "$T: put of a 1.75 MiB value fails (request is too large)" "request is too large" \
    ectl put t11/big <"$WORK/big"
  expect_out "$T: the too-large value was not stored" "" ectl get t11/big --keys-only
  head -c $((1024 * 1024)) /dev/zero | tr '\0' y >"$WORK/medium"
  expect_out "$T: put of a 1 MiB value succeeds" "OK" ectl put t11/medium <"$WORK/medium"
  run ectl get t11/medium --print-value-only
  check "$T: 1 MiB value reads back" "$((1024 * 1024))" "${#OUT}"
  # A range answer of 9 MiB (more than one piece of a streamed answer) reads back whole.
  local c expected_sum
  : >"$WORK/range-expected"
  for c in a b c d e f g h i; do
    head -c $((1024 * 1024)) /dev/zero | tr '\0' "$c" >"$WORK/range-$c"
    expect_out "$T: put of 1 MiB value t11/r/$c" "OK" ectl put "t11/r/$c" <"$WORK/range-$c"
    { cat "$WORK/range-$c"; echo; } >>"$WORK/range-expected"
  done
  expected_sum=$(sha256sum <"$WORK/range-expected" | cut -d' ' -f1)
  run ectl get t11/r/ --prefix --print-value-only
  check "$T: a 9 MiB range reads back every value in order" "$expected_sum" \
    "$(printf '%s\n' "$OUT" | sha256sum | cut -d' ' -f1)"
  expect_out "$T: the 9 MiB range is deleted" "9" ectl del t11/r/ --prefix
  expect_error "$T: get with range end but empty key" "key is not provided" ectl get "" zzz
  printf '%s\n' 'value("t11/k") = "a"' 'value("t11/k") = "a"' '' 'put t11/k x' 'put t11/k y' '' '' >"$WORK/txn-dup"
  expect_error "$T: txn with duplicate put of the same key fails" "duplicate key given in txn request" \
    ectl txn --interactive=false <"$WORK/txn-dup"
}

# status_leader ENDPOINTS: prints "<leader id> <index of leader member or -1>".
find_leader() {
  run ectl_at "$1" endpoint status -w json
  LEADER_ID=$(json 'd[0]["Status"]["leader"]' | head -1)
  LEADER_IDX=-1
  local i mid
  for i in 0 1 2; do
    run ectl_at "${EP[$i]}" endpoint status -w json
    mid=$(json 'd[0]["Status"]["header"]["member_id"]')
    MEMBER_ID[$i]=$mid
    [ -n "$mid" ] && [ "$mid" = "$LEADER_ID" ] && LEADER_IDX=$i
  done
}

# 12. kill the leader
test_12() {
  local T=12-kill-leader i F L acked=0 others t0 dt
  declare -a MEMBER_ID
  find_leader "$ALL_EPS"
  LAST_CMD="etcdctl endpoint status -w json (each endpoint)"
  if [ "$LEADER_IDX" -lt 0 ]; then
    not_ok "$T: leader found" "one member whose header.member_id equals Status.leader" "leader=$LEADER_ID members=${MEMBER_ID[*]}"
    return
  fi
  ok "$T: leader found (${NAMES[$LEADER_IDX]})"
  L=$LEADER_IDX; F=$(( (L + 1) % 3 ))
  others="${EP[$(( (L + 1) % 3 ))]},${EP[$(( (L + 2) % 3 ))]}"
  for i in $(seq -w 1 20); do
    run ectl_at "${EP[$F]}" put "t12/k$i" "v$i"
    [ "$RC" -eq 0 ] && [ "$OUT" = OK ] && acked=$((acked + 1))
  done
  check "$T: 20 puts through follower ${NAMES[$F]} acknowledged" "20" "$acked"

  kill_member "$L" KILL
  t0=$(now_ms)
  retry_until 15 _put_ok "$others" t12/after v-after
  dt=$(( $(now_ms) - t0 ))
  check "$T: put via remaining endpoints succeeds after SIGKILL of leader" "OK" "$OUT"
  check_cond "$T: ... within ~10 s (took ${dt}ms)" "<= 12000ms" "$([ "$dt" -le 12000 ]; echo $?)" "${dt}ms"

  local newleader=""
  for i in $(seq 1 25); do
    run ectl_at "$others" endpoint status -w json
    newleader=$(json 'd[0]["Status"]["leader"] if len(set(e["Status"]["leader"] for e in d)) == 1 else ""')
    [ -n "$newleader" ] && [ "$newleader" != 0 ] && [ "$newleader" != "$LEADER_ID" ] && break
    sleep 0.2
  done
  check_cond "$T: a new leader is reported by both survivors" "leader != 0 and != $LEADER_ID" \
    "$([ -n "$newleader" ] && [ "$newleader" != 0 ] && [ "$newleader" != "$LEADER_ID" ]; echo $?)" "$OUT"
  check_cond "$T: new leader is a surviving member" "one of ${MEMBER_ID[$(( (L + 1) % 3 ))]} ${MEMBER_ID[$(( (L + 2) % 3 ))]}" \
    "$([ "$newleader" = "${MEMBER_ID[$(( (L + 1) % 3 ))]}" ] || [ "$newleader" = "${MEMBER_ID[$(( (L + 2) % 3 ))]}" ]; echo $?)" "$newleader"

  run ectl_at "$others" get t12/k --prefix -w json
  check "$T: all 20 acknowledged keys readable after failover" \
    "$(for i in $(seq -w 1 20); do echo "t12/k$i=v$i"; done)" \
    "$(json '[b64d(kv["key"]) + "=" + b64d(kv["value"]) for kv in d.get("kvs", [])]')"

  start_member "$L"
  if wait_healthy 30 "$L"; then ok "$T: killed member ${NAMES[$L]} restarted with the same command line"; else
    LAST_CMD="${CMDS[$L]}"
    not_ok "$T: killed member ${NAMES[$L]} restarted with the same command line" "endpoint health ok within 30s" "$WAIT_MSG"$'\n'"$(tail -n 20 "$WORK/${NAMES[$L]}.log")"
  fi
  retry_until 15 _get_s "${EP[$L]}" t12/after v-after
  check "$T: restarted member catches up (serializable get of newest key)" "v-after" "$OUT"
  ectl_at "$others" put t12/final v-final >/dev/null 2>&1
  retry_until 15 _get_s "${EP[$L]}" t12/final v-final
  check "$T: restarted member receives new writes" "v-final" "$OUT"
  run ectl_at "${EP[$L]}" get t12/k --prefix --keys-only --consistency=s
  check "$T: restarted member has all 20 keys" "20" "$(printf '%s\n' "$OUT" | grep -c '^t12/k')"
  expect_out "$T: write through the restarted member" "OK" ectl_at "${EP[$L]}" put t12/via-restarted x
  wait_healthy 10 0 1 2 && ok "$T: all 3 members healthy at the end" || \
    not_ok "$T: all 3 members healthy at the end" "endpoint health ok" "$WAIT_MSG"
}
_put_ok() { run ectl_at "$1" put "$2" "$3"; [ "$RC" -eq 0 ] && [ "$OUT" = OK ]; }

# ---------------------------------------------------------------- membership (13-17)
#
# Tests 13-17 change the membership of the running cluster (etcd 3.4 Cluster
# API + Maintenance.MoveLeader): add n4 as a learner, promote it, update its
# peer URLs, move leadership, remove n4 and the leader, add n5 as a voter.
# MEMBERS holds the indices of the current members, LEARNERS the learners
# among them; ALL_EPS is kept equal to the client endpoints of the voters
# (etcd learners refuse linearizable requests).

declare -a MID LEARNERS=()
CID=""

is_learner_idx() { local l; for l in "${LEARNERS[@]}"; do [ "$l" = "$1" ] && return 0; done; return 1; }

# set_members I...: the current members; recomputes ALL_EPS (voters only).
set_members() {
  MEMBERS=("$@")
  local i eps=""
  for i in "${MEMBERS[@]}"; do is_learner_idx "$i" || eps+="${eps:+,}${EP[$i]}"; done
  ALL_EPS=$eps
}

# cluster_string I: "name=peerURL,..." for the current members plus member I.
cluster_string() { cluster_of "${MEMBERS[@]}" "$1"; }

# load_members: `member list -w json` via ALL_EPS; sets MID[i] (hex member id
# of NAMES[i], empty if not a member or not started) and CID (hex cluster id).
load_members() {
  run ectl member list -w json
  CID=$(json '"%x" % d["header"]["cluster_id"]')
  local i
  for i in $(seq 0 $((NMAX - 1))); do
    MID[$i]=$(json '["%x" % m["ID"] for m in d["members"] if m.get("name") == "'"${NAMES[$i]}"'"][:1]')
  done
}

# simple_line ID: the line of `member list` (simple format, in OUT) for member ID.
simple_line() { printf '%s\n' "$OUT" | grep "^$1, "; }

# _member_add NAME PEER_URL [--learner]: `member add`; "fails" (so that
# retry_until tries again) only on etcd's "unhealthy cluster" (strict reconfig
# check: the voters must have been connected to each other for 5 s).
_member_add() {
  run ectl member add "$1" --peer-urls="$2" "${@:3}"
  [ "$RC" -eq 0 ] || [[ "$ERR" != *"unhealthy cluster"* ]]
}

# add_member T I [--learner]: `member add NAMES[I]` + checks of etcdctl's output;
# sets NEW_ID (hex).
add_member() {
  local T=$1 i=$2 flag=${3:-} what exp_ic ic
  what="member add ${NAMES[$i]} --peer-urls=${PURL[$i]}${flag:+ $flag}"
  retry_until 20 _member_add "${NAMES[$i]}" "${PURL[$i]}" $flag
  NEW_ID=$(printf '%s\n' "$OUT" | sed -n '1s/^Member \{1,\}\([0-9a-f]\{1,16\}\) added to cluster \{1,\}\([0-9a-f]\{1,16\}\)$/\1/p')
  local cid; cid=$(printf '%s\n' "$OUT" | sed -n '1s/^Member \{1,\}[0-9a-f]\{1,16\} added to cluster \{1,\}\([0-9a-f]\{1,16\}\)$/\1/p')
  check_cond "$T: $what prints 'Member <id> added to cluster <cid>' (%16x)" \
    "$(printf 'Member %16s added to cluster %16s' '<id>' "$CID")" \
    "$([ "$RC" -eq 0 ] && [ -n "$NEW_ID" ] && [ "$cid" = "$CID" ] && [ "$(printf '%s\n' "$OUT" | head -1)" = "$(printf 'Member %16s added to cluster %16s' "$NEW_ID" "$CID")" ]; echo $?)" "$OUT"
  check "$T: ... then the ETCD_* environment for the new member (state existing)" \
    $'\nETCD_NAME="'"${NAMES[$i]}"$'"\nETCD_INITIAL_ADVERTISE_PEER_URLS="'"${PURL[$i]}"$'"\nETCD_INITIAL_CLUSTER_STATE="existing"' \
    "$(printf '%s\n' "$OUT" | tail -n +2 | grep -v '^ETCD_INITIAL_CLUSTER=')"
  exp_ic=$(cluster_string "$i" | tr ',' '\n' | sort | paste -sd, -)
  ic=$(printf '%s\n' "$OUT" | sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p' | tr ',' '\n' | sort | paste -sd, -)
  check "$T: ... ETCD_INITIAL_CLUSTER lists the current members + the new one (any order)" "$exp_ic" "$ic"
}

# wait_exit I SECONDS: wait for member I's process to exit by itself; sets EXIT_STATUS.
wait_exit() {
  local i=$1 deadline=$(( $(date +%s) + $2 ))
  while member_alive "$i" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
  if member_alive "$i"; then EXIT_STATUS=""; return 1; fi
  wait "${PIDS[$i]}" 2>/dev/null; EXIT_STATUS=$?
  PIDS[$i]=""
  return 0
}

# check_removed_exits T I: after `member remove`, etcd 3.4 shuts the removed
# member down by itself ("the member has been permanently removed from the
# cluster", exit status 0) within ~2 s. Accepted too: still running, but no
# longer serving as a member (a put through its endpoint fails).
check_removed_exits() {
  local T=$1 i=$2 t0; t0=$(now_ms)
  LAST_CMD="(wait up to 15 s for ${NAMES[$i]}, pid ${PIDS[$i]:-none}, to exit by itself)"
  if wait_exit "$i" 15; then
    ok "$T: removed member ${NAMES[$i]} shut down by itself ($(( $(now_ms) - t0 ))ms, exit status $EXIT_STATUS)"
  else
    run timeout 10 "$ETCDCTL_BIN" --endpoints="${EP[$i]}" --dial-timeout=1s --command-timeout=3s put "t17/via-removed-${NAMES[$i]}" x
    if [ "$RC" -ne 0 ]; then
      ok "$T: removed member ${NAMES[$i]} still running after 15 s but no longer serves (put fails)"
    else
      not_ok "$T: removed member ${NAMES[$i]} shuts down (or at least stops serving) after removal" \
        "process exits (etcd: 'the member has been permanently removed from the cluster'), or a put through it fails" "$OUT"
    fi
    kill_member "$i" TERM
  fi
}

_learner_started() { # I ID: member list shows the learner started
  run ectl member list -w json
  [ "$(member_entry "$2")" = "${NAMES[$1]}|${PURL[$1]}|${CURL[$1]}|True" ]
}

# 13. learner: add, join, serializable reads, refusal of linearizable requests
test_13() {
  local T=13-learner id i exp
  load_members
  add_member "$T" 3 --learner
  id=$NEW_ID
  [ -z "$id" ] && { not_ok "$T: (cannot continue without the new member id)" "member id" "$OUT"; return; }
  run ectl member list -w json
  check "$T: member list: 4 members" "4" "$(json 'len(d["members"])')"
  check "$T: member list -w json: new member unstarted (no name, no client URLs), isLearner true" \
    "|${PURL[3]}||True" "$(member_entry "$id")"
  run ectl member list
  check "$T: member list (simple): '<id>, unstarted, , <peer>, , true'" \
    "$id, unstarted, , ${PURL[3]}, , true" "$(simple_line "$id")"

  expect_error "$T: promote of a learner that has not started fails (not in sync)" \
    "etcdserver: can only promote a learner member which is in sync with leader" ectl member promote "$id"
  expect_error "$T: move-leader to a learner fails" "etcdserver: bad leader transferee" ectl move-leader "$id"

  # second learner while one exists (etcd: at most 1 learner)
  retry_until 20 _member_add "${NAMES[4]}" "${PURL[4]}" --learner
  LAST_CMD="etcdctl member add ${NAMES[4]} --peer-urls=${PURL[4]} --learner"
  check_cond "$T: a second learner is refused" \
    "non-zero exit, 'Error: etcdserver: too many learner members in cluster'" \
    "$([ "$RC" -ne 0 ] && [[ "$OUT$ERR" == *"etcdserver: too many learner members in cluster"* ]]; echo $?)" "$OUT $ERR"
  run ectl member list -w json
  check "$T: ... and not added (still 4 members)" "4" "$(json 'len(d["members"])')"

  expect_out "$T: put before the learner starts" "OK" ectl put t13/before v-before

  ISTATE[3]=existing
  ICLUSTER[3]=$(cluster_string 3)
  LEARNERS=(3)
  start_member 3
  set_members "${MEMBERS[@]}" 3
  echo "# ${NAMES[3]} command: ${CMDS[3]}"
  if retry_until 30 _learner_started 3 "$id"; then
    ok "$T: learner ${NAMES[3]} started with --initial-cluster-state existing (member list shows name + client URL)"
  else
    not_ok "$T: learner ${NAMES[3]} started with --initial-cluster-state existing (member list shows name + client URL)" \
      "${NAMES[3]}|${PURL[3]}|${CURL[3]}|True" "$(member_entry "$id")"$'\n'"$(tail -n 20 "$WORK/${NAMES[3]}.log")"
  fi
  run ectl member list
  check "$T: member list (simple): '<id>, started, n4, <peer>, <client>, true'" \
    "$id, started, ${NAMES[3]}, ${PURL[3]}, ${CURL[3]}, true" "$(simple_line "$id")"

  retry_until 15 _get_s "${EP[3]}" t13/before v-before
  check "$T: key written before the join readable on the learner (--consistency=s)" "v-before" "$OUT"
  ectl put t13/after v-after >/dev/null 2>&1
  retry_until 15 _get_s "${EP[3]}" t13/after v-after
  check "$T: key written after the join readable on the learner (--consistency=s)" "v-after" "$OUT"
  expect_error "$T: linearizable get on the learner fails" "etcdserver: rpc not supported for learner" \
    ectl_at "${EP[3]}" get t13/after
  expect_error "$T: put through the learner fails" "etcdserver: rpc not supported for learner" \
    ectl_at "${EP[3]}" put t13/via-learner x
  run ectl_at "${EP[3]}" endpoint status -w json
  check "$T: endpoint status on the learner: isLearner true, own member_id, a voter as leader" \
    "True $id True" \
    "$(json '"%s %x %s" % (d[0]["Status"].get("isLearner", False), d[0]["Status"]["header"]["member_id"], d[0]["Status"].get("leader", 0) not in (0, d[0]["Status"]["header"]["member_id"]))')"
}

_promote() { # ID: retry while etcd says the learner is not in sync yet
  run ectl member promote "$1"
  [ "$RC" -eq 0 ] || [[ "$ERR" != *"in sync with leader"* ]]
}

# 14. promote the learner
test_14() {
  local T=14-promote id
  load_members
  id=${MID[3]}
  [ -z "$id" ] && { not_ok "$T: n4 is a member (run test 13 first)" "n4 in member list" "$OUT"; return; }
  expect_error_line "$T: promote of a voter fails" "etcdserver: can only promote a learner member" ectl member promote "${MID[0]}"
  expect_error "$T: promote of an unknown id fails" "etcdserver: member not found" ectl member promote 1234abcd
  retry_until 30 _promote "$id"
  check "$T: promote the learner (retrying while not in sync)" \
    "$(printf 'Member %16s promoted in cluster %16s' "$id" "$CID")" "$OUT"
  run ectl member list -w json
  check "$T: member list -w json: n4 is a voter now" "${NAMES[3]}|${PURL[3]}|${CURL[3]}|False" "$(member_entry "$id")"
  check "$T: no learners left" "0" "$(json 'len([m for m in d["members"] if m.get("isLearner")])')"
  run ectl member list
  check "$T: member list (simple): '..., false'" "$id, started, ${NAMES[3]}, ${PURL[3]}, ${CURL[3]}, false" "$(simple_line "$id")"
  LEARNERS=()
  set_members "${MEMBERS[@]}"
  if wait_healthy 15 3; then ok "$T: endpoint health on the promoted member"; else
    not_ok "$T: endpoint health on the promoted member" "healthy" "$WAIT_MSG"; fi
  expect_out "$T: put through the promoted member" "OK" ectl_at "${EP[3]}" put t14/via-n4 v14
  expect_out "$T: linearizable get through the promoted member" "v14" ectl_at "${EP[3]}" get t14/via-n4 --print-value-only
  retry_until 10 _get_s "${EP[0]}" t14/via-n4 v14
  check "$T: ... replicated to n1" "v14" "$OUT"
  expect_error_line "$T: promoting it again fails" "etcdserver: can only promote a learner member" ectl member promote "$id"
  run ectl endpoint status -w json
  check "$T: endpoint status on all 4: one leader, no learner" "4 1 0" \
    "$(json '"%d %d %d" % (len(d), len(set(e["Status"]["leader"] for e in d)), len([e for e in d if e["Status"].get("isLearner")]))')"
}

# 15. member update (peer URLs)
test_15() {
  local T=15-member-update id two
  load_members
  id=${MID[3]}
  [ -z "$id" ] && { not_ok "$T: n4 is a member (run tests 13-14 first)" "n4 in member list" "$OUT"; return; }
  # etcd only records the new URLs (peers use them to reach n4): keep n4's real
  # URL first and add a second one nobody listens on, then change it back.
  two="${PURL[3]},$SPARE_PURL"
  expect_out "$T: update n4 to two peer URLs" "$(printf 'Member %16s updated in cluster %16s' "$id" "$CID")" \
    ectl member update "$id" --peer-urls="$two"
  run ectl member list -w json
  check "$T: member list -w json shows both peer URLs" "${NAMES[3]}|$two|${CURL[3]}|False" "$(member_entry "$id")"
  run ectl member list
  check "$T: member list (simple) shows both peer URLs" "$id, started, ${NAMES[3]}, $two, ${CURL[3]}, false" "$(simple_line "$id")"
  expect_out "$T: writes keep working" "OK" ectl put t15/a v15
  retry_until 10 _get_s "${EP[3]}" t15/a v15
  check "$T: ... and reach n4" "v15" "$OUT"
  expect_error "$T: update of an unknown id fails" "etcdserver: member not found" \
    ectl member update 1234abcd --peer-urls="$SPARE_PURL"
  expect_error "$T: update to another member's peer URL fails" "etcdserver: Peer URLs already exists" \
    ectl member update "$id" --peer-urls="${PURL[0]}"
  run ectl member list -w json
  check "$T: ... and changes nothing" "${NAMES[3]}|$two|${CURL[3]}|False" "$(member_entry "$id")"
  expect_out "$T: update n4 back to its single peer URL" "$(printf 'Member %16s updated in cluster %16s' "$id" "$CID")" \
    ectl member update "$id" --peer-urls="${PURL[3]}"
  run ectl member list -w json
  check "$T: member list shows the single peer URL again" "${NAMES[3]}|${PURL[3]}|${CURL[3]}|False" "$(member_entry "$id")"
  expect_out "$T: put through n4 after the updates" "OK" ectl_at "${EP[3]}" put t15/b v15b
  wait_healthy 10 "${MEMBERS[@]}" && ok "$T: all 4 members healthy" || not_ok "$T: all 4 members healthy" "endpoint health ok" "$WAIT_MSG"
}

# _leader_is ID: every current member's endpoint status reports leader ID.
_leader_is() {
  run ectl endpoint status -w json
  [ "$(json '" ".join(sorted(set("%x" % e["Status"]["leader"] for e in d)))') $(json 'len(d)')" = "$1 ${#MEMBERS[@]}" ]
}

# current_leader: sets LEADER (hex id) and LEADER_IDX from endpoint status of ALL_EPS.
current_leader() {
  run ectl endpoint status -w json
  LEADER=$(json '" ".join(sorted(set("%x" % e["Status"]["leader"] for e in d)))')
  LEADER_IDX=-1
  local i
  for i in "${MEMBERS[@]}"; do [ -n "${MID[$i]}" ] && [ "${MID[$i]}" = "$LEADER" ] && LEADER_IDX=$i; done
}

# 16. move-leader
test_16() {
  local T=16-move-leader L t1 t2 i
  load_members
  current_leader
  LAST_CMD="etcdctl endpoint status -w json"
  if [ "$LEADER_IDX" -lt 0 ]; then
    not_ok "$T: one leader, a current member" "the same leader id on all endpoints" "$LEADER / ${MID[*]}"; return
  fi
  ok "$T: leader is ${NAMES[$LEADER_IDX]} ($LEADER)"
  L=$LEADER
  # first to n4 (the promoted learner), then to one of n1-n3 that has not led yet
  t1=${MID[3]}
  if [ -z "$t1" ] || [ "$LEADER_IDX" = 3 ]; then
    for i in 0 1 2; do [ -n "${MID[$i]}" ] && [ "${MID[$i]}" != "$L" ] && { t1=${MID[$i]}; break; }; done
  fi
  for i in 0 1 2; do [ "${MID[$i]}" != "$L" ] && [ "${MID[$i]}" != "$t1" ] && { t2=${MID[$i]}; break; }; done
  expect_out "$T: move-leader to a follower (all endpoints given)" "Leadership transferred from $L to $t1" ectl move-leader "$t1"
  retry_until 5 _leader_is "$t1"
  check "$T: endpoint status on every member reports the new leader" "$t1 ${#MEMBERS[@]}" \
    "$(json '" ".join(sorted(set("%x" % e["Status"]["leader"] for e in d)))') $(json 'len(d)')"
  expect_out "$T: move-leader again" "Leadership transferred from $t1 to $t2" ectl move-leader "$t2"
  retry_until 5 _leader_is "$t2"
  check "$T: ... reported by every member" "$t2 ${#MEMBERS[@]}" \
    "$(json '" ".join(sorted(set("%x" % e["Status"]["leader"] for e in d)))') $(json 'len(d)')"
  expect_out "$T: move-leader to the current leader is a no-op success" \
    "Leadership transferred from $t2 to $t2" ectl move-leader "$t2"
  expect_error "$T: move-leader to an unknown id fails" "etcdserver: bad leader transferee" ectl move-leader 1234abcd
  for i in "${MEMBERS[@]}"; do [ "${MID[$i]}" != "$t2" ] && break; done
  expect_error "$T: move-leader with only a follower's endpoint fails (etcdctl needs the leader)" \
    "no leader endpoint given at [${EP[$i]}]" ectl_at "${EP[$i]}" move-leader "$t1"
  expect_out "$T: writes keep working" "OK" ectl put t16/after-move v16
  for i in "${MEMBERS[@]}"; do [ "${MID[$i]}" = "$t2" ] && break; done
  expect_out "$T: put through the new leader" "OK" ectl_at "${EP[$i]}" put t16/via-leader v16
  expect_out "$T: get" "v16" ectl get t16/after-move --print-value-only
}

# _new_leader: both survivors report the same leader, one of them.
_new_leader() {
  current_leader
  [ "$LEADER_IDX" -ge 0 ] && [ "$(json 'len(d)')" = "${#MEMBERS[@]}" ]
}

# 17. remove members (a follower, unknown ids, the leader), then add n5 as a voter
test_17() {
  local T=17-remove id i L rest=() keep=() d1 d2
  load_members
  id=${MID[3]}
  [ -z "$id" ] && { not_ok "$T: n4 is a member (run tests 13-14 first)" "n4 in member list" "$OUT"; return; }
  # n4 out of the endpoint list first (a removed member stops serving)
  for i in "${MEMBERS[@]}"; do [ "$i" != 3 ] && keep+=("$i"); done
  set_members "${keep[@]}"
  expect_out "$T: remove n4 (a voter)" "$(printf 'Member %16s removed from cluster %16s' "$id" "$CID")" ectl member remove "$id"
  run ectl member list -w json
  check "$T: member list: 3 members n1 n2 n3" "3 n1 n2 n3" "$(json '" ".join([str(len(d["members"]))] + sorted(m.get("name", "") for m in d["members"]))')"
  check "$T: n4's id is gone" "" "$(member_entry "$id")"
  check_removed_exits "$T" 3
  expect_error "$T: removing n4 again fails" "etcdserver: member not found" ectl member remove "$id"
  expect_error "$T: removing an unknown id fails" "etcdserver: member not found" ectl member remove 1234abcd
  expect_out "$T: writes keep working with 3 members" "OK" ectl put t17/after-n4 v

  # remove the leader, through the other two members
  current_leader
  if [ "$LEADER_IDX" -lt 0 ]; then
    not_ok "$T: leader found" "one leader among ${MEMBERS[*]}" "$OUT"; return
  fi
  L=$LEADER_IDX
  for i in "${MEMBERS[@]}"; do [ "$i" != "$L" ] && rest+=("$i"); done
  set_members "${rest[@]}"
  expect_out "$T: remove the leader ${NAMES[$L]}" "$(printf 'Member %16s removed from cluster %16s' "${MID[$L]}" "$CID")" \
    ectl member remove "${MID[$L]}"
  check_removed_exits "$T" "$L"
  local t0; t0=$(now_ms)
  retry_until 15 _new_leader
  check_cond "$T: the remaining 2 elect a new leader ($(( $(now_ms) - t0 ))ms)" \
    "same leader on both, one of ${MID[${rest[0]}]} ${MID[${rest[1]}]}" "$([ "$LEADER_IDX" -ge 0 ]; echo $?)" "$OUT"
  retry_until 15 _put_ok "$ALL_EPS" t17/after-leader v-after-leader
  check "$T: ... and accept writes" "OK" "$OUT"
  run ectl member list -w json
  check "$T: member list: 2 members" "2 ${NAMES[${rest[0]}]} ${NAMES[${rest[1]}]}" \
    "$(json '" ".join([str(len(d["members"]))] + sorted(m.get("name", "") for m in d["members"]))')"

  # add n5 as a voter and start it
  add_member "$T" 4
  id=$NEW_ID
  [ -z "$id" ] && { not_ok "$T: (cannot continue without the new member id)" "member id" "$OUT"; return; }
  run ectl member list -w json
  check "$T: member list -w json: n5 unstarted voter" "|${PURL[4]}||False" "$(member_entry "$id")"
  run ectl member list
  check "$T: member list (simple): '<id>, unstarted, , <peer>, , false'" "$id, unstarted, , ${PURL[4]}, , false" "$(simple_line "$id")"
  ISTATE[4]=existing
  ICLUSTER[4]=$(cluster_string 4)
  start_member 4
  set_members "${MEMBERS[@]}" 4
  echo "# ${NAMES[4]} command: ${CMDS[4]}"
  if wait_healthy 30 4; then ok "$T: n5 joined with --initial-cluster-state existing and is healthy"; else
    LAST_CMD="${CMDS[4]}"
    not_ok "$T: n5 joined with --initial-cluster-state existing and is healthy" "endpoint health ok within 30s" \
      "$WAIT_MSG"$'\n'"$(tail -n 20 "$WORK/${NAMES[4]}.log")"
  fi
  ectl put t17/sync s >/dev/null 2>&1
  retry_until 15 _get_s "${EP[4]}" t17/sync s
  check "$T: n5 caught up (serializable get of the newest key)" "s" "$OUT"
  for i in t13/before=v-before t13/after=v-after t14/via-n4=v14 t17/after-leader=v-after-leader; do
    run ectl_at "${EP[4]}" get "${i%%=*}" --consistency=s --print-value-only
    check "$T: ${i%%=*} on n5 (--consistency=s)" "${i#*=}" "$OUT"
  done
  run ectl_at "${EP[4]}" get "" --prefix --consistency=s -w json; d1=$(printf '%s' "$OUT" | python3 "$HELPERS" kvdigest 2>&1)
  run ectl_at "${EP[${rest[0]}]}" get "" --prefix --consistency=s -w json; d2=$(printf '%s' "$OUT" | python3 "$HELPERS" kvdigest 2>&1)
  LAST_CMD="etcdctl get '' --prefix --consistency=s -w json on n5 and on ${NAMES[${rest[0]}]} (count + digest)"
  check "$T: whole key space on n5 equals ${NAMES[${rest[0]}]}'s (count, digest)" "$d2" "$d1"
  run ectl member list -w json
  check "$T: member list: 3 members, all started" "3 3 $(for i in "${MEMBERS[@]}"; do echo "${NAMES[$i]}"; done | sort | paste -sd' ' -)" \
    "$(json '"%d %d %s" % (len(d["members"]), len([m for m in d["members"] if m.get("name") and m.get("clientURLs")]), " ".join(sorted(m.get("name", "") for m in d["members"])))')"
  run ectl member list
  check "$T: member list (simple): all started" "3" "$(printf '%s\n' "$OUT" | grep -c '^[0-9a-f]*, started, ')"
  expect_out "$T: put through n5" "OK" ectl_at "${EP[4]}" put t17/via-n5 v
  wait_healthy 10 "${MEMBERS[@]}" && ok "$T: all 3 members healthy at the end" || \
    not_ok "$T: all 3 members healthy at the end" "endpoint health ok" "$WAIT_MSG"
}

# bg_ectl FILE ARGS...: etcdctl ARGS in the background (stdout to FILE, stderr to FILE.err);
# BG_PID is its pid. Stop it with SIGINT (stop_bg), as a user ends `etcdctl lock`/`elect`.
bg_ectl() {
  local f=$1; shift
  timeout 60 "$ETCDCTL_BIN" --endpoints="$ALL_EPS" --dial-timeout=2s "$@" >"$f" 2>"$f.err" &
  BG_PID=$!
  BG_PIDS+=($!)
}
stop_bg() { kill -INT "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

# 18. lock and elect (etcd's concurrency recipes over txn, leases and watches)
test_18() {
  local T=18-lock-elect f1 f2 f3 p1 p2 p3 k1 k2
  # Mutual exclusion: a second locker waits until the first lets go.
  f1="$WORK/lock1"; f2="$WORK/lock2"
  bg_ectl "$f1" lock t18/lock; p1=$BG_PID
  LAST_CMD="etcdctl lock t18/lock (first holder)"
  if wait_lines "$f1" 1 10; then ok "$T: first locker holds the lock"; else
    not_ok "$T: first locker holds the lock" "its key printed" "$(cat "$f1" "$f1.err")"; fi
  k1=$(head -1 "$f1")
  check_cond "$T: the lock key is t18/lock/<lease hex>" "t18/lock/<hex>" "$([[ "$k1" =~ ^t18/lock/[0-9a-f]+$ ]]; echo $?)" "$k1"
  bg_ectl "$f2" lock t18/lock; p2=$BG_PID
  sleep 2
  LAST_CMD="etcdctl lock t18/lock (second, while the first holds it)"
  check "$T: second locker waits while the first holds the lock" "" "$(cat "$f2")"
  run ectl get t18/lock --prefix --keys-only
  check "$T: both lockers have a key under t18/lock/" "2" "$(printf '%s\n' "$OUT" | grep -c '^t18/lock/')"
  stop_bg "$p1"
  LAST_CMD="etcdctl lock t18/lock (second, after SIGINT to the first)"
  if wait_lines "$f2" 1 10; then ok "$T: second locker gets the lock once the first is interrupted"; else
    not_ok "$T: second locker gets the lock once the first is interrupted" "its key printed" "$(cat "$f2" "$f2.err")"; fi
  k2=$(head -1 "$f2")
  check_cond "$T: the second holder has another key" "a key other than $k1" "$([ -n "$k2" ] && [ "$k2" != "$k1" ]; echo $?)" "$k2"
  # A command run with the lock held waits too, then runs with ETCD_LOCK_KEY set.
  run timeout 3 "$ETCDCTL_BIN" --endpoints="$ALL_EPS" lock t18/lock -- echo ran
  LAST_CMD="timeout 3 etcdctl lock t18/lock -- echo ran (while held)"
  check "$T: lock with a command does not run it while another holds the lock" "124:" "$RC:$OUT"
  stop_bg "$p2"
  expect_out "$T: the lock is free again (no key left)" "" ectl get t18/lock --prefix --keys-only
  run ectl lock t18/lock -- sh -c 'echo "held $ETCD_LOCK_KEY"'
  LAST_CMD="etcdctl lock t18/lock -- sh -c 'echo \"held \$ETCD_LOCK_KEY\"'"
  check_cond "$T: lock runs the command with the lock held" "exit 0, 'held t18/lock/<hex>'" \
    "$([ "$RC" -eq 0 ] && [[ "$OUT" =~ ^held\ t18/lock/[0-9a-f]+$ ]]; echo $?)" "rc=$RC $OUT"
  expect_out "$T: the command's lock is released when it ends" "" ectl get t18/lock --prefix --keys-only
  run ectl lock t18/lock -- sh -c 'exit 3'
  check_cond "$T: a failing command makes lock fail" "non-zero exit" "$([ "$RC" -ne 0 ]; echo $?)" "rc=$RC"

  # Election: an observer sees the first leader's proposal, then the next leader's.
  f1="$WORK/elect-l"; f2="$WORK/elect1"; f3="$WORK/elect2"
  bg_ectl "$f1" elect -l t18/el; p1=$BG_PID
  sleep 1
  bg_ectl "$f2" elect t18/el p1; p2=$BG_PID
  LAST_CMD="etcdctl elect t18/el p1"
  if wait_lines "$f2" 2 10; then ok "$T: the first candidate is elected"; else
    not_ok "$T: the first candidate is elected" "key and proposal printed" "$(cat "$f2" "$f2.err")"; fi
  k1=$(head -1 "$f2")
  check "$T: elect prints the leader key and proposal" "p1" "$(sed -n 2p "$f2")"
  check_cond "$T: the leader key is t18/el/<lease hex>" "t18/el/<hex>" "$([[ "$k1" =~ ^t18/el/[0-9a-f]+$ ]]; echo $?)" "$k1"
  bg_ectl "$f3" elect t18/el p2; p3=$BG_PID
  sleep 2
  check "$T: the second candidate waits while the first leads" "" "$(cat "$f3")"
  stop_bg "$p2"
  LAST_CMD="etcdctl elect t18/el p2 (after SIGINT to the first leader)"
  if wait_lines "$f3" 2 10; then ok "$T: the second candidate leads once the first resigns"; else
    not_ok "$T: the second candidate leads once the first resigns" "key and proposal printed" "$(cat "$f3" "$f3.err")"; fi
  k2=$(head -1 "$f3")
  wait_lines "$f1" 4 10
  stop_bg "$p3"; sleep 0.5; stop_bg "$p1"
  LAST_CMD="etcdctl elect -l t18/el (while p1 then p2 lead)"
  check "$T: elect -l sees the proposal and the change of leader" "$k1"$'\n'"p1"$'\n'"$k2"$'\n'"p2" "$(cat "$f1")"
  expect_error_line_rc "$T: elect without a proposal or -l fails" 128 "no proposal argument but -l not set" ectl elect t18/el

  # `synod lock` and `synod elect` call the Lock and Election services (of etcd or Synod) and
  # must agree with etcdctl's recipes on the same names.
  local cli=${SYNOD_BIN:-${SYNOD_BIN_ARG:-.build/debug/synod}}
  case "$cli" in /*) ;; *) cli="$REPO_ROOT/$cli" ;; esac
  if [ ! -x "$cli" ]; then skip "$T: synod lock / synod elect" "no synod binary at $cli"; return; fi
  f1="$WORK/lock3"
  bg_ectl "$f1" lock t18/mixed; p1=$BG_PID
  wait_lines "$f1" 1 10
  run timeout 3 "$cli" lock --endpoints "$ALL_EPS" t18/mixed -- echo ran
  LAST_CMD="timeout 3 synod lock t18/mixed -- echo ran (while etcdctl lock holds t18/mixed)"
  check "$T: synod lock waits while etcdctl lock holds the lock" "124:" "$RC:$OUT"
  bg_synod() { local f=$1; shift; timeout 60 "$cli" "$@" >"$f" 2>"$f.err" & BG_PID=$!; BG_PIDS+=($!); }
  f2="$WORK/lock4"
  bg_synod "$f2" lock --endpoints "$ALL_EPS" t18/mixed; p2=$BG_PID
  sleep 1
  stop_bg "$p1"
  LAST_CMD="synod lock t18/mixed (after SIGINT to etcdctl lock)"
  if wait_lines "$f2" 1 10; then ok "$T: synod lock gets the lock once etcdctl lets go"; else
    not_ok "$T: synod lock gets the lock once etcdctl lets go" "its key printed" "$(cat "$f2" "$f2.err")"; fi
  check_cond "$T: synod lock prints the key like etcdctl" "t18/mixed/<hex> and an empty line" \
    "$([[ "$(head -1 "$f2")" =~ ^t18/mixed/[0-9a-f]+$ ]] && [ "$(wc -l <"$f2")" -eq 2 ]; echo $?)" "$(cat "$f2")"
  run timeout 3 "$ETCDCTL_BIN" --endpoints="$ALL_EPS" lock t18/mixed -- echo ran
  LAST_CMD="timeout 3 etcdctl lock t18/mixed -- echo ran (while synod lock holds t18/mixed)"
  check "$T: etcdctl lock waits while synod lock holds the lock" "124:" "$RC:$OUT"
  stop_bg "$p2"
  expect_out "$T: synod lock releases the lock on SIGINT" "" ectl get t18/mixed --prefix --keys-only
  run "$cli" lock --endpoints "$ALL_EPS" t18/mixed -- sh -c 'echo "held $ETCD_LOCK_KEY"; exit 3'
  LAST_CMD="synod lock t18/mixed -- sh -c 'echo \"held \$ETCD_LOCK_KEY\"; exit 3'"
  check_cond "$T: synod lock runs the command with the lock and exits with its status" "exit 3, 'held t18/mixed/<hex>'" \
    "$([ "$RC" -eq 3 ] && [[ "$OUT" =~ ^held\ t18/mixed/[0-9a-f]+$ ]]; echo $?)" "rc=$RC $OUT"
  expect_out "$T: the command's lock is released when it ends (synod lock)" "" ectl get t18/mixed --prefix --keys-only

  f1="$WORK/elect-l2"; f2="$WORK/elect3"; f3="$WORK/elect4"
  bg_synod "$f1" elect -l --endpoints "$ALL_EPS" t18/el2; p1=$BG_PID
  sleep 1
  bg_ectl "$f2" elect t18/el2 e1; p2=$BG_PID
  wait_lines "$f2" 2 10
  bg_synod "$f3" elect --endpoints "$ALL_EPS" t18/el2 s2; p3=$BG_PID
  sleep 2
  LAST_CMD="synod elect t18/el2 s2 (while etcdctl elect leads)"
  check "$T: synod elect waits while etcdctl elect leads" "" "$(cat "$f3")"
  stop_bg "$p2"
  LAST_CMD="synod elect t18/el2 s2 (after SIGINT to etcdctl elect)"
  if wait_lines "$f3" 2 10; then ok "$T: synod elect leads once etcdctl's leader resigns"; else
    not_ok "$T: synod elect leads once etcdctl's leader resigns" "key and proposal printed" "$(cat "$f3" "$f3.err")"; fi
  wait_lines "$f1" 4 10
  stop_bg "$p3"; sleep 0.5; stop_bg "$p1"
  LAST_CMD="synod elect -l t18/el2 (while etcdctl's e1 then synod's s2 lead)"
  check "$T: synod elect -l sees both leaders and proposals" "$(cat "$f2")"$'\n'"$(cat "$f3")" "$(cat "$f1")"
  run "$cli" elect --endpoints "$ALL_EPS" t18/el2
  check_cond "$T: synod elect without a proposal or -l fails" "non-zero exit, 'no proposal argument but -l not set'" \
    "$([ "$RC" -ne 0 ] && [[ "$ERR" == *"no proposal argument but -l not set"* ]]; echo $?)" "rc=$RC $ERR"
}

# ---------------------------------------------------------------- main

echo "# target: $TARGET${SYNOD_BIN:+ ($SYNOD_BIN)}"
echo "# temp dir: $WORK"
echo "# endpoints: $ALL_EPS  peers: ${PURL[*]:0:3}  (n4/n5 for tests 13+: ${EP[3]} ${PURL[3]} / ${EP[4]} ${PURL[4]})"
for i in 0 1 2; do start_member "$i"; done
echo "# ${NAMES[0]} command: ${CMDS[0]}"
if wait_healthy "$STARTUP_TIMEOUT" 0 1 2; then
  ok "cluster start: 3 members healthy ($(( $(date +%s) - SUITE_START ))s)"
else
  LAST_CMD="etcdctl --endpoints=<each> endpoint health (timeout ${STARTUP_TIMEOUT}s)"
  ERR=""
  not_ok "cluster start: 3 members healthy" "endpoint health succeeds on all 3 members" "$WAIT_MSG"
  print_logs
  finish
fi

for n in $(seq 1 18); do
  if want "$n"; then
    fn=$(printf 'test_%02d' "$n")
    echo "# --- $fn"
    before=$FAIL
    "$fn"
    # a member that died unexpectedly explains most failures: say so
    for i in $(seq 0 $((NMAX - 1))); do
      if [ -n "${PIDS[$i]:-}" ] && ! member_alive "$i"; then
        echo "# WARNING: member ${NAMES[$i]} is no longer running"; print_logs; PIDS[$i]=""
      fi
    done
  fi
done

finish
