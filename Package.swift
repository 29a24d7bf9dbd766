// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Synod",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "SynodCore", targets: ["SynodCore"]),
        .library(name: "SynodSim", targets: ["SynodSim"]),
        .library(name: "SynodCheck", targets: ["SynodCheck"]),
        .executable(name: "synod", targets: ["synod"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // The Paxos protocol as a pure state machine: standard library only.
        .target(name: "SynodCore"),
        // History checking (linearizability): standard library only.
        .target(name: "SynodCheck"),
        // Deterministic cluster simulator driving the real SynodCore.
        .target(name: "SynodSim", dependencies: ["SynodCore", "SynodCheck"]),
        // Counts heap allocations per thread for `synod bench core`.
        .target(name: "CSynodAllocCounter"),
        .executableTarget(
            name: "synod",
            dependencies: [
                "SynodCore", "SynodSim", "SynodCheck", "CSynodAllocCounter",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "SynodCoreTests", dependencies: ["SynodCore"]),
        .testTarget(name: "SynodCheckTests", dependencies: ["SynodCheck"]),
        .testTarget(name: "SynodSimTests", dependencies: ["SynodSim", "SynodCore", "SynodCheck"]),
    ],
    swiftLanguageModes: [.v6]
)
