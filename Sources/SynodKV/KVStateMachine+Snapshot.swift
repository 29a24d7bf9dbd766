import SynodBytes
import SynodCore

extension KVStateMachine {
    /// Snapshot format version (first byte).
    ///
    /// Layout v1, all via `LittleEndianWriter` primitives:
    /// `[version u8][revision i64][compactRevision i64][appliedSlot u64]`
    /// `[keyCount u32]` then per key in key order `[key data][entryCount u32]` and per entry
    /// `[main i64][sub i64][tombstone bool][value data][lease i64][create i64][version i64]`;
    /// `[leaseCount u32]` then per lease in id order `[id i64][ttl i64]` (attached keys are
    /// derived from the keys' latest entries); `[sessionCount u32]` then per session in client
    /// order `[clientID u64][sequence u64][slot u64][result]`.
    /// v2 appends `[memberCount u32]` then per member in id order `[memberID u64][attributes]`;
    /// v3 then appends `[alarmCount u32]` then per alarm in order `[memberID u64][alarm u8]`,
    /// `[recordCount u32]` then per integrity record, oldest first, `[id u64][revision i64][hash u64]`,
    /// and `[reportSetCount u32]` then per check, oldest first, `[checkID u64][count u32]` and
    /// per member in id order `[memberID u64][hash u64]`.
    /// v4: state hashes (integrity records and reports) are XXH64 based
    /// (`IntegrityHashAlgorithm.xxh64`), and each report set carries its algorithm:
    /// `[checkID u64][algorithm u8][count u32]`. The records of a v3 snapshot hold FNV-1a
    /// hashes, which this build would report as its own, so they are not restored; its
    /// report sets are restored as FNV-1a ones.
    /// v5 appends the auth store (`LittleEndianWriter.authStore`): `[enabled bool]
    /// [revision u64][tokenSecret data]`, the users and the roles in name order.
    /// v1 snapshots (no members), v2 (no alarms, no integrity records), v3 and v4 (auth
    /// disabled, no users or roles, auth revision 1) still decode.
    public static let snapshotVersion: UInt8 = 5

    /// The whole replicated state, deterministically encoded (equal states, equal bytes).
    public func snapshot() -> [UInt8] {
        // Sized up front: growing by doubling would hold the old and the new buffer at once
        // (up to 3x the snapshot) while copying.
        var all: [UInt8] = []
        all.reserveCapacity(snapshotSizeEstimate())
        _ = writeSnapshot(pieceBytes: 1 << 20) { piece in
            all.append(contentsOf: piece)
            return true
        }
        return all
    }

    /// `snapshot()`'s bytes handed to `emit` in order, in pieces of at least `pieceBytes`
    /// (the last may be shorter), so a large state can be written to a file without its whole
    /// encoding in memory. Stops and returns false as soon as `emit` does.
    public func writeSnapshot(pieceBytes: Int, _ emit: ([UInt8]) -> Bool) -> Bool {
        var writer = LittleEndianWriter(reservingCapacity: pieceBytes + (64 << 10))
        func flush(_ writer: inout LittleEndianWriter, force: Bool = false) -> Bool {
            guard force || writer.bytes.count >= pieceBytes else { return true }
            defer { writer.bytes.removeAll(keepingCapacity: true) }
            return writer.bytes.isEmpty || emit(writer.bytes)
        }
        writer.writeUInt8(Self.snapshotVersion)
        writer.writeInt64(store.revision)
        writer.writeInt64(store.compactRevision)
        writer.writeUInt64(appliedSlot)
        writer.writeCount(store.index.count)
        for position in 0..<store.index.count {
            writer.writeBytes(store.index.key(at: position))
            let history = store.index.history(at: position)
            writer.writeCount(history.count)
            for entry in 0..<history.count { writer.entry(history[entry]) }
            guard flush(&writer) else { return false }
        }
        let leaseIDs = store.leaseIDs
        writer.writeCount(leaseIDs.count)
        for id in leaseIDs {
            writer.writeInt64(id)
            writer.writeInt64(store.leases[id]?.ttlSeconds ?? 0)
        }
        let sessions = sessions.sortedSessions
        writer.writeCount(sessions.count)
        for (clientID, session) in sessions {
            writer.writeUInt64(clientID)
            writer.writeUInt64(session.sequence)
            writer.writeUInt64(session.slot)
            writer.result(session.result)
        }
        let memberIDs = members.keys.sorted()
        writer.writeCount(memberIDs.count)
        for id in memberIDs {
            writer.writeUInt64(id)
            if let attributes = members[id] { writer.memberAttributes(attributes) }
        }
        let sortedAlarms = alarms.sorted()
        writer.writeCount(sortedAlarms.count)
        for alarm in sortedAlarms {
            writer.writeUInt64(alarm.memberID)
            writer.writeUInt8(alarm.alarm.rawValue)
        }
        writer.writeCount(integrityRecords.count)
        for record in integrityRecords {
            writer.writeUInt64(record.id)
            writer.writeInt64(record.revision)
            writer.writeUInt64(record.hash)
        }
        writer.writeCount(integrityReports.count)
        for reports in integrityReports {
            writer.writeUInt64(reports.checkID)
            writer.writeUInt8(reports.algorithm.rawValue)
            let sorted = reports.hashes.sorted { $0.key < $1.key }
            writer.writeCount(sorted.count)
            for (member, hash) in sorted {
                writer.writeUInt64(member)
                writer.writeUInt64(hash)
            }
        }
        writer.authStore(auth)
        return flush(&writer, force: true)
    }

