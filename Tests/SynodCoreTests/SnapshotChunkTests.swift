import XCTest
@testable import SynodCore

private let n1 = NodeID(1), n2 = NodeID(2), n3 = NodeID(3)

/// Snapshots larger than `snapshotChunkBytes` travel as chunks the receiver asks for one at
/// a time, resume after a loss, and are installed only when their bytes match the checksum.
final class SnapshotChunkTests: XCTestCase {
    /// n3 misses slots 1–3; n1 snapshots them ("state@3", 7 bytes) and compacts its log, so
    /// n3 must fetch the snapshot: with 2-byte chunks, four of them.
    /// `checksum`: handed in with the snapshot, as the server does after computing it off
    /// its loop (nil: the replica computes it).
    private func laggingCluster(checksum: UInt64? = nil, configure: (inout Configuration) -> Void = { _ in }) -> Cluster {
        var cluster = Cluster(seed: 1) { configuration in
            configuration.snapshotChunkBytes = 2
            configure(&configuration)
        }
        cluster.run("""
            elect 1
            isolate 3
            propose 1 a
            propose 1 b
            propose 1 c
            deliver all
            tick 1 x 2
            deliver all
            """)
        _ = cluster.step(n1, .snapshot(slot: 3, bytes: SnapshotBytes(Array("state@3".utf8)), checksum: checksum))
        cluster.run("""
            propose 1 d
            deliver all
            tick 1 x 2
            deliver all
            heal
            """)
        return cluster
    }

    private var expected: Snapshot {
        Snapshot(slot: 3, data: Array("state@3".utf8),
                 membership: MembershipHistory(initial: Configuration(members: [n1, n2, n3]).initialMembership))
    }

    private func chunkOffsets(_ cluster: Cluster, to target: NodeID = n3) -> [UInt64] {
        cluster.sentAtOnce.compactMap { sent in
            guard sent.envelope.to == target, case .snapshotChunk(let chunk) = sent.envelope.message else { return nil }
            return chunk.offset
        }
    }

    func testALargeSnapshotTravelsInChunksAndIsInstalledWhole() {
        var cluster = laggingCluster()
        cluster.run("tick 1 x 2; deliver all")
        XCTAssertEqual(chunkOffsets(cluster), [0, 2, 4, 6])
        XCTAssertEqual(cluster.applied[n3], [.snapshot(expected), .entry(slot: 4, value: .batch([cluster.command("d")]))])
        XCTAssertEqual(cluster.replicas[n3]?.snapshot, expected)
        // No catch-up reply carried the snapshot whole.
        XCTAssertFalse(cluster.sentAtOnce.contains { sent in
            if case .catchUpReply(let snapshot?, _, _) = sent.envelope.message { return snapshot.slot == 3 }
            return false
        })
        cluster.run("crash 3; restart 3")
        XCTAssertEqual(cluster.applied[n3], [.snapshot(expected), .entry(slot: 4, value: .batch([cluster.command("d")]))])
        cluster.assertClean()
    }

    /// A lost chunk: the receiver's catch-up retry asks again from where it stopped (the
    /// transfer resumes; it does not start over).
    func testALostChunkIsAskedForAgainFromWhereTheTransferStopped() throws {
        var cluster = laggingCluster()
        cluster.run("tick 1 x 2")
        // Deliver one message at a time until the chunk at offset 2 is in flight, then lose it.
        var lost: [Envelope] = []
        for _ in 0..<50 where lost.isEmpty {
            lost = cluster.take { envelope in
                if case .snapshotChunk(let chunk) = envelope.message { return chunk.offset == 2 }
                return false
            }
            if lost.isEmpty, !cluster.network.isEmpty { cluster.deliverOne(at: 0) }
        }
        XCTAssertEqual(lost.count, 1)
        XCTAssertNil(cluster.replicas[n3]?.snapshot)
        cluster.run("deliver all; tick 3 x 4; deliver all")
        XCTAssertEqual(chunkOffsets(cluster), [0, 2, 2, 4, 6])
        XCTAssertEqual(cluster.replicas[n3]?.snapshot, expected)
        cluster.assertClean()
    }

