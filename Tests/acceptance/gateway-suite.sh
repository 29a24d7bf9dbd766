#!/usr/bin/env bash
# Gateway acceptance suite: etcd's gRPC-JSON gateway (HTTP/1.1 + JSON on the
# client port) driven by clients nobody at Synod wrote: curl and Debian's
# python3-etcd3gw, against a 3-member cluster of etcd 3.4 or synod on loopback.
# The expectations are etcd 3.4's JSON (proto field names, int64 as strings,
# bytes as base64, zero values omitted, enums by name), its HTTP statuses and
# its error bodies; ids, terms and timings are not compared.
#
#   Tests/acceptance/gateway-suite.sh --target etcd
#   Tests/acceptance/gateway-suite.sh --target synod [--synod-bin PATH]
#
# Options:
#   --target etcd|synod   which server to start (default: synod)
#   --synod-bin PATH      synod binary (default: $SYNOD_BIN or <repo>/.build/debug/synod)
#   --only "N N ..."      run only these test numbers (e.g. --only "1 7 15")
#   --keep                keep the temp dir even when everything passes
#   -h|--help
#
# Environment: SYNOD_BIN, ETCD_BIN (default: etcd), ETCDCTL_BIN (default: etcdctl,
#   only used to wait for the members to be healthy), CURL_BIN (default: curl),
#   ETCD3GW_PYTHON (default: /usr/bin/python3, the interpreter that has
#   python3-etcd3gw; test 15 is skipped if it cannot import etcd3gw),
#   STARTUP_TIMEOUT (seconds, default 30), LOG_LEVEL (default info).
#
# Output is TAP-like: "ok - name" / "not ok - name" (+ request, expected,
# actual), and a final line "acceptance: N passed, M failed".
# Exit status: 0 if everything passed, 1 otherwise.

set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"
CURL_BIN=${CURL_BIN:-curl}
ETCD3GW_PYTHON=${ETCD3GW_PYTHON:-/usr/bin/python3}

parse_options "$@"
command -v "$CURL_BIN" >/dev/null || { echo "curl not found; apt-get install -y curl" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/synod-gateway.XXXXXX")
KEPT_NOTE="member logs: $WORK/*.log, last responses: $WORK/*.body, streams: $WORK/*.stream"
SUITE_START=$(date +%s)

# ---------------------------------------------------------------- gw.py
#
# The suite's own JSON matcher and raw HTTP reader (stdlib only):
#   gw.py match TEMPLATE FILE       does the JSON in FILE match TEMPLATE? (exit 0/1,
#                                   prints where it differs). Template language:
#                                   "*" any value, "#" an int64 as a decimal string,
#                                   "~RE" a string matching RE; objects must have
#                                   exactly the template's keys unless the template
#                                   has "...": "*"; a key "?name" may be absent;
#                                   lists match element by element.
#   gw.py stream TEMPLATES FILE     FILE holds a stream body: every object must be
#                                   followed by "\n"; the objects must match the
#                                   JSON list TEMPLATES (as many, in order)
#   gw.py chunks PORT PATH BODY SECS  raw HTTP/1.1 POST (Content-Length body), reads
#                                   the chunked response for SECS seconds; prints one
#                                   JSON string per chunk (the chunk's bytes)
#   gw.py snapshot FILE             FILE is /v3/maintenance/snapshot's body: prints
#                                   "chunks=N size=S sha256=ok" or what is wrong
#   gw.py get TEMPLATE-less: gw.py field EXPR FILE  eval EXPR with d = the JSON in FILE
cat >"$WORK/gw.py" <<'PYEOF'
import base64, hashlib, json, re, socket, sys, time

def match(t, v, path="$"):
    """All the differences between template t and value v (a list of strings)."""
    if t == "*":
        return []
    if isinstance(t, str) and t == "#":
        if isinstance(v, str) and re.fullmatch(r"-?[0-9]+", v):
            return []
        return ["%s: expected an int64 as a decimal string, got %s" % (path, json.dumps(v))]
    if isinstance(t, str) and t.startswith("~"):
        if isinstance(v, str) and re.fullmatch(t[1:], v):
            return []
        return ["%s: expected a string matching /%s/, got %s" % (path, t[1:], json.dumps(v))]
    if isinstance(t, dict):
        if not isinstance(v, dict):
            return ["%s: expected an object, got %s" % (path, json.dumps(v)[:300])]
        errs, known = [], set()
        for k in t:
            if k == "...":
                continue
            name = k[1:] if k.startswith("?") else k
            known.add(name)
            if name not in v:
                if not k.startswith("?"):
                    errs.append("%s: missing field %s" % (path, json.dumps(name)))
                continue
            errs += match(t[k], v[name], path + "." + name)
        if t.get("...") != "*":
            extra = [k for k in v if k not in known]
            if extra:
                errs.append("%s: unexpected field(s) %s (value %s)" % (path, ", ".join(extra), json.dumps({k: v[k] for k in extra})[:300]))
        return errs
    if isinstance(t, list):
        if not isinstance(v, list):
            return ["%s: expected a list, got %s" % (path, json.dumps(v)[:300])]
        if len(t) != len(v):
            return ["%s: expected %d element(s), got %d: %s" % (path, len(t), len(v), json.dumps(v)[:600])]
        errs = []
        for i, (a, b) in enumerate(zip(t, v)):
            errs += match(a, b, "%s[%d]" % (path, i))
        return errs
    if type(t) is not type(v) or t != v:
        return ["%s: expected %s, got %s" % (path, json.dumps(t), json.dumps(v)[:300])]
    return []

def stream_objects(text):
    """Split a stream body into objects; each must be followed by a newline."""
    dec = json.JSONDecoder()
    objs, i = [], 0
    while i < len(text):
        if text[i] in " \t\r\n":
            i += 1
            continue
        o, j = dec.raw_decode(text, i)
        if j >= len(text) or text[j] != "\n":
            raise ValueError("object #%d is not followed by a newline: %r" % (len(objs) + 1, text[i:j + 20][-80:]))
        objs.append(o)
        i = j + 1
    return objs

def main(a):
    cmd = a[0]
    if cmd == "match":
        t = json.loads(a[1])
        try:
            v = json.loads(open(a[2]).read())
        except ValueError as e:
            print("body is not JSON: %s" % e)
            return 1
        e = match(t, v)
        if e:
            print("\n# mismatch: ".join(e))
            return 1
        return 0
    if cmd == "stream":
        ts = json.loads(a[1])
        try:
            objs = stream_objects(open(a[2]).read())
        except ValueError as e:
            print(e)
            return 1
        e = match(ts, objs, "stream")
        if e:
            print("\n# mismatch: ".join(e))
            return 1
        return 0
    if cmd == "chunks":
        port, path, body, secs = int(a[1]), a[2], a[3].encode(), float(a[4])
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                  % (path.encode(), port, len(body)) + body)
        data, end = b"", time.time() + secs
        while time.time() < end:
            s.settimeout(max(0.01, end - time.time()))
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            data += d
        head, _, rest = data.partition(b"\r\n\r\n")
        print(json.dumps(head.split(b"\r\n")[0].decode("latin-1")))
        if b"transfer-encoding: chunked" not in head.lower():
            print(json.dumps("NOT CHUNKED: " + rest.decode("latin-1")))
            return 0
        while rest:
            line, _, rest = rest.partition(b"\r\n")
            n = int(line.split(b";")[0] or b"0", 16)
            if n == 0:
                print(json.dumps("<end of stream>"))
                break
            print(json.dumps(rest[:n].decode("utf-8", "replace")))
            rest = rest[n + 2:]
        return 0
    if cmd == "snapshot":
        try:
            objs = stream_objects(open(a[1]).read())
        except ValueError as e:
            print(e)
            return 1
        blob = b""
        for i, o in enumerate(objs):
            r = o.get("result") if isinstance(o, dict) else None
            if not isinstance(r, dict) or "blob" not in r or set(r) - {"blob", "remaining_bytes", "header"}:
                print("chunk %d is not {\"result\":{\"blob\":...}}: %s" % (i, json.dumps(o)[:300]))
                return 1
            if "remaining_bytes" in r and not re.fullmatch(r"[0-9]+", str(r["remaining_bytes"])):
                print("chunk %d: remaining_bytes is not an unsigned int64 string: %r" % (i, r["remaining_bytes"]))
                return 1
            blob += base64.b64decode(r["blob"])
        last = objs[-1]["result"] if objs else {}
        if int(last.get("remaining_bytes", "0")) != 0:
            print("last chunk has remaining_bytes %s" % last.get("remaining_bytes"))
            return 1
        if len(blob) < 32 + 4096:
            print("snapshot too small: %d bytes" % len(blob))
            return 1
        ok = hashlib.sha256(blob[:-32]).digest() == blob[-32:]
        print("sha256=%s" % ("ok" if ok else "MISMATCH"))
        return 0 if ok else 1
    if cmd == "field":
        d = json.loads(open(a[2]).read())
        v = eval(a[1], {"b64": lambda s: base64.b64encode(s.encode()).decode(),
                        "b64d": lambda s: base64.b64decode(s or "").decode("utf-8", "replace"),
                        "json": json, "len": len, "int": int, "str": str, "sorted": sorted, "d": d})
        if v is not None:
            print(v if isinstance(v, str) else json.dumps(v))
        return 0
    return 2

sys.exit(main(sys.argv[1:]))
PYEOF
GW="$WORK/gw.py"