    /// The size of `snapshot()`'s key space part plus a generous allowance for the rest
    /// (sessions, members, alarms, integrity records); O(keys), no allocation.
    func snapshotSizeEstimate() -> Int {
        var size = 4096 + 29
        for position in 0..<store.index.count {
            size += 8 + store.index.keyLength(at: position)
            let history = store.index.history(at: position)
            for entry in 0..<history.count { size += 45 + history[entry].value.count }
        }
        size += store.leases.count * 16 + sessions.sessions.count * 96 + members.count * 256
        size += auth.tokenSecret.count + auth.users.count * 128 + auth.roles.count * 64
        for role in auth.roles.values {
            for permission in role.permissions { size += 9 + permission.key.count + permission.rangeEnd.count }
        }
        return size
    }

    /// Restores a state from `snapshot()` bytes; anything else throws (never traps).
    public init(snapshot bytes: [UInt8], sessionCapacity: Int = 100_000) throws(KVDecodingError) {
        self = try LittleEndianReader.read(bytes) { (reader) throws(KVDecodingError) in
            try KVStateMachine(reading: &reader, sessionCapacity: sessionCapacity)
        }
    }

    /// Restores a state from a snapshot's bytes in memory or in a file. A file is decoded from
    /// a mapping of it, whose pages are dropped behind the decoder as it goes: memory grows
    /// with the decoded state only, not with the snapshot's size as well.
    /// - Throws: `.unreadable` when the file cannot be read; otherwise as `init(snapshot:)`.
    public init(snapshot bytes: SnapshotBytes, sessionCapacity: Int = 100_000) throws(KVDecodingError) {
        let outcome = bytes.withContiguousBytes { raw, doneBelow in
            Result { () throws(KVDecodingError) -> KVStateMachine in
                var reader = LittleEndianReader(raw, from: 0, to: raw.count)
                return try KVStateMachine(reading: &reader, sessionCapacity: sessionCapacity, doneBelow: doneBelow)
            }
        }
        guard let outcome else { throw .unreadable }
        self = try outcome.get()
    }