    /// A damaged chunk makes the whole snapshot fail its checksum: it is discarded and
    /// fetched again, and the replica installs the right bytes.
    func testADamagedSnapshotIsRefusedAndFetchedAgain() throws {
        var cluster = laggingCluster()
        let installed = try installWithOneDamagedChunk(&cluster)
        XCTAssertEqual(cluster.replicas[n3]?.snapshotChecksumFailures, 1)
        XCTAssertEqual(installed, expected)
        XCTAssertEqual(chunkOffsets(cluster).filter { $0 == 0 }.count, 2, "fetched a second time from the start")
        cluster.assertClean()
    }

    /// The checksum the driver hands in with a snapshot (computed off its loop) is the one
    /// chunks carry: the replica does not hash the snapshot again. Shown with a wrong one,
    /// which the receiver must then refuse every time.
    func testTheChecksumHandedInWithTheSnapshotIsTheOneChunksCarry() {
        var right = laggingCluster(checksum: Snapshot.checksum(of: Array("state@3".utf8)))
        right.run("tick 1 x 2; deliver all")
        XCTAssertEqual(right.replicas[n3]?.snapshot, expected)
        XCTAssertEqual(right.replicas[n3]?.snapshotChecksumFailures, 0)

        var wrong = laggingCluster(checksum: 42)
        wrong.run("tick 1 x 2; deliver all; tick 3 x 8; deliver all")
        let carried = Set(wrong.sentAtOnce.compactMap { sent -> UInt64? in
            if case .snapshotChunk(let chunk) = sent.envelope.message { return chunk.checksum }
            return nil
        })
        XCTAssertEqual(carried, [42])
        XCTAssertNil(wrong.replicas[n3]?.snapshot)
        XCTAssertGreaterThanOrEqual(wrong.replicas[n3]?.snapshotChecksumFailures ?? 0, 2)
    }

    /// The negative control: a replica that skips the checksum installs the damaged bytes.
    func testWithoutTheChecksumTheDamagedSnapshotIsInstalled() throws {
        var cluster = laggingCluster { $0.unsafeSkipSnapshotChecksum = true }
        let installed = try installWithOneDamagedChunk(&cluster)
        XCTAssertEqual(cluster.replicas[n3]?.snapshotChecksumFailures, 0)
        XCTAssertNotEqual(installed?.bytes, expected.bytes)
    }

    /// Damages the chunk at offset 4 in flight, then lets the transfer finish.
    private func installWithOneDamagedChunk(_ cluster: inout Cluster) throws -> Snapshot? {
        cluster.run("tick 1 x 2")
        var damaged = false
        for _ in 0..<50 where !damaged {
            let taken = cluster.take { envelope in
                if case .snapshotChunk(let chunk) = envelope.message { return chunk.offset == 4 }
                return false
            }
            if var envelope = taken.first, case .snapshotChunk(var chunk) = envelope.message {
                chunk.data[0] ^= 0xff
                envelope.message = .snapshotChunk(chunk)
                cluster.inject(envelope)
                damaged = true
            } else {
                if !cluster.network.isEmpty { cluster.deliverOne(at: 0) }
            }
        }
        XCTAssertTrue(damaged)
        cluster.run("deliver all; tick 3 x 4; deliver all; tick 3 x 4; deliver all")
        return cluster.replicas[n3]?.snapshot
    }

    /// The sender goes away mid-transfer (here: cut off, then a new leader is elected): the
    /// receiver abandons the transfer once no chunk came for the stall interval, however
    /// often it asked for the next one meanwhile, and catches up from the new leader.
    func testATransferWhoseSenderIsGoneIsAbandonedAndCatchUpContinuesElsewhere() throws {
        var cluster = laggingCluster()
        cluster.run("tick 1 x 2")
        var delivered = false
        for _ in 0..<50 where !delivered {
            let first = cluster.take { envelope in
                if case .snapshotChunk(let chunk) = envelope.message { return chunk.offset == 0 }
                return false
            }
            if let envelope = first.first {
                cluster.inject(envelope)
                cluster.deliverOne(at: cluster.network.count - 1)
                delivered = true
            } else if !cluster.network.isEmpty {
                cluster.deliverOne(at: 0)
            }
        }
        XCTAssertTrue(delivered)
        XCTAssertEqual(cluster.replicas[n3]?.incomingSnapshot?.received, 2)
        cluster.run("isolate 1; elect 2; tick 2 x 150; deliver all; tick 3 x 150; deliver all; tick 2 x 4; deliver all")
        XCTAssertEqual(cluster.replicas[n3]?.snapshotTransfersAbandoned, 1)
        XCTAssertNil(cluster.replicas[n3]?.incomingSnapshot)
        XCTAssertEqual(cluster.appliedThrough[n3], cluster.appliedThrough[n2])
        XCTAssertGreaterThanOrEqual(cluster.appliedThrough[n3] ?? 0, 4)
        cluster.assertClean()
    }

