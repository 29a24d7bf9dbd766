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
REPO_ROOT=$(cd "$HERE/../.." && pwd)
HELPERS="$HERE/helpers.py"

TARGET=synod
SYNOD_BIN_ARG=""
ONLY=""
KEEP=0
ETCD_BIN=${ETCD_BIN:-etcd}
ETCDCTL_BIN=${ETCDCTL_BIN:-etcdctl}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-30}
LOG_LEVEL=${LOG_LEVEL:-info}

usage() { sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --target) TARGET=${2:?--target needs a value}; shift 2 ;;
    --target=*) TARGET=${1#*=}; shift ;;
    --synod-bin) SYNOD_BIN_ARG=${2:?--synod-bin needs a value}; shift 2 ;;
    --synod-bin=*) SYNOD_BIN_ARG=${1#*=}; shift ;;
    --only) ONLY=${2:?--only needs a value}; shift 2 ;;
    --only=*) ONLY=${1#*=}; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

case "$TARGET" in
  etcd)
    command -v "$ETCD_BIN" >/dev/null || { echo "etcd binary not found ($ETCD_BIN); apt-get install -y etcd-server" >&2; exit 2; } ;;
  synod)
    SYNOD_BIN=${SYNOD_BIN_ARG:-${SYNOD_BIN:-.build/debug/synod}}
    case "$SYNOD_BIN" in /*) ;; *) SYNOD_BIN="$REPO_ROOT/$SYNOD_BIN" ;; esac
    [ -x "$SYNOD_BIN" ] || { echo "synod binary not found or not executable: $SYNOD_BIN (build with 'swift build' or pass --synod-bin)" >&2; exit 2; } ;;
  *) echo "--target must be etcd or synod (got '$TARGET')" >&2; exit 2 ;;
esac
command -v "$ETCDCTL_BIN" >/dev/null || { echo "etcdctl not found; apt-get install -y etcd-client" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 2; }

export ETCDCTL_API=3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/synod-acceptance.XXXXXX")
SUITE_START=$(date +%s)

# ---------------------------------------------------------------- reporting

PASS=0
FAIL=0
LAST_CMD=""
OUT=""
ERR=""
RC=0

indent() { sed 's/^/#     /'; }

ok() { PASS=$((PASS + 1)); echo "ok - $1"; }

# not_ok NAME EXPECTED ACTUAL
not_ok() {
  FAIL=$((FAIL + 1))
  echo "not ok - $1"
  echo "#   command:  $LAST_CMD"
  echo "#   expected:"; printf '%s\n' "$2" | indent
  echo "#   actual (exit $RC):"; printf '%s\n' "$3" | indent
  if [ -n "$ERR" ]; then
    echo "#   stderr (last 5 lines):"; printf '%s\n' "$ERR" | tail -n 5 | indent
  fi
}

# check NAME EXPECTED ACTUAL: pass iff the strings are equal.
check() { if [ "$2" == "$3" ]; then ok "$1"; else not_ok "$1" "$2" "$3"; fi; }

# check_true NAME DESCRIPTION CONDITION-RESULT(0/1) ACTUAL
check_cond() { if [ "$3" -eq 0 ]; then ok "$1"; else not_ok "$1" "$2" "$4"; fi; }

# ---------------------------------------------------------------- running commands

# run CMD...: runs CMD, stores stdout in OUT, stderr in ERR, exit code in RC
# (trailing newlines are stripped from OUT/ERR by $(...)).
run() {
  LAST_CMD="$*"
  "$@" >"$WORK/.out" 2>"$WORK/.err"
  RC=$?
  OUT=$(cat "$WORK/.out")
  ERR=$(grep -v '"level":"warn".*retry_interceptor' "$WORK/.err")
}

# ectl ARGS...: etcdctl against $EPS (default: all three endpoints).
ectl() {
  timeout 20 "$ETCDCTL_BIN" --endpoints="${EPS:-$ALL_EPS}" --dial-timeout=2s --command-timeout=5s "$@"
}
# ectl_at ENDPOINTS ARGS...
ectl_at() { local EPS=$1; shift; ectl "$@"; }

# expect_out NAME EXPECTED CMD...: command succeeds and prints exactly EXPECTED.
expect_out() {
  local name=$1 exp=$2; shift 2
  run "$@"
  if [ "$RC" -eq 0 ] && [ "$OUT" == "$exp" ]; then ok "$name"; else not_ok "$name" "$exp" "$OUT"; fi
}

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

# json EXPR: evaluate EXPR against the JSON in $OUT.
json() { printf '%s' "$OUT" | python3 "$HELPERS" json "$1" 2>/dev/null; }

# retry_until TIMEOUT_SECONDS CMD...: re-run CMD (via run) every 0.2 s until it
# returns 0; returns 0 on success, 1 on timeout. OUT/ERR/RC are from the last try.
retry_until() {
  local deadline=$(( $(date +%s%N) / 1000000 + $1 * 1000 )); shift
  while :; do
    "$@" && return 0
    [ $(( $(date +%s%N) / 1000000 )) -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# ---------------------------------------------------------------- cluster management

NAMES=(n1 n2 n3)
declare -a CPORT PPORT PIDS CMDS
BG_PIDS=()
TOKEN="acceptance-$$-$RANDOM"

mapfile -t _ports < <(python3 "$HELPERS" freeports 6)
for i in 0 1 2; do
  CPORT[$i]=${_ports[$i]}
  PPORT[$i]=${_ports[$((i + 3))]}
done
EP=("127.0.0.1:${CPORT[0]}" "127.0.0.1:${CPORT[1]}" "127.0.0.1:${CPORT[2]}")
CURL=("http://${EP[0]}" "http://${EP[1]}" "http://${EP[2]}")
PURL=("http://127.0.0.1:${PPORT[0]}" "http://127.0.0.1:${PPORT[1]}" "http://127.0.0.1:${PPORT[2]}")
ALL_EPS="${EP[0]},${EP[1]},${EP[2]}"
INITIAL_CLUSTER="n1=${PURL[0]},n2=${PURL[1]},n3=${PURL[2]}"

# member_cmd I: prints the command line (one arg per line) for member I.
member_cmd() {
  local i=$1
  local common=(--name "${NAMES[$i]}" --data-dir "$WORK/${NAMES[$i]}.data"
    --listen-client-urls "${CURL[$i]}" --advertise-client-urls "${CURL[$i]}"
    --listen-peer-urls "${PURL[$i]}" --initial-advertise-peer-urls "${PURL[$i]}"
    --initial-cluster "$INITIAL_CLUSTER" --initial-cluster-state new
    --initial-cluster-token "$TOKEN")
  if [ "$TARGET" = etcd ]; then
    printf '%s\n' "$ETCD_BIN" "${common[@]}" --heartbeat-interval 100 --election-timeout 1000 \
      --logger zap --log-level "$LOG_LEVEL"
  else
    printf '%s\n' "$SYNOD_BIN" serve "${common[@]}" --log-level "$LOG_LEVEL"
  fi
}

# start_member I: start member I in the background (same command line every time).
start_member() {
  local i=$1 cmd
  mapfile -t cmd < <(member_cmd "$i")
  mkdir -p "$WORK/${NAMES[$i]}.data"
  echo "### $(date -u +%FT%TZ) start: ${cmd[*]}" >>"$WORK/${NAMES[$i]}.log"
  "${cmd[@]}" >>"$WORK/${NAMES[$i]}.log" 2>&1 &
  PIDS[$i]=$!
  CMDS[$i]="${cmd[*]}"
}

member_alive() { [ -n "${PIDS[$1]:-}" ] && kill -0 "${PIDS[$1]}" 2>/dev/null; }

kill_member() { # kill_member I SIGNAL
  local i=$1 sig=${2:-KILL}
  if member_alive "$i"; then
    kill "-$sig" "${PIDS[$i]}" 2>/dev/null
    wait "${PIDS[$i]}" 2>/dev/null
  fi
  PIDS[$i]=""
}

print_logs() {
  for i in 0 1 2; do
    echo "# ---- tail of ${NAMES[$i]} log ($WORK/${NAMES[$i]}.log), pid ${PIDS[$i]:-none}, $(member_alive "$i" && echo alive || echo NOT RUNNING)"
    tail -n 30 "$WORK/${NAMES[$i]}.log" 2>/dev/null | indent
  done
}

# wait_healthy TIMEOUT I...: wait until `endpoint health` succeeds on each member.
wait_healthy() {
  local timeout=$1 i; shift
  WAIT_MSG=""
  local deadline=$(( $(date +%s) + timeout ))
  for i in "$@"; do
    while :; do
      if ! member_alive "$i"; then
        wait "${PIDS[$i]}" 2>/dev/null
        WAIT_MSG="member ${NAMES[$i]} exited during startup (exit status $?)"
        return 1
      fi
      run timeout 10 "$ETCDCTL_BIN" --endpoints="${EP[$i]}" --dial-timeout=1s --command-timeout=2s endpoint health
      [ "$RC" -eq 0 ] && break
      if [ "$(date +%s)" -ge "$deadline" ]; then
        WAIT_MSG="member ${NAMES[$i]} (${EP[$i]}) not healthy after ${timeout}s; last 'endpoint health' said: $OUT $ERR"
        return 1
      fi
      sleep 0.3
    done
  done
}

cleanup() {
  local i p
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for i in 0 1 2; do
    if member_alive "$i"; then kill -TERM "${PIDS[$i]}" 2>/dev/null; fi
  done
  sleep 0.2
  for i in 0 1 2; do
    if member_alive "$i"; then kill -KILL "${PIDS[$i]}" 2>/dev/null; fi
    [ -n "${PIDS[$i]:-}" ] && wait "${PIDS[$i]}" 2>/dev/null
  done
  if [ "$FAIL" -gt 0 ] || [ "$KEEP" -eq 1 ]; then
    echo "# temp dir kept: $WORK (member logs: $WORK/n*.log)"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

finish() {
  echo "acceptance: $PASS passed, $FAIL failed  (target $TARGET, $(( $(date +%s) - SUITE_START ))s)"
  [ "$FAIL" -eq 0 ]
  exit $?
}

want() { # want N: is test N selected?
  [ -z "$ONLY" ] && return 0
  local t
  for t in $ONLY; do [ "$((10#$t))" -eq "$1" ] && return 0; done
  return 1
}

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
  check "$T: Endpoint fields" "$(printf '%s\n' "${EP[@]}")" "$(json '[e["Endpoint"] for e in d]')"
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
  check "$T: --cluster (discovers endpoints via MemberList) gives 3 entries" "$(printf '%s\n' "${CURL[@]}" | sort)" \
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

# ---------------------------------------------------------------- main

echo "# target: $TARGET${SYNOD_BIN:+ ($SYNOD_BIN)}"
echo "# temp dir: $WORK"
echo "# endpoints: $ALL_EPS  peers: ${PURL[*]}"
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

for n in 1 2 3 4 5 6 7 8 9 10 11 12; do
  if want "$n"; then
    fn=$(printf 'test_%02d' "$n")
    echo "# --- $fn"
    before=$FAIL
    "$fn"
    # a member that died unexpectedly explains most failures: say so
    for i in 0 1 2; do
      if [ -n "${PIDS[$i]:-}" ] && ! member_alive "$i"; then
        echo "# WARNING: member ${NAMES[$i]} is no longer running"; print_logs; PIDS[$i]=""
      fi
    done
  fi
done

finish
