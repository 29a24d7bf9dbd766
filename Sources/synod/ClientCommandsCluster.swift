import ArgumentParser
import SynodClient

/// `synod status`
struct ClientStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the status of every endpoint (one line each).",
        discussion: """
            Columns: endpoint, member id, version, db size, is leader, is learner, raft term,
            raft index, raft applied index, errors. Endpoints that cannot be reached are reported
            on stderr and make the exit status non-zero.
            """
    )
    @OptionGroup var client: ClientOptions
    @Option(name: [.customShort("w"), .customLong("write-out")], help: "Output format: simple, table or json.")
    var writeOut: WriteOut = .simple

    func run() async throws {
        var failed = false
        try await client.run { client in
            let results = await client.statusAll()
            var rows: [[String]] = []
            var json: [String] = []
            for (endpoint, result) in results {
                switch result {
                case .success(let status):
                    rows.append([
                        endpoint.original, String(status.header.memberID, radix: 16), status.version,
                        humanBytes(status.dbSize), status.leader == status.header.memberID ? "true" : "false",
                        status.isLearner ? "true" : "false", "\(status.raftTerm)", "\(status.raftIndex)",
                        "\(status.raftAppliedIndex)", status.errors.joined(separator: ", "),
                    ])
                    if writeOut == .json {
                        json.append(try SynodJSON.encode(status))
                    }
                case .failure(let error):
                    failed = true
                    if case .unavailable(let failures) = error, let first = failures.first {
                        standardError("Error: \(first)")
                    } else {
                        standardError("Error: \(endpoint.original): \(error)")
                    }
                }
            }
            var out = Output()
            switch writeOut {
            case .simple:
                for row in rows { out.line(row.joined(separator: ", ")) }
            case .table:
                if !rows.isEmpty {
                    out.line(renderTable(
                        header: [
                            "ENDPOINT", "ID", "VERSION", "DB SIZE", "IS LEADER", "IS LEARNER", "RAFT TERM",
                            "RAFT INDEX", "RAFT APPLIED INDEX", "ERRORS",
                        ], rows: rows))
                }
            case .json:
                out.line("[" + json.joined(separator: ",") + "]")
            }
            out.flush()
        }
        if failed { throw ExitCode(1) }
    }
}