    /// Runs `laggingCluster`'s transfer to n3 while n1 keeps writing and snapshots after every
    /// chunk n3 receives (snapshots coming faster than a transfer takes, as under steady writes
    /// with a large state). Returns how many rounds it took n3 to install a snapshot and apply
    /// writes above it (nil: never did); the writes stop then.
    private func fetchWhileTheSenderKeepsSnapshotting(_ cluster: inout Cluster, rounds: Int = 40) -> Int? {
        cluster.run("tick 1 x 2")
        for round in 1...rounds {
            if let installed = cluster.replicas[n3]?.snapshot?.slot, cluster.replicas[n3]?.incomingSnapshot == nil,
               (cluster.appliedThrough[n3] ?? 0) > installed + 3 {
                return round
            }
            // Deliver to n3 until a chunk lands (other messages flow as they come).
            var landed = false
            for _ in 0..<40 where !landed && !cluster.network.isEmpty {
                let envelope = cluster.network[0]
                if envelope.to == n3, case .snapshotChunk = envelope.message { landed = true }
                cluster.deliverOne(at: 0)
            }
            if !landed { cluster.tick(n3, times: 4) }
            // Meanwhile n1 commits another write (without n3) and snapshots it.
            let held = cluster.take { $0.to == n3 || $0.from == n3 }
            cluster.propose(n1, "w\(round)")
            cluster.deliver { $0.to != n3 && $0.from != n3 }
            cluster.tick(n1, times: 2)
            cluster.deliver { $0.to != n3 && $0.from != n3 }
            cluster.run("snapshot 1")
            // Then n3's traffic flows again (what the write sent it too, after what it was sent before).
            let sentMeanwhile = cluster.take { $0.to == n3 || $0.from == n3 }
            for envelope in held + sentMeanwhile { cluster.inject(envelope) }
        }
        return nil
    }

    /// The sender takes a newer snapshot after every chunk: the fetcher still gets the whole
    /// snapshot it started (pinned, `ServedSnapshot`), then the writes above it from the entries
    /// the pin kept, instead of starting over with every newer snapshot and never finishing.
    /// (Without the pin this test fails: every chunk request brought the first chunk of a newer
    /// snapshot.)
    func testANewerSnapshotMidTransferDoesNotMakeTheFetcherStartOver() throws {
        var cluster = laggingCluster()
        let rounds = fetchWhileTheSenderKeepsSnapshotting(&cluster)
        XCTAssertNotNil(rounds, "n3 never caught up")
        XCTAssertEqual(chunkOffsets(cluster).filter { $0 == 0 }.count, 1, "the transfer started over")
        cluster.run("tick 1 x 2; deliver all; tick 3 x 4; deliver all")
        XCTAssertEqual(cluster.appliedThrough[n3], cluster.appliedThrough[n1])
        // n3 installed the snapshot it started (slot 3) and applied every write above it.
        let applied = try XCTUnwrap(cluster.applied[n3])
        XCTAssertEqual(applied.first, .snapshot(expected))
        XCTAssertEqual(applied.count, 1 + Int((cluster.appliedThrough[n1] ?? 0) - 3))
        XCTAssertGreaterThan(cluster.replicas[n1]?.snapshot?.slot ?? 0, 5, "n1 took newer snapshots meanwhile")
        // n1 lets the pin go once nobody asked for it for the stall window.
        cluster.tick(n1, times: Replica.snapshotStallRetries * cluster.configuration.catchUpRetryTicks)
        XCTAssertNil(cluster.replicas[n1]?.servedSnapshot)
        cluster.assertClean()
    }

