import ArgumentParser
import Foundation
import SynodServer

/// `synod recover`: turns a stopped survivor's data directory into a one-member cluster
/// (etcd's `--force-new-cluster`), for when a majority of the members is lost for good.
struct RecoverCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover",
        abstract: "Make a stopped member's data directory a one-member cluster (after losing quorum for good).",
        discussion: """
            Use only when a majority of the members is gone for good. Run it on ONE
            stopped survivor (the one with the highest raft index in `synod status`,
            if you know it). It rewrites the data directory so that `synod serve`,
            with the same flags as before, starts it as the only voter of the same
            cluster (same cluster id), keeping every key it had and every write it
            had accepted. Writes that only the lost members had acknowledged are
            lost. The old directory is kept as <data-dir>.pre-recover.

            Then start the member with its usual `synod serve` command
            (--initial-cluster-state new or existing), check that
            `synod member list` shows one member, and grow the cluster back with
            `synod member add` (new members start with an empty data directory and
            --initial-cluster-state existing). Never restart the other old members
            on their old data directories: wipe them and add them again.
            """
    )

    @Option(help: "The stopped member's data directory.")
    var dataDir: String
    @Option(help: "The member's name (checked against the name the cluster recorded for it).")
    var name: String?
    @Flag(help: "Report what would be done without changing anything.")
    var dryRun = false

    func run() throws {
        do {
            let report = try ClusterRecovery.recover(RecoveryOptions(dataDirectory: dataDir, name: name, dryRun: dryRun))
            print(report.lines.joined(separator: "\n"))
        } catch {
            FileHandle.standardError.write(Data("synod recover: error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
