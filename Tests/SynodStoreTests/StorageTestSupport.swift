import SynodCore
@testable import SynodStore
import XCTest

/// Shared helpers for storage tests: a deterministic record generator and a model of what
/// the log must contain.
enum StorageTestSupport {
    static let identity = DataDirectoryIdentity(clusterID: 0xC0FFEE, nodeID: 1)
    static let directory = "/data"

    static func options(segmentBytes: UInt64 = 4 << 10) -> StorageOptions {
        var options = StorageOptions()
        options.segmentBytes = segmentBytes
        options.snapshotsRetained = 2
        return options
    }

    static func open(_ fileSystem: any FileSystem, options: StorageOptions = options())
        throws(StorageError) -> (storage: DurableStorage, records: [DurableRecord], report: RecoveryReport) {
        try DurableStorage.open(fileSystem: fileSystem, directory: directory, identity: identity, options: options)
    }

    /// A random record with growing slots and ballots, as an acceptor would write them.
    static func randomRecord(_ random: inout SplitMix64, slot: inout Slot, round: inout UInt64) -> DurableRecord {
        switch random.next() % 4 {
        case 0:
            round += 1
            return .promised(Ballot(round: round, node: NodeID(UInt32(1 + random.next() % 3))))
        case 1:
            slot += 1
            return .chosen(slot: slot, value: .noop)
        default:
            slot += 1
            let count = Int(random.next() % 4)
            let commands = (0..<count).map { index in
                Command(clientID: random.next() % 100, sequence: UInt64(index),
                        payload: (0..<Int(random.next() % 300)).map { _ in UInt8(truncatingIfNeeded: random.next()) })
            }
            return .accepted(slot: slot, ballot: Ballot(round: max(round, 1), node: NodeID(1)), value: count == 0 ? .noop : .batch(commands))
        }
    }
}