    /// `doneBelow(n)`: the decoder no longer needs the bytes before offset `n` (called every
    /// few thousand keys; every key and value is copied out of the buffer as it is read).
    private init(reading reader: inout LittleEndianReader, sessionCapacity: Int,
                 doneBelow: (Int) -> Void = { _ in }) throws(KVDecodingError) {
        self.init(sessionCapacity: sessionCapacity)
        let version = try reader.u8()
        guard (1...Self.snapshotVersion).contains(version) else { throw .unsupportedVersion(version) }
        store.revision = try reader.i64()
        store.compactRevision = try reader.i64()
        appliedSlot = try reader.u64()
        // Bounds that later arithmetic (`revision + 1`, `version + 1`) relies on not to overflow.
        guard store.revision >= 1, store.revision < Int64.max / 2, store.compactRevision >= 0,
              store.compactRevision <= store.revision else {
            throw .invalid
        }
        var attached: [(key: [UInt8], lease: Int64)] = []
        let keyCount = try reader.count(elementBytesMin: 8)
        store.index.reserveRestored(keyCount)
        for index in 0..<keyCount {
            if index & 4095 == 4095 { doneBelow(reader.position) }
            let key = try reader.data()
            let entryCount = try reader.count(elementBytesMin: 45)
            guard !key.isEmpty, entryCount > 0 else { throw .invalid }
            // A single write (most keys) is held inline, with no array of its own.
            var history: KeyHistory?
            for _ in 0..<entryCount {
                let entry = try reader.entry()
                // Revisions strictly increase and never pass the store's revision.
                if let last = history?.latest, !(last.revision < entry.revision) { throw .invalid }
                guard entry.revision.main <= store.revision, entry.revision.main >= 1, entry.revision.sub >= 0,
                      entry.version >= 0, entry.version <= entry.revision.main,
                      entry.createRevision >= 0, entry.createRevision <= entry.revision.main else { throw .invalid }
                if history == nil { history = KeyHistory(entry) } else { history?.append(entry) }
            }
            guard let history else { throw .invalid }
            let latest = history.latest
            guard store.index.appendRestored(key: key, history: history) else { throw .invalid }
            if !latest.isTombstone && latest.lease != 0 { attached.append((key, latest.lease)) }
        }
        store.index.finishRestoring()
        var previousLease: Int64?
        for _ in 0..<(try reader.count(elementBytesMin: 16)) {
            let id = try reader.i64()
            let ttl = try reader.i64()
            if let previousLease, previousLease >= id { throw .invalid }
            previousLease = id
            store.leases[id] = KVStore.LeaseState(ttlSeconds: ttl)
        }
        for (key, lease) in attached {
            guard store.leases[lease] != nil else { throw .invalid }
            store.leases[lease]?.keys.insert(key)
        }
        store.liveKeysHash = store.computeLiveKeysHash()
        var previousClient: UInt64?
        for _ in 0..<(try reader.count(elementBytesMin: 26)) {
            let clientID = try reader.u64()
            if let previousClient, previousClient >= clientID { throw .invalid }
            previousClient = clientID
            let sequence = try reader.u64()
            let slot = try reader.u64()
            let result = try reader.result()
            sessions.restore(clientID: clientID, session: .init(sequence: sequence, result: result, slot: slot))
        }
        if version >= 2 {
            var previousMember: UInt64?
            for _ in 0..<(try reader.count(elementBytesMin: 16)) {
                let id = try reader.u64()
                if let previousMember, previousMember >= id { throw .invalid }
                previousMember = id
                members[id] = try reader.memberAttributes()
            }
        }
        if version >= 3 {
            var previousAlarm: AlarmMember?
            for _ in 0..<(try reader.count(elementBytesMin: 9)) {
                let memberID = try reader.u64()
                guard let type = AlarmType(rawValue: try reader.u8()), type != .none else { throw .invalid }
                let alarm = AlarmMember(memberID: memberID, alarm: type)
                if let previousAlarm, !(previousAlarm < alarm) { throw .invalid }
                previousAlarm = alarm
                alarms.insert(alarm)
            }
            let recordCount = try reader.count(elementBytesMin: 24)
            guard recordCount <= Self.integrityRecordsMax else { throw .invalid }
            for _ in 0..<recordCount {
                let record = IntegrityRecord(id: try reader.u64(), revision: try reader.i64(), hash: try reader.u64())
                if version >= 4 { integrityRecords.append(record) }
            }
            let reportSetCount = try reader.count(elementBytesMin: version >= 4 ? 13 : 12)
            guard reportSetCount <= Self.integrityRecordsMax else { throw .invalid }
            for _ in 0..<reportSetCount {
                let checkID = try reader.u64()
                var algorithm = IntegrityHashAlgorithm.fnv1a
                if version >= 4 {
                    guard let read = IntegrityHashAlgorithm(rawValue: try reader.u8()) else { throw .invalid }
                    algorithm = read
                }
                var hashes: [UInt64: UInt64] = [:]
                var previousMember: UInt64?
                for _ in 0..<(try reader.count(elementBytesMin: 16)) {
                    let member = try reader.u64()
                    if let previousMember, previousMember >= member { throw .invalid }
                    previousMember = member
                    hashes[member] = try reader.u64()
                }
                integrityReports.append(IntegrityReports(checkID: checkID, hashes: hashes, algorithm: algorithm))
            }
        }
        if version >= 5 { auth = try reader.authStore() }
        try reader.finish()
    }

    /// FNV-1a of the snapshot encoding: equal for replicas in the same state.
    public var stateHash: UInt64 {
        var hash = FNV1a64()
        hash.combine(snapshot())
        return hash.value
    }
}

extension KVStore {
    /// A `HashKV`-style hash of the key space's retained history up to `revision` (0 = latest):
    /// replicas that applied the same writes agree on it regardless of sessions or leases.
    public func hashKV(revision requested: Int64 = 0) throws(KVError) -> UInt64 {
        let upTo = requested > 0 ? requested : revision
        if upTo > revision { throw .futureRevision }
        if upTo < compactRevision { throw .compacted }
        var writer = LittleEndianWriter()
        writer.writeInt64(compactRevision)
        for position in 0..<index.count {
            let entries = index.history(at: position).entries.filter { $0.revision.main <= upTo }
            if entries.isEmpty { continue }
            writer.writeBytes(index.key(at: position))
            writer.writeCount(entries.count)
            for entry in entries { writer.entry(entry) }
        }
        var hash = FNV1a64()
        hash.combine(writer.bytes)
        return hash.value
    }
}

extension LittleEndianWriter {
    mutating func entry(_ entry: HistoryEntry) {
        writeInt64(entry.revision.main)
        writeInt64(entry.revision.sub)
        writeBool(entry.isTombstone)
        writeBytes(entry.value)
        writeInt64(entry.lease)
        writeInt64(entry.createRevision)
        writeInt64(entry.version)
    }
}

extension LittleEndianReader {
    mutating func entry() throws(KVDecodingError) -> HistoryEntry {
        let main = try i64()
        let sub = try i64()
        // The sub-revision is held in 32 bits (see `HistoryEntry`).
        guard sub <= Int64(Int32.max) else { throw .invalid }
        return HistoryEntry(revision: Revision(main: main, sub: sub), isTombstone: try bool(), value: try data(),
                            lease: try i64(), createRevision: try i64(), version: try i64())
    }
}
