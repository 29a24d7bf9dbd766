#!/bin/sh
# Builds goload (Tools/goload), the clientv3 load generator, offline from Debian's packages.
#
#   Tools/goload/build.sh [OUTPUT]      (default: .build/goload in the repository root)
#
# Needs golang-go and golang-etcd-server-dev (etcd 3.4's Go sources, with clientv3 and its
# gRPC, in /usr/share/gocode). No network: GOPATH mode (GO111MODULE=off) over
# /usr/share/gocode, GOPROXY=off. Works as an unprivileged user: writes only OUTPUT and a Go
# build cache ($GOCACHE if set, else ~/.cache/synod-goload if writable, else a temporary one).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/.build/goload}
gocode=${GOLOAD_GOCODE:-/usr/share/gocode}

missing() {
    echo "goload build: $1" >&2
    echo "goload build: install the Go toolchain and etcd's Go sources: apt-get install golang-go golang-etcd-server-dev" >&2
    exit 1
}

command -v go >/dev/null 2>&1 || missing "no 'go' on PATH"
[ -d "$gocode/src/go.etcd.io/etcd/clientv3" ] || missing "no etcd clientv3 sources in $gocode/src/go.etcd.io/etcd/clientv3"
[ -d "$gocode/src/google.golang.org/grpc" ] || missing "no gRPC sources in $gocode/src/google.golang.org/grpc"

case $out in /*) ;; *) out=$(pwd)/$out ;; esac
mkdir -p "$(dirname "$out")" 2>/dev/null || true
if ! [ -w "$(dirname "$out")" ]; then
    echo "goload build: cannot write to $(dirname "$out")" >&2
    exit 1
fi

temp_cache=
if [ -z "${GOCACHE:-}" ]; then
    if [ -n "${HOME:-}" ] && mkdir -p "$HOME/.cache/synod-goload" 2>/dev/null && [ -w "$HOME/.cache/synod-goload" ]; then
        GOCACHE=$HOME/.cache/synod-goload
    else
        temp_cache=$(mktemp -d "${TMPDIR:-/tmp}/goload-cache.XXXXXX")
        GOCACHE=$temp_cache
    fi
fi
cleanup() { [ -z "$temp_cache" ] || rm -rf "$temp_cache"; }
trap cleanup EXIT

# -buildvcs=false: the checkout may belong to another user (git's "dubious ownership" would
# fail the build) and the binary needs no VCS stamp.
cd "$here"
env GOPATH="$gocode" GO111MODULE=off GOFLAGS= GOPROXY=off GOSUMDB=off GOCACHE="$GOCACHE" \
    GOTOOLCHAIN=local CGO_ENABLED=0 \
    go build -buildvcs=false -o "$out" .
echo "goload build: $out"