    /// A pin nobody asks for any more (its fetcher crashed for good) is released after the
    /// stall window, with the entries it kept.
    func testAPinnedSnapshotNobodyFetchesIsReleased() throws {
        var cluster = laggingCluster()
        cluster.run("tick 1 x 2")
        for _ in 0..<50 where cluster.replicas[n3]?.incomingSnapshot == nil && !cluster.network.isEmpty {
            cluster.deliverOne(at: 0)
        }
        XCTAssertNotNil(cluster.replicas[n3]?.incomingSnapshot)
        cluster.run("crash 3; propose 1 e; deliver all; tick 1 x 2; deliver all; snapshot 1")
        let served = try XCTUnwrap(cluster.replicas[n1]?.servedSnapshot)
        XCTAssertEqual(served.snapshot.slot, 3)
        XCTAssertEqual(served.entriesThrough, cluster.replicas[n1]?.snapshot?.slot)
        XCTAssertFalse(served.entries.isEmpty)
        let window = Replica.snapshotStallRetries * cluster.configuration.catchUpRetryTicks
        cluster.tick(n1, times: window - 3)
        XCTAssertNotNil(cluster.replicas[n1]?.servedSnapshot)
        cluster.tick(n1, times: 4)
        XCTAssertNil(cluster.replicas[n1]?.servedSnapshot)
        cluster.assertClean()
    }

    /// A fetcher that got the last chunk is installing the snapshot (decoding it takes about a
    /// second per 64 MiB) before it asks for the entries above: the pin waits for it past the
    /// stall window, for `pinInstallGraceTicks`, then goes. (Without the wait it went after the
    /// stall window, and a 2 GiB joiner had to fetch and decode a newer snapshot as well.)
    func testThePinWaitsForAFetcherInstallingTheSnapshot() throws {
        var cluster = laggingCluster()
        cluster.run("tick 1 x 2")
        // Deliver until n1 has sent the last chunk (offset 6 of 7 bytes), then n3 goes quiet.
        for _ in 0..<80 where !chunkOffsets(cluster).contains(6) && !cluster.network.isEmpty {
            cluster.deliverOne(at: 0)
        }
        XCTAssertTrue(chunkOffsets(cluster).contains(6))
        cluster.run("crash 3; propose 1 e; deliver all; tick 1 x 2; deliver all; snapshot 1")
        let served = try XCTUnwrap(cluster.replicas[n1]?.servedSnapshot)
        XCTAssertNotNil(served.installingSince[n3])
        let replica = try XCTUnwrap(cluster.replicas[n1])
        let window = Replica.snapshotStallRetries * cluster.configuration.catchUpRetryTicks
        let grace = Int(replica.pinInstallGraceTicks(bytes: 7))
        XCTAssertGreaterThan(grace, window)
        cluster.tick(n1, times: window + 5)
        XCTAssertNotNil(cluster.replicas[n1]?.servedSnapshot, "released while the fetcher installs")
        cluster.tick(n1, times: grace - window)
        XCTAssertNil(cluster.replicas[n1]?.servedSnapshot)
        cluster.assertClean()
    }

    /// Chunks that do not continue the transfer (a duplicate, one from the middle of another
    /// snapshot) change nothing.
    func testDuplicateAndForeignChunksAreIgnored() throws {
        var cluster = laggingCluster()
        cluster.run("tick 1 x 2")
        var replica = try XCTUnwrap(cluster.replicas[n3])
        let data = Array("state@3".utf8)
        func chunk(_ offset: UInt64, checksum: UInt64 = 1) -> Envelope {
            let end = min(data.count, Int(offset) + 2)
            return Envelope(from: n1, to: n3, message: .snapshotChunk(SnapshotChunk(
                slot: 3, total: 7, checksum: checksum, offset: offset, data: Array(data[Int(offset)..<end]),
                membership: expected.membership, chosenThrough: 4)))
        }
        _ = replica.step(.receive(chunk(2)))  // not the start of anything
        XCTAssertNil(replica.incomingSnapshot)
        let first = replica.step(.receive(chunk(0)))
        XCTAssertEqual(replica.incomingSnapshot?.received, 2)
        XCTAssertTrue(first.messages.contains { $0.message == .snapshotChunkRequest(slot: 3, checksum: 1, offset: 2) })
        _ = replica.step(.receive(chunk(0)))  // a duplicate of the first chunk
        _ = replica.step(.receive(chunk(4)))  // ahead of the transfer
        _ = replica.step(.receive(chunk(2, checksum: 2)))  // another snapshot's
        XCTAssertEqual(replica.incomingSnapshot?.received, 2)
        XCTAssertEqual(replica.incomingSnapshot?.data, Array(data[0..<2]))
    }

