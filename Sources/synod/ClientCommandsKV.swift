import ArgumentParser
import Foundation
import SynodClient

/// `synod put KEY VALUE`
struct ClientPutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "put",
        abstract: "Store a value under a key (prints OK).",
        discussion: "A put retried after a timeout or failover may be applied twice, as with etcdctl."
    )

    @OptionGroup var client: ClientOptions
    @Argument(help: "The key.") var key: String
    @Argument(help: "The value.") var value: String
    @Option(help: "Attach the key to this lease (hexadecimal ID).") var lease: String?
    @Flag(name: .customLong("prev-kv"), help: "Print the previous key-value pair.") var prevKV = false

    func run() async throws {
        try await client.run { client in
            let leaseID = try lease.map(parseLeaseID) ?? 0
            let response = try await client.put(key, value, lease: leaseID, prevKV: prevKV)
            var out = Output()
            out.line("OK")
            if prevKV && response.hasPrevKv { out.keyValue(response.prevKv) }
            out.flush()
        }
    }
}

/// `synod get KEY [RANGE_END]`
struct ClientGetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Read a key or a range of keys (key and value lines, like etcdctl)."
    )

    @OptionGroup var client: ClientOptions
    @Argument(help: "The key (or the start of the range).") var key: String
    @Argument(help: "End of the range (exclusive).") var rangeEnd: String?
    @Flag(help: "Every key starting with KEY.") var prefix = false
    @Flag(name: .customLong("from-key"), help: "Every key >= KEY (byte order).") var fromKey = false
    @Option(help: "Read at this revision (0: latest).") var rev: Int64 = 0
    @Option(help: "At most this many keys (0: no limit).") var limit: Int64 = 0
    @Flag(name: .customLong("keys-only"), help: "Only the keys.") var keysOnly = false
    @Flag(name: .customLong("count-only"), help: "Only the number of keys.") var countOnly = false
    @Flag(name: .customLong("print-value-only"), help: "Only the values (simple format).") var printValueOnly = false
    @Option(help: "Linearizable (l) or serializable (s) read.") var consistency: String = "l"
    @Option(help: "Order of results: ASCEND or DESCEND.") var order: String?
    @Option(name: .customLong("sort-by"), help: "Sort target: CREATE, KEY, MODIFY, VALUE or VERSION.") var sortBy: String?
    @Option(name: [.customShort("w"), .customLong("write-out")], help: "Output format: simple or json.")
    var writeOut: WriteOut = .simple

    func validate() throws {
        if prefix && fromKey { throw ValidationError("--prefix and --from-key cannot be combined") }
        if rangeEnd != nil && (prefix || fromKey) {
            throw ValidationError("a range end cannot be combined with --prefix or --from-key")
        }
        guard consistency == "l" || consistency == "s" else {
            throw ValidationError("--consistency must be l (linearizable) or s (serializable)")
        }
        if writeOut == .table { throw ValidationError("get supports -w simple or json") }
    }

    func sort() throws -> SynodSort? {
        guard order != nil || sortBy != nil else { return nil }
        var sort = SynodSort(target: .key, order: .ascend)
        switch order?.uppercased() {
        case nil, "ASCEND"?: sort.order = .ascend
        case "DESCEND"?: sort.order = .descend
        case let other?: throw ValidationError("bad --order '\(other)' (ASCEND or DESCEND)")
        }
        switch sortBy?.uppercased() {
        case nil, "KEY"?: sort.target = .key
        case "CREATE"?: sort.target = .create
        case "MODIFY"?: sort.target = .mod
        case "VALUE"?: sort.target = .value
        case "VERSION"?: sort.target = .version
        case let other?: throw ValidationError("bad --sort-by '\(other)' (CREATE, KEY, MODIFY, VALUE or VERSION)")
        }
        return sort
    }

    func run() async throws {
        let sort = try self.sort()
        try await client.run { client in
            let end: String? = fromKey ? "\0" : rangeEnd
            let response = try await client.get(
                key, rangeEnd: end, prefix: prefix, revision: rev, limit: limit,
                serializable: consistency == "s", keysOnly: keysOnly, countOnly: countOnly, sort: sort)
            var out = Output()
            switch writeOut {
            case .json:
                out.line(try SynodJSON.encode(response))
            case .simple, .table:
                if countOnly {
                    out.line("\(response.count)")
                } else {
                    for kv in response.kvs { out.keyValue(kv, valueOnly: printValueOnly) }
                }
            }
            out.flush()
        }
    }
}

