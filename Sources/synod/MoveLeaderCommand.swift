import ArgumentParser
import SynodClient

/// `synod move-leader <id>`: etcd's Maintenance.MoveLeader, printed like etcdctl 3.4.
struct ClientMoveLeaderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "move-leader",
        abstract: "Hand leadership to another voting member.",
        discussion: """
            Like etcdctl, finds the leader among --endpoints (Maintenance.Status) and sends the
            request there, so the leader's client URL must be one of the endpoints.
            Prints "Leadership transferred from <old leader id> to <new leader id>".
            """
    )
    @OptionGroup var client: ClientOptions
    @Argument(help: "Member ID of the new leader (hexadecimal, as `synod member list` prints it).")
    var id: String

    func run() async throws {
        try await client.run { client in
            let target = try parseMemberID(id)
            let transfer = try await client.moveLeader(to: target)
            var out = Output()
            out.line("Leadership transferred from \(String(transfer.previousLeader, radix: 16)) to \(String(transfer.newLeader, radix: 16))")
            out.flush()
        }
    }
}
