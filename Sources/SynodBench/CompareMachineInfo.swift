import Foundation

/// Reading the machine and processes: /proc, `uname`, `etcd --version`, git.
public enum CompareMachineInfo {
    /// A `kB` field of /proc/PID/status (`VmHWM:    123456 kB`) in bytes; nil when absent or malformed.
    public static func statusField(_ field: String, in text: String) -> Int? {
        for line in text.split(separator: "\n") {
            guard line.hasPrefix(field + ":") else { continue }
            let parts = line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let number = parts.first.flatMap({ Int($0) }), number >= 0 else { return nil }
            let unit = parts.count > 1 ? parts[1].lowercased() : ""
            switch unit {
            case "kb": return number.multipliedReportingOverflow(by: 1_024).overflow ? nil : number * 1_024
            case "": return number
            default: return nil
            }
        }
        return nil
    }

    /// VmHWM and VmRSS of a running process, in bytes.
    public static func memory(pid: Int32) -> (peak: Int?, current: Int?) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (nil, nil) }
        return (statusField("VmHWM", in: text), statusField("VmRSS", in: text))
    }

    /// The first `model name` of /proc/cpuinfo.
    public static func cpuModel(cpuinfo: String) -> String? {
        for line in cpuinfo.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return String(line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" })
            }
        }
        return nil
    }

    /// The version number in `etcd --version` output (`etcd Version: 3.4.23`).
    public static func etcdVersion(output: String) -> String? {
        for line in output.split(separator: "\n") where line.hasPrefix("etcd Version:") {
            return String(line.dropFirst("etcd Version:".count).drop { $0 == " " })
        }
        return nil
    }

    /// Runs a program and returns its standard output (nil when it cannot start or fails).
    public static func capture(_ executable: String, _ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The first executable `name` on PATH.
    public static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    public static func isoDate(_ date: Date = Date()) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    /// The machine description of the results header.
    public static func machine(etcdBinary: String?) -> CompareMachine {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let etcdOutput = etcdBinary.flatMap { capture($0, ["--version"]) }
        let commit = which("git").flatMap { capture($0, ["rev-parse", "--short", "HEAD"]) }
        let memory = ProcessInfo.processInfo.physicalMemory
        return CompareMachine(
            date: isoDate(),
            system: which("uname").flatMap { capture($0, ["-srm"]) } ?? "unknown",
            cpuModel: cpuModel(cpuinfo: cpuinfo) ?? "unknown CPU",
            cores: ProcessInfo.processInfo.activeProcessorCount,
            memoryBytes: memory > UInt64(Int.max) ? nil : Int(memory),
            etcdVersion: etcdOutput.flatMap { etcdVersion(output: $0) },
            synodCommit: commit
        )
    }
}