    /// Catch-up replies stop adding entries past `catchUpBytesMax`, so large values never
    /// make a reply exceed a frame (at least one entry always goes).
    func testCatchUpRepliesAreBoundedInBytes() {
        var cluster = Cluster(seed: 1) { $0.catchUpBytesMax = 1 }
        cluster.run("elect 1; isolate 3; propose 1 a; propose 1 b; propose 1 c; deliver all; tick 1 x 2; deliver all; heal; tick 1 x 2; deliver all")
        let replies = cluster.sentAtOnce.compactMap { sent -> Int? in
            guard sent.envelope.to == n3, case .catchUpReply(_, let entries, _) = sent.envelope.message else { return nil }
            return entries.count
        }
        XCTAssertFalse(replies.isEmpty)
        XCTAssertTrue(replies.allSatisfy { $0 <= 1 }, "\(replies)")
        XCTAssertEqual(cluster.appliedThrough[n3], cluster.appliedThrough[n1])
        cluster.assertClean()
    }

    /// Once storage hands the snapshot's file over (`.snapshotStored`), the replica keeps no
    /// copy of the bytes in memory and serves the chunks by reading the file; the transfer
    /// installs the same snapshot.
    func testChunksAreReadFromTheStoredFileOnceItIsHandedOver() {
        var cluster = laggingCluster()
        let file = CountingSource(Array("state@3".utf8))
        _ = cluster.step(n1, .snapshotStored(slot: 3, bytes: SnapshotBytes(source: file), checksum: nil))
        XCTAssertEqual(cluster.replicas[n1]?.snapshot?.bytes.isInMemory, false)
        cluster.run("tick 1 x 2; deliver all")
        XCTAssertEqual(chunkOffsets(cluster), [0, 2, 4, 6])
        // The checksum once (4 MiB pieces: one read), then one read per chunk.
        XCTAssertEqual(file.reads, 1 + 4)
        XCTAssertEqual(cluster.replicas[n3]?.snapshot, expected)
        cluster.assertClean()
    }

    /// A hand-over for another snapshot (older, or of another size) changes nothing: the
    /// replica must never serve bytes that are not its snapshot's.
    func testAStoredFileOfAnotherSnapshotIsIgnored() {
        var cluster = laggingCluster()
        _ = cluster.step(n1, .snapshotStored(slot: 2, bytes: SnapshotBytes(source: CountingSource(Array("state@3".utf8))), checksum: nil))
        _ = cluster.step(n1, .snapshotStored(slot: 3, bytes: SnapshotBytes(source: CountingSource(Array("state@3+".utf8))), checksum: nil))
        XCTAssertEqual(cluster.replicas[n1]?.snapshot?.bytes, SnapshotBytes(Array("state@3".utf8)))
        cluster.run("tick 1 x 2; deliver all")
        XCTAssertEqual(cluster.replicas[n3]?.snapshot, expected)
        cluster.assertClean()
    }

    /// A file that cannot be read sends nothing (counted), rather than wrong or short bytes;
    /// the fetcher gets the snapshot once the file reads again.
    func testAnUnreadableStoredFileSendsNothing() {
        var cluster = laggingCluster()
        let file = CountingSource(Array("state@3".utf8))
        file.failing = true
        _ = cluster.step(n1, .snapshotStored(slot: 3, bytes: SnapshotBytes(source: file), checksum: nil))
        cluster.run("tick 1 x 2; deliver all")
        XCTAssertEqual(chunkOffsets(cluster), [])
        XCTAssertGreaterThan(cluster.replicas[n1]?.snapshotReadFailures ?? 0, 0)
        XCTAssertNil(cluster.replicas[n3]?.snapshot)
        file.failing = false
        for _ in 0..<40 where cluster.replicas[n3]?.snapshot == nil { cluster.run("tick 3; tick 1; deliver all") }
        XCTAssertEqual(cluster.replicas[n3]?.snapshot, expected)
        cluster.assertClean()
    }
}

/// Snapshot bytes "in a file": a test double that counts reads and can be made to fail.
private final class CountingSource: SnapshotByteSource, @unchecked Sendable {
    let bytes: [UInt8]
    var reads = 0
    var failing = false
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var count: Int { bytes.count }
    func read(offset: Int, count: Int) -> [UInt8]? {
        reads += 1
        guard !failing, offset >= 0, count >= 0, offset + count <= bytes.count else { return nil }
        return Array(bytes[offset..<(offset + count)])
    }
}
