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
        .executable(name: "synod", targets: ["synod"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // The Paxos protocol as a pure state machine: standard library only.
        .target(name: "SynodCore"),
        // Bounds-checked little-endian reading and writing for every decoder of outside bytes.
        .target(name: "SynodBytes"),
        // Write-ahead log, snapshots, recovery; the file system behind a small protocol.
        .target(name: "SynodStore", dependencies: ["SynodCore", "SynodBytes"]),
        // The etcd-style MVCC key space: the replicated state machine (pure).
        .target(name: "SynodKV", dependencies: ["SynodCore"]),
        // Peer transport: the versioned binary codec for peer messages (SwiftNIO connections later).
        .target(name: "SynodTransport", dependencies: ["SynodCore", "SynodBytes"]),
        // History checking (linearizability): standard library only.
        .target(name: "SynodCheck"),
        // Deterministic cluster simulator driving the real SynodCore.
        .target(name: "SynodSim", dependencies: ["SynodCore", "SynodCheck", "SynodStore"]),
        // Counts heap allocations per thread for `synod bench core`.
        .target(name: "CSynodAllocCounter"),
        .executableTarget(
            name: "synod",
            dependencies: [
                "SynodCore", "SynodSim", "SynodCheck", "SynodStore", "CSynodAllocCounter",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "SynodCoreTests", dependencies: ["SynodCore"]),
        .testTarget(name: "SynodCheckTests", dependencies: ["SynodCheck"]),
        .testTarget(name: "SynodStoreTests", dependencies: ["SynodStore", "SynodCore"]),
        .testTarget(name: "SynodKVTests", dependencies: ["SynodKV", "SynodCore"]),
        .testTarget(name: "SynodTransportTests", dependencies: ["SynodTransport", "SynodCore"]),
        .testTarget(name: "SynodSimTests", dependencies: ["SynodSim", "SynodCore", "SynodCheck"]),
    ],
    swiftLanguageModes: [.v6]
)
