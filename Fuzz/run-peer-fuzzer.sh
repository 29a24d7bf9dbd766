#!/usr/bin/env bash
# Builds the libFuzzer target for the peer frame decoder and runs it.
#
#   Fuzz/run-peer-fuzzer.sh [seconds]      (default 60)
#
# Everything goes to .build-fuzz/peer/ (gitignored; a directory of its own so this script
# and run-record-fuzzer.sh can run at the same time); the corpus in .build-fuzz/peer/corpus
# persists between runs, and a crashing input is written to .build-fuzz/peer/ as crash-<sha1>.
# Reproduce one with: .build-fuzz/peer/peer-frame-fuzzer .build-fuzz/peer/crash-<sha1>
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/.build-fuzz/peer"
corpus="$out/corpus"
mkdir -p "$out" "$corpus"
cd "$root"

# lld: gold warns about every AddressSanitizer helper symbol it cannot export.
flags=(-O -parse-as-library -swift-version 6 -sanitize=fuzzer,address -use-ld=lld)

# SynodBytes (the bounds-checked reader and writer the codecs share), AddressSanitizer only
# like SynodCore below. Built first: SynodCore imports it.
swiftc "${flags[@]/-sanitize=fuzzer,address/-sanitize=address}" -module-name SynodBytes \
    -emit-module -emit-module-path "$out/SynodBytes.swiftmodule" \
    -emit-library -static -o "$out/libSynodBytes.a" \
    Sources/SynodBytes/*.swift

# SynodCore is its own module (the codec files `import SynodCore`), archived statically.
# AddressSanitizer only: coverage counters there would count protocol code the decoder
# never runs, and blur the coverage libFuzzer reports for the codec.
swiftc "${flags[@]/-sanitize=fuzzer,address/-sanitize=address}" -module-name SynodCore -I "$out" \
    -emit-module -emit-module-path "$out/SynodCore.swiftmodule" \
    -emit-library -static -o "$out/libSynodCore.a" \
    Sources/SynodCore/*.swift

# The codec, the connection hello and the entry point as module SynodTransport: only the
# files without NIO (the connection code needs the package's dependencies).
swiftc "${flags[@]}" -module-name SynodTransport -I "$out" -L "$out" -lSynodCore -lSynodBytes \
    Sources/SynodTransport/PeerCodecLimits.swift \
    Sources/SynodTransport/PeerFrameCodec.swift \
    Sources/SynodTransport/PeerFrameCodec+Body.swift \
    Sources/SynodTransport/PeerTransportHello.swift \
    Fuzz/PeerFrameFuzzer.swift \
    -o "$out/peer-frame-fuzzer"

# Seeds: byte 0 selects the mode (bit 0: headers repaired first; bit 1: tight limits).
seed() { xxd -r -p > "$corpus/$1"; }
seed raw-accepted <<< "00 1e000000 01 04 03000000 04030201 8877665544332211 05000000 0900000000000000"
seed raw-read-index-reply <<< "00 1b000000 01 0c 01000000 02000000 0600000000000000 01 0800000000000000"
seed raw-forward <<< "00 23000000 01 0a 01000000 02000000
    01000000 0100000000000000 0200000000000000 01000000 ab"
seed raw-promise <<< "00 52000000 01 02 01000000 02000000 0700000000000000 02000000 0500000000000000
    01000000 0600000000000000 01 0700000000000000 02000000
        01 01000000 0100000000000000 0200000000000000 02000000 6869"
seed tight-catch-up-reply <<< "02 2f000000 01 09 01000000 02000000
    01 0900000000000000 03000000 787978 01000000 0a00000000000000 00 0a00000000000000"
seed raw-hello-then-frame <<< "00 53594e50 01 0700000000000000 03000000
    12000000 01 08 01000000 02000000 0100000000000000"
seed repaired-two-frames <<< "01 1e000000 01 04 03000000 04030201 8877665544332211 05000000 0900000000000000
    12000000 01 08 01000000 02000000 0100000000000000"

"$out/peer-frame-fuzzer" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$out/" "$corpus"
