import ArgumentParser
import Foundation
import SynodClient

/// `synod member list|add|remove|update|promote`: etcd's Cluster API, printed like etcdctl 3.4.
struct ClientMemberCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "member",
        abstract: "List members and change cluster membership (member IDs in hexadecimal, like etcdctl).",
        subcommands: [List.self, Add.self, Remove.self, Update.self, Promote.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List members: id, status, name, peer URLs, client URLs, is learner."
        )
        @OptionGroup var client: ClientOptions
        @Option(name: [.customShort("w"), .customLong("write-out")], help: "Output format: simple, table or json.")
        var writeOut: WriteOut = .simple

        func run() async throws {
            try await client.run { client in
                let response = try await client.memberList()
                var out = Output()
                let rows = response.members.map { member -> [String] in
                    [
                        String(member.id, radix: 16), member.name.isEmpty ? "unstarted" : "started", member.name,
                        member.peerUrls.joined(separator: ","), member.clientUrls.joined(separator: ","),
                        member.isLearner ? "true" : "false",
                    ]
                }
                switch writeOut {
                case .simple:
                    for row in rows { out.line(row.joined(separator: ", ")) }
                case .table:
                    out.line(renderTable(
                        header: ["ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"], rows: rows))
                case .json:
                    out.line(try SynodJSON.encode(response))
                }
                out.flush()
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Add a member; prints how to start it.",
            discussion: """
                The cluster assigns the new member's id. Start the new member
                afterwards with an empty data directory and
                --initial-cluster-state existing (the command line is printed); it
                learns the data from the cluster. Add a member to a busy cluster as a
                --learner first, then `synod member promote` it once it caught up.
                Output (like etcdctl 3.4, with SYNOD_ instead of ETCD_):
                  Member <id> added to cluster <cluster id>

                  SYNOD_NAME="<name>"
                  SYNOD_INITIAL_CLUSTER="<name>=<peer URL>,..."
                  SYNOD_INITIAL_ADVERTISE_PEER_URLS="<peer URLs>"
                  SYNOD_INITIAL_CLUSTER_STATE="existing"

                  Start it with an empty data directory (add its --listen-client-urls/...):
                    synod serve --name <name> --data-dir <name>.synod ... --initial-cluster-state existing
                """
        )
        @OptionGroup var client: ClientOptions
        @Argument(help: "Name of the new member (used in the printed start command; the member publishes it when it starts).")
        var name: String
        @Option(help: "Comma-separated peer URLs of the new member, e.g. http://10.0.0.4:2380.")
        var peerUrls: String
        @Flag(help: "Add the member as a learner (it votes only after `member promote`).")
        var learner = false

        func run() async throws {
            try await client.run { client in
                let urls = try parsePeerURLs(peerUrls)
                guard !name.isEmpty, !name.contains(where: { $0 == "," || $0 == "=" || $0.isWhitespace }) else {
                    throw ClientCommandError("member name '\(name)' must be non-empty, without spaces, ',' or '='")
                }
                let response = try await client.memberAdd(peerURLs: urls, isLearner: learner)
                var out = Output()
                for line in memberAddedLines(name: name, peerURLs: urls, response: response) { out.line(line) }
                out.flush()
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove", abstract: "Remove a member (the removed member stops serving).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Member ID (hexadecimal, as `member list` prints it).") var id: String

        func run() async throws {
            try await client.run { client in
                let memberID = try parseMemberID(id)
                let response = try await client.memberRemove(id: memberID)
                var out = Output()
                out.line("Member \(formatPaddedID(memberID)) removed from cluster \(formatPaddedID(response.header.clusterID))")
                out.flush()
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "update", abstract: "Replace a member's peer URLs.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Member ID (hexadecimal).") var id: String
        @Option(help: "Comma-separated new peer URLs, e.g. http://10.0.0.4:2380.")
        var peerUrls: String

        func run() async throws {
            try await client.run { client in
                let memberID = try parseMemberID(id)
                let urls = try parsePeerURLs(peerUrls)
                let response = try await client.memberUpdate(id: memberID, peerURLs: urls)
                var out = Output()
                out.line("Member \(formatPaddedID(memberID)) updated in cluster \(formatPaddedID(response.header.clusterID))")
                out.flush()
            }
        }
    }

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "promote", abstract: "Make a learner a voting member (once it has caught up).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Member ID of the learner (hexadecimal).") var id: String

        func run() async throws {
            try await client.run { client in
                let memberID = try parseMemberID(id)
                let response = try await client.memberPromote(id: memberID)
                var out = Output()
                out.line("Member \(formatPaddedID(memberID)) promoted in cluster \(formatPaddedID(response.header.clusterID))")
                out.flush()
            }
        }
    }
}

