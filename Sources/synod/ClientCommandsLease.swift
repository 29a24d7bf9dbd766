import ArgumentParser
import SynodClient

/// `synod lease grant|revoke|keep-alive|timetolive|list`
struct ClientLeaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lease",
        abstract: "Grant, revoke, renew and inspect leases (IDs in hexadecimal, like etcdctl).",
        subcommands: [Grant.self, Revoke.self, KeepAlive.self, TimeToLive.self, List.self]
    )

    struct Grant: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "grant", abstract: "Grant a lease of TTL seconds.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Time to live in seconds.") var ttl: Int64

        func validate() throws {
            if ttl <= 0 { throw ValidationError("TTL must be positive") }
        }

        func run() async throws {
            try await client.run { client in
                let response = try await client.leaseGrant(ttl: ttl)
                var out = Output()
                out.line("lease \(formatLeaseID(response.id)) granted with TTL(\(response.ttl)s)")
                out.flush()
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke", abstract: "Revoke a lease and delete its keys.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Lease ID (hexadecimal).") var id: String

        func run() async throws {
            try await client.run { client in
                let lease = try parseLeaseID(id)
                try await client.leaseRevoke(id: lease)
                var out = Output()
                out.line("lease \(formatLeaseID(lease)) revoked")
                out.flush()
            }
        }
    }

    struct KeepAlive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "keep-alive", abstract: "Keep a lease alive (until interrupted, or once with --once).")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Lease ID (hexadecimal).") var id: String
        @Flag(help: "Renew once and exit.") var once = false

        func run() async throws {
            try await client.run { client in
                let lease = try parseLeaseID(id)
                if once {
                    let response = try await client.leaseKeepAliveOnce(id: lease)
                    var out = Output()
                    out.line("lease \(formatLeaseID(lease)) keepalived with TTL(\(response.ttl))")
                    out.flush()
                    return
                }
                while true {
                    let response: Etcdserverpb_LeaseKeepAliveResponse
                    do {
                        response = try await client.leaseKeepAliveOnce(id: lease)
                    } catch SynodClientError.server(code: .notFound, _, _) {
                        var out = Output()
                        out.line("lease \(formatLeaseID(lease)) expired or revoked.")
                        out.flush()
                        return
                    }
                    var out = Output()
                    out.line("lease \(formatLeaseID(lease)) keepalived with TTL(\(response.ttl))")
                    out.flush()
                    // Renew at a third of the TTL, like etcd's client.
                    let pause = max(Double(response.ttl) / 3, 0.5)
                    try await Task.sleep(for: .milliseconds(Int64(pause * 1000)))
                }
            }
        }
    }

    struct TimeToLive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "timetolive", abstract: "Show a lease's remaining and granted TTL.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Lease ID (hexadecimal).") var id: String
        @Flag(help: "Also list the keys attached to the lease.") var keys = false

        func run() async throws {
            try await client.run { client in
                let lease = try parseLeaseID(id)
                let response = try await client.leaseTimeToLive(id: lease, keys: keys)
                var out = Output()
                if response.grantedTtl == 0 && response.ttl == -1 {
                    out.line("lease \(formatLeaseID(lease)) already expired")
                } else {
                    var text = "lease \(formatLeaseID(lease)) granted with TTL(\(response.grantedTtl)s), remaining(\(response.ttl)s)"
                    if keys {
                        let names = response.keys.map { String(decoding: $0, as: UTF8.self) }
                        text += ", attached keys([\(names.joined(separator: " "))])"
                    }
                    out.line(text)
                }
                out.flush()
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List every live lease.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await client.run { client in
                let response = try await client.leaseList()
                var out = Output()
                out.line("found \(response.leases.count) leases")
                for lease in response.leases { out.line(formatLeaseID(lease.id)) }
                out.flush()
            }
        }
    }
}
