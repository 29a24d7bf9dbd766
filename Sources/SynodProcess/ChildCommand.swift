import Foundation

/// What to run as a child: a program, its arguments, and how it is wrapped, fed and logged.
public struct ChildCommand: Sendable, Equatable {
    public var executable: String
    public var arguments: [String]
    /// Words put in front of the program, such as `ip netns exec NAME` or `setpriv --reuid=...`:
    /// the child runs `prefix + [executable] + arguments`.
    public var launchPrefix: [String]
    /// The child's whole environment; nil passes this process's environment on.
    public var environment: [String: String]?
    /// Standard output and standard error are appended to this file (created when missing);
    /// nil leaves them on this process's.
    public var logPath: String?

    public init(executable: String, arguments: [String] = [], launchPrefix: [String] = [],
                environment: [String: String]? = nil, logPath: String? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.launchPrefix = launchPrefix
        self.environment = environment
        self.logPath = logPath
    }

    /// The program actually executed and its arguments once the prefix is applied. A prefix
    /// whose first word is an absolute path is executed directly; any other goes through
    /// `/usr/bin/env`, which looks its first word up in PATH (Process wants a file, not a name).
    public var resolved: (executable: String, arguments: [String]) {
        guard let first = launchPrefix.first else { return (executable, arguments) }
        if first.hasPrefix("/") {
            return (first, Array(launchPrefix.dropFirst()) + [executable] + arguments)
        }
        return ("/usr/bin/env", launchPrefix + [executable] + arguments)
    }
}

/// Why a child could not be started.
public enum ChildLaunchError: Error, CustomStringConvertible {
    /// The registry was told to kill everything: no child may start any more.
    case shuttingDown
    /// The log file could not be opened for appending.
    case cannotWriteLog(path: String)
    /// Spawning failed (no such program, not executable, ...); `underlying` is Foundation's error.
    case cannotStart(executable: String, underlying: any Error)

    public var description: String {
        switch self {
        case .shuttingDown: "shutting down"
        case .cannotWriteLog(let path): "cannot write \(path)"
        case .cannotStart(let executable, let underlying): "cannot start \(executable): \(underlying.localizedDescription)"
        }
    }
}

/// Log files that a child and its supervisor both append to.
public enum ChildLog {
    /// Opens `path` for appending, creating it if needed. O_APPEND keeps the child's output and
    /// the supervisor's own lines from overwriting each other; O_CLOEXEC keeps the descriptor
    /// out of children that are not meant to write there.
    public static func openForAppending(_ path: String) -> FileHandle? {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return nil }
        return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// Appends `text` to the file at `path`; false when it cannot be opened.
    @discardableResult
    public static func append(_ text: String, to path: String) -> Bool {
        guard let handle = openForAppending(path) else { return false }
        handle.write(Data(text.utf8))
        try? handle.close()
        return true
    }
}
