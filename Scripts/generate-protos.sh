#!/usr/bin/env bash
# Regenerates Sources/SynodEtcdAPI/*.pb.swift and *.grpc.swift from Protos/etcd/*.proto.
# Needs Debian's protoc (apt-get install -y protobuf-compiler); the two Swift plugins are built
# from the package's own dependencies (swift-protobuf, grpc-swift-protobuf) at their pinned versions.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc not found: apt-get install -y protobuf-compiler" >&2; exit 1; }
swift build --product protoc-gen-swift
swift build --product protoc-gen-grpc-swift-2
bin="$(swift build --show-bin-path)"
out=Sources/SynodEtcdAPI
rm -f "$out"/*.pb.swift "$out"/*.grpc.swift
protoc -I Protos/etcd \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" \
  --swift_opt=Visibility=Public \
  --swift_out="$out" \
  --grpc-swift_opt=Visibility=Public,Client=true,Server=true \
  --grpc-swift_out="$out" \
  Protos/etcd/kv.proto Protos/etcd/auth.proto Protos/etcd/rpc.proto \
  Protos/etcd/v3lock.proto Protos/etcd/v3election.proto
echo "generated: $(ls "$out" | tr '\n' ' ')"