/// `synod del KEY [RANGE_END]`
struct ClientDelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "del",
        abstract: "Delete a key or a range of keys (prints the number deleted).",
        aliases: ["delete"]
    )

    @OptionGroup var client: ClientOptions
    @Argument(help: "The key (or the start of the range).") var key: String
    @Argument(help: "End of the range (exclusive).") var rangeEnd: String?
    @Flag(help: "Every key starting with KEY.") var prefix = false
    @Flag(name: .customLong("from-key"), help: "Every key >= KEY (byte order).") var fromKey = false
    @Flag(name: .customLong("prev-kv"), help: "Print the deleted key-value pairs.") var prevKV = false

    func validate() throws {
        if prefix && fromKey { throw ValidationError("--prefix and --from-key cannot be combined") }
        if rangeEnd != nil && (prefix || fromKey) {
            throw ValidationError("a range end cannot be combined with --prefix or --from-key")
        }
    }

    func run() async throws {
        try await client.run { client in
            let end: String? = fromKey ? "\0" : rangeEnd
            let response = try await client.delete(key, rangeEnd: end, prefix: prefix, prevKV: prevKV)
            var out = Output()
            printDelete(response, into: &out)
            out.flush()
        }
    }
}

func printDelete(_ response: Etcdserverpb_DeleteRangeResponse, into out: inout Output) {
    out.line("\(response.deleted)")
    for kv in response.prevKvs { out.keyValue(kv) }
}

/// `synod txn` (reads etcdctl's non-interactive format from stdin)
struct ClientTxnCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "txn",
        abstract: "Run a transaction read from standard input (etcdctl's format).",
        discussion: """
            Three sections separated by blank lines: compares, operations on success,
            operations on failure.

              value("k") = "v"
              version("counter") > "1"

              put k "new value"
              get counter

              del k

            Compare targets: value/val, version/ver, create/c, mod/m, lease (hex ID);
            operators =, !=, <, >. Operations: put KEY VALUE [--lease=ID] [--prev-kv],
            get KEY [RANGE_END] [--prefix] [--limit=N] [--rev=N] [--keys-only] [--count-only],
            del KEY [RANGE_END] [--prefix] [--prev-kv].
            Input is read to its end (Ctrl-D at a terminal). Prints SUCCESS or FAILURE, then
            each operation's result after a blank line.
            """
    )

    @OptionGroup var client: ClientOptions

    func run() async throws {
        var lines: [String] = []
        while let line = readLine(strippingNewline: true) { lines.append(line) }
        let request: Etcdserverpb_TxnRequest
        do {
            request = try SynodTxnScript.parse(lines: lines)
        } catch {
            standardError("Error: \(error)")
            throw ExitCode(1)
        }
        try await client.run { client in
            let response = try await client.txn(request)
            var out = Output()
            printTxn(response, into: &out)
            out.flush()
        }
    }
}

func printTxn(_ response: Etcdserverpb_TxnResponse, into out: inout Output) {
    out.line(response.succeeded ? "SUCCESS" : "FAILURE")
    for op in response.responses {
        out.line("")
        switch op.response {
        case .responsePut(let put)?:
            out.line("OK")
            if put.hasPrevKv { out.keyValue(put.prevKv) }
        case .responseRange(let range)?:
            for kv in range.kvs { out.keyValue(kv) }
        case .responseDeleteRange(let delete)?:
            printDelete(delete, into: &out)
        case .responseTxn(let txn)?:
            printTxn(txn, into: &out)
        case nil:
            out.line("unexpected empty response")
        }
    }
}

/// `synod watch KEY [RANGE_END]`
struct ClientWatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Print changes to a key or range until interrupted (PUT/DELETE, key, value).",
        discussion: "Survives the loss of an endpoint: the watch resumes on the next one without losing events."
    )

    @OptionGroup var client: ClientOptions
    @Argument(help: "The key (or the start of the range).") var key: String
    @Argument(help: "End of the range (exclusive).") var rangeEnd: String?
    @Flag(help: "Every key starting with KEY.") var prefix = false
    @Option(help: "Start at this revision (0: changes from now on).") var rev: Int64 = 0
    @Flag(name: .customLong("prev-kv"), help: "Also print the previous key-value pair of each event.") var prevKV = false

    func validate() throws {
        if rangeEnd != nil && prefix { throw ValidationError("a range end cannot be combined with --prefix") }
    }

    func run() async throws {
        try await client.run { client in
            for try await response in client.watch(
                key, rangeEnd: rangeEnd, prefix: prefix, startRevision: rev, prevKV: prevKV)
            {
                var out = Output()
                for event in response.events {
                    out.line(event.type == .delete ? "DELETE" : "PUT")
                    if prevKV && event.hasPrevKv { out.keyValue(event.prevKv) }
                    out.keyValue(event.kv)
                }
                out.flush()
            }
        }
    }
}