# ---------------------------------------------------------------- cluster
#
# n1 n2 n3: the cluster (requests go to n1 unless a test says otherwise);
# n4: a learner that is added and removed but never started (its peer URL is a
# free port nobody listens on).
NAMES=(n1 n2 n3 n4)
NMAX=${#NAMES[@]}
declare -a CPORT PPORT PIDS CMDS EP CURL PURL
BG_PIDS=()
TOKEN="gateway-$$-$RANDOM"

mapfile -t _ports < <(python3 "$HELPERS" freeports $((2 * NMAX)))
for i in $(seq 0 $((NMAX - 1))); do
  CPORT[$i]=${_ports[$i]}
  PPORT[$i]=${_ports[$((i + NMAX))]}
  EP[$i]="127.0.0.1:${CPORT[$i]}"
  CURL[$i]="http://${EP[$i]}"
  PURL[$i]="http://127.0.0.1:${PPORT[$i]}"
done

member_cmd() {
  local i=$1
  server_cmd --name "${NAMES[$i]}" --data-dir "$WORK/${NAMES[$i]}.data" \
    --listen-client-urls "${CURL[$i]}" --advertise-client-urls "${CURL[$i]}" \
    --listen-peer-urls "${PURL[$i]}" --initial-advertise-peer-urls "${PURL[$i]}" \
    --initial-cluster "$(cluster_of 0 1 2)" --initial-cluster-state new \
    --initial-cluster-token "$TOKEN"
}

print_logs() {
  local i
  for i in "$@"; do
    [ -e "$WORK/${NAMES[$i]}.log" ] || continue
    echo "# ---- tail of ${NAMES[$i]} log ($WORK/${NAMES[$i]}.log), pid ${PIDS[$i]:-none}, $(member_alive "$i" && echo alive || echo NOT RUNNING)"
    tail -n 30 "$WORK/${NAMES[$i]}.log" 2>/dev/null | indent
  done
}

health() {
  run timeout 10 "$ETCDCTL_BIN" --endpoints="${EP[$1]}" --dial-timeout=1s --command-timeout=2s endpoint health
}

trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- requests
#
# b64 STRING: base64 of STRING (no newline).
b64() { printf '%s' "$1" | base64 -w0; }

# HDR: etcd's response header (ids and term as int64 strings); HDR_NOREV: the
# same without revision (member calls, a watch canceled for compaction).
HDR='{"cluster_id":"#","member_id":"#","revision":"#","raft_term":"#"}'
HDR_NOREV='{"cluster_id":"#","member_id":"#","raft_term":"#"}'

# errbody MESSAGE CODE: etcd's unary error body.
errbody() { printf '{"error":%s,"message":%s,"code":%s}' "$(jq_str "$1")" "$(jq_str "$1")" "$2"; }
jq_str() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

# post [-m I] PATH BODY [CURL ARGS...]: POST BODY (JSON) to member I (default 0);
# sets CODE (HTTP status), OUT (body; also in $WORK/last.body), LAST_CMD.
post() {
  local m=0
  if [ "$1" = -m ]; then m=$2; shift 2; fi
  local path=$1 body=$2; shift 2
  LAST_CMD="curl -s -X POST ${CURL[$m]}$path -d '$(printf '%s' "$body" | cut -c1-300)'${*:+ $*}"
  CODE=$("$CURL_BIN" -s -m 15 -X POST "${CURL[$m]}$path" --data-binary "$body" -o "$WORK/last.body" -w '%{http_code}' "$@" 2>"$WORK/.err")
  RC=$?
  OUT=$(cat "$WORK/last.body" 2>/dev/null)
  ERR=$(cat "$WORK/.err")
}

# field EXPR: python expression over the JSON body of the last post (d).
field() { python3 "$GW" field "$1" "$WORK/last.body" 2>/dev/null; }

# expect_http NAME STATUS TEMPLATE: the last post answered STATUS and a body
# matching TEMPLATE (gw.py match; "text:..." compares the body as text).
expect_http() {
  local name=$1 st=$2 t=$3 why=""
  if [ "$CODE" != "$st" ]; then
    why="HTTP status $CODE, expected $st"
  elif [[ "$t" == text:* ]]; then
    [ "$OUT" == "${t#text:}" ] || why="body differs"
  else
    why=$(python3 "$GW" match "$t" "$WORK/last.body")
  fi
  if [ -z "$why" ]; then ok "$name"; else not_ok "$name" "HTTP $st, body $t" "HTTP $CODE, body $(printf '%s' "$OUT" | cut -c1-1500)
# mismatch: $why"; fi
}

# gw NAME [-m I] PATH BODY STATUS TEMPLATE [CURL ARGS...]: post + expect_http.
gw() {
  local name=$1 m=(); shift
  if [ "$1" = -m ]; then m=(-m "$2"); shift 2; fi
  local path=$1 body=$2 st=$3 t=$4; shift 4
  post "${m[@]}" "$path" "$body" "$@"
  expect_http "$name" "$st" "$t"
}

# stream_check NAME FILE TEMPLATES: FILE (a stream body) matches TEMPLATES.
stream_check() {
  local why
  why=$(python3 "$GW" stream "$3" "$2")
  if [ -z "$why" ]; then ok "$1"; else not_ok "$1" "stream objects $3, each followed by a newline" "$(head -c 3000 "$2")
# mismatch: $why"; fi
}

# bg_stream NAME SECONDS PATH BODY [MEMBER]: curl -N in the background into
# $WORK/NAME.stream (status in $WORK/NAME.code); pid in BGP.
bg_stream() {
  local name=$1 secs=$2 path=$3 body=$4 m=${5:-0}
  "$CURL_BIN" -s -N -m "$secs" -X POST "${CURL[$m]}$path" --data-binary "$body" \
    -o "$WORK/$name.stream" -w '%{http_code}' >"$WORK/$name.code" 2>/dev/null &
  BGP=$!
  BG_PIDS+=("$BGP")
}

# rev: the current revision (header of a range on n1).
rev() { post /v3/kv/range "{\"key\":\"$(b64 nothing)\"}"; field 'd["header"]["revision"]'; }

# member_ids: "name id" lines (from /v3/cluster/member/list on n1).
member_id_of() { post /v3/cluster/member/list '{}'; field "[m['ID'] for m in d['members'] if m.get('name') == '$1'][0]"; }

# leader_index: index (0..2) of the member that n1 says is the leader.
leader_index() {
  local lid i
  post /v3/maintenance/status '{}'
  lid=$(field 'd.get("leader", "")')
  for i in 0 1 2; do [ "$(member_id_of "${NAMES[$i]}")" = "$lid" ] && { echo "$i"; return; }; done
}

# ---------------------------------------------------------------- tests

# 1. /version, /health, /metrics on the client port
test_01() {
  local T=01-version-health-metrics
  LAST_CMD="curl -s ${CURL[0]}/version"
  OUT=$("$CURL_BIN" -s -m 5 "${CURL[0]}/version"); CODE=200; printf '%s' "$OUT" >"$WORK/last.body"
  expect_http "$T: GET /version has numeric dotted etcdserver >= 3.4 and etcdcluster 3.4.0" 200 \
    '{"etcdserver":"~3\\.([4-9]|[1-9][0-9])\\.[0-9]+","etcdcluster":"3.4.0","...":"*"}'
  LAST_CMD="curl -s ${CURL[1]}/health"
  CODE=$("$CURL_BIN" -s -m 5 -o "$WORK/last.body" -w '%{http_code}' "${CURL[1]}/health"); OUT=$(cat "$WORK/last.body")
  expect_http "$T: GET /health on n2 (etcd 3.5 adds \"reason\":\"\")" 200 '{"health":"true","?reason":""}'
  LAST_CMD="curl -s ${CURL[2]}/metrics"
  CODE=$("$CURL_BIN" -s -m 5 -o "$WORK/metrics.body" -w '%{http_code}' "${CURL[2]}/metrics")
  check_cond "$T: GET /metrics on n3 is Prometheus text (# HELP / # TYPE lines)" "HTTP 200, # TYPE lines" \
    "$([ "$CODE" = 200 ] && grep -q '^# TYPE ' "$WORK/metrics.body" && grep -q '^# HELP ' "$WORK/metrics.body"; echo $?)" \
    "HTTP $CODE: $(head -c 300 "$WORK/metrics.body")"
  LAST_CMD="curl -s -X POST ${CURL[0]}/health"
  CODE=$("$CURL_BIN" -s -m 5 -X POST -o "$WORK/last.body" -w '%{http_code}' "${CURL[0]}/health"); OUT=$(cat "$WORK/last.body")
  check "$T: POST /health is 405" 405 "$CODE"
  # HTTP/1.1 keep-alive: two requests on one connection (python requests sessions, Patroni rely on it)
  LAST_CMD="curl -s -X POST ${CURL[0]}/v3/kv/range -d '{\"key\":\"dDAx\"}' --next -X POST ${CURL[0]}/v3/maintenance/status -d '{}'"
  OUT=$("$CURL_BIN" -s -m 10 -X POST "${CURL[0]}/v3/kv/range" -d '{"key":"dDAx"}' -o /dev/null -w '%{http_code} %{num_connects} %{content_type}\n' \
    --next -s -m 10 -X POST "${CURL[0]}/v3/maintenance/status" -d '{}' -o /dev/null -w '%{http_code} %{num_connects} %{content_type}\n')
  check "$T: two POSTs on one kept-alive connection, both 200 application/json" $'200 1 application/json\n200 0 application/json' "$OUT"
}

# 2. /v3/kv/put and /v3/kv/range
test_02() {
  local T=02-kv-put-range r k1 k2 k3
  k1=$(b64 t02/a) k2=$(b64 t02/b) k3=$(b64 t02/c)
  gw "$T: put" /v3/kv/put "{\"key\":\"$k1\",\"value\":\"$(b64 v1)\"}" 200 "{\"header\":$HDR}"
  r=$(field 'd["header"]["revision"]')
  gw "$T: range one key: kvs (create/mod revision, version as strings, value base64), count" /v3/kv/range "{\"key\":\"$k1\"}" 200 \
    "{\"header\":$HDR,\"kvs\":[{\"key\":\"$k1\",\"create_revision\":\"$r\",\"mod_revision\":\"$r\",\"version\":\"1\",\"value\":\"$(b64 v1)\"}],\"count\":\"1\"}"
  gw "$T: put prev_kv returns the previous kv" /v3/kv/put "{\"key\":\"$k1\",\"value\":\"$(b64 v2)\",\"prev_kv\":true}" 200 \
    "{\"header\":$HDR,\"prev_kv\":{\"key\":\"$k1\",\"create_revision\":\"$r\",\"mod_revision\":\"$r\",\"version\":\"1\",\"value\":\"$(b64 v1)\"}}"
  gw "$T: camelCase prevKv and numbers as strings accepted on input" /v3/kv/put "{\"key\":\"$k1\",\"value\":\"$(b64 v3)\",\"prevKv\":true,\"lease\":\"0\"}" 200 \
    "{\"header\":$HDR,\"prev_kv\":{\"key\":\"$k1\",\"create_revision\":\"$r\",\"mod_revision\":\"#\",\"version\":\"2\",\"value\":\"$(b64 v2)\"}}"
  gw "$T: put empty value (value omitted in range)" /v3/kv/put "{\"key\":\"$k2\"}" 200 "{\"header\":$HDR}"
  gw "$T: put third key" /v3/kv/put "{\"key\":\"$k3\",\"value\":\"$(b64 v)\"}" 200 "{\"header\":$HDR}"
  gw "$T: empty value is omitted" /v3/kv/range "{\"key\":\"$k2\"}" 200 \
    "{\"header\":$HDR,\"kvs\":[{\"key\":\"$k2\",\"create_revision\":\"#\",\"mod_revision\":\"#\",\"version\":\"1\"}],\"count\":\"1\"}"
  gw "$T: missing key: only the header (no kvs, no count)" /v3/kv/range "{\"key\":\"$(b64 t02/none)\"}" 200 "{\"header\":$HDR}"
  local pre end
  pre=$(b64 t02/) end=$(b64 t020)
  gw "$T: prefix range, keys_only, limit 2 (more, total count)" /v3/kv/range "{\"key\":\"$pre\",\"range_end\":\"$end\",\"keys_only\":true,\"limit\":2}" 200 \
    "{\"header\":$HDR,\"kvs\":[{\"key\":\"$k1\",\"create_revision\":\"#\",\"mod_revision\":\"#\",\"version\":\"3\"},{\"key\":\"$k2\",\"create_revision\":\"#\",\"mod_revision\":\"#\",\"version\":\"1\"}],\"more\":true,\"count\":\"3\"}"
  gw "$T: count_only" /v3/kv/range "{\"key\":\"$pre\",\"range_end\":\"$end\",\"count_only\":true}" 200 "{\"header\":$HDR,\"count\":\"3\"}"
  gw "$T: sort_order DESCEND, sort_target KEY (enums by name), keys_only" /v3/kv/range "{\"key\":\"$pre\",\"range_end\":\"$end\",\"sort_order\":\"DESCEND\",\"sort_target\":\"KEY\",\"keys_only\":true}" 200 \
    "{\"header\":$HDR,\"kvs\":[{\"key\":\"$k3\",\"...\":\"*\"},{\"key\":\"$k2\",\"...\":\"*\"},{\"key\":\"$k1\",\"...\":\"*\"}],\"count\":\"3\"}"
  gw "$T: sort_order as a number (2 = DESCEND)" /v3/kv/range "{\"key\":\"$pre\",\"range_end\":\"$end\",\"sort_order\":2,\"sort_target\":\"KEY\",\"limit\":\"1\"}" 200 \
    "{\"header\":$HDR,\"kvs\":[{\"key\":\"$k3\",\"create_revision\":\"#\",\"mod_revision\":\"#\",\"version\":\"1\",\"value\":\"$(b64 v)\"}],\"more\":true,\"count\":\"3\"}"
  gw "$T: range at an older revision" /v3/kv/range "{\"key\":\"$k1\",\"revision\":\"$r\"}" 200 \
    "{\"header\":$HDR,\"kvs\":[{\"key\":\"$k1\",\"create_revision\":\"$r\",\"mod_revision\":\"$r\",\"version\":\"1\",\"value\":\"$(b64 v1)\"}],\"count\":\"1\"}"
  gw "$T: min_mod_revision filter, serializable" /v3/kv/range "{\"key\":\"$pre\",\"range_end\":\"$end\",\"min_mod_revision\":\"$((r + 3))\",\"serializable\":true,\"keys_only\":true}" 200 \
    "{\"header\":$HDR,\"kvs\":[{\"key\":\"$k2\",\"...\":\"*\"},{\"key\":\"$k3\",\"...\":\"*\"}],\"count\":\"3\"}"
  gw "$T: from-key range (range_end \\0) with limit" /v3/kv/range "{\"key\":\"$k3\",\"range_end\":\"AA==\",\"keys_only\":true,\"limit\":1}" 200 \
    "{\"header\":$HDR,\"kvs\":[{\"key\":\"$k3\",\"...\":\"*\"}],\"...\":\"*\"}"
  gw "$T: future revision is an error (400, code 11)" /v3/kv/range "{\"key\":\"$k1\",\"revision\":\"99999999\"}" 400 \
    "$(errbody 'etcdserver: mvcc: required revision is a future revision' 11)"
  gw "$T: empty key is an error (400, code 3)" /v3/kv/put "{\"value\":\"$(b64 x)\"}" 400 "$(errbody 'etcdserver: key is not provided' 3)"
  gw "$T: range through n3 sees n1's writes" -m 2 /v3/kv/range "{\"key\":\"$pre\",\"range_end\":\"$end\",\"count_only\":true}" 200 "{\"header\":$HDR,\"count\":\"3\"}"
  gw "$T: /v3beta/kv/range is /v3/kv/range" /v3beta/kv/range "{\"key\":\"$k1\"}" 200 \
    "{\"header\":$HDR,\"kvs\":[{\"key\":\"$k1\",\"create_revision\":\"$r\",\"mod_revision\":\"#\",\"version\":\"3\",\"value\":\"$(b64 v3)\"}],\"count\":\"1\"}"
  gw "$T: /v3beta/kv/put" /v3beta/kv/put "{\"key\":\"$(b64 t02/beta)\",\"value\":\"$(b64 b)\"}" 200 "{\"header\":$HDR}"
  # etcd 3.4 answers 404 for /v3alpha/ (python3-etcd3gw's default); serving it like /v3/ is allowed too
  post /v3alpha/kv/range "{\"key\":\"$k1\"}"
  if [ "$CODE" = 404 ]; then
    expect_http "$T: /v3alpha/kv/range: 404 page not found (as etcd 3.4)" 404 "text:404 page not found"
  else
    expect_http "$T: /v3alpha/kv/range: served like /v3/ (etcd 3.4 answers 404)" 200 "{\"header\":$HDR,\"kvs\":[{\"key\":\"$k1\",\"...\":\"*\"}],\"count\":\"1\"}"
  fi
}

# 3. /v3/kv/deleterange
test_03() {
  local T=03-kv-deleterange r pre end
  pre=$(b64 t03/) end=$(b64 t030)
  post /v3/kv/put "{\"key\":\"$(b64 t03/a)\",\"value\":\"$(b64 1)\"}"
  post /v3/kv/put "{\"key\":\"$(b64 t03/b)\",\"value\":\"$(b64 2)\"}"
  post /v3/kv/put "{\"key\":\"$(b64 t03/c)\",\"value\":\"$(b64 3)\"}"
  r=$(field 'd["header"]["revision"]')
  gw "$T: delete one key with prev_kv" /v3/kv/deleterange "{\"key\":\"$(b64 t03/a)\",\"prev_kv\":true}" 200 \
    "{\"header\":{\"cluster_id\":\"#\",\"member_id\":\"#\",\"revision\":\"$((r + 1))\",\"raft_term\":\"#\"},\"deleted\":\"1\",\"prev_kvs\":[{\"key\":\"$(b64 t03/a)\",\"create_revision\":\"$((r - 2))\",\"mod_revision\":\"$((r - 2))\",\"version\":\"1\",\"value\":\"$(b64 1)\"}]}"
  gw "$T: delete a missing key: deleted omitted, revision unchanged" /v3/kv/deleterange "{\"key\":\"$(b64 t03/a)\"}" 200 \
    "{\"header\":{\"cluster_id\":\"#\",\"member_id\":\"#\",\"revision\":\"$((r + 1))\",\"raft_term\":\"#\"}}"
  gw "$T: delete a prefix" /v3/kv/deleterange "{\"key\":\"$pre\",\"range_end\":\"$end\"}" 200 "{\"header\":$HDR,\"deleted\":\"2\"}"
  gw "$T: prefix is empty" /v3/kv/range "{\"key\":\"$pre\",\"range_end\":\"$end\"}" 200 "{\"header\":$HDR}"
}

# 4. /v3/kv/txn
test_04() {
  local T=04-kv-txn ka kb r
  ka=$(b64 t04/a) kb=$(b64 t04/b)
  post /v3/kv/put "{\"key\":\"$ka\",\"value\":\"$(b64 1)\"}"
  r=$(field 'd["header"]["revision"]')
  gw "$T: value compare true: success branch (put + range), sub-headers carry only the revision" /v3/kv/txn \
    "{\"compare\":[{\"key\":\"$ka\",\"target\":\"VALUE\",\"result\":\"EQUAL\",\"value\":\"$(b64 1)\"}],\"success\":[{\"request_put\":{\"key\":\"$kb\",\"value\":\"$(b64 2)\"}},{\"request_range\":{\"key\":\"$ka\"}}],\"failure\":[{\"request_delete_range\":{\"key\":\"$ka\"}}]}" 200 \
    "{\"header\":$HDR,\"succeeded\":true,\"responses\":[{\"response_put\":{\"header\":{\"revision\":\"$((r + 1))\"}}},{\"response_range\":{\"header\":{\"revision\":\"$((r + 1))\"},\"kvs\":[{\"key\":\"$ka\",\"create_revision\":\"$r\",\"mod_revision\":\"$r\",\"version\":\"1\",\"value\":\"$(b64 1)\"}],\"count\":\"1\"}}]}"
  gw "$T: version compare false: failure branch (delete prev_kv + empty nested txn), succeeded omitted" /v3/kv/txn \
    "{\"compare\":[{\"key\":\"$ka\",\"target\":\"VERSION\",\"result\":\"GREATER\",\"version\":\"5\"}],\"success\":[{\"request_put\":{\"key\":\"$kb\",\"value\":\"$(b64 x)\"}}],\"failure\":[{\"request_delete_range\":{\"key\":\"$ka\",\"prev_kv\":true}},{\"request_txn\":{}}]}" 200 \
    "{\"header\":$HDR,\"responses\":[{\"response_delete_range\":{\"header\":{\"revision\":\"$((r + 2))\"},\"deleted\":\"1\",\"prev_kvs\":[{\"key\":\"$ka\",\"create_revision\":\"$r\",\"mod_revision\":\"$r\",\"version\":\"1\",\"value\":\"$(b64 1)\"}]}},{\"response_txn\":{\"header\":{},\"succeeded\":true}}]}"
  gw "$T: create_revision 0 compare (key absent), no branches" /v3/kv/txn \
    "{\"compare\":[{\"key\":\"$ka\",\"target\":\"CREATE\",\"result\":\"EQUAL\",\"create_revision\":\"0\"}]}" 200 "{\"header\":$HDR,\"succeeded\":true}"
  gw "$T: mod_revision LESS compare, result as a number (2 = LESS)" /v3/kv/txn \
    "{\"compare\":[{\"key\":\"$kb\",\"target\":\"MOD\",\"result\":2,\"mod_revision\":\"$((r + 1))\"}],\"failure\":[{\"request_range\":{\"key\":\"$kb\",\"keys_only\":true}}]}" 200 \
    "{\"header\":$HDR,\"responses\":[{\"response_range\":{\"header\":{\"revision\":\"#\"},\"kvs\":[{\"key\":\"$kb\",\"create_revision\":\"$((r + 1))\",\"mod_revision\":\"$((r + 1))\",\"version\":\"1\"}],\"count\":\"1\"}}]}"
  gw "$T: duplicate key in txn (400, code 3)" /v3/kv/txn \
    "{\"success\":[{\"request_put\":{\"key\":\"$kb\"}},{\"request_put\":{\"key\":\"$kb\"}}]}" 400 "$(errbody 'etcdserver: duplicate key given in txn request' 3)"
}

# 5. /v3/kv/compaction
test_05() {
  local T=05-kv-compaction r k
  k=$(b64 t05/k)
  post /v3/kv/put "{\"key\":\"$k\",\"value\":\"$(b64 1)\"}"
  r=$(field 'd["header"]["revision"]')
  post /v3/kv/put "{\"key\":\"$k\",\"value\":\"$(b64 2)\"}"
  gw "$T: compaction (physical)" /v3/kv/compaction "{\"revision\":\"$((r + 1))\",\"physical\":true}" 200 "{\"header\":$HDR}"
  gw "$T: range at a compacted revision (400, code 11)" /v3/kv/range "{\"key\":\"$k\",\"revision\":\"$r\"}" 400 \
    "$(errbody 'etcdserver: mvcc: required revision has been compacted' 11)"
  gw "$T: compaction again at the same revision (400, code 11)" /v3/kv/compaction "{\"revision\":\"$((r + 1))\"}" 400 \
    "$(errbody 'etcdserver: mvcc: required revision has been compacted' 11)"
  gw "$T: compaction at a future revision (400, code 11)" /v3/kv/compaction "{\"revision\":\"99999999\"}" 400 \
    "$(errbody 'etcdserver: mvcc: required revision is a future revision' 11)"
}

# 6. leases: grant, timetolive, leases, revoke, keepalive, /v3/kv/lease/* aliases
test_06() {
  local T=06-lease k
  k=$(b64 t06/k)
  gw "$T: grant with an ID (ID, TTL as strings)" /v3/lease/grant '{"TTL":"60","ID":"4660"}' 200 "{\"header\":$HDR,\"ID\":\"4660\",\"TTL\":\"60\"}"
  gw "$T: grant the same ID again (412, code 9)" /v3/lease/grant '{"TTL":60,"ID":4660}' 412 "$(errbody 'etcdserver: lease already exists' 9)"
  gw "$T: grant without an ID: the server picks one" /v3/lease/grant '{"TTL":"30"}' 200 "{\"header\":$HDR,\"ID\":\"#\",\"TTL\":\"30\"}"
  gw "$T: put with lease" /v3/kv/put "{\"key\":\"$k\",\"value\":\"$(b64 v)\",\"lease\":\"4660\"}" 200 "{\"header\":$HDR}"
  gw "$T: range shows the lease" /v3/kv/range "{\"key\":\"$k\"}" 200 \
    "{\"header\":$HDR,\"kvs\":[{\"key\":\"$k\",\"create_revision\":\"#\",\"mod_revision\":\"#\",\"version\":\"1\",\"value\":\"$(b64 v)\",\"lease\":\"4660\"}],\"count\":\"1\"}"
  gw "$T: timetolive with keys (grantedTTL, keys base64)" /v3/lease/timetolive '{"ID":"4660","keys":true}' 200 \
    "{\"header\":$HDR,\"ID\":\"4660\",\"TTL\":\"~(5[0-9]|60)\",\"grantedTTL\":\"60\",\"keys\":[\"$k\"]}"
  gw "$T: /v3/kv/lease/timetolive alias" /v3/kv/lease/timetolive '{"ID":"4660"}' 200 \
    "{\"header\":$HDR,\"ID\":\"4660\",\"TTL\":\"~(5[0-9]|60)\",\"grantedTTL\":\"60\"}"
  gw "$T: timetolive of an unknown lease: TTL -1" /v3/lease/timetolive '{"ID":"999"}' 200 "{\"header\":$HDR,\"ID\":\"999\",\"TTL\":\"-1\"}"
  gw "$T: leases lists 4660" /v3/lease/leases '{}' 200 "{\"header\":$HDR,\"leases\":\"*\"}"
  check "$T: leases contains 4660" "true" "$(field '"4660" in [l["ID"] for l in d.get("leases", [])] and all(set(l) == {"ID"} for l in d["leases"])')"
  gw "$T: /v3/kv/lease/leases alias" /v3/kv/lease/leases '{}' 200 "{\"header\":$HDR,\"leases\":\"*\"}"
  gw "$T: /v3/kv/lease/grant is no alias in etcd 3.4 (404)" /v3/kv/lease/grant '{"TTL":"30"}' 404 "text:Not Found"

  # keepalive: one request object in, one {"result":...} line out, and the response ends
  LAST_CMD="curl -s -N -m 5 -X POST ${CURL[0]}/v3/lease/keepalive -d '{\"ID\":\"4660\"}'"
  CODE=$("$CURL_BIN" -s -N -m 5 -X POST "${CURL[0]}/v3/lease/keepalive" -d '{"ID":"4660"}' -o "$WORK/keepalive.stream" -w '%{http_code}'); RC=$?
  check "$T: keepalive answers 200 and ends by itself (curl exit 0)" "200 0" "$CODE $RC"
  stream_check "$T: keepalive answers {\"result\":{header,ID,TTL}} and a newline" "$WORK/keepalive.stream" \
    "[{\"result\":{\"header\":$HDR,\"ID\":\"4660\",\"TTL\":\"60\"}}]"
  LAST_CMD="printf '{\"ID\":\"4660\"}\\n{\"ID\":\"4660\"}' | curl -s -N -X POST ${CURL[0]}/v3/lease/keepalive --data-binary @-"
  CODE=$(printf '{"ID":"4660"}\n{"ID":"4660"}' | "$CURL_BIN" -s -N -m 5 -X POST "${CURL[0]}/v3/lease/keepalive" --data-binary @- -o "$WORK/keepalive2.stream" -w '%{http_code}'); RC=$?
  check "$T: keepalive with two request objects: 200, ends" "200 0" "$CODE $RC"
  stream_check "$T: two request objects, two results" "$WORK/keepalive2.stream" \
    "[{\"result\":{\"header\":$HDR,\"ID\":\"4660\",\"TTL\":\"60\"}},{\"result\":{\"header\":$HDR,\"ID\":\"4660\",\"TTL\":\"60\"}}]"
  LAST_CMD="curl -s -N -m 5 -X POST ${CURL[0]}/v3/lease/keepalive -d '{\"ID\":\"999\"}'"
  CODE=$("$CURL_BIN" -s -N -m 5 -X POST "${CURL[0]}/v3/lease/keepalive" -d '{"ID":"999"}' -o "$WORK/keepalive3.stream" -w '%{http_code}'); RC=$?
  check "$T: keepalive of an unknown lease: 200, ends" "200 0" "$CODE $RC"
  stream_check "$T: keepalive of an unknown lease: a result without TTL (TTL 0 omitted), no error object" "$WORK/keepalive3.stream" \
    "[{\"result\":{\"header\":$HDR,\"ID\":\"999\"}}]"
  LAST_CMD="curl -s -N -m 5 -X POST ${CURL[1]}/v3/lease/keepalive -d '{\"ID\":\"4660\"}'  (n2, a follower or the leader)"
  CODE=$("$CURL_BIN" -s -N -m 5 -X POST "${CURL[1]}/v3/lease/keepalive" -d '{"ID":"4660"}' -o "$WORK/keepalive4.stream" -w '%{http_code}'); RC=$?
  check "$T: keepalive through n2: 200, ends" "200 0" "$CODE $RC"
  stream_check "$T: keepalive through n2: one result" "$WORK/keepalive4.stream" "[{\"result\":{\"header\":$HDR,\"ID\":\"4660\",\"TTL\":\"60\"}}]"
  gw "$T: timetolive through n3" -m 2 /v3/lease/timetolive '{"ID":"4660"}' 200 "{\"header\":$HDR,\"ID\":\"4660\",\"TTL\":\"~(5[0-9]|60)\",\"grantedTTL\":\"60\"}"
  gw "$T: /v3/kv/lease/keepalive is no alias in etcd 3.4 (404)" /v3/kv/lease/keepalive '{"ID":"4660"}' 404 "text:Not Found"

  gw "$T: revoke" /v3/lease/revoke '{"ID":"4660"}' 200 "{\"header\":$HDR}"
  gw "$T: the leased key is gone" /v3/kv/range "{\"key\":\"$k\"}" 200 "{\"header\":$HDR}"
  gw "$T: /v3/kv/lease/revoke alias: unknown lease (404, code 5)" /v3/kv/lease/revoke '{"ID":"4660"}' 404 "$(errbody 'etcdserver: requested lease not found' 5)"
  gw "$T: put with an unknown lease (404, code 5)" /v3/kv/put "{\"key\":\"$k\",\"lease\":\"4660\"}" 404 "$(errbody 'etcdserver: requested lease not found' 5)"
  post /v3/lease/grant '{"TTL":"30","ID":"4661"}'
  gw "$T: /v3/kv/lease/revoke alias revokes" /v3/kv/lease/revoke '{"ID":"4661"}' 200 "{\"header\":$HDR}"
}

# 7. /v3/watch: a streamed response that stays open
test_07() {
  local T=07-watch k r pid c
  k=$(b64 t07/k)
  post /v3/kv/put "{\"key\":\"$k\",\"value\":\"$(b64 v0)\"}"
  r=$(field 'd["header"]["revision"]')
  bg_stream w1 8 /v3/watch "{\"create_request\":{\"key\":\"$k\",\"prev_kv\":true}}"
  pid=$BGP
  sleep 1
  post -m 1 /v3/kv/put "{\"key\":\"$k\",\"value\":\"$(b64 v1)\"}"
  post -m 2 /v3/kv/deleterange "{\"key\":\"$k\"}"
  sleep 1.5
  LAST_CMD="curl -s -N -X POST ${CURL[0]}/v3/watch -d '{\"create_request\":{\"key\":\"$k\",\"prev_kv\":true}}'  (then a put via n2, a delete via n3)"
  check_cond "$T: the watch stream is still open after the request body ended and the events came" "curl still running" \
    "$(kill -0 "$pid" 2>/dev/null; echo $?)" "curl exited; output: $(head -c 1000 "$WORK/w1.stream")"
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  stream_check "$T: created, then a PUT event (prev_kv) and a DELETE event, one {\"result\":...} per line" "$WORK/w1.stream" \
    "[{\"result\":{\"header\":$HDR,\"created\":true}},
      {\"result\":{\"header\":$HDR,\"events\":[{\"kv\":{\"key\":\"$k\",\"create_revision\":\"$r\",\"mod_revision\":\"$((r + 1))\",\"version\":\"2\",\"value\":\"$(b64 v1)\"},\"prev_kv\":{\"key\":\"$k\",\"create_revision\":\"$r\",\"mod_revision\":\"$r\",\"version\":\"1\",\"value\":\"$(b64 v0)\"}}]}},
      {\"result\":{\"header\":$HDR,\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"$k\",\"mod_revision\":\"$((r + 2))\"},\"prev_kv\":{\"key\":\"$k\",\"create_revision\":\"$r\",\"mod_revision\":\"$((r + 1))\",\"version\":\"2\",\"value\":\"$(b64 v1)\"}}]}}]"

  # history replay from start_revision, watch_id chosen by the client, a range watch
  bg_stream w2 3 /v3/watch "{\"create_request\":{\"key\":\"$k\",\"start_revision\":\"$r\",\"watch_id\":\"7\"}}"
  pid=$BGP; wait "$pid" 2>/dev/null
  LAST_CMD="curl -s -N -X POST ${CURL[0]}/v3/watch -d '{\"create_request\":{\"key\":\"$k\",\"start_revision\":\"$r\",\"watch_id\":\"7\"}}'"
  stream_check "$T: start_revision replays the history (3 events in one result), watch_id 7" "$WORK/w2.stream" \
    "[{\"result\":{\"header\":$HDR,\"watch_id\":\"7\",\"created\":true}},
      {\"result\":{\"header\":$HDR,\"watch_id\":\"7\",\"events\":[{\"kv\":{\"key\":\"$k\",\"create_revision\":\"$r\",\"mod_revision\":\"$r\",\"version\":\"1\",\"value\":\"$(b64 v0)\"}},{\"kv\":{\"key\":\"$k\",\"create_revision\":\"$r\",\"mod_revision\":\"$((r + 1))\",\"version\":\"2\",\"value\":\"$(b64 v1)\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":\"$k\",\"mod_revision\":\"$((r + 2))\"}}]}}]"

  # chunk framing (raw HTTP/1.1): each chunk is one JSON object and a newline
  python3 "$GW" chunks "${CPORT[0]}" /v3/watch "{\"create_request\":{\"key\":\"$(b64 t07/)\",\"range_end\":\"$(b64 t070)\"}}" 3 >"$WORK/w3.chunks" &
  pid=$!; BG_PIDS+=("$pid")
  sleep 1
  post /v3/kv/put "{\"key\":\"$(b64 t07/x)\",\"value\":\"$(b64 1)\"}"
  post /v3/kv/put "{\"key\":\"$(b64 t07/y)\",\"value\":\"$(b64 2)\"}"
  wait "$pid" 2>/dev/null
  LAST_CMD="raw HTTP/1.1 POST /v3/watch (prefix t07/), puts t07/x, t07/y; the chunks as read"
  c=$(python3 - "$WORK/w3.chunks" <<'PYEOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
status, chunks = lines[0], lines[1:]
bad = [c for c in chunks if not (c.endswith("\n") and c.count("\n") == 1 and isinstance(json.loads(c), dict) and "result" in json.loads(c))]
print("%s; %d chunks; %d not one object + newline" % (status, len(chunks), len(bad)))
PYEOF
)
  check_cond "$T: raw HTTP/1.1: 200, chunked, created + 2 event chunks, each one JSON object + newline" "HTTP/1.1 200 OK; 3 chunks; 0 not one object + newline" \
    "$([ "$c" = "HTTP/1.1 200 OK; 3 chunks; 0 not one object + newline" ]; echo $?)" "$c"$'\n'"$(head -c 1500 "$WORK/w3.chunks")"

  # a watch from a compacted revision: created, then canceled with compact_revision (etcd 3.4: no error object)
  post /v3/kv/put "{\"key\":\"$k\",\"value\":\"$(b64 v2)\"}"
  local cr
  cr=$(field 'd["header"]["revision"]')
  post /v3/kv/compaction "{\"revision\":\"$cr\"}"
  bg_stream w4 3 /v3/watch "{\"create_request\":{\"key\":\"$k\",\"start_revision\":\"$r\"}}"
  pid=$BGP; wait "$pid" 2>/dev/null; c=$?
  LAST_CMD="curl -s -N -m 3 -X POST ${CURL[0]}/v3/watch -d '{\"create_request\":{\"key\":\"$k\",\"start_revision\":\"$r\"}}'  (after compaction at $cr)"
  check "$T: compacted start revision: HTTP 200, the stream stays open (curl -m 3 times out: exit 28)" "200 28" "$(cat "$WORK/w4.code") $c"
  stream_check "$T: compacted start revision: created, then canceled with compact_revision (header without revision)" "$WORK/w4.stream" \
    "[{\"result\":{\"header\":$HDR,\"created\":true}},{\"result\":{\"header\":$HDR_NOREV,\"canceled\":true,\"compact_revision\":\"$cr\"}}]"

  # several request objects in one body: create, then cancel it
  bg_stream w5 3 /v3/watch "{\"create_request\":{\"key\":\"$k\"}}{\"cancel_request\":{\"watch_id\":\"0\"}}"
  pid=$BGP; wait "$pid" 2>/dev/null
  LAST_CMD="curl -s -N -X POST ${CURL[0]}/v3/watch -d '{\"create_request\":{\"key\":\"$k\"}}{\"cancel_request\":{\"watch_id\":\"0\"}}'"
  stream_check "$T: create then cancel_request in one body: created, canceled" "$WORK/w5.stream" \
    "[{\"result\":{\"header\":$HDR,\"created\":true}},{\"result\":{\"header\":$HDR,\"canceled\":true}}]"

  # two watchers in one stream (one with the NOPUT filter), and a progress request
  local k2
  k2=$(b64 t07/two)
  bg_stream w6 4 /v3/watch "{\"create_request\":{\"key\":\"$k2\",\"filters\":[\"NOPUT\"]}}{\"create_request\":{\"key\":\"$k2\"}}{\"progress_request\":{}}"
  pid=$BGP
  sleep 1
  post /v3/kv/put "{\"key\":\"$k2\",\"value\":\"$(b64 1)\"}"
  r=$(field 'd["header"]["revision"]')
  post /v3/kv/deleterange "{\"key\":\"$k2\"}"
  wait "$pid" 2>/dev/null
  LAST_CMD="curl -s -N -X POST ${CURL[0]}/v3/watch -d '{create NOPUT}{create}{\"progress_request\":{}}'  (then a put and a delete)"
  c=$(python3 - "$WORK/w6.stream" <<'PYEOF'
import json, sys
objs = [json.loads(l)["result"] for l in open(sys.argv[1]) if l.strip()]
out = []
for o in objs:
    w = o.get("watch_id", "0")
    if o.get("created"):
        out.append("created %s" % w)
    elif "events" in o:
        out.append("events %s %s" % (w, ",".join("%s@%s" % (e.get("type", "PUT"), e["kv"]["mod_revision"]) for e in o["events"])))
    else:
        out.append("progress %s %s" % (w, sorted(k for k in o if k != "header")))
print("\n".join(sorted(out)))
PYEOF
)
  check "$T: two watchers in one stream (ids 0 and 1), NOPUT filter, progress_request answered with watch_id -1" \
    "created 0
created 1
events 0 DELETE@$((r + 1))
events 1 DELETE@$((r + 1))
events 1 PUT@$r
progress -1 ['watch_id']" "$c"

  # malformed body: nothing was streamed yet, so a unary-style error (500, code 2)
  gw "$T: malformed watch body: 500 and a unary error body {error, message, code 2}" /v3/watch '{bad' 500 '{"error":"*","message":"*","code":2}'
  decoder_message "$T: malformed watch body" "invalid character 'b' looking for beginning of object key string" WatchRequest
}

# 8. maintenance: status, alarm, hash, hashkv, defragment, transfer-leadership
test_08() {
  local T=08-maintenance li fi tid lid
  gw "$T: status (version, dbSize, leader, raftIndex, raftTerm, raftAppliedIndex, dbSizeInUse)" /v3/maintenance/status '{}' 200 \
    "{\"header\":$HDR,\"version\":\"~[0-9]+\\\\.[0-9]+\\\\.[0-9]+\",\"dbSize\":\"#\",\"leader\":\"#\",\"raftIndex\":\"#\",\"raftTerm\":\"#\",\"raftAppliedIndex\":\"#\",\"dbSizeInUse\":\"#\"}"
  gw "$T: alarm list with no alarm: {} (no header)" /v3/maintenance/alarm '{}' 200 '{}'
  gw "$T: alarm GET by name" /v3/maintenance/alarm '{"action":"GET"}' 200 '{}'
  gw "$T: alarm DEACTIVATE of an alarm nobody raised" /v3/maintenance/alarm '{"action":"DEACTIVATE","memberID":"1","alarm":"NOSPACE"}' 200 '{}'
  gw "$T: hash (uint32: a JSON number)" /v3/maintenance/hash '{}' 200 "{\"header\":$HDR,\"hash\":\"*\"}"
  check "$T: hash is a JSON number" "int" "$(field 'type(d.get("hash")).__name__')"
  # etcd 3.4's gateway has no hashkv (404 Not Found); 3.5's has: either is accepted
  post /v3/maintenance/hashkv '{}'
  if [ "$CODE" = 404 ]; then
    expect_http "$T: hashkv: 404 Not Found (etcd 3.4's gateway has no hashkv)" 404 "text:Not Found"
  else
    expect_http "$T: hashkv served as in etcd 3.5 (hash, compact_revision)" 200 "{\"header\":$HDR,\"hash\":\"*\",\"?compact_revision\":\"#\"}"
  fi
  gw "$T: defragment: {}" /v3/maintenance/defragment '{}' 200 '{}'
  li=$(leader_index)
  fi=$(( (li + 1) % 3 ))
  tid=$(member_id_of "${NAMES[$fi]}")
  gw "$T: transfer-leadership through a follower (412, code 9)" -m "$fi" /v3/maintenance/transfer-leadership "{\"targetID\":\"$tid\"}" 412 "$(errbody 'etcdserver: not leader' 9)"
  gw "$T: transfer-leadership to an unknown member (412, code 9)" -m "$li" /v3/maintenance/transfer-leadership '{"targetID":"1"}' 412 "$(errbody 'etcdserver: bad leader transferee' 9)"
  gw "$T: transfer-leadership to ${NAMES[$fi]}: {}" -m "$li" /v3/maintenance/transfer-leadership "{\"targetID\":\"$tid\"}" 200 '{}'
  retry_until 10 eval 'post -m 2 /v3/maintenance/status "{}"; [ "$(field "d.get(\"leader\")")" = "$tid" ]'
  check "$T: status on n3 names ${NAMES[$fi]} the leader" "$tid" "$(field 'd.get("leader")')"
}

# 9. /v3/maintenance/snapshot: a streamed blob with etcd's SHA-256 trailer
test_09() {
  local T=09-snapshot res
  LAST_CMD="curl -s -X POST ${CURL[0]}/v3/maintenance/snapshot -d '{}'"
  CODE=$("$CURL_BIN" -s -m 30 -X POST "${CURL[0]}/v3/maintenance/snapshot" -d '{}' -o "$WORK/snapshot.stream" -w '%{http_code}'); RC=$?
  check "$T: HTTP 200, the response ends" "200 0" "$CODE $RC"
  res=$(python3 "$GW" snapshot "$WORK/snapshot.stream")
  check "$T: {\"result\":{\"blob\",\"remaining_bytes\"}} lines; the decoded blobs end with the SHA-256 of what precedes them" "sha256=ok" "$res$([ "$res" = sha256=ok ] || { echo; head -c 400 "$WORK/snapshot.stream"; })"
}

# 10. cluster membership
test_10() {
  local T=10-cluster-member id n1id
  gw "$T: member list (ID, name, peerURLs, clientURLs; header without revision)" /v3/cluster/member/list '{}' 200 \
    "{\"header\":$HDR_NOREV,\"members\":[{\"ID\":\"#\",\"name\":\"~n[123]\",\"peerURLs\":[\"~http://127\\\\.0\\\\.0\\\\.1:[0-9]+\"],\"clientURLs\":[\"~http://127\\\\.0\\\\.0\\\\.1:[0-9]+\"]},{\"ID\":\"#\",\"name\":\"~n[123]\",\"peerURLs\":\"*\",\"clientURLs\":\"*\"},{\"ID\":\"#\",\"name\":\"~n[123]\",\"peerURLs\":\"*\",\"clientURLs\":\"*\"}]}"
  check "$T: names and URLs" "n1 ${PURL[0]} ${CURL[0]}|n2 ${PURL[1]} ${CURL[1]}|n3 ${PURL[2]} ${CURL[2]}" \
    "$(field '"|".join(sorted("%s %s %s" % (m.get("name"), ",".join(m.get("peerURLs", [])), ",".join(m.get("clientURLs", []))) for m in d["members"]))')"
  n1id=$(member_id_of n1)
  gw "$T: promote a voter (412, code 9)" /v3/cluster/member/promote "{\"ID\":\"$n1id\"}" 412 "$(errbody 'etcdserver: can only promote a learner member' 9)"
  gw "$T: promote an unknown id (404, code 5)" /v3/cluster/member/promote '{"ID":"1"}' 404 "$(errbody 'etcdserver: member not found' 5)"
  retry_until 15 eval 'post /v3/cluster/member/add "{\"peerURLs\":[\"${PURL[3]}\"],\"isLearner\":true}"; [[ "$OUT" != *"unhealthy cluster"* ]]'
  expect_http "$T: add a learner: member (no name, no clientURLs, isLearner) and members" 200 \
    "{\"header\":$HDR_NOREV,\"member\":{\"ID\":\"#\",\"peerURLs\":[\"${PURL[3]}\"],\"isLearner\":true},\"members\":\"*\"}"
  id=$(field 'd["member"]["ID"]')
  check "$T: members has 4 entries, the learner among them" "4 True" "$(field '"%d %s" % (len(d["members"]), any(m.get("ID") == d["member"]["ID"] and m.get("isLearner") and "name" not in m for m in d["members"]))')"
  gw "$T: add with n1's peer URL (412, code 9)" /v3/cluster/member/add "{\"peerURLs\":[\"${PURL[0]}\"],\"isLearner\":true}" 412 "$(errbody 'etcdserver: Peer URLs already exists' 9)"
  gw "$T: add without peer URLs (400, code 3)" /v3/cluster/member/add '{}' 400 "$(errbody 'etcdserver: given member URLs are invalid' 3)"
  gw "$T: update the learner's peer URLs" /v3/cluster/member/update "{\"ID\":\"$id\",\"peerURLs\":[\"${PURL[3]}\",\"http://127.0.0.1:9\"]}" 200 \
    "{\"header\":$HDR_NOREV,\"members\":\"*\"}"
  check "$T: update's members show the new URLs" "${PURL[3]},http://127.0.0.1:9" "$(field '[",".join(m["peerURLs"]) for m in d["members"] if m["ID"] == "'"$id"'"][0]')"
  gw "$T: update an unknown id (404, code 5)" /v3/cluster/member/update '{"ID":"1","peerURLs":["http://127.0.0.1:9"]}' 404 "$(errbody 'etcdserver: member not found' 5)"
  gw "$T: promote the unstarted learner (412, not in sync)" /v3/cluster/member/promote "{\"ID\":\"$id\"}" 412 \
    "$(errbody 'etcdserver: can only promote a learner member which is in sync with leader' 9)"
  gw "$T: remove the learner: the 3 voters remain" /v3/cluster/member/remove "{\"ID\":\"$id\"}" 200 \
    "{\"header\":$HDR_NOREV,\"members\":[{\"ID\":\"#\",\"name\":\"*\",\"peerURLs\":\"*\",\"clientURLs\":\"*\"},{\"ID\":\"#\",\"name\":\"*\",\"peerURLs\":\"*\",\"clientURLs\":\"*\"},{\"ID\":\"#\",\"name\":\"*\",\"peerURLs\":\"*\",\"clientURLs\":\"*\"}]}"
  gw "$T: remove it again (404, code 5)" /v3/cluster/member/remove "{\"ID\":\"$id\"}" 404 "$(errbody 'etcdserver: member not found' 5)"
}

# 11. auth: enable, authenticate, Authorization header, refusals, disable
test_11() {
  local T=11-auth tok k
  k=$(b64 t11/k)
  gw "$T: user add root" /v3/auth/user/add '{"name":"root","password":"rootpw"}' 200 "{\"header\":$HDR}"
  gw "$T: user add root again (412, code 9)" /v3/auth/user/add '{"name":"root","password":"x"}' 412 "$(errbody 'etcdserver: user name already exists' 9)"
  gw "$T: role add root" /v3/auth/role/add '{"name":"root"}' 200 "{\"header\":$HDR}"
  gw "$T: user grant root root" /v3/auth/user/grant '{"user":"root","role":"root"}' 200 "{\"header\":$HDR}"
  gw "$T: authenticate while auth is disabled (412, code 9)" /v3/auth/authenticate '{"name":"root","password":"rootpw"}' 412 "$(errbody 'etcdserver: authentication is not enabled' 9)"
  gw "$T: auth enable" /v3/auth/enable '{}' 200 "{\"header\":$HDR}"
  gw "$T: authenticate with a wrong password (400, code 3)" /v3/auth/authenticate '{"name":"root","password":"bad"}' 400 \
    "$(errbody 'etcdserver: authentication failed, invalid user ID or password' 3)"
  retry_until 5 eval 'post /v3/auth/authenticate "{\"name\":\"root\",\"password\":\"rootpw\"}"; [ "$CODE" = 200 ]'
  expect_http "$T: authenticate returns a token" 200 "{\"header\":$HDR,\"token\":\"~.+\"}"
  tok=$(field 'd["token"]')
  gw "$T: put with Authorization: <token>" /v3/kv/put "{\"key\":\"$k\",\"value\":\"$(b64 v)\"}" 200 "{\"header\":$HDR}" -H "Authorization: $tok"
  gw "$T: range with the token" /v3/kv/range "{\"key\":\"$k\"}" 200 "{\"header\":$HDR,\"kvs\":[{\"key\":\"$k\",\"create_revision\":\"#\",\"mod_revision\":\"#\",\"version\":\"1\",\"value\":\"$(b64 v)\"}],\"count\":\"1\"}" -H "Authorization: $tok"
  gw "$T: range without a token (400, code 3, user name is empty)" /v3/kv/range "{\"key\":\"$k\"}" 400 "$(errbody 'etcdserver: user name is empty' 3)"
  gw "$T: put without a token (400, code 3)" /v3/kv/put "{\"key\":\"$k\",\"value\":\"$(b64 w)\"}" 400 "$(errbody 'etcdserver: user name is empty' 3)"
  gw "$T: range with a bogus token (401, code 16)" /v3/kv/range "{\"key\":\"$k\"}" 401 "$(errbody 'etcdserver: invalid auth token' 16)" -H "Authorization: bogus"
  gw "$T: user list with the token" /v3/auth/user/list '{}' 200 "{\"header\":$HDR,\"users\":[\"root\"]}" -H "Authorization: $tok"
  gw "$T: user get root" /v3/auth/user/get '{"name":"root"}' 200 "{\"header\":$HDR,\"roles\":[\"root\"]}" -H "Authorization: $tok"
  gw "$T: role list" /v3/auth/role/list '{}' 200 "{\"header\":$HDR,\"roles\":[\"root\"]}" -H "Authorization: $tok"
  gw "$T: member list needs no token" /v3/cluster/member/list '{}' 200 "{\"header\":$HDR_NOREV,\"members\":\"*\"}"
  # a watch without a token: created and canceled at once, the reason in the result
  bg_stream w11 3 /v3/watch "{\"create_request\":{\"key\":\"$k\"}}"
  wait "$BGP" 2>/dev/null
  LAST_CMD="curl -s -N -X POST ${CURL[0]}/v3/watch -d '{\"create_request\":{\"key\":\"$k\"}}'  (auth enabled, no token)"
  stream_check "$T: watch without a token: created+canceled, watch_id -1, cancel_reason" "$WORK/w11.stream" \
    "[{\"result\":{\"header\":$HDR,\"watch_id\":\"-1\",\"created\":true,\"canceled\":true,\"cancel_reason\":\"rpc error: code = InvalidArgument desc = etcdserver: user name is empty\"}}]"
  # a snapshot without a token: the in-stream error object
  LAST_CMD="curl -s -X POST ${CURL[0]}/v3/maintenance/snapshot -d '{}'  (auth enabled, no token)"
  CODE=$("$CURL_BIN" -s -m 10 -X POST "${CURL[0]}/v3/maintenance/snapshot" -d '{}' -o "$WORK/last.body" -w '%{http_code}'); OUT=$(cat "$WORK/last.body")
  expect_http "$T: snapshot without a token: 500 and the stream error object {\"error\":{grpc_code,http_code,message,http_status}}" 500 \
    '{"error":{"grpc_code":2,"http_code":500,"message":"auth: user name is empty","http_status":"Internal Server Error"}}'
  # a user without roles
  gw "$T: user add alice (no roles)" /v3/auth/user/add '{"name":"alice","password":"alicepw"}' 200 "{\"header\":$HDR}" -H "Authorization: $tok"
  post /v3/auth/authenticate '{"name":"alice","password":"alicepw"}'
  local atok
  atok=$(field 'd.get("token")')
  gw "$T: alice's range (403, code 7)" /v3/kv/range "{\"key\":\"$k\"}" 403 "$(errbody 'etcdserver: permission denied' 7)" -H "Authorization: $atok"
  gw "$T: hash without a token (500, code 2, auth: user name is empty)" /v3/maintenance/hash '{}' 500 "$(errbody 'auth: user name is empty' 2)"
  gw "$T: defragment as alice (500, code 2, auth: permission denied)" /v3/maintenance/defragment '{}' 500 "$(errbody 'auth: permission denied' 2)" -H "Authorization: $atok"
  LAST_CMD="curl -s -N -X POST ${CURL[0]}/v3/watch -H 'Authorization: bogus' -d '{\"create_request\":{\"key\":\"$k\"}}'"
  "$CURL_BIN" -s -N -m 3 -X POST "${CURL[0]}/v3/watch" -H 'Authorization: bogus' --data-binary "{\"create_request\":{\"key\":\"$k\"}}" -o "$WORK/w11c.stream" 2>/dev/null
  stream_check "$T: watch with a bogus token: canceled, Unauthenticated in cancel_reason" "$WORK/w11c.stream" \
    "[{\"result\":{\"header\":$HDR,\"watch_id\":\"-1\",\"created\":true,\"canceled\":true,\"cancel_reason\":\"rpc error: code = Unauthenticated desc = etcdserver: invalid auth token\"}}]"
  "$CURL_BIN" -s -N -m 3 -X POST "${CURL[0]}/v3/watch" -H "Authorization: $atok" --data-binary "{\"create_request\":{\"key\":\"$k\"}}" -o "$WORK/w11d.stream" 2>/dev/null
  LAST_CMD="curl -s -N -X POST ${CURL[0]}/v3/watch -H 'Authorization: <alice>' -d '{\"create_request\":{\"key\":\"$k\"}}'"
  stream_check "$T: alice's watch: canceled, PermissionDenied in cancel_reason" "$WORK/w11d.stream" \
    "[{\"result\":{\"header\":$HDR,\"watch_id\":\"-1\",\"created\":true,\"canceled\":true,\"cancel_reason\":\"rpc error: code = PermissionDenied desc = etcdserver: permission denied\"}}]"
  LAST_CMD="curl -s -X POST ${CURL[0]}/v3/maintenance/snapshot -H 'Authorization: <alice>' -d '{}'"
  CODE=$("$CURL_BIN" -s -m 10 -X POST "${CURL[0]}/v3/maintenance/snapshot" -H "Authorization: $atok" -d '{}' -o "$WORK/last.body" -w '%{http_code}'); OUT=$(cat "$WORK/last.body")
  expect_http "$T: snapshot as alice: 500 and the stream error object (auth: permission denied)" 500 \
    '{"error":{"grpc_code":2,"http_code":500,"message":"auth: permission denied","http_status":"Internal Server Error"}}'
  LAST_CMD="curl -s -X POST ${CURL[0]}/v3/maintenance/snapshot -H 'Authorization: bogus' -d '{}'"
  CODE=$("$CURL_BIN" -s -m 10 -X POST "${CURL[0]}/v3/maintenance/snapshot" -H "Authorization: bogus" -d '{}' -o "$WORK/last.body" -w '%{http_code}'); OUT=$(cat "$WORK/last.body")
  expect_http "$T: snapshot with a bogus token: 500 and the stream error object (auth: invalid auth token)" 500 \
    '{"error":{"grpc_code":2,"http_code":500,"message":"auth: invalid auth token","http_status":"Internal Server Error"}}'
  gw "$T: user delete alice" /v3/auth/user/delete '{"name":"alice"}' 200 "{\"header\":$HDR}" -H "Authorization: $tok"
  gw "$T: auth disable without a token (400, code 3)" /v3/auth/disable '{}' 400 "$(errbody 'etcdserver: user name is empty' 3)"
  gw "$T: auth disable with the token" /v3/auth/disable '{}' 200 "{\"header\":$HDR}" -H "Authorization: $tok"
  gw "$T: range without a token works again" /v3/kv/range "{\"key\":\"$k\"}" 200 "{\"header\":$HDR,\"kvs\":\"*\",\"count\":\"1\"}"
  gw "$T: user delete root" /v3/auth/user/delete '{"name":"root"}' 200 "{\"header\":$HDR}"
  gw "$T: role delete root" /v3/auth/role/delete '{"role":"root"}' 200 "{\"header\":$HDR}"
}

# 12. /v3/lock/{lock,unlock}
test_12() {
  local T=12-lock lk pid n
  n=$(b64 t12/lock)
  post /v3/lease/grant '{"TTL":"60","ID":"4864"}'
  post /v3/lease/grant '{"TTL":"60","ID":"4865"}'
  gw "$T: lock with lease 4864 (0x1300): key is name/<lease in hex>" /v3/lock/lock "{\"name\":\"$n\",\"lease\":\"4864\"}" 200 \
    "{\"header\":$HDR,\"key\":\"$(b64 t12/lock/1300)\"}"
  lk=$(field 'd["key"]')
  bg_stream lock2 10 /v3/lock/lock "{\"name\":\"$n\",\"lease\":\"4865\"}"
  pid=$BGP
  sleep 1
  LAST_CMD="curl -s -X POST ${CURL[0]}/v3/lock/lock -d '{\"name\":\"$n\",\"lease\":\"4865\"}'  (while held)"
  check_cond "$T: a second lock waits while the first is held" "still waiting after 1 s" "$(kill -0 "$pid" 2>/dev/null; echo $?)" "$(cat "$WORK/lock2.stream" 2>/dev/null)"
  gw "$T: unlock the first" /v3/lock/unlock "{\"key\":\"$lk\"}" 200 "{\"header\":$HDR}"
  wait "$pid" 2>/dev/null
  cp "$WORK/lock2.stream" "$WORK/last.body" 2>/dev/null; OUT=$(cat "$WORK/last.body" 2>/dev/null); CODE=$(cat "$WORK/lock2.code")
  expect_http "$T: the second lock is granted after the unlock" 200 "{\"header\":$HDR,\"key\":\"$(b64 t12/lock/1301)\"}"
  gw "$T: lock with an unknown lease (500, code 2)" /v3/lock/lock "{\"name\":\"$n\",\"lease\":\"999\"}" 500 "$(errbody 'etcdserver: requested lease not found' 2)"
  gw "$T: unlock the second" /v3/lock/unlock "{\"key\":\"$(b64 t12/lock/1301)\"}" 200 "{\"header\":$HDR}"
  gw "$T: unlock a key that is not locked" /v3/lock/unlock "{\"key\":\"$(b64 t12/none)\"}" 200 "{\"header\":$HDR}"
  gw "$T: unlock without a key (500, code 2)" /v3/lock/unlock '{}' 500 "$(errbody 'etcdserver: key is not provided' 2)"
  post /v3/lease/revoke '{"ID":"4864"}'; post /v3/lease/revoke '{"ID":"4865"}'
}

# 13. /v3/election/{campaign,proclaim,leader,observe,resign}
test_13() {
  local T=13-election n ld lk
  n=$(b64 t13/el)
  post /v3/lease/grant '{"TTL":"60","ID":"4880"}'
  gw "$T: leader with no campaign (500, code 2)" /v3/election/leader "{\"name\":\"$n\"}" 500 "$(errbody 'election: no leader' 2)"
  gw "$T: campaign: leader {name, key name/<lease hex>, rev, lease}" /v3/election/campaign "{\"name\":\"$n\",\"lease\":\"4880\",\"value\":\"$(b64 v1)\"}" 200 \
    "{\"header\":$HDR,\"leader\":{\"name\":\"$n\",\"key\":\"$(b64 t13/el/1310)\",\"rev\":\"#\",\"lease\":\"4880\"}}"
  ld=$(field 'json.dumps(d["leader"])')
  lk=$(field 'd["leader"]["rev"]')
  gw "$T: leader: the kv (with lease)" /v3/election/leader "{\"name\":\"$n\"}" 200 \
    "{\"header\":$HDR,\"kv\":{\"key\":\"$(b64 t13/el/1310)\",\"create_revision\":\"$lk\",\"mod_revision\":\"$lk\",\"version\":\"1\",\"value\":\"$(b64 v1)\",\"lease\":\"4880\"}}"
  gw "$T: proclaim a new value" /v3/election/proclaim "{\"leader\":$ld,\"value\":\"$(b64 v2)\"}" 200 "{\"header\":$HDR}"
  gw "$T: proclaim as a non-leader (500, code 2)" /v3/election/proclaim "{\"leader\":{\"name\":\"$n\",\"key\":\"$(b64 t13/none)\",\"rev\":\"1\",\"lease\":\"4880\"},\"value\":\"$(b64 x)\"}" 500 \
    "$(errbody 'election: not leader' 2)"
  bg_stream obs 3 /v3/election/observe "{\"name\":\"$n\"}"
  wait "$BGP" 2>/dev/null
  LAST_CMD="curl -s -N -X POST ${CURL[0]}/v3/election/observe -d '{\"name\":\"$n\"}'"
  stream_check "$T: observe streams the current leader's kv and stays open" "$WORK/obs.stream" \
    "[{\"result\":{\"header\":$HDR,\"kv\":{\"key\":\"$(b64 t13/el/1310)\",\"create_revision\":\"$lk\",\"mod_revision\":\"#\",\"version\":\"2\",\"value\":\"$(b64 v2)\",\"lease\":\"4880\"}}}]"
  gw "$T: resign" /v3/election/resign "{\"leader\":$ld}" 200 "{\"header\":$HDR}"
  gw "$T: no leader after resign (500, code 2)" /v3/election/leader "{\"name\":\"$n\"}" 500 "$(errbody 'election: no leader' 2)"
  gw "$T: campaign with an unknown lease (500, code 2)" /v3/election/campaign "{\"name\":\"$n\",\"lease\":\"999\",\"value\":\"$(b64 v)\"}" 500 "$(errbody 'etcdserver: requested lease not found' 2)"
  post /v3/lease/revoke '{"ID":"4880"}'
}

# decoder_message NAME GO_TEXT MESSAGE: the last answer's error text. etcd's is Go's JSON
# decoder's (checked exactly); Synod's decoder is SwiftProtobuf's, so its text names the
# request type and the decoder's reason (or says the stream ended inside a value) instead (a documented departure: no client matches on
# a decoder's words; the status and code, checked before, are etcd's).
decoder_message() {
  if [ "$TARGET" = etcd ]; then
    check "$1: etcd's message" "$2 $2" "$(field 'd.get("error", "") + " " + d.get("message", "")')"
  else
    local got; got=$(field 'd.get("error", "")')
    # a stream's body may also be cut short inside a value: "synod: the request stream ..."
    if [[ "$got" == "synod: the request body is not a etcdserverpb.$3 in JSON: "?* || "$got" == "synod: the request stream "?* ]] \
      && [ "$got" = "$(field 'd.get("message", "")')" ]; then
      check "$1: Synod's decoder message names the request type" ok ok
    else
      check "$1: Synod's decoder message names the request type" "synod: the request body is not a etcdserverpb.$3 in JSON: <reason>" "$got"
    fi
  fi
}

# 14. errors: malformed bodies, unknown paths, methods, oversized requests
test_14() {
  local T=14-errors k
  k=$(b64 t14/k)
  # the structure (status, code, error = message) first, then etcd's exact text (Go's decoders)
  gw "$T: malformed JSON: 400, {error, message, code 3}" /v3/kv/range '{bad' 400 '{"error":"*","message":"*","code":3}'
  decoder_message "$T: malformed JSON" "invalid character 'b' looking for beginning of object key string" RangeRequest
  gw "$T: a JSON array instead of an object: 400, code 3" /v3/kv/range '[]' 400 '{"error":"*","message":"*","code":3}'
  decoder_message "$T: a JSON array" 'json: cannot unmarshal array into Go value of type map[string]json.RawMessage' RangeRequest
  gw "$T: bad base64: 400, code 3" /v3/kv/range '{"key":"not base64!"}' 400 '{"error":"*","message":"*","code":3}'
  decoder_message "$T: bad base64" 'illegal base64 data at input byte 3' RangeRequest
  gw "$T: empty body = empty request (400, key is not provided)" /v3/kv/range '' 400 "$(errbody 'etcdserver: key is not provided' 3)"
  gw "$T: unknown enum name (400, code 3)" /v3/kv/range "{\"key\":\"$k\",\"sort_order\":\"BOGUS\"}" 400 '{"error":"*","message":"*","code":3}'
  decoder_message "$T: unknown enum name" 'unknown value "BOGUS" for enum etcdserverpb.RangeRequest_SortOrder' RangeRequest
  gw "$T: unknown fields are ignored" /v3/kv/range "{\"key\":\"$k\",\"no_such_field\":1}" 200 "{\"header\":$HDR}"
  gw "$T: unknown path under /v3/kv (404 Not Found)" /v3/kv/nope '{}' 404 "text:Not Found"
  gw "$T: unknown path /foo (404 page not found)" /foo '{}' 404 "text:404 page not found"
  LAST_CMD="curl -s ${CURL[0]}/v3/kv/range  (GET)"
  CODE=$("$CURL_BIN" -s -m 5 -o "$WORK/last.body" -w '%{http_code}' "${CURL[0]}/v3/kv/range"); OUT=$(cat "$WORK/last.body")
  expect_http "$T: GET on a POST path (405 Method Not Allowed)" 405 "text:Method Not Allowed"
  python3 -c 'import base64,json,sys; print(json.dumps({"key":base64.b64encode(b"t14/big").decode(),"value":base64.b64encode(b"x"*(1700*1024)).decode()}))' >"$WORK/big1.json"
  python3 -c 'import base64,json,sys; print(json.dumps({"key":base64.b64encode(b"t14/big").decode(),"value":base64.b64encode(b"x"*(2*1024*1024)).decode()}))' >"$WORK/big2.json"
  gw "$T: a 1.7 MiB put: over --max-request-bytes (400, code 3)" /v3/kv/put "@$WORK/big1.json" 400 "$(errbody 'etcdserver: request is too large' 3)"
  gw "$T: a 2 MiB put: over gRPC's 2 MiB limit (429, code 8)" /v3/kv/put "@$WORK/big2.json" 429 \
    '{"error":"~grpc: received message larger than max \\([0-9]+ vs\\. 2097152\\)","message":"~grpc: received message larger than max \\([0-9]+ vs\\. 2097152\\)","code":8}'
  python3 -c 'import base64,json,sys; print(json.dumps({"key":base64.b64encode(b"t14/mid").decode(),"value":base64.b64encode(b"x"*(1400*1024)).decode()}))' >"$WORK/mid.json"
  gw "$T: a 1.4 MiB put is fine (under 1.5 MiB)" /v3/kv/put "@$WORK/mid.json" 200 "{\"header\":$HDR}"
}

# 15. python3-etcd3gw (Debian), api_path='/v3/'
test_15() {
  local T=15-etcd3gw line exp
  if ! "$ETCD3GW_PYTHON" -c 'import etcd3gw' 2>/dev/null; then
    skip "$T" "$ETCD3GW_PYTHON cannot import etcd3gw (apt-get install -y python3-etcd3gw)"
    return
  fi
  LAST_CMD="$ETCD3GW_PYTHON (etcd3gw.client(host='127.0.0.1', port=${CPORT[0]}, api_path='/v3/'))"
  "$ETCD3GW_PYTHON" - "${CPORT[0]}" "${CPORT[1]}" >"$WORK/etcd3gw.out" 2>"$WORK/etcd3gw.err" <<'PYEOF'
import sys, threading, time
import etcd3gw
from etcd3gw.lock import Lock
from etcd3gw.client import Etcd3Client
c = Etcd3Client(host="127.0.0.1", port=int(sys.argv[1]), api_path="/v3/", timeout=10)
c2 = Etcd3Client(host="127.0.0.1", port=int(sys.argv[2]), api_path="/v3/", timeout=10)
def say(name, v):
    print("%s=%r" % (name, v), flush=True)
def step(name, f):
    try:
        say(name, f())
    except Exception as e:
        say(name, "EXCEPTION %s: %s" % (type(e).__name__, str(e)[:300]))
step("put", lambda: c.put("t15/a", "va"))
step("get", lambda: c.get("t15/a"))
step("get-missing", lambda: c.get("t15/none"))
step("put-b", lambda: c.put("t15/b", "vb"))
step("get_prefix", lambda: sorted((v.decode(), m["key"].decode() if isinstance(m["key"], bytes) else m["key"]) for v, m in c.get_prefix("t15/")))
step("create-existing", lambda: c.create("t15/a", "x"))
step("create-new", lambda: c.create("t15/c", "vc"))
step("replace-ok", lambda: c.replace("t15/c", "vc", "vc2"))
step("replace-wrong", lambda: c.replace("t15/c", "vc", "vc3"))
step("get-c", lambda: c.get("t15/c"))
step("delete", lambda: c.delete("t15/b"))
step("delete-missing", lambda: c.delete("t15/b"))
step("delete_prefix", lambda: c.delete_prefix("t15/"))
step("get_prefix-empty", lambda: list(c.get_prefix("t15/")))
lease = None
def grant():
    global lease
    lease = c.lease(ttl=30)
    return lease.id > 0
step("lease-grant", grant)
step("put-lease", lambda: c.put("t15/l", "vl", lease=lease))
step("lease-ttl", lambda: 25 <= lease.ttl() <= 30)
step("lease-refresh", lambda: lease.refresh())
step("lease-keys", lambda: lease.keys())
step("lease-revoke", lambda: lease.revoke())
step("get-after-revoke", lambda: c.get("t15/l"))
step("lease-ttl-revoked", lambda: lease.ttl())
events = []
def watcher():
    it, cancel = c.watch("t15/w")
    watcher.cancel = cancel
    for ev in it:
        events.append((ev.get("type", "PUT"), ev["kv"]["key"], ev["kv"].get("value")))
        if len(events) == 2:
            cancel()
            break
t = threading.Thread(target=watcher, daemon=True)
t.start()
time.sleep(1.0)
step("watch-put", lambda: c2.put("t15/w", "w1"))
step("watch-delete", lambda: c2.delete("t15/w"))
t.join(8)
step("watch-events", lambda: events)
def txn():
    r = c.transaction({"compare": [{"key": "dDE1L3R4", "result": "EQUAL", "target": "CREATE", "create_revision": 0}],
                       "success": [{"request_put": {"key": "dDE1L3R4", "value": "MQ=="}}], "failure": []})
    return (r.get("succeeded", False), [list(x) for x in r.get("responses", [])])
step("txn", txn)
step("txn-again", txn)
def lock():
    l = c.lock("t15lock", ttl=30)
    a = l.acquire()
    l2 = Lock("t15lock", ttl=30, client=c2)
    b = l2.acquire()
    held = l.is_acquired()
    r = l.release()
    b2 = l2.acquire()
    r2 = l2.release()
    return (a, b, held, r, b2, r2)
step("lock", lock)
step("members", lambda: sorted(m["name"] for m in c.members()))
step("status", lambda: sorted(k for k in c.status() if k in ("header", "version", "leader", "dbSize")))
PYEOF
  RC=$?
  ERR=$(cat "$WORK/etcd3gw.err")
  while IFS= read -r exp; do
    line=$(grep -m1 "^${exp%%=*}=" "$WORK/etcd3gw.out")
    OUT=$line
    check "$T: ${exp%%=*}" "$exp" "${line:-<no line: the script stopped, exit $RC>}"
  done <<'EOF'
put=True
get=[b'va']
get-missing=[]
put-b=True
get_prefix=[('va', 't15/a'), ('vb', 't15/b')]
create-existing=False
create-new=True
replace-ok=True
replace-wrong=False
get-c=[b'vc2']
delete=True
delete-missing=False
delete_prefix=True
get_prefix-empty=[]
lease-grant=True
put-lease=True
lease-ttl=True
lease-refresh=30
lease-keys=[b't15/l']
lease-revoke=True
get-after-revoke=[]
lease-ttl-revoked=-1
watch-put=True
watch-delete=True
watch-events=[('PUT', b't15/w', b'w1'), ('DELETE', b't15/w', None)]
txn=(True, [['response_put']])
txn-again=(False, [])
lock=(True, False, True, True, True, True)
members=['n1', 'n2', 'n3']
status=['dbSize', 'header', 'leader', 'version']
EOF
}

# 16. auth management without auth enabled: roles with permissions (enums by name), users
test_16() {
  local T=16-auth-management
  gw "$T: role add r16" /v3/auth/role/add '{"name":"r16"}' 200 "{\"header\":$HDR}"
  gw "$T: grant READWRITE on a range (permType by name)" /v3/auth/role/grant "{\"name\":\"r16\",\"perm\":{\"permType\":\"READWRITE\",\"key\":\"$(b64 t16/a)\",\"range_end\":\"$(b64 t16/b)\"}}" 200 "{\"header\":$HDR}"
  gw "$T: grant WRITE on a key (permType as a number)" /v3/auth/role/grant "{\"name\":\"r16\",\"perm\":{\"permType\":1,\"key\":\"$(b64 t16/c)\"}}" 200 "{\"header\":$HDR}"
  gw "$T: role get: perm with permType by name, key/range_end base64" /v3/auth/role/get '{"role":"r16"}' 200 \
    "{\"header\":$HDR,\"perm\":[{\"permType\":\"READWRITE\",\"key\":\"$(b64 t16/a)\",\"range_end\":\"$(b64 t16/b)\"},{\"permType\":\"WRITE\",\"key\":\"$(b64 t16/c)\"}]}"
  gw "$T: role revoke a key" /v3/auth/role/revoke "{\"role\":\"r16\",\"key\":\"$(b64 t16/c)\"}" 200 "{\"header\":$HDR}"
  gw "$T: role revoke it again (412, code 9)" /v3/auth/role/revoke "{\"role\":\"r16\",\"key\":\"$(b64 t16/c)\"}" 412 "$(errbody 'etcdserver: permission is not granted to the role' 9)"
  gw "$T: user add u16" /v3/auth/user/add '{"name":"u16","password":"p"}' 200 "{\"header\":$HDR}"
  gw "$T: user grant u16 r16" /v3/auth/user/grant '{"user":"u16","role":"r16"}' 200 "{\"header\":$HDR}"
  gw "$T: user get u16" /v3/auth/user/get '{"name":"u16"}' 200 "{\"header\":$HDR,\"roles\":[\"r16\"]}"
  gw "$T: user revoke r16" /v3/auth/user/revoke '{"name":"u16","role":"r16"}' 200 "{\"header\":$HDR}"
  gw "$T: user get u16 without roles" /v3/auth/user/get '{"name":"u16"}' 200 "{\"header\":$HDR}"
  gw "$T: user changepw" /v3/auth/user/changepw '{"name":"u16","password":"q"}' 200 "{\"header\":$HDR}"
  gw "$T: user delete u16" /v3/auth/user/delete '{"name":"u16"}' 200 "{\"header\":$HDR}"
  gw "$T: user delete u16 again (412, code 9)" /v3/auth/user/delete '{"name":"u16"}' 412 "$(errbody 'etcdserver: user name not found' 9)"
  gw "$T: role delete r16" /v3/auth/role/delete '{"role":"r16"}' 200 "{\"header\":$HDR}"
  gw "$T: role get r16 (412, code 9)" /v3/auth/role/get '{"role":"r16"}' 412 "$(errbody 'etcdserver: role name not found' 9)"
  gw "$T: user list: empty (users omitted)" /v3/auth/user/list '{}' 200 "{\"header\":$HDR}"
}

# ---------------------------------------------------------------- main

echo "# target: $TARGET$([ "$TARGET" = synod ] && echo " ($SYNOD_BIN)"), temp dir: $WORK"
for i in 0 1 2; do start_member "$i"; done
if ! wait_healthy "$STARTUP_TIMEOUT" 0 1 2; then
  echo "Bail out! cluster did not start: $WAIT_MSG"
  print_logs 0 1 2
  FAIL=$((FAIL + 1))
  finish
fi
# a leader, and a first write through the gateway, before the tests
retry_until 15 eval 'post /v3/kv/put "{\"key\":\"$(b64 t00/ready)\"}"; [ "$CODE" = 200 ]' || echo "# warning: first gateway put: HTTP $CODE $OUT"

for n in $(seq 1 16); do
  want "$n" || continue
  "test_$(printf '%02d' "$n")"
done
finish
