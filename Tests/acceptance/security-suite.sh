#!/usr/bin/env bash
# Security acceptance suite: TLS (kubeadm style: client and peer mTLS) and
# etcd v3 auth (users, roles, permissions, CN-as-user), driven by etcdctl 3.4
# (ETCDCTL_API=3) against real clusters of etcd 3.4 or synod on loopback.
#
#   Tests/acceptance/security-suite.sh --target etcd
#   Tests/acceptance/security-suite.sh --target synod [--synod-bin PATH]
#
# Options:
#   --target etcd|synod   which server to start (default: synod)
#   --synod-bin PATH      synod binary (default: $SYNOD_BIN or <repo>/.build/debug/synod)
#   --only "N N ..."      run only these test numbers (e.g. --only "1 2 8")
#   --keep                keep the temp dir even when everything passes
#   -h|--help
#
# Environment: SYNOD_BIN, ETCD_BIN (default: etcd), ETCDCTL_BIN (default: etcdctl),
#   OPENSSL_BIN (default: openssl), STARTUP_TIMEOUT (seconds, default 30),
#   LOG_LEVEL (default info).
#
# Output is TAP-like: "ok - name" / "not ok - name" (+ command, expected,
# actual), and a final line "acceptance: N passed, M failed".
# Exit status: 0 if everything passed, 1 otherwise.

set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib.sh"
OPENSSL_BIN=${OPENSSL_BIN:-openssl}

parse_options "$@"
command -v "$OPENSSL_BIN" >/dev/null || { echo "openssl not found; apt-get install -y openssl" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/synod-security.XXXXXX")
PKI="$WORK/pki"
KEPT_NOTE="member logs: $WORK/*.log, certificates: $PKI"
SUITE_START=$(date +%s)

# ---------------------------------------------------------------- running commands

# (reporting, run, expect_out, expect_fail_line, expect_error_line[_rc], json,
# retry_until, now_ms: lib.sh)

# expect_contains NAME SUBSTRING CMD...: command succeeds and stdout+stderr contains SUBSTRING.
expect_contains() {
  local name=$1 exp=$2; shift 2
  run "$@"
  if [ "$RC" -eq 0 ] && [[ "$OUT$ERR" == *"$exp"* ]]; then ok "$name"; else not_ok "$name" "exit 0, output containing: $exp" "$OUT${ERR:+
[stderr] $ERR}"; fi
}

# ---------------------------------------------------------------- PKI (openssl)
#
# $PKI/ca.{crt,key}            the cluster CA ("synod-test-ca")
# $PKI/foreign-ca.{crt,key}    an unrelated CA ("synod-foreign-ca")
# $PKI/<member>.{crt,key}      CN=<member>, SAN IP:127.0.0.1 + DNS:localhost,
#                              EKU serverAuth+clientAuth (peers use it both ways)
# $PKI/root, alice             client certs (EKU clientAuth) for CN=root / CN=alice
# $PKI/n4-foreign              member cert for n4 signed by the foreign CA
# $PKI/foreign-root            client cert CN=root signed by the foreign CA
# $PKI/peer-ok, peer-intruder  member certs (cluster CA) with CN=synod-peer /
#                              CN=synod-intruder for --peer-cert-allowed-cn

mkdir -p "$PKI"
cat >"$PKI/ext.cnf" <<'EOF'
[member]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
[client]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF

PKI_LOG="$PKI/openssl.log"

# make_ca NAME CN
make_ca() {
  "$OPENSSL_BIN" req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -subj "/CN=$2" \
    -keyout "$PKI/$1.key" -out "$PKI/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -addext "subjectKeyIdentifier=hash" >>"$PKI_LOG" 2>&1
}

# make_cert NAME CN CA EXTENSION(member|client)
make_cert() {
  "$OPENSSL_BIN" req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=$2" \
    -keyout "$PKI/$1.key" -out "$PKI/$1.csr" >>"$PKI_LOG" 2>&1 &&
  "$OPENSSL_BIN" x509 -req -sha256 -days 2 -in "$PKI/$1.csr" -CA "$PKI/$3.crt" -CAkey "$PKI/$3.key" \
    -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
    -extfile "$PKI/ext.cnf" -extensions "$4" -out "$PKI/$1.crt" >>"$PKI_LOG" 2>&1
}

make_pki() {
  make_ca ca synod-test-ca && make_ca foreign-ca synod-foreign-ca || return 1
  local n
  for n in n1 n2 n3 n4 n5 a1 a2 a3 c1; do make_cert "$n" "$n" ca member || return 1; done
  make_cert root root ca client &&
  make_cert alice alice ca client &&
  make_cert n4-foreign n4 foreign-ca member &&
  make_cert foreign-root root foreign-ca client &&
  make_cert peer-ok synod-peer ca member &&
  make_cert peer-intruder synod-intruder ca member
}

