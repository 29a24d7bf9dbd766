import ArgumentParser

@main
struct Synod: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synod",
        abstract: "Synod: Multi-Paxos consensus and a replicated key-value store speaking the etcd v3 API.",
        discussion: """
            With no arguments, `synod` starts a local 3-node cluster (`synod cluster`).
            `synod serve` runs one node; put/get/del/txn/watch/lease/member/
            move-leader/status talk to a cluster; `synod recover` rescues a member
            after quorum is lost for good; `synod sim` runs the deterministic
            simulator and `synod bench` the benchmarks.
            """,
        subcommands: [
            ClusterCommand.self, ServeCommand.self, ClientPutCommand.self, ClientGetCommand.self,
            ClientDelCommand.self, ClientTxnCommand.self, ClientWatchCommand.self, ClientLeaseCommand.self, ClientLockCommand.self, ClientElectCommand.self,
            ClientMemberCommand.self, ClientMoveLeaderCommand.self, ClientStatusCommand.self, RecoverCommand.self,
            SimCommand.self, BenchCommand.self, ChaosCommand.self,
        ],
        defaultSubcommand: ClusterCommand.self
    )

    /// etcd's bare boolean flags (`--client-cert-auth`) become `--client-cert-auth true`
    /// before parsing (see `ServeCommand.normalizedArguments`).
    static func main() async {
        await main(ServeCommand.normalizedArguments(Array(CommandLine.arguments.dropFirst())))
    }
}
