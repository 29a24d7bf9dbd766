# Helpers shared by etcdctl-suite.sh and security-suite.sh; sourced, not run:
#
#   HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
#   . "$HERE/lib.sh"
#   parse_options "$@"
#
# What a suite still defines itself: WORK (its temp dir), KEPT_NOTE (what
# cleanup says is in the kept temp dir), SUITE_START, NAMES/NMAX and the
# per-member arrays (PIDS, CMDS, EP, PURL, ...), BG_PIDS, member_cmd I (its
# flags, passed to server_cmd), health I (one `endpoint health` call for member
# I, used by wait_healthy), print_logs, its etcdctl wrappers and its tests.

SUITE_SCRIPT=${BASH_SOURCE[1]}
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

# usage: the suite's header comment, from line 2 through the first line that is
# not a comment (the blank line after it).
usage() { awk 'NR > 1 { print; if (!/^#/) exit }' "$SUITE_SCRIPT" | sed 's/^# \{0,1\}//'; }

# parse_options ARGS...: --target, --synod-bin, --only, --keep, -h; checks that
# the server binary, etcdctl and python3 are there (exit 2 if not).
parse_options() {
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
}

export ETCDCTL_API=3

# want N: is test N selected (by --only)?
want() {
  [ -z "$ONLY" ] && return 0
  local t
  for t in $ONLY; do [ "$((10#$t))" -eq "$1" ] && return 0; done
  return 1
}

# ---------------------------------------------------------------- reporting

PASS=0
FAIL=0
SKIP=0
LAST_CMD=""
OUT=""
ERR=""
RC=0

indent() { sed 's/^/#     /'; }

ok() { PASS=$((PASS + 1)); echo "ok - $1"; }

skip() { SKIP=$((SKIP + 1)); echo "ok - $1 # SKIP $2"; }

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

# check_cond NAME DESCRIPTION CONDITION-RESULT(0/1) ACTUAL
check_cond() { if [ "$3" -eq 0 ]; then ok "$1"; else not_ok "$1" "$2" "$4"; fi; }

# finish: the final line "acceptance: N passed, M failed  (target T, Ns[, K skipped])"
# and exit (0 iff nothing failed).
finish() {
  echo "acceptance: $PASS passed, $FAIL failed  (target $TARGET, $(( $(date +%s) - SUITE_START ))s$([ "$SKIP" -gt 0 ] && echo ", $SKIP skipped"))"
  [ "$FAIL" -eq 0 ]
  exit $?
}

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

# expect_out NAME EXPECTED CMD...: command succeeds and prints exactly EXPECTED.
expect_out() {
  local name=$1 exp=$2; shift 2
  run "$@"
  if [ "$RC" -eq 0 ] && [ "$OUT" == "$exp" ]; then ok "$name"; else not_ok "$name" "$exp" "$OUT"; fi
}

# expect_fail_line NAME RC LINE CMD...: command exits with status RC ('*': any
# non-zero status) and stderr has the exact line LINE.
expect_fail_line() {
  local name=$1 rc=$2 exp=$3 what; shift 3
  run "$@"
  if [ "$rc" = '*' ]; then what="non-zero exit"; else what="exit $rc"; fi
  if [ "$RC" -ne 0 ] && { [ "$rc" = '*' ] || [ "$RC" -eq "$rc" ]; } && printf '%s\n' "$ERR" | grep -qxF -- "$exp"; then
    ok "$name"
  else
    not_ok "$name" "$what, stderr line: $exp" "$OUT${ERR:+
[stderr] $ERR}"
  fi
}

# expect_error_line NAME MESSAGE CMD...: command fails and stderr has the exact
# line "Error: MESSAGE" (for messages that are prefixes of other messages).
expect_error_line() { local name=$1 exp=$2; shift 2; expect_fail_line "$name" '*' "Error: $exp" "$@"; }

# expect_error_line_rc NAME RC MESSAGE CMD...: like expect_error_line, and the
# exit status is RC (etcdctl: 1 = request failed, 2 = client could not be set
# up, e.g. authentication failed, 5 = watch canceled / snapshot failed).
expect_error_line_rc() { local name=$1 rc=$2 exp=$3; shift 3; expect_fail_line "$name" "$rc" "Error: $exp" "$@"; }

# json EXPR: evaluate EXPR against the JSON in $OUT.
json() { printf '%s' "$OUT" | python3 "$HELPERS" json "$1" 2>/dev/null; }

# retry_until TIMEOUT_SECONDS CMD...: re-run CMD every 0.2 s until it returns 0;
# returns 0 on success, 1 on timeout. OUT/ERR/RC are from the last try (when
# CMD uses run).
retry_until() {
  local deadline=$(( $(date +%s%N) / 1000000 + $1 * 1000 )); shift
  while :; do
    "$@" && return 0
    [ $(( $(date +%s%N) / 1000000 )) -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# ---------------------------------------------------------------- members

# cluster_of I...: "name=peerURL,..." of these members.
cluster_of() {
  local i s=""
  for i in "$@"; do s+="${s:+,}${NAMES[$i]}=${PURL[$i]}"; done
  printf '%s' "$s"
}

# server_cmd FLAGS...: the command line (one arg per line) of the target server
# with these etcd flags (etcd: + timing and logger flags; synod: `synod serve`).
server_cmd() {
  if [ "$TARGET" = etcd ]; then
    printf '%s\n' "$ETCD_BIN" "$@" --heartbeat-interval 100 --election-timeout 1000 \
      --logger zap --log-level "$LOG_LEVEL"
  else
    printf '%s\n' "$SYNOD_BIN" serve "$@" --log-level "$LOG_LEVEL"
  fi
}

# start_member I: start member I in the background (the command line comes from
# the suite's member_cmd I; the same one every time).
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

# wait_healthy TIMEOUT I...: wait until `endpoint health` (the suite's health I)
# succeeds on each member; on failure WAIT_MSG says why.
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
      health "$i"
      [ "$RC" -eq 0 ] && break
      if [ "$(date +%s)" -ge "$deadline" ]; then
        WAIT_MSG="member ${NAMES[$i]} (${EP[$i]}) not healthy after ${timeout}s; last 'endpoint health' said: $OUT $ERR"
        return 1
      fi
      sleep 0.3
    done
  done
}

# cleanup (the suites' EXIT trap): kill background processes and members; keep
# the temp dir (and say so, with KEPT_NOTE) if something failed or with --keep.
cleanup() {
  local i p
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for i in $(seq 0 $((NMAX - 1))); do
    if member_alive "$i"; then kill -TERM "${PIDS[$i]}" 2>/dev/null; fi
  done
  sleep 0.2
  for i in $(seq 0 $((NMAX - 1))); do
    if member_alive "$i"; then kill -KILL "${PIDS[$i]}" 2>/dev/null; fi
    [ -n "${PIDS[$i]:-}" ] && wait "${PIDS[$i]}" 2>/dev/null
  done
  if [ "$FAIL" -gt 0 ] || [ "$KEEP" -eq 1 ]; then
    echo "# temp dir kept: $WORK ($KEPT_NOTE)"
  else
    rm -rf "$WORK"
  fi
}

# member_entry ID: from the `member list -w json` in OUT: "name|peerURLs|clientURLs|isLearner".
member_entry() {
  json '["%s|%s|%s|%s" % (m.get("name", ""), ",".join(m.get("peerURLs", [])), ",".join(m.get("clientURLs", [])), bool(m.get("isLearner", False))) for m in d["members"] if "%x" % m["ID"] == "'"$1"'"]'
}