# ---------------------------------------------------------------- TLS probe
#
# probe_tls MODE PORT [CA [CERT KEY]]: opens a raw connection to 127.0.0.1:PORT
# and prints one line "accepted: ..." or "rejected: ...".
#   h2:    TLS (ALPN h2) + the HTTP/2 client preface; accepted iff the server's
#          first frame is an HTTP/2 SETTINGS frame (what every gRPC server sends).
#   plain: like h2 but without TLS (a plaintext client on a TLS port).
#   idle:  TLS handshake, then wait 1 s; rejected iff the server sends a TLS
#          alert or closes the connection (for peer ports: protocol-agnostic).
probe_tls() {
  python3 - "$@" <<'PYEOF'
import socket, ssl, sys
mode, port = sys.argv[1], int(sys.argv[2])
ca = sys.argv[3] if len(sys.argv) > 3 else None
cert, key = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else (None, None)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if mode in ("h2", "idle"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(ca)
        ctx.check_hostname = False
        if cert:
            ctx.load_cert_chain(cert, key)
        if mode == "h2":
            ctx.set_alpn_protocols(["h2"])
        s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    if mode == "idle":
        s.settimeout(1.0)
        try:
            data = s.recv(1)
        except socket.timeout:
            print("accepted: handshake done, connection kept open")
            sys.exit(0)
        print("rejected: connection closed by the server" if not data else "accepted: server sent data")
        sys.exit(0)
    s.sendall(PREFACE)
    data = b""
    while len(data) < 9:
        chunk = s.recv(9 - len(data))
        if not chunk:
            break
        data += chunk
    if len(data) == 9 and data[3] == 4:
        print("accepted: HTTP/2 SETTINGS frame received")
    elif data:
        print("rejected: no HTTP/2 SETTINGS frame, got %r" % data)
    else:
        print("rejected: connection closed by the server")
except (ssl.SSLError, OSError) as e:
    print("rejected: %s" % e)
PYEOF
}

# ---------------------------------------------------------------- clusters
#
# Three independent clusters (each started only if a selected test needs it):
#   TLS   n1 n2 n3 (+ n4, n5 joining in test 3): https client and peer URLs,
#         --client-cert-auth, --peer-client-cert-auth, all certs from ca.
#         Tests 1, 2, 3, 8.
#   plain p1 p2 p3: http, for the auth tests 5, 6, 7, 9 (errors stay readable).
#   ACN   a1 (+ learners a2, a3 in test 4): TLS with --peer-cert-allowed-cn
#         synod-peer; peer certs peer-ok / peer-intruder. Test 4.
NAMES=(n1 n2 n3 n4 n5 p1 p2 p3 a1 a2 a3 c1)
KINDS=(tls tls tls tls tls plain plain plain acn acn acn crl)
NMAX=${#NAMES[@]}
declare -a CPORT PPORT PIDS CMDS EP CURL PURL ICLUSTER ISTATE PEER_CERT
BG_PIDS=()
TOKEN_BASE="security-$$-$RANDOM"
ALLOWED_CN=synod-peer

mapfile -t _ports < <(python3 "$HELPERS" freeports $((2 * NMAX)))
for i in $(seq 0 $((NMAX - 1))); do
  CPORT[$i]=${_ports[$i]}
  PPORT[$i]=${_ports[$((i + NMAX))]}
  EP[$i]="127.0.0.1:${CPORT[$i]}"
  if [ "${KINDS[$i]}" = plain ]; then s=http; else s=https; fi
  CURL[$i]="$s://${EP[$i]}"
  PURL[$i]="$s://127.0.0.1:${PPORT[$i]}"
  PEER_CERT[$i]=${NAMES[$i]}
done
PEER_CERT[8]=peer-ok
PEER_CERT[9]=peer-intruder
PEER_CERT[10]=peer-ok

for i in 0 1 2; do ICLUSTER[$i]=$(cluster_of 0 1 2); done
for i in 5 6 7; do ICLUSTER[$i]=$(cluster_of 5 6 7); done
ICLUSTER[8]=$(cluster_of 8)
ICLUSTER[11]=$(cluster_of 11)

TLS_EPS="${EP[0]},${EP[1]},${EP[2]}"
PLAIN_EPS="${EP[5]},${EP[6]},${EP[7]}"

# member_cmd I: prints the command line (one arg per line) for member I.
member_cmd() {
  local i=$1 kind=${KINDS[$1]}
  local args=(--name "${NAMES[$i]}" --data-dir "$WORK/${NAMES[$i]}.data"
    --listen-client-urls "${CURL[$i]}" --advertise-client-urls "${CURL[$i]}"
    --listen-peer-urls "${PURL[$i]}" --initial-advertise-peer-urls "${PURL[$i]}"
    --initial-cluster "${ICLUSTER[$i]}" --initial-cluster-state "${ISTATE[$i]:-new}"
    --initial-cluster-token "$TOKEN_BASE-$kind")
  if [ "$kind" != plain ]; then
    args+=(--cert-file "$PKI/${NAMES[$i]}.crt" --key-file "$PKI/${NAMES[$i]}.key"
      --trusted-ca-file "$PKI/ca.crt" --client-cert-auth
      --peer-cert-file "$PKI/${PEER_CERT[$i]}.crt" --peer-key-file "$PKI/${PEER_CERT[$i]}.key"
      --peer-trusted-ca-file "$PKI/ca.crt" --peer-client-cert-auth)
  fi
  [ "$kind" = acn ] && args+=(--peer-cert-allowed-cn "$ALLOWED_CN")
  [ "$kind" = crl ] && args+=(--client-crl-file "$WORK/crl/crl.pem")
  server_cmd "${args[@]}"
}

print_logs() {
  local i
  for i in "$@"; do
    [ -e "$WORK/${NAMES[$i]}.log" ] || continue
    echo "# ---- tail of ${NAMES[$i]} log ($WORK/${NAMES[$i]}.log), pid ${PIDS[$i]:-none}, $(member_alive "$i" && echo alive || echo NOT RUNNING)"
    tail -n 30 "$WORK/${NAMES[$i]}.log" 2>/dev/null | indent
  done
}

# etcdctl wrappers (timeouts on every call). The endpoint list comes from $EPS.
#   tctl_as WHO ARGS...  TLS clusters, client cert $PKI/WHO.{crt,key}
#                        (WHO=none: only --cacert; WHO=foreign-root: foreign CA)
#   pctl ARGS...         plain cluster (default endpoint: p1 only, so that one
#                        member answers everything; tests name others explicitly)
#   pctl_at I ARGS...    plain cluster, member I
CMD_TIMEOUT=5s
tls_flags() {
  printf '%s\n' --cacert="$PKI/ca.crt"
  [ "$1" != none ] && printf '%s\n' --cert="$PKI/$1.crt" --key="$PKI/$1.key"
}
tctl_as() {
  local who=$1 flags; shift
  mapfile -t flags < <(tls_flags "$who")
  timeout 20 "$ETCDCTL_BIN" --endpoints="${EPS:-$TLS_EPS}" --dial-timeout=2s --command-timeout="$CMD_TIMEOUT" "${flags[@]}" "$@"
}
tctl() { tctl_as root "$@"; }
tctl_at() { local EPS=${EP[$1]}; shift; tctl_as root "$@"; }
pctl() { timeout 20 "$ETCDCTL_BIN" --endpoints="${EPS:-${EP[5]}}" --dial-timeout=2s --command-timeout="$CMD_TIMEOUT" "$@"; }
pctl_at() { local EPS=${EP[$1]}; shift; pctl "$@"; }

# health I: one `endpoint health` call for member I (TLS members with the root cert).
health() {
  local flags=()
  [ "${KINDS[$1]}" != plain ] && mapfile -t flags < <(tls_flags root)
  run timeout 10 "$ETCDCTL_BIN" --endpoints="${EP[$1]}" --dial-timeout=1s --command-timeout=2s "${flags[@]}" endpoint health
}

trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- membership helpers

# started_names: sorted names of the started members (name and client URLs set) in OUT.
started_names() { json '" ".join(sorted(m["name"] for m in d["members"] if m.get("name") and m.get("clientURLs")))'; }
member_count() { json 'len(d["members"])'; }

# _member_add CTL NAME PEER_URL [--learner]: retried (by retry_until) only while
# etcd answers "unhealthy cluster" (--strict-reconfig-check wants every voter
# connected for 5 s); sets NEW_ID / CID from "Member <id> added to cluster <cid>".
_member_add() {
  local ctl=$1; shift
  run "$ctl" member add "$1" --peer-urls="$2" "${@:3}"
  NEW_ID=$(printf '%s\n' "$OUT" | sed -n '1s/^Member \{1,\}\([0-9a-f]\{1,16\}\) added to cluster \{1,\}[0-9a-f]\{1,16\}$/\1/p')
  CID=$(printf '%s\n' "$OUT" | sed -n '1s/^Member \{1,\}[0-9a-f]\{1,16\} added to cluster \{1,\}\([0-9a-f]\{1,16\}\)$/\1/p')
  [ "$RC" -eq 0 ] || [[ "$ERR" != *"unhealthy cluster"* ]]
}

# add_member T CTL I [--learner]: `member add NAMES[I]`; ok/not ok; sets NEW_ID.
add_member() {
  local T=$1 ctl=$2 i=$3 flag=${4:-}
  retry_until 20 _member_add "$ctl" "${NAMES[$i]}" "${PURL[$i]}" $flag
  check_cond "$T: member add ${NAMES[$i]} --peer-urls=${PURL[$i]}${flag:+ $flag} prints 'Member <id> added to cluster <cid>'" \
    "Member <id> added to cluster <cid>, then the ETCD_* lines" "$([ "$RC" -eq 0 ] && [ -n "$NEW_ID" ]; echo $?)" "$OUT"
}

# refused_join T CTL I ID SECONDS: member I (just started, expected to be refused
# by its peers) must not become a started member within SECONDS: its client
# endpoint is never healthy and `member list` (via CTL) keeps showing ID
# unstarted. Stops early if the process exits by itself (it gave up).
refused_join() {
  local T=$1 ctl=$2 i=$3 id=$4 secs=$5 t0 healthy=0 started=0 exited=""
  t0=$(now_ms)
  while [ $(( $(now_ms) - t0 )) -lt $((secs * 1000)) ]; do
    if ! member_alive "$i"; then wait "${PIDS[$i]}" 2>/dev/null; exited="exit status $?"; PIDS[$i]=""; break; fi
    health "$i"; [ "$RC" -eq 0 ] && healthy=1
    run "$ctl" member list -w json
    [ -n "$(member_entry "$id" | sed -n '/^[^|]/p')" ] && started=1
    [ "$healthy" = 1 ] || [ "$started" = 1 ] && break
    sleep 0.5
  done
  LAST_CMD="${CMDS[$i]}  (then: endpoint health on ${EP[$i]}, member list, for up to ${secs}s)"
  check_cond "$T: ${NAMES[$i]} is refused: never healthy, never a started member (${exited:-still running after ${secs}s})" \
    "${NAMES[$i]}'s endpoint health fails and member list shows $id unstarted for ${secs}s" \
    "$([ "$healthy" = 0 ] && [ "$started" = 0 ]; echo $?)" \
    "healthy=$healthy started=$started; member entry: $(member_entry "$id")"$'\n'"$(tail -n 5 "$WORK/${NAMES[$i]}.log")"
}

# wait_exit_or_kill I SECONDS: wait for member I to exit by itself, else kill it.
wait_exit_or_kill() {
  local i=$1 deadline=$(( $(date +%s) + $2 ))
  while member_alive "$i" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
  kill_member "$i" TERM
}

removed_line() { printf 'Member %16s removed from cluster %16s' "$1" "$2"; }

# ---------------------------------------------------------------- A. TLS

# 1. mTLS basics: put/get on every member, endpoint health, member list
test_01() {
  local T=01-tls-basic i
  expect_out "$T: put through n1 (--cacert/--cert/--key, CN=root)" "OK" tctl_at 0 put t01/k v1
  for i in 0 1 2; do
    expect_out "$T: get through ${NAMES[$i]}" $'t01/k\nv1' tctl_at "$i" get t01/k
  done
  expect_out "$T: put through n3" "OK" tctl_at 2 put t01/k v3
  expect_out "$T: get through n2 sees n3's write" "v3" tctl_at 1 get t01/k --print-value-only
  expect_out "$T: client cert CN=alice works too (auth is off)" "v3" tctl_as alice get t01/k --print-value-only
  run tctl endpoint health
  check_cond "$T: endpoint health: 3 lines '127.0.0.1:<port> is healthy: ...' (etcdctl prints them on stderr)" \
    "exit 0; 3 lines '<endpoint> is healthy: successfully committed proposal: took = ...'" \
    "$([ "$RC" -eq 0 ] && [ "$(printf '%s\n' "$ERR" | grep -c '^127\.0\.0\.1:[0-9]* is healthy: successfully committed proposal: took = ')" = 3 ]; echo $?)" "$ERR"
  run tctl member list -w json
  check "$T: member list -w json: n1 n2 n3 started" "n1 n2 n3" "$(started_names)"
  check "$T: member list -w json: https peer and client URLs" \
    "$(for i in 0 1 2; do echo "${NAMES[$i]}|${PURL[$i]}|${CURL[$i]}"; done)" \
    "$(json 'sorted("%s|%s|%s" % (m.get("name", ""), ",".join(m.get("peerURLs", [])), ",".join(m.get("clientURLs", []))) for m in d["members"])')"
  run tctl member list
  check "$T: member list (simple): 3 lines '<id>, started, <name>, https://..., https://..., false'" "3" \
    "$(printf '%s\n' "$OUT" | grep -c '^[0-9a-f]*, started, n[123], https://127\.0\.0\.1:[0-9]*, https://127\.0\.0\.1:[0-9]*, false$')"
  run tctl endpoint status -w json
  check "$T: endpoint status over TLS: 3 members, one leader" "3 1" \
    "$(json '"%d %d" % (len(d), len(set(e["Status"]["leader"] for e in d)))')"
}

# 2. client TLS refusals: no client cert, plaintext, foreign CA (both ways)
test_02() {
  local T=02-tls-refusals p
  # etcdctl 3.4 never shows the handshake error: the gRPC balancer retries the
  # refused connection until --command-timeout and reports the deadline.
  local CMD_TIMEOUT=3s
  expect_error_line "$T: no client certificate (only --cacert): fails" "context deadline exceeded" \
    tctl_as none get t02/k
  expect_error_line "$T: plaintext http:// to the TLS client port: fails" "context deadline exceeded" \
    timeout 20 "$ETCDCTL_BIN" --endpoints="http://${EP[0]}" --dial-timeout=2s --command-timeout=3s get t02/k
  expect_error_line "$T: client cert CN=root from the foreign CA: fails" "context deadline exceeded" \
    tctl_as foreign-root get t02/k
  expect_error_line "$T: member cert from the foreign CA as client cert: fails" "context deadline exceeded" \
    timeout 20 "$ETCDCTL_BIN" --endpoints="${EP[1]}" --dial-timeout=2s --command-timeout=3s \
      --cacert="$PKI/ca.crt" --cert="$PKI/n4-foreign.crt" --key="$PKI/n4-foreign.key" get t02/k
  expect_error_line "$T: client trusting only the foreign CA (server cert unverifiable): fails" "context deadline exceeded" \
    timeout 20 "$ETCDCTL_BIN" --endpoints="${EP[2]}" --dial-timeout=2s --command-timeout=3s \
      --cacert="$PKI/foreign-ca.crt" --cert="$PKI/root.crt" --key="$PKI/root.key" get t02/k
  # Same refusals, seen at the connection level (independent of etcdctl's retries).
  p=${CPORT[0]}
  run probe_tls h2 "$p" "$PKI/ca.crt" "$PKI/root.crt" "$PKI/root.key"
  check "$T: raw TLS+HTTP/2 with the root cert: accepted (control)" "accepted: HTTP/2 SETTINGS frame received" "$OUT"
  run probe_tls h2 "$p" "$PKI/ca.crt"
  check_cond "$T: raw TLS without client cert: rejected by the server ($OUT)" "rejected: ..." "$([[ "$OUT" == rejected:* ]]; echo $?)" "$OUT"
  run probe_tls h2 "$p" "$PKI/ca.crt" "$PKI/foreign-root.crt" "$PKI/foreign-root.key"
  check_cond "$T: raw TLS with the foreign-CA cert: rejected by the server ($OUT)" "rejected: ..." "$([[ "$OUT" == rejected:* ]]; echo $?)" "$OUT"
  run probe_tls plain "$p"
  check_cond "$T: plaintext HTTP/2 preface on the TLS port: no HTTP/2 answer ($OUT)" "rejected: ..." "$([[ "$OUT" == rejected:* ]]; echo $?)" "$OUT"
  run probe_tls idle "${PPORT[0]}" "$PKI/ca.crt" "$PKI/n4-foreign.crt" "$PKI/n4-foreign.key"
  check_cond "$T: raw TLS to n1's peer port with the foreign-CA member cert: rejected ($OUT)" "rejected: ..." "$([[ "$OUT" == rejected:* ]]; echo $?)" "$OUT"
  run probe_tls idle "${PPORT[0]}" "$PKI/ca.crt"
  check_cond "$T: raw TLS to n1's peer port without a cert: rejected ($OUT)" "rejected: ..." "$([[ "$OUT" == rejected:* ]]; echo $?)" "$OUT"
  run probe_tls idle "${PPORT[0]}" "$PKI/ca.crt" "$PKI/n4.crt" "$PKI/n4.key"
  check_cond "$T: raw TLS to n1's peer port with n4's (cluster CA) cert: accepted (control)" "accepted: ..." "$([[ "$OUT" == accepted:* ]]; echo $?)" "$OUT"
  expect_out "$T: the cluster still works afterwards" "OK" tctl put t02/after ok
}

# 3. peer mTLS: a member with a foreign-CA peer cert cannot join; one with a
#    proper cert joins over TLS with --initial-cluster-state existing.
test_03() {
  local T=03-tls-peer id
  # n4: client side uses its proper cert, only the *peer* cert is foreign.
  add_member "$T" tctl 3
  id=$NEW_ID
  [ -z "$id" ] && return
  run tctl member list -w json
  check "$T: n4 listed unstarted" "|${PURL[3]}||False" "$(member_entry "$id")"
  ISTATE[3]=existing
  ICLUSTER[3]=$(cluster_of 0 1 2 3)
  PEER_CERT[3]=n4-foreign
  start_member 3
  echo "# n4 command: ${CMDS[3]}"
  refused_join "$T" tctl 3 "$id" 10
  run tctl member list -w json
  check "$T: member list: still 3 started members (n1 n2 n3) + n4 unstarted" "n1 n2 n3 4" "$(started_names) $(member_count)"
  expect_out "$T: the 3 members keep serving writes" "OK" tctl put t03/during ok
  kill_member 3 TERM
  expect_out "$T: member remove n4" "$(removed_line "$id" "$CID")" tctl member remove "$id"
  run tctl member list -w json
  check "$T: member list: n1 n2 n3 only" "n1 n2 n3 3" "$(started_names) $(member_count)"

  # n5: proper certificate
  add_member "$T" tctl 4
  id=$NEW_ID
  [ -z "$id" ] && return
  ISTATE[4]=existing
  ICLUSTER[4]=$(cluster_of 0 1 2 4)
  start_member 4
  echo "# n5 command: ${CMDS[4]}"
  if wait_healthy 30 4; then ok "$T: n5 (cluster-CA peer cert) joins over TLS with --initial-cluster-state existing and is healthy"; else
    LAST_CMD="${CMDS[4]}"
    not_ok "$T: n5 (cluster-CA peer cert) joins over TLS with --initial-cluster-state existing and is healthy" \
      "endpoint health ok within 30s" "$WAIT_MSG"$'\n'"$(tail -n 20 "$WORK/n5.log")"
  fi
  run tctl member list -w json
  check "$T: member list -w json: n5 started with https URLs" "n5|${PURL[4]}|${CURL[4]}|False" "$(member_entry "$id")"
  run tctl member list
  check "$T: member list (simple): '<id>, started, n5, https://..., https://..., false'" \
    "$id, started, n5, ${PURL[4]}, ${CURL[4]}, false" "$(printf '%s\n' "$OUT" | grep "^$id, ")"
  expect_out "$T: put through n5" "OK" tctl_at 4 put t03/via-n5 v5
  expect_out "$T: linearizable get of it through n1" "v5" tctl_at 0 get t03/via-n5 --print-value-only
  expect_out "$T: n5 has t03/during (written before it joined)" "ok" tctl_at 4 get t03/during --print-value-only
  # back to 3 members (n5 shuts down by itself on etcd; killed otherwise)
  expect_out "$T: member remove n5" "$(removed_line "$id" "$CID")" tctl member remove "$id"
  wait_exit_or_kill 4 15
  run tctl member list -w json
  check "$T: member list: n1 n2 n3 only again" "n1 n2 n3 3" "$(started_names) $(member_count)"
}

_acn_learner_started() { # I ID
  run actl member list -w json
  [ "$(member_entry "$2")" = "${NAMES[$1]}|${PURL[$1]}|${CURL[$1]}|True" ]
}
actl() { local EPS=${EP[8]}; tctl_as root "$@"; }

# 4. --peer-cert-allowed-cn: a1 (single member) only accepts peers whose
#    certificate CN is synod-peer. Learners are used so that a refused member
#    does not cost the quorum.
test_04() {
  local T=04-peer-allowed-cn id
  run probe_tls idle "${PPORT[8]}" "$PKI/ca.crt" "$PKI/peer-intruder.crt" "$PKI/peer-intruder.key"
  check_cond "$T: raw TLS to a1's peer port with CN=synod-intruder (cluster CA): rejected ($OUT)" "rejected: ..." \
    "$([[ "$OUT" == rejected:* ]]; echo $?)" "$OUT"
  run probe_tls idle "${PPORT[8]}" "$PKI/ca.crt" "$PKI/peer-ok.crt" "$PKI/peer-ok.key"
  check_cond "$T: raw TLS to a1's peer port with CN=synod-peer: accepted (control)" "accepted: ..." \
    "$([[ "$OUT" == accepted:* ]]; echo $?)" "$OUT"
  add_member "$T" actl 9 --learner
  id=$NEW_ID
  [ -z "$id" ] && return
  ISTATE[9]=existing
  ICLUSTER[9]=$(cluster_of 8 9)
  start_member 9
  echo "# a2 command: ${CMDS[9]}"
  refused_join "$T" actl 9 "$id" 8
  kill_member 9 TERM
  expect_out "$T: member remove a2" "$(removed_line "$id" "$CID")" actl member remove "$id"
  add_member "$T" actl 10 --learner
  id=$NEW_ID
  [ -z "$id" ] && return
  ISTATE[10]=existing
  ICLUSTER[10]=$(cluster_of 8 10)
  start_member 10
  echo "# a3 command: ${CMDS[10]}"
  if retry_until 30 _acn_learner_started 10 "$id"; then
    ok "$T: a3 (peer cert CN=synod-peer) joins as a learner: member list shows it started"
  else
    not_ok "$T: a3 (peer cert CN=synod-peer) joins as a learner: member list shows it started" \
      "a3|${PURL[10]}|${CURL[10]}|True" "$(member_entry "$id")"$'\n'"$(tail -n 20 "$WORK/a3.log")"
  fi
  expect_out "$T: a1 keeps serving" "OK" actl put t04/k v
}

# ---------------------------------------------------------------- B. auth (plain cluster p1 p2 p3)

# 5. users, roles, permissions (auth still disabled)
test_05() {
  local T=05-auth-users-roles
  expect_out "$T: user add root:rootpw" "User root created" pctl user add root:rootpw
  expect_out "$T: user add alice:alicepw" "User alice created" pctl user add alice:alicepw
  expect_out "$T: user add bob --new-user-password=bobpw" "User bob created" pctl user add bob --new-user-password=bobpw
  expect_error_line "$T: user add alice again" "etcdserver: user name already exists" pctl user add alice:other
  expect_out "$T: role add reader" "Role reader created" pctl role add reader
  expect_error_line "$T: role add reader again" "etcdserver: role name already exists" pctl role add reader
  expect_out "$T: role grant-permission --prefix=true reader read /app/" "Role reader updated" \
    pctl role grant-permission --prefix=true reader read /app/
  expect_out "$T: role add writer" "Role writer created" pctl role add writer
  expect_out "$T: role grant-permission writer readwrite /w/key1" "Role writer updated" \
    pctl role grant-permission writer readwrite /w/key1
  expect_out "$T: role grant-permission writer write /w/r1 /w/r5 (range)" "Role writer updated" \
    pctl role grant-permission writer write /w/r1 /w/r5
  expect_out "$T: user grant-role alice reader" "Role reader is granted to user alice" pctl user grant-role alice reader
  expect_out "$T: user grant-role bob writer" "Role writer is granted to user bob" pctl user grant-role bob writer
  expect_out "$T: user grant-role bob reader" "Role reader is granted to user bob" pctl user grant-role bob reader
  expect_error_line "$T: grant an unknown role" "etcdserver: role name not found" pctl user grant-role alice nosuch
  expect_error_line "$T: grant to an unknown user" "etcdserver: user name not found" pctl user grant-role nobody reader
  expect_out "$T: user get alice (via p2)" $'User: alice\nRoles: reader' pctl_at 6 user get alice
  expect_out "$T: user get bob: roles sorted" $'User: bob\nRoles: reader writer' pctl user get bob
  expect_out "$T: user get root: no roles yet" $'User: root\nRoles:' pctl user get root
  expect_out "$T: user get alice --detail" $'User: alice\n\nRole reader\nKV Read:\n\t[/app/, /app0) (prefix /app/)\nKV Write:' \
    pctl user get alice --detail
  expect_error_line "$T: user get of an unknown user" "etcdserver: user name not found" pctl user get nobody
  expect_out "$T: role get reader (via p3)" $'Role reader\nKV Read:\n\t[/app/, /app0) (prefix /app/)\nKV Write:' pctl_at 7 role get reader
  expect_out "$T: role get writer" $'Role writer\nKV Read:\n\t/w/key1\nKV Write:\n\t/w/key1\n\t[/w/r1, /w/r5)' pctl role get writer
  expect_error_line "$T: role get of an unknown role" "etcdserver: role name not found" pctl role get nosuch
  expect_out "$T: user list (sorted)" $'alice\nbob\nroot' pctl user list
  expect_out "$T: role list (sorted)" $'reader\nwriter' pctl role list
  expect_out "$T: auth disabled: anonymous put works" "OK" pctl put /app/x v0
}

# 6. auth enable
test_06() {
  local T=06-auth-enable
  expect_out "$T: user delete root" "User root deleted" pctl user delete root
  expect_error_line "$T: user delete root again" "etcdserver: user name not found" pctl user delete root
  expect_error_line "$T: auth enable without a root user" "etcdserver: root user does not exist" pctl auth enable
  expect_out "$T: ... auth stays disabled (anonymous put)" "OK" pctl_at 6 put /app/x v0
  expect_out "$T: user add root:rootpw" "User root created" pctl user add root:rootpw
  expect_out "$T: role add root" "Role root created" pctl role add root
  expect_out "$T: user grant-role root root" "Role root is granted to user root" pctl user grant-role root root
  expect_out "$T: auth enable" "Authentication Enabled" pctl auth enable
  expect_error_line "$T: anonymous get via p2 now fails" "etcdserver: user name is empty" pctl_at 6 get /app/x
  expect_error_line "$T: anonymous put via p3 now fails" "etcdserver: user name is empty" pctl_at 7 put /app/x v
  expect_error_line "$T: anonymous auth enable (already enabled) fails" "etcdserver: user name is empty" pctl auth enable
  expect_out "$T: auth enable as root when already enabled" "Authentication Enabled" pctl --user root:rootpw auth enable
  expect_out "$T: role get root" $'Role root\nKV Read:\nKV Write:' pctl --user root:rootpw role get root
  expect_out "$T: role list (as root) includes root" $'reader\nroot\nwriter' pctl --user root:rootpw role list
}

# 7. permissions with auth enabled
test_07() {
  local T=07-auth-permissions R A="--user alice:alicepw"
  local ROOT="--user root:rootpw"
  expect_error_line "$T: get without --user" "etcdserver: user name is empty" pctl get /app/x
  expect_error_line "$T: put without --user" "etcdserver: user name is empty" pctl put /app/x v
  expect_out "$T: alice reads /app/x" $'/app/x\nv0' pctl $A get /app/x
  expect_out "$T: alice reads /app/ --prefix" $'/app/x\nv0' pctl $A get /app/ --prefix
  expect_out "$T: alice reads /app/x via p3" "v0" pctl_at 7 $A get /app/x --print-value-only
  expect_out "$T: alice with --user alice --password alicepw" "v0" pctl --user alice --password alicepw get /app/x --print-value-only
  expect_error_line "$T: alice put /app/x" "etcdserver: permission denied" pctl $A put /app/x v
  expect_error_line "$T: alice del /app/x" "etcdserver: permission denied" pctl $A del /app/x
  expect_error_line "$T: alice get /other (no permission)" "etcdserver: permission denied" pctl $A get /other
  expect_error_line "$T: alice get /app --prefix (range wider than her permission)" "etcdserver: permission denied" pctl $A get /app --prefix
  expect_error_line_rc "$T: wrong password (exit 2: the client cannot authenticate)" 2 \
    "etcdserver: authentication failed, invalid user ID or password" pctl --user alice:wrong get /app/x
  expect_error_line_rc "$T: unknown user" 2 \
    "etcdserver: authentication failed, invalid user ID or password" pctl --user nobody:pw get /app/x
  expect_out "$T: root put /app/x" "OK" pctl $ROOT put /app/x v
  expect_out "$T: alice reads root's write via p2" $'/app/x\nv' pctl_at 6 $A get /app/x
  expect_out "$T: root reads anything" "OK" pctl $ROOT put /other o
  expect_out "$T: bob (writer) put /w/key1" "OK" pctl --user bob:bobpw put /w/key1 b
  expect_out "$T: bob put /w/r3 (inside his write range)" "OK" pctl --user bob:bobpw put /w/r3 b
  expect_error_line "$T: bob get /w/r3 (write-only range)" "etcdserver: permission denied" pctl --user bob:bobpw get /w/r3
  expect_error_line "$T: bob put /w/r5 (range end is exclusive)" "etcdserver: permission denied" pctl --user bob:bobpw put /w/r5 b

  # txn: every key of the compares and of *both* branches is checked
  printf '%s\n' 'value("/app/x") = "v"' '' 'put /app/y yes' '' '' >"$WORK/txn-a1"
  expect_error_line "$T: txn as alice whose success branch writes /app/y" "etcdserver: permission denied" \
    pctl $A txn --interactive=false <"$WORK/txn-a1"
  printf '%s\n' 'value("/app/x") = "v"' '' 'get /app/x' '' 'put /app/y no' '' >"$WORK/txn-a2"
  expect_error_line "$T: txn as alice with a write only in the (not taken) failure branch" "etcdserver: permission denied" \
    pctl $A txn --interactive=false <"$WORK/txn-a2"
  printf '%s\n' 'value("/other") = "o"' '' 'get /app/x' '' '' >"$WORK/txn-a3"
  expect_error_line "$T: txn as alice comparing a key she cannot read" "etcdserver: permission denied" \
    pctl $A txn --interactive=false <"$WORK/txn-a3"
  printf '%s\n' 'value("/app/x") = "v"' '' 'get /app/x' '' '' >"$WORK/txn-a4"
  expect_out "$T: read-only txn as alice" $'SUCCESS\n\n/app/x\nv' pctl $A txn --interactive=false <"$WORK/txn-a4"
  printf '%s\n' 'value("/app/x") = "v"' '' 'put /w/key1 from-txn' '' 'put /w/key1 else' '' >"$WORK/txn-b1"
  expect_out "$T: txn as bob (read /app/, readwrite /w/key1): compare /app/x, put /w/key1" $'SUCCESS\n\nOK' \
    pctl --user bob:bobpw txn --interactive=false <"$WORK/txn-b1"
  expect_out "$T: ... written" "from-txn" pctl --user bob:bobpw get /w/key1 --print-value-only

  # watch
  run pctl $ROOT get /app/x -w json; R=$(json 'd["kvs"][0]["mod_revision"]')
  run timeout 3 "$ETCDCTL_BIN" --endpoints="${EP[5]}" --dial-timeout=2s $A watch /app/x --rev="$R"
  check "$T: alice watches /app/x from its mod revision: sees the PUT (until killed by timeout 3)" \
    $'124\nPUT\n/app/x\nv' "$RC"$'\n'"$OUT"
  expect_fail_line "$T: alice watches /other: canceled by the server (exit 5)" 5 \
    "watch was canceled (rpc error: code = PermissionDenied desc = etcdserver: permission denied)" \
    timeout 10 "$ETCDCTL_BIN" --endpoints="${EP[5]}" --dial-timeout=2s $A watch /other
  check_cond "$T: ... and etcdctl says 'Error: watch is canceled by the server'" "stderr line: Error: watch is canceled by the server" \
    "$(printf '%s\n' "$ERR" | grep -qxF 'Error: watch is canceled by the server'; echo $?)" "$ERR"
  expect_fail_line "$T: alice watches --prefix /app (wider than her permission): canceled" 5 \
    "watch was canceled (rpc error: code = PermissionDenied desc = etcdserver: permission denied)" \
    timeout 10 "$ETCDCTL_BIN" --endpoints="${EP[5]}" --dial-timeout=2s $A watch /app --prefix

  # cluster / maintenance / auth-management calls as a non-root user
  run pctl $A member list -w json
  check "$T: member list as alice: allowed" "p1 p2 p3" "$(started_names)"
  run pctl member list -w json
  check "$T: member list without --user: allowed" "p1 p2 p3" "$(started_names)"
  run pctl $A endpoint status -w json
  check "$T: endpoint status as alice: allowed" "1" "$(json 'len(d)')"
  expect_out "$T: alarm list as alice: allowed (empty)" "" pctl $A alarm list
  expect_contains "$T: endpoint health as alice: healthy (etcdctl counts 'permission denied' on its probe key as healthy)" \
    "${EP[5]} is healthy: successfully committed proposal" pctl $A endpoint health
  expect_fail_line "$T: endpoint health without --user: unhealthy" 1 \
    "${EP[5]} is unhealthy: failed to commit proposal: etcdserver: user name is empty" pctl endpoint health
  check_cond "$T: ... 'Error: unhealthy cluster'" "stderr line: Error: unhealthy cluster" \
    "$(printf '%s\n' "$ERR" | grep -qxF 'Error: unhealthy cluster'; echo $?)" "$ERR"
  expect_error_line "$T: member add as alice" "etcdserver: permission denied" \
    pctl $A member add p9 --peer-urls=http://127.0.0.1:1
  expect_error_line "$T: member remove as alice" "etcdserver: permission denied" pctl $A member remove 1234abcd
  expect_fail_line "$T: defrag as alice (no 'Error:' line, exit 1)" 1 \
    "Failed to defragment etcd member[${EP[5]}] (rpc error: code = Unknown desc = auth: permission denied)" pctl $A defrag
  expect_error_line_rc "$T: snapshot save as alice (exit 5)" 5 "rpc error: code = Unknown desc = auth: permission denied" \
    pctl $A snapshot save "$WORK/alice.db"
  expect_error_line "$T: endpoint hashkv as alice" "rpc error: code = Unknown desc = auth: permission denied" pctl $A endpoint hashkv
  expect_out "$T: defrag as root" "Finished defragmenting etcd member[${EP[5]}]" pctl $ROOT defrag
  expect_contains "$T: snapshot save as root" "Snapshot saved at $WORK/root.db" pctl $ROOT snapshot save "$WORK/root.db"
  expect_error_line "$T: user add as alice" "etcdserver: permission denied" pctl $A user add eve:evepw
  expect_error_line "$T: user list as alice" "etcdserver: permission denied" pctl $A user list
  expect_error_line "$T: role list as alice" "etcdserver: permission denied" pctl $A role list
  expect_out "$T: user get alice as alice (own user): allowed" $'User: alice\nRoles: reader' pctl $A user get alice
  expect_error_line "$T: user get bob as alice" "etcdserver: permission denied" pctl $A user get bob
  expect_out "$T: role get reader as alice (own role): allowed" $'Role reader\nKV Read:\n\t[/app/, /app0) (prefix /app/)\nKV Write:' \
    pctl $A role get reader
  expect_error_line "$T: role get writer as alice" "etcdserver: permission denied" pctl $A role get writer
  expect_error_line "$T: user passwd alice as alice (needs root)" "etcdserver: permission denied" \
    pctl $A user passwd alice --interactive=false <<<"alicepw2"
  expect_error_line "$T: role delete root as root" "etcdserver: invalid auth management" pctl $ROOT role delete root
  expect_error_line "$T: user revoke-role root root as root" "etcdserver: invalid auth management" pctl $ROOT user revoke-role root root

  # revoke / passwd
  expect_out "$T: role revoke-permission reader /app/ --prefix" "Permission of range [/app/, /app0) is revoked from role reader" \
    pctl $ROOT role revoke-permission reader /app/ --prefix
  expect_error_line "$T: revoking it again" "etcdserver: permission is not granted to the role" \
    pctl $ROOT role revoke-permission reader /app/ --prefix
  expect_error_line "$T: alice get /app/x after the revoke (via p2)" "etcdserver: permission denied" pctl_at 6 $A get /app/x
  expect_out "$T: role get reader: no permissions left" $'Role reader\nKV Read:\nKV Write:' pctl $ROOT role get reader
  expect_out "$T: re-grant read /app/ --prefix" "Role reader updated" pctl $ROOT role grant-permission --prefix=true reader read /app/
  expect_out "$T: alice reads again" "v" pctl $A get /app/x --print-value-only
  expect_out "$T: user passwd alice --interactive=false (as root, from stdin)" "Password updated" \
    pctl $ROOT user passwd alice --interactive=false <<<"alicepw2"
  expect_out "$T: the new password works" "v" pctl --user alice:alicepw2 get /app/x --print-value-only
  expect_error_line_rc "$T: the old password fails" 2 "etcdserver: authentication failed, invalid user ID or password" \
    pctl $A get /app/x
  expect_out "$T: user revoke-role bob reader" "Role reader is revoked from user bob" pctl $ROOT user revoke-role bob reader
  expect_error_line "$T: ... again" "etcdserver: role is not granted to the user" pctl $ROOT user revoke-role bob reader
  expect_error_line "$T: bob's txn comparing /app/x is denied now" "etcdserver: permission denied" \
    pctl --user bob:bobpw txn --interactive=false <"$WORK/txn-b1"
}

# 8. CN as user name on the TLS cluster
test_08() {
  local T=08-tls-cn-user
  local ROOT_CN="tctl_as root" ALICE_CN="tctl_as alice"
  expect_out "$T: user add root:rootpw (over the CN=root cert, auth off)" "User root created" $ROOT_CN user add root:rootpw
  expect_out "$T: user add alice:alicepw" "User alice created" $ROOT_CN user add alice:alicepw
  expect_out "$T: role add app-reader" "Role app-reader created" $ROOT_CN role add app-reader
  expect_out "$T: grant read /app/ --prefix" "Role app-reader updated" $ROOT_CN role grant-permission --prefix=true app-reader read /app/
  expect_out "$T: user grant-role alice app-reader" "Role app-reader is granted to user alice" $ROOT_CN user grant-role alice app-reader
  expect_out "$T: put /app/x (auth off)" "OK" $ROOT_CN put /app/x v1
  # root has no root role: etcdctl's `auth enable` sees "root user does not have
  # root role", creates role root, grants it and enables again.
  expect_out "$T: auth enable (root without root role; etcdctl adds it)" "Authentication Enabled" $ROOT_CN auth enable
  expect_out "$T: ... role root created" $'app-reader\nroot' $ROOT_CN role list
  expect_out "$T: ... and granted to root" $'User: root\nRoles: root' $ROOT_CN user get root
  expect_out "$T: CN=alice, no --user: get /app/x" $'/app/x\nv1' $ALICE_CN get /app/x
  expect_out "$T: CN=alice via n3" "v1" tctl_alice_at 2 get /app/x --print-value-only
  expect_error_line "$T: CN=alice, no --user: put /app/x" "etcdserver: permission denied" $ALICE_CN put /app/x v2
  expect_error_line "$T: CN=alice: get /other" "etcdserver: permission denied" $ALICE_CN get /other
  expect_error_line "$T: CN=alice: user list" "etcdserver: permission denied" $ALICE_CN user list
  expect_error_line "$T: CN=alice: auth disable" "etcdserver: permission denied" $ALICE_CN auth disable
  expect_out "$T: CN=root: put /app/x" "OK" $ROOT_CN put /app/x v2
  expect_out "$T: CN=root: put /other" "OK" $ROOT_CN put /other o
  expect_out "$T: CN=alice reads root's write" "v2" $ALICE_CN get /app/x --print-value-only
  expect_out "$T: CN=root: user list" $'alice\nroot' $ROOT_CN user list
  expect_error_line "$T: CN=n1 (member cert, no such user): get /app/x" "etcdserver: permission denied" \
    timeout 20 "$ETCDCTL_BIN" --endpoints="${EP[0]}" --dial-timeout=2s --command-timeout=5s \
      --cacert="$PKI/ca.crt" --cert="$PKI/n1.crt" --key="$PKI/n1.key" get /app/x
  expect_out "$T: CN=alice cert + --user root:rootpw: the password wins (put allowed)" "OK" \
    $ALICE_CN --user root:rootpw put /app/x v3
  expect_error_line "$T: CN=root cert + --user alice:alicepw: alice's permissions (put denied)" "etcdserver: permission denied" \
    $ROOT_CN --user alice:alicepw put /app/x v4
  expect_error_line_rc "$T: CN=root cert + wrong password: authentication failed" 2 \
    "etcdserver: authentication failed, invalid user ID or password" $ROOT_CN --user root:wrong get /app/x
  expect_out "$T: CN=root: auth disable" "Authentication Disabled" $ROOT_CN auth disable
  expect_out "$T: CN=alice may write again" "OK" $ALICE_CN put /app/x v5
}
tctl_alice_at() { local EPS=${EP[$1]}; shift; tctl_as alice "$@"; }

# 9. auth disable
test_09() {
  local T=09-auth-disable
  expect_error_line "$T: auth disable as alice" "etcdserver: permission denied" pctl --user alice:alicepw2 auth disable
  expect_error_line "$T: auth disable anonymously" "etcdserver: user name is empty" pctl auth disable
  expect_error_line "$T: anonymous get still refused" "etcdserver: user name is empty" pctl get /app/x
  expect_out "$T: auth disable as root" "Authentication Disabled" pctl --user root:rootpw auth disable
  expect_out "$T: anonymous get via p2" $'/app/x\nv' pctl_at 6 get /app/x
  expect_out "$T: anonymous put via p3" "OK" pctl_at 7 put /app/x anon
  expect_out "$T: anonymous user list" $'alice\nbob\nroot' pctl user list
  expect_out "$T: --user alice:alicepw2 may write now" "OK" pctl --user alice:alicepw2 put /app/x a
  expect_out "$T: --user alice:wrong works too (auth off: passwords are not checked)" "OK" pctl --user alice:wrong put /app/x b
  expect_out "$T: auth disable again (anonymous, already disabled)" "Authentication Disabled" pctl auth disable
}

# 10. auth status (etcdctl >= 3.5)
test_10() {
  local T=10-auth-status
  run timeout 10 "$ETCDCTL_BIN" auth --help
  if ! printf '%s\n' "$OUT" | grep -q '^[[:space:]]*status'; then
    skip "$T" "etcdctl $("$ETCDCTL_BIN" version | sed -n 's/^etcdctl version: //p') has no 'auth status' (added in 3.5)"
    return
  fi
  expect_contains "$T: auth status (auth disabled)" "Authentication Status: false" pctl auth status
}


# ---------------------------------------------------------------- C. revocation

# make_crl: a CRL from the cluster CA that revokes alice's client certificate
# (openssl ca with a throwaway database).
make_crl() {
  local d=$WORK/crl
  mkdir -p "$d" && : >"$d/index.txt" && echo 1000 >"$d/crlnumber" &&
  printf '%s\n' "[ ca ]" "default_ca = crl_ca" "[ crl_ca ]" "database = $d/index.txt" "crlnumber = $d/crlnumber" \
    "default_md = sha256" "default_crl_days = 30" >"$d/ca.cnf" &&
  "$OPENSSL_BIN" ca -config "$d/ca.cnf" -keyfile "$PKI/ca.key" -cert "$PKI/ca.crt" -revoke "$PKI/alice.crt" >>"$PKI_LOG" 2>&1 &&
  "$OPENSSL_BIN" ca -config "$d/ca.cnf" -keyfile "$PKI/ca.key" -cert "$PKI/ca.crt" -gencrl -out "$d/crl.pem" >>"$PKI_LOG" 2>&1
}

# 11. --client-crl-file: c1 (single member) refuses alice's revoked client
#     certificate and serves root's.
test_11() {
  local T=11-client-crl EPS=${EP[11]}
  expect_out "$T: root's certificate (not revoked) is served" "OK" tctl_as root put t11/k v
  run tctl_as alice get t11/k
  check_cond "$T: alice's revoked certificate is refused" "non-zero exit" "$([ "$RC" -ne 0 ]; echo $?)" "$OUT $ERR"
  run probe_tls idle "${CPORT[11]}" "$PKI/ca.crt" "$PKI/alice.crt" "$PKI/alice.key"
  check_cond "$T: raw TLS with alice's revoked certificate: rejected ($OUT)" "rejected: ..." \
    "$([[ "$OUT" == rejected:* ]]; echo $?)" "$OUT"
  run probe_tls idle "${CPORT[11]}" "$PKI/ca.crt" "$PKI/root.crt" "$PKI/root.key"
  check_cond "$T: raw TLS with root's certificate: accepted (control)" "accepted: ..." \
    "$([[ "$OUT" == accepted:* ]]; echo $?)" "$OUT"
}

# ---------------------------------------------------------------- D. a client nobody here wrote

# 12. python3-etcd3 (Debian's package; grpc-python sends credentials only over
#     TLS) on the TLS cluster: user and password, permissions, a watch and a
#     lease with auth enabled. Skipped when the package is missing.
test_12() {
  local T=12-python-etcd3 py=${ETCD3_PYTHON:-/usr/bin/python3}
  if ! "$py" -c 'import etcd3' 2>/dev/null; then skip "$T" "python3-etcd3 not installed ($py)"; return; fi
  local ROOT_CN="tctl_as root"
  run $ROOT_CN user get root
  [ "$RC" -ne 0 ] && run $ROOT_CN user add root:rootpw
  run $ROOT_CN user grant-role root root
  expect_out "$T: user add py:pypw" "User py created" $ROOT_CN user add py:pypw
  expect_out "$T: role add py-rw" "Role py-rw created" $ROOT_CN role add py-rw
  expect_out "$T: grant readwrite /py/ --prefix" "Role py-rw updated" $ROOT_CN role grant-permission --prefix=true py-rw readwrite /py/
  expect_out "$T: user grant-role py py-rw" "Role py-rw is granted to user py" $ROOT_CN user grant-role py py-rw
  expect_out "$T: auth enable" "Authentication Enabled" $ROOT_CN auth enable
  cat >"$WORK/py-auth.py" <<'EOF'
import sys, threading, etcd3
host, port, pki = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tls = dict(ca_cert=pki + "/ca.crt", cert_cert=pki + "/root.crt", cert_key=pki + "/root.key")
def code(e):
    c = getattr(e, "code", None)
    return c().name if callable(c) else type(e).__name__
c = etcd3.client(host=host, port=port, user="py", password="pypw", **tls)
c.put("/py/a", "1")
print("get", c.get("/py/a")[0].decode())
for what, call in [("put /other", lambda: c.put("/other", "x")), ("get /other", lambda: c.get("/other"))]:
    try:
        call(); print(what, "allowed")
    except Exception as e:
        print(what, code(e))
events, ready = [], threading.Event()
def on_event(response):
    for event in getattr(response, "events", []):
        events.append(event.value.decode()); ready.set()
watch_id = c.add_watch_callback("/py/", on_event, range_end="/py0")
lease = c.lease(30)
c.put("/py/b", "2", lease=lease)
ready.wait(5)
c.cancel_watch(watch_id)
print("watch", events[:1])
print("lease keys", sorted(k.decode() for k in lease.keys))
try:
    etcd3.client(host=host, port=port, user="py", password="wrong", **tls).get("/py/a")
    print("wrong password allowed")
except Exception as e:
    print("wrong password", code(e))
EOF
  expect_out "$T: python3-etcd3 as py over TLS: put/get, denied outside /py/, watch, lease" \
    $'get 1\nput /other PERMISSION_DENIED\nget /other PERMISSION_DENIED\nwatch [\'2\']\nlease keys [\'/py/b\']\nwrong password INVALID_ARGUMENT' \
    timeout 60 "$py" "$WORK/py-auth.py" 127.0.0.1 "${CPORT[0]}" "$PKI"
  expect_out "$T: auth disable" "Authentication Disabled" $ROOT_CN auth disable
  run $ROOT_CN user delete py
  run $ROOT_CN role delete py-rw
}

# ---------------------------------------------------------------- main

echo "# target: $TARGET${SYNOD_BIN:+ ($SYNOD_BIN)}"
echo "# temp dir: $WORK"
if make_pki; then
  echo "# PKI: $PKI (ca, foreign-ca, member/client certs)"
else
  LAST_CMD="openssl (see $PKI_LOG)"; ERR=""
  not_ok "PKI generation with openssl" "all certificates created" "$(tail -n 20 "$PKI_LOG")"
  finish
fi

TO_START=()
need_tls=0; need_plain=0; need_acn=0
for n in 1 2 3 8 12; do want "$n" && need_tls=1; done
for n in 5 6 7 9 10; do want "$n" && need_plain=1; done
want 4 && need_acn=1
need_crl=0
want 11 && need_crl=1
if [ "$need_crl" = 1 ] && ! make_crl; then
  LAST_CMD="openssl ca -revoke / -gencrl (see $PKI_LOG)"; ERR=""
  not_ok "CRL generation with openssl" "crl.pem created" "$(tail -n 20 "$PKI_LOG")"
  finish
fi
[ "$need_tls" = 1 ] && TO_START+=(0 1 2)
[ "$need_plain" = 1 ] && TO_START+=(5 6 7)
[ "$need_acn" = 1 ] && TO_START+=(8)
[ "$need_crl" = 1 ] && TO_START+=(11)
for i in "${TO_START[@]}"; do start_member "$i"; done
[ "$need_tls" = 1 ] && echo "# n1 command: ${CMDS[0]}"
[ "$need_plain" = 1 ] && echo "# p1 command: ${CMDS[5]}"
[ "$need_acn" = 1 ] && echo "# a1 command: ${CMDS[8]}"
if [ "${#TO_START[@]}" -gt 0 ]; then
  if wait_healthy "$STARTUP_TIMEOUT" "${TO_START[@]}"; then
    ok "cluster start: $(for i in "${TO_START[@]}"; do printf '%s ' "${NAMES[$i]}"; done)healthy ($(( $(date +%s) - SUITE_START ))s)"
  else
    LAST_CMD="etcdctl --endpoints=<each> endpoint health (timeout ${STARTUP_TIMEOUT}s)"
    ERR=""
    not_ok "cluster start: members healthy" "endpoint health succeeds on ${TO_START[*]}" "$WAIT_MSG"
    print_logs "${TO_START[@]}"
    finish
  fi
fi

for n in $(seq 1 12); do
  if want "$n"; then
    fn=$(printf 'test_%02d' "$n")
    echo "# --- $fn"
    "$fn"
    for i in $(seq 0 $((NMAX - 1))); do
      if [ -n "${PIDS[$i]:-}" ] && ! member_alive "$i"; then
        echo "# WARNING: member ${NAMES[$i]} is no longer running"; print_logs "$i"; PIDS[$i]=""
      fi
    done
  fi
done

finish
