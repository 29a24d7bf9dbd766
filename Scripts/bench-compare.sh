#!/usr/bin/env bash
# Synod against etcd on this machine, from a clean clone, in one command:
#   Scripts/bench-compare.sh [synod bench compare options...]
# Builds the release binary, installs etcd 3.4 (Debian's etcd-server) when it is missing and we
# are root, then runs `synod bench compare` with the arguments passed through. Results go to
# bench-results/<UTC timestamp>/ (results.md, results.json) unless --out is given.
# Environment: SYNOD_BIN=<path> skips the build and uses that executable; ETCD_BIN=<path>
# uses another etcd server binary (default /usr/bin/etcd).
set -euo pipefail
cd "$(dirname "$0")/.."

etcd_bin="${ETCD_BIN:-/usr/bin/etcd}"
skip_etcd=no
for arg in "$@"; do
  [ "$arg" = "--skip-etcd" ] && skip_etcd=yes
  [ "$arg" = "-h" ] || [ "$arg" = "--help" ] && skip_etcd=yes
done

if [ "$skip_etcd" = no ] && [ ! -x "$etcd_bin" ]; then
  if [ "$(id -u)" = 0 ] && [ "$etcd_bin" = /usr/bin/etcd ] && command -v apt-get >/dev/null; then
    echo "bench-compare: etcd not found, installing etcd-server ..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server >/dev/null; }
    # Debian's package starts a system etcd on 2379/2380; the comparison starts its own.
    if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then systemctl stop etcd || true; fi
  fi
  if [ ! -x "$etcd_bin" ]; then
    echo "bench-compare: etcd not found at $etcd_bin; install it (as root: apt-get install -y etcd-server), set ETCD_BIN, or pass --skip-etcd" >&2
    exit 1
  fi
fi

if [ -n "${SYNOD_BIN:-}" ]; then
  synod="$SYNOD_BIN"
else
  echo "bench-compare: swift build -c release --product synod (the first build takes a while) ..." >&2
  swift build -c release --product synod >&2
  synod="$(swift build -c release --show-bin-path)/synod"
fi

exec "$synod" bench compare --synod-bin "$synod" --etcd-bin "$etcd_bin" "$@"
