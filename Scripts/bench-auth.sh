#!/bin/bash
# Authenticate calls per second: etcd 3.4 and Synod, 3 members each on loopback, alternating
# (ROUNDS, default "1 2"). BIN: the synod binary (default: this checkout's release build).
# Needs Debian's etcd-server. Run as an ordinary user.
set -u
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/.build/release/synod}
[ -x "$BIN" ] || { echo "no synod binary at $BIN: swift build -c release --product synod" >&2; exit 2; }
command -v etcd >/dev/null || { echo "etcd not found: apt-get install etcd-server" >&2; exit 2; }
W=$(mktemp -d /tmp/authbench.XXXX)
cd $W
run_etcd() {
  local ic="e1=http://127.0.0.1:41380,e2=http://127.0.0.1:41390,e3=http://127.0.0.1:41400"
  for i in 1 2 3; do
    local c=$((41379 + (i-1)*10)) p=$((41380 + (i-1)*10))
    etcd --name e$i --data-dir $W/e$i --listen-client-urls http://127.0.0.1:$c --advertise-client-urls http://127.0.0.1:$c \
      --listen-peer-urls http://127.0.0.1:$p --initial-advertise-peer-urls http://127.0.0.1:$p --initial-cluster $ic \
      --initial-cluster-token ab-$$ --logger zap --log-level error > $W/e$i.log 2>&1 &
  done
  for _ in $(seq 50); do ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:41379 endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
  echo "etcd 3.4 (bcrypt cost 10):"
  $BIN bench auth --endpoints 127.0.0.1:41379,127.0.0.1:41389,127.0.0.1:41399 --clients 16 --duration 5 --users 64
  pkill -f "etcd --name e[123] --data-dir $W" ; sleep 1; rm -rf $W/e?
}
run_synod() {
  $BIN cluster --data-dir $W/s --base-port 12379 > $W/s.log 2>&1 &
  for _ in $(seq 100); do ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:12379 endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
  echo "Synod (scrypt, cost 10 = N 2^14):"
  $BIN bench auth --endpoints 127.0.0.1:12379,127.0.0.1:32379,127.0.0.1:42379 --clients 16 --duration 5 --users 64
  pkill -INT -f "synod cluster --data-dir $W/s"; sleep 3; rm -rf $W/s
}
lscpu | grep "Model name"; date -u
for round in ${ROUNDS:-1 2}; do echo "== round $round"; run_etcd; run_synod; done
rm -rf "$W"
