import Foundation

/// Runs the system tools `NamespaceNetwork` drives (`ip`, `iptables`, `tc`) and turns a
/// failure into a `ChaosNetworkError` naming the command and its stderr.
enum NamespaceNetworkCommand {
    /// The directories searched besides `PATH` (root's tools live in sbin, which a non-login
    /// PATH may lack).
    private static let extraDirectories = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin"]

    struct Output: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The absolute path of `tool`, or nil when it is not installed.
    static func locate(_ tool: String) -> String? {
        if tool.hasPrefix("/") {
            return FileManager.default.isExecutableFile(atPath: tool) ? tool : nil
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + extraDirectories
        for directory in directories where !directory.isEmpty {
            let candidate = directory + "/" + tool
            if FileManager.default.isExecutableFile(atPath: candidate) {
                return candidate
            }
        }
        return nil
    }

    /// Runs `arguments` (the first is the tool) and returns its output whatever its status.
    static func runUnchecked(_ arguments: [String]) throws -> Output {
        guard let tool = arguments.first else {
            throw ChaosNetworkError("netns: empty command")
        }
        guard let executable = locate(tool) else {
            throw ChaosNetworkError("netns: `\(tool)` not found (PATH and sbin directories searched)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Array(arguments.dropFirst())
        let stdoutPipe = Pipe()
        let stderrPipe = Pipe()
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw ChaosNetworkError("netns: cannot run `\(arguments.joined(separator: " "))`: \(error)")
        }
        // Drain stderr on another thread so neither pipe can fill up and block the tool.
        let stderrBox = ProxyNetworkLockedBox(Data())
        let drained = DispatchSemaphore(value: 0)
        let stderrHandle = stderrPipe.fileHandleForReading
        DispatchQueue.global().async {
            let data = stderrHandle.readDataToEndOfFile()
            stderrBox.withLockedValue { $0 = data }
            drained.signal()
        }
        let stdoutData = stdoutPipe.fileHandleForReading.readDataToEndOfFile()
        drained.wait()
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus,
            stdout: String(decoding: stdoutData, as: UTF8.self),
            stderr: String(decoding: stderrBox.withLockedValue { $0 }, as: UTF8.self))
    }

    /// Runs `arguments` and returns stdout; throws when the tool exits non-zero.
    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let output = try runUnchecked(arguments)
        guard output.status == 0 else {
            let reason = output.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            throw ChaosNetworkError(
                "netns: `\(arguments.joined(separator: " "))` failed (exit \(output.status))"
                    + (reason.isEmpty ? "" : ": " + reason.replacingOccurrences(of: "\n", with: " | ")))
        }
        return output.stdout
    }

    /// Runs `arguments`, ignoring failure (cleanup of things that may not exist).
    static func runIgnoringFailure(_ arguments: [String]) {
        _ = try? runUnchecked(arguments)
    }

    /// `run` off the caller's thread: the tools block, and async callers must not.
    @discardableResult
    static func runAsync(_ arguments: [String]) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try run(arguments) })
            }
        }
    }

    /// Runs `body` (a sequence of blocking commands) off the caller's thread.
    static func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try body() })
            }
        }
    }
}
