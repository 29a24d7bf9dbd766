#!/usr/bin/env bash
# Smoke test of goload: a 3-member etcd 3.4 and a 3-member Synod cluster in a temporary
# directory (as the current user), four short rows against each, every --json result checked
# (check_json.py, operations > 0, no errors), and one side-by-side line per row.
#
#   Tools/goload/smoke.sh
#
# Environment:
#   SYNOD=path       synod binary (default: this clone's .build/debug/synod)
#   ETCD=path        etcd binary (default: etcd on PATH, Debian's etcd-server)
#   GOLOAD=path      a built goload (default: build one with build.sh into the temporary directory)
#   BASE_PORT=n      ports used: n+1..3 etcd clients, n+11..13 etcd peers, n+21..23 Synod clients,
#                    n+31..33 Synod peers, n+41..43 Synod metrics (default 14400: below the ephemeral port range, away from
#                    2379/22379/32379 where other clusters run). Every one must be free.
#   SECONDS_PER_ROW  default 3
#   GOLOAD_ARGS      extra goload flags for every row (e.g. "--window-size 1048576")
#   KEEP=1           keep the temporary directory (logs, JSON) afterwards
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
base=${BASE_PORT:-14400}
row_seconds=${SECONDS_PER_ROW:-3}
etcd_bin=${ETCD:-$(command -v etcd || true)}
synod_bin=${SYNOD:-}
if [ -z "$synod_bin" ]; then
    for candidate in "$root/.build/debug/synod"; do
        if [ -x "$candidate" ]; then synod_bin=$candidate; break; fi
    done
fi
[ -n "$etcd_bin" ] && [ -x "$etcd_bin" ] || { echo "smoke: no etcd binary (apt-get install etcd-server, or ETCD=path)" >&2; exit 1; }
[ -n "$synod_bin" ] && [ -x "$synod_bin" ] || { echo "smoke: no synod binary (build it, or SYNOD=path)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "smoke: needs python3 (check_json.py)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/goload-smoke.XXXXXX")
pids=()
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "${KEEP:-}" = 1 ] || [ $status -ne 0 ]; then
        echo "smoke: logs and results kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for offset in 1 2 3 11 12 13 21 22 23 31 32 33 41 42 43; do
    if port_in_use $((base + offset)); then
        echo "smoke: port $((base + offset)) is in use; choose another BASE_PORT" >&2
        exit 1
    fi
done

goload=${GOLOAD:-}
if [ -z "$goload" ]; then
    nice -n 10 "$here/build.sh" "$work/goload" >/dev/null
    goload=$work/goload
fi

# etcd: e1..e3, clients base+1..3, peers base+11..13.
etcd_cluster=$(for i in 1 2 3; do printf 'e%d=http://127.0.0.1:%d,' $i $((base + 10 + i)); done)
etcd_cluster=${etcd_cluster%,}
for i in 1 2 3; do
    client=http://127.0.0.1:$((base + i))
    peer=http://127.0.0.1:$((base + 10 + i))
    "$etcd_bin" --name e$i --data-dir "$work/e$i" \
        --listen-client-urls $client --advertise-client-urls $client \
        --listen-peer-urls $peer --initial-advertise-peer-urls $peer \
        --initial-cluster "$etcd_cluster" --initial-cluster-state new --initial-cluster-token goload-smoke \
        --logger zap --log-outputs stderr >"$work/e$i.log" 2>&1 &
    pids+=($!)
done

# Synod: s1..s3, clients base+21..23, peers base+31..33, metrics base+41..43.
synod_cluster=$(for i in 1 2 3; do printf 's%d=http://127.0.0.1:%d,' $i $((base + 30 + i)); done)
synod_cluster=${synod_cluster%,}
for i in 1 2 3; do
    client=http://127.0.0.1:$((base + 20 + i))
    peer=http://127.0.0.1:$((base + 30 + i))
    "$synod_bin" serve --name s$i --data-dir "$work/s$i" \
        --listen-client-urls $client --advertise-client-urls $client \
        --listen-peer-urls $peer --initial-advertise-peer-urls $peer \
        --initial-cluster "$synod_cluster" --initial-cluster-state new --initial-cluster-token goload-smoke \
        --listen-metrics-urls http://127.0.0.1:$((base + 40 + i)) --log-level notice >"$work/s$i.log" 2>&1 &
    pids+=($!)
