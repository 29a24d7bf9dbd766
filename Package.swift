// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Synod",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "SynodCore", targets: ["SynodCore"]),
        .library(name: "SynodSim", targets: ["SynodSim"]),
        .library(name: "SynodCheck", targets: ["SynodCheck"]),
        .library(name: "SynodStore", targets: ["SynodStore"]),
        .library(name: "SynodKV", targets: ["SynodKV"]),
        .library(name: "SynodServer", targets: ["SynodServer"]),
        .library(name: "SynodClient", targets: ["SynodClient"]),
        .executable(name: "synod", targets: ["synod"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.0"),
    ],
    targets: [
        // The Paxos protocol as a pure state machine: the standard library and our own
        // dependency-free modules only (SynodBytes depends on nothing but the standard library).
        .target(name: "SynodCore", dependencies: ["SynodBytes"]),
        // Bounds-checked little-endian reading and writing for every decoder of outside bytes.
        .target(name: "SynodBytes"),
        // Write-ahead log, snapshots, recovery; the file system behind a small protocol.
        .target(name: "SynodStore", dependencies: ["SynodCore", "SynodBytes", "CSynodSystem"]),
        // Linux calls Glibc's Swift module does not expose (sync_file_range, per-thread nice).
        .target(name: "CSynodSystem"),
        // The etcd-style MVCC key space: the replicated state machine (pure).
        .target(name: "SynodKV", dependencies: ["SynodCore", "SynodBytes"]),
        // One member's node as a pure value: replica + state machine + the requests and
        // housekeeping around them; no I/O, no clock, no threads (the server's shell and the
        // simulator drive it).
        .target(name: "SynodNode", dependencies: ["SynodBytes", "SynodCore", "SynodKV"]),
        // Peer transport: the versioned binary codec for peer messages (SwiftNIO connections later).
        .target(
            name: "SynodTransport",
            dependencies: [
                "SynodCore", "SynodBytes",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // etcd v3 API messages and gRPC stubs, generated from Protos/ by Scripts/generate-protos.sh.
        .target(
            name: "SynodEtcdAPI",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ]
        ),
        // A running node: driver, storage thread, peer transport, etcd gRPC services, HTTP health/metrics.
        .target(
            name: "SynodServer",
            dependencies: [
                "SynodBytes", "SynodCore", "SynodStore", "SynodKV", "SynodNode", "SynodTransport", "SynodEtcdAPI", "CSynodSystem",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ]
        ),
        // Client library speaking the etcd v3 API to Synod (or etcd).
        .target(
            name: "SynodClient",
            dependencies: [
                "SynodEtcdAPI",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ]
        ),
        // Local child processes (launch, signal, wait, clean up on SIGINT/SIGTERM and exit) for
        // `synod cluster`, `synod chaos` and `synod bench compare`: Foundation only.
        .target(name: "SynodProcess"),
        // History checking (linearizability): standard library only.
        .target(name: "SynodCheck"),
        // Deterministic cluster simulator driving the real SynodCore.
        .target(name: "SynodSim", dependencies: ["SynodBytes", "SynodCore", "SynodKV", "SynodNode", "SynodCheck", "SynodStore"]),
        // `synod chaos`: real processes, fault-injecting networks, history checking, reports.
        .target(
            name: "SynodChaos",
            dependencies: [
                "SynodCheck", "SynodClient", "SynodCore", "SynodEtcdAPI", "SynodTransport", "SynodProcess",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // `synod bench`: an etcd v3 gRPC load generator (drives Synod or etcd), `bench compare`,
        // and the in-process baselines `bench core` (SynodCore) and `bench wal` (SynodStore).
        .target(
            name: "SynodBench",
            dependencies: [
                "SynodCore", "SynodKV", "SynodEtcdAPI", "SynodStore", "SynodClient", "SynodProcess",
                // LocalPKI: the CA and certificates of `bench compare --tls`.
                "SynodServer",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // Counts heap allocations per thread for `synod bench core`.
        .target(name: "CSynodAllocCounter"),
        .executableTarget(
            name: "synod",
            dependencies: [
                "SynodCore", "SynodSim", "SynodCheck", "SynodStore", "CSynodAllocCounter",
                "SynodServer", "SynodClient", "SynodKV", "SynodChaos", "SynodBench", "SynodProcess",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                // The cluster page's server and its requests to the members (`synod cluster`).
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
            ]
        ),
        .testTarget(name: "SynodCoreTests", dependencies: ["SynodCore", "SynodBytes"]),
        .testTarget(name: "SynodBytesTests", dependencies: ["SynodBytes"]),
        .testTarget(name: "SynodNodeTests", dependencies: ["SynodNode", "SynodCore", "SynodKV"]),
        .testTarget(name: "SynodCheckTests", dependencies: ["SynodCheck"]),
        .testTarget(name: "SynodProcessTests", dependencies: ["SynodProcess"]),
        .testTarget(name: "SynodStoreTests", dependencies: ["SynodStore", "SynodCore"]),
        .testTarget(name: "SynodKVTests", dependencies: ["SynodKV", "SynodCore"]),
        .testTarget(
            name: "SynodTransportTests",
            dependencies: [
                "SynodTransport", "SynodCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SynodServerTests",
            dependencies: [
                "SynodServer", "SynodClient", "SynodKV", "SynodCore", "SynodBytes", "SynodEtcdAPI", "SynodBench", "SynodTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "SynodBenchTests",
            dependencies: [
                "SynodBench", "SynodProcess", "synod",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // The `synod` command line run as a process (and its command-line-only code).
        .testTarget(
            name: "SynodCommandTests",
            dependencies: [
                "synod", "SynodBench", "SynodProcess",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "SynodSimTests", dependencies: ["SynodSim", "SynodCore", "SynodCheck"]),
        .testTarget(
            name: "SynodChaosTests",
            dependencies: [
                "SynodChaos", "SynodCheck", "SynodClient", "SynodTransport", "SynodProcess", "synod",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