/// What `member add` prints: etcdctl 3.4's lines with SYNOD_ names, then the `synod serve`
/// command line that starts the new member.
func memberAddedLines(name: String, peerURLs: [String], response: Etcdserverpb_MemberAddResponse) -> [String] {
    let newID = response.member.id
    var cluster: [String] = []
    // As etcdctl: every member's peer URLs, the new one under its given name. Members added
    // earlier that never started have no name yet and cannot be listed in --initial-cluster.
    for member in response.members {
        let memberName = member.id == newID ? name : member.name
        guard !memberName.isEmpty else { continue }
        for url in member.peerUrls { cluster.append("\(memberName)=\(url)") }
    }
    if !response.members.contains(where: { $0.id == newID }) {
        for url in peerURLs { cluster.append("\(name)=\(url)") }
    }
    let initialCluster = cluster.joined(separator: ",")
    let advertise = peerURLs.joined(separator: ",")
    return [
        "Member \(formatPaddedID(newID)) added to cluster \(formatPaddedID(response.header.clusterID))",
        "",
        "SYNOD_NAME=\"\(name)\"",
        "SYNOD_INITIAL_CLUSTER=\"\(initialCluster)\"",
        "SYNOD_INITIAL_ADVERTISE_PEER_URLS=\"\(advertise)\"",
        "SYNOD_INITIAL_CLUSTER_STATE=\"existing\"",
        "",
        "Start it with an empty data directory (add its --listen-client-urls/--advertise-client-urls):",
        "  synod serve --name \(name) --data-dir \(name).synod --listen-peer-urls \(peerURLs[0])"
            + " --initial-advertise-peer-urls \(advertise) --initial-cluster \(initialCluster)"
            + " --initial-cluster-state existing",
    ]
}

/// Parses a member ID written in hexadecimal (as `member list` prints them).
func parseMemberID(_ text: String) throws -> UInt64 {
    var digits = Substring(text)
    if digits.hasPrefix("0x") || digits.hasPrefix("0X") { digits = digits.dropFirst(2) }
    guard !digits.isEmpty, digits.count <= 16, let value = UInt64(digits, radix: 16) else {
        throw ClientCommandError("bad member ID '\(text)', expecting an ID in hexadecimal (as `synod member list` prints it)")
    }
    return value
}

/// Splits `--peer-urls` (comma-separated) and checks each URL.
func parsePeerURLs(_ text: String) throws -> [String] {
    let urls = text.split(separator: ",", omittingEmptySubsequences: false)
        .map { String($0.trimmingCharacters(in: .whitespaces)) }
    guard urls.contains(where: { !$0.isEmpty }) else {
        throw ClientCommandError("--peer-urls is empty: give the member's peer URLs, e.g. --peer-urls http://10.0.0.4:2380")
    }
    guard !urls.contains(where: \.isEmpty) else {
        throw ClientCommandError("--peer-urls '\(text)' has an empty entry")
    }
    return urls
}

/// An id as etcdctl's `%16x` prints it: hexadecimal, right-aligned in 16 columns.
func formatPaddedID(_ id: UInt64) -> String {
    let hex = String(id, radix: 16)
    return String(repeating: " ", count: max(0, 16 - hex.count)) + hex
}