done

etcd_endpoints=127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))
synod_endpoints=127.0.0.1:$((base + 21)),127.0.0.1:$((base + 22)),127.0.0.1:$((base + 23))

# Ready: a leader answers a put (goload's own leader discovery), within 30 s.
wait_ready() {
    local name=$1 endpoints=$2 deadline=$((SECONDS + 30))
    until "$goload" put --endpoints "$endpoints" --total 1 --quiet --key-prefix smoke-ready/ >/dev/null 2>"$work/$name-ready.err"; do
        if [ $SECONDS -ge $deadline ]; then
            echo "smoke: $name cluster not ready after 30 s: $(tail -1 "$work/$name-ready.err")" >&2
            exit 1
        fi
        sleep 0.5
    done
}
wait_ready etcd "$etcd_endpoints"
wait_ready synod "$synod_endpoints"

# Rows as `synod bench compare` shapes them: conns = min(8, clients); watch: 100 watchers, 1 writer.
rows=(
    "put@1|put --clients 1 --conns 1"
    "put@64|put --clients 64 --conns 8"
    "get@64|get --consistency linearizable --clients 64 --conns 8"
    "watch@100|watch --watchers 100 --conns 8"
)
failed=0
for row in "${rows[@]}"; do
    name=${row%%|*}
    args=${row#*|}
    for system in etcd synod; do
        endpoints=$etcd_endpoints
        [ $system = synod ] && endpoints=$synod_endpoints
        out=$work/$system-${name//@/-}.json
        # shellcheck disable=SC2086
        if ! "$goload" $args ${GOLOAD_ARGS:-} --endpoints "$endpoints" --duration "${row_seconds}s" --json --quiet >"$out" 2>"$out.err"; then
            echo "smoke: $system $name failed: $(tail -3 "$out.err")" >&2
            failed=1
        fi
    done
done
[ $failed = 0 ] || exit 1

python3 "$here/check_json.py" "$work"/*.json
# goload's notes (connection drops: clientv3 reconnected after a GOAWAY) are not errors, but
# they change what was measured.
for note in "$work"/*.json.err; do
    if [ -s "$note" ]; then
        echo "$(basename "$note" .json.err): $(tail -1 "$note")"
    fi
done

python3 - "$work" "$synod_bin" <<'EOF'
import json, os, sys
work, synod = sys.argv[1], sys.argv[2]
rows = ["put-1", "put-64", "get-64", "watch-100"]
bad = []
print("%-10s %12s %8s %8s   %12s %8s %8s   %s" % ("row", "etcd ops/s", "p50 ms", "p99 ms",
                                                  "synod ops/s", "p50 ms", "p99 ms", "synod/etcd"))
for row in rows:
    results = {}
    for system in ("etcd", "synod"):
        with open(os.path.join(work, "%s-%s.json" % (system, row))) as f:
            r = json.load(f)
        results[system] = r
        errors = sum(r["errors"].values())
        if r["operations"] <= 0:
            bad.append("%s %s: no operations" % (system, row))
        if errors:
            bad.append("%s %s: errors %s" % (system, row, r["errors"]))
    e, s = results["etcd"], results["synod"]
    ratio = s["throughput"] / e["throughput"] if e["throughput"] else float("nan")
    print("%-10s %12.0f %8.3f %8.3f   %12.0f %8.3f %8.3f   %.2fx" % (
        row.replace("-", "@"), e["throughput"], e["latency"]["p50Micros"] / 1000, e["latency"]["p99Micros"] / 1000,
        s["throughput"], s["latency"]["p50Micros"] / 1000, s["latency"]["p99Micros"] / 1000, ratio))
if "/debug/" in synod:
    print("NOTE: synod is a debug build (%s): it is many times slower than a release build, so these "
          "ratios say nothing about Synod vs etcd; the smoke test only checks that goload works." % synod)
else:
    print("NOTE: indicative only: one short round per row, and both clusters and goload share this "
          "machine's %d cores; use synod bench compare for numbers." % os.cpu_count())
print("(watch: ops/s are events/s summed over 100 watchers; latency is put start to event arrival)")
for problem in bad:
    print("smoke: " + problem, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
echo "smoke: ok"
