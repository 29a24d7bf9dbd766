#!/usr/bin/env bash
# Builds the libFuzzer target for the write-ahead-log record decoder and runs it.
#
#   Fuzz/run-record-fuzzer.sh [seconds]      (default 60)
#
# Everything goes to .build-fuzz/ (gitignored); the corpus in .build-fuzz/record-corpus
# persists between runs, and a crashing input is written to .build-fuzz/ as crash-<sha1>.
# Reproduce one with: .build-fuzz/record-decoder-fuzzer .build-fuzz/crash-<sha1>
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/.build-fuzz"
corpus="$out/record-corpus"
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

# CSynodSystem (the C shim CRC32C.swift calls for the CPU's CRC-32C instruction): a module
# map over its header, and the C file compiled on its own.
mkdir -p "$out/CSynodSystem"
printf 'module CSynodSystem {\n    header "%s"\n    export *\n}\n' \
    "$root/Sources/CSynodSystem/include/CSynodSystem.h" > "$out/CSynodSystem/module.modulemap"
clang -O2 -c Sources/CSynodSystem/system.c -I Sources/CSynodSystem/include -o "$out/CSynodSystem.o"

# The codec and the entry point as module SynodStore; only the files the codec needs.
swiftc "${flags[@]}" -module-name SynodStore -I "$out" -I "$out/CSynodSystem" -L "$out" -lSynodCore -lSynodBytes \
    "$out/CSynodSystem.o" \
    Sources/SynodStore/CRC32C.swift \
    Sources/SynodStore/RecordCodec.swift \
    Sources/SynodStore/RecordCodec+Payload.swift \
    Fuzz/RecordDecoderFuzzer.swift \
    -o "$out/record-decoder-fuzzer"

# Seeds: byte 0 selects the mode (even: decode as is; odd: CRCs and trailers are repaired
# first, so these frames carry a zero CRC). One frame of every record type.
seed() { xxd -r -p > "$corpus/$1"; }
seed raw-promised <<< "00 0d000000 63ada89c 01 01 0100000000000000 02000000 a5"
seed repaired-all-types <<< "01
    31000000 00000000 02 01 0500000000000000 0300000000000000 01000000
        01 01000000 0700000000000000 0100000000000000 03000000 616263 a5
    0a000000 00000000 03 01 0600000000000000 00 a5
    13000000 00000000 04 01 0900000000000000 0200000000000000 7879 a5
    0d000000 00000000 01 01 0100000000000000 02000000 a5
    0000000000000000000000"

"$out/record-decoder-fuzzer" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$out/" "$corpus"
