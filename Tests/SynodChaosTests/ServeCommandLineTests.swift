import Foundation
import XCTest

/// `synod serve` refuses bad settings with one line naming the key, also in a config file.
final class ServeCommandLineTests: XCTestCase {
    private func run(_ arguments: [String], in directory: String) throws -> (status: Int32, stderr: String) {
        guard let binary = ChaosRunnerTests.synodBinary() else { throw XCTSkip("no synod binary") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let data = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testBadConfigFileValuesAreOneLineNamingTheKey() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("synod-config-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (file, text, expected) in [
            ("count.yaml", "name: n1\nsnapshot-count: abc\n", "count.yaml: The value 'abc' is invalid for '--snapshot-count <snapshot-count>'"),
            ("vote.toml", "name = \"n1\"\npre-vote = \"maybe\"\n", "vote.toml: The value 'maybe' is invalid for '--pre-vote <pre-vote>'"),
        ] {
            try text.write(toFile: "\(directory)/\(file)", atomically: true, encoding: .utf8)
            let (status, stderr) = try run(["serve", "--config-file", file], in: directory)
            XCTAssertEqual(status, 1, stderr)
            XCTAssertEqual(stderr.split(separator: "\n").count, 1, stderr)
            XCTAssertTrue(stderr.contains(expected), stderr)
        }
    }
}
