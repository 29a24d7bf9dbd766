import ArgumentParser

@main
struct Synod: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synod",
        abstract: "Synod: Multi-Paxos consensus and a replicated key-value store.",
        discussion: """
            Today synod runs the deterministic cluster simulator (`synod sim`) and the core
            benchmark (`synod bench core`). The networked server is being built next.
            """,
        subcommands: [SimCommand.self, BenchCommand.self]
    )
}
