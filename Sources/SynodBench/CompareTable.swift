import Foundation

/// A table as strings, rendered either aligned for a terminal or as Markdown.
public struct CompareTable: Sendable, Equatable {
    public var title: String
    public var header: [String]
    public var rows: [[String]]
    /// Columns at the left that hold labels (left-aligned); the rest hold numbers.
    public var labelColumns: Int

    public init(title: String, header: [String], rows: [[String]], labelColumns: Int = 2) {
        self.title = title
        self.header = header
        self.rows = rows
        self.labelColumns = labelColumns
    }

    /// Columns padded to their widest cell; labels left-aligned, numbers right-aligned.
    public var text: String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            header.indices.map { column in
                let cell = cells.indices.contains(column) ? cells[column] : ""
                let padding = String(repeating: " ", count: max(0, widths[column] - cell.count))
                return column < labelColumns ? cell + padding : padding + cell
            }.joined(separator: "  ").trimmingTrailingSpaces()
        }
        let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        return ([title, line(header), rule] + rows.map(line)).joined(separator: "\n") + "\n"
    }

    public var markdown: String {
        func line(_ cells: [String]) -> String { "| " + cells.joined(separator: " | ") + " |" }
        let rule = "|" + header.indices.map { $0 < labelColumns ? "---|" : "---:|" }.joined()
        return (["### " + title, "", line(header), rule] + rows.map(line)).joined(separator: "\n") + "\n"
    }
}

extension String {
    fileprivate func trimmingTrailingSpaces() -> String {
        var copy = self
        while copy.last == " " { copy.removeLast() }
        return copy
    }
}

/// Number formats of the compare tables.
public enum CompareFormat {
    /// Operations per second, whole numbers.
    public static func rate(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "-" }
        return String(Int(value.rounded()))
    }

    /// Microseconds shown as milliseconds with three significant digits.
    public static func millis(_ micros: Double?) -> String {
        guard let micros, micros.isFinite else { return "-" }
        let ms = micros / 1_000
        if ms >= 100 { return String(format: "%.0f", ms) }
        if ms >= 10 { return String(format: "%.1f", ms) }
        if ms >= 1 { return String(format: "%.2f", ms) }
        return String(format: "%.3f", ms)
    }

    /// A ratio like `1.23x`.
    public static func ratio(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "-" }
        return String(format: value >= 10 ? "%.1fx" : "%.2fx", value)
    }

    /// A quotient with about three significant digits (`12.3`, `0.456`, `0.00789`).
    public static func fraction(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "-" }
        if value >= 100 || value == 0 { return String(format: "%.0f", value) }
        if value >= 10 { return String(format: "%.1f", value) }
        if value >= 1 { return String(format: "%.2f", value) }
        return String(format: "%.3g", value)
    }

    public static func mebibytes(_ bytes: Int?) -> String {
        guard let bytes else { return "-" }
        return String(format: "%.0f", Double(bytes) / 1_048_576)
    }

    public static func seconds(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "-" }
        return String(format: value >= 10 ? "%.1f" : "%.2f", value)
    }
}

extension CompareReport {
    /// The main table: per row, both systems' median throughput and latency and their ratios.
    public var resultsTable: CompareTable {
        // With --tls a third label column says which clusters a line measured.
        let transport = options.tls ? ["transport"] : []
        let header = [
            "workload", "clients"] + transport + ["Synod ops/s", "etcd ops/s", "Synod/etcd",
            "Synod p50 ms", "etcd p50 ms", "p50 etcd/Synod", "Synod p99 ms", "etcd p99 ms", "p99 etcd/Synod",
        ]
        let rows = summary.map { line -> [String] in
            [line.row.kind.rawValue, line.row.kind == .watch ? "\(line.row.clients) watchers" : String(line.row.clients)]
                + (options.tls ? [line.tls ? "mTLS" : "plaintext"] : []) + [
                CompareFormat.rate(line.synod?.throughput), CompareFormat.rate(line.etcd?.throughput), CompareFormat.ratio(line.throughputRatio),
                CompareFormat.millis(line.synod?.p50Micros), CompareFormat.millis(line.etcd?.p50Micros), CompareFormat.ratio(line.p50Ratio),
                CompareFormat.millis(line.synod?.p99Micros), CompareFormat.millis(line.etcd?.p99Micros), CompareFormat.ratio(line.p99Ratio),
            ]
        }
        return CompareTable(
            title: "Median over \(options.rounds) round(s) of \(CompareFormat.seconds(options.durationSeconds)) s; ratios > 1 mean Synod is better"
                + (options.tls ? "; mTLS: mutual TLS on the client and peer ports of both systems" : ""),
            header: header, rows: rows, labelColumns: 2 + transport.count)
    }

    /// With `--tls`: what TLS costs each system, TLS over plaintext per row.
    public var tlsCostTable: CompareTable? {
        guard options.tls, !tlsCost.isEmpty else { return nil }
        let header = [
            "workload", "clients", "Synod ops/s tls/plain", "etcd ops/s tls/plain",
            "Synod p50 tls/plain", "etcd p50 tls/plain", "Synod p99 tls/plain", "etcd p99 tls/plain",
        ]
        let rows = tlsCost.map { line -> [String] in
            [
                line.row.kind.rawValue, line.row.kind == .watch ? "\(line.row.clients) watchers" : String(line.row.clients),
                CompareFormat.ratio(line.synod?.throughputRatio), CompareFormat.ratio(line.etcd?.throughputRatio),
                CompareFormat.ratio(line.synod?.p50Ratio), CompareFormat.ratio(line.etcd?.p50Ratio),
                CompareFormat.ratio(line.synod?.p99Ratio), CompareFormat.ratio(line.etcd?.p99Ratio),
            ]
        }
        return CompareTable(
            title: "Cost of mutual TLS (client and peer ports) per system: TLS / plaintext of the medians; ops/s below 1 and latency above 1 mean TLS costs",
            header: header, rows: rows)
    }

    /// Write rows held against the in-process ceilings: the disk's raw fsync rate, the
    /// write-ahead log with group commit, and the pure core.
    public var ceilingsTable: CompareTable? {
        guard let baselines, baselines.rawFsyncPerSecond != nil || baselines.coreCommandsPerSecond != nil else { return nil }
        let header = [
            "workload", "clients", "Synod puts per fsync-equiv.", "etcd puts per fsync-equiv.",
            "Synod / WAL \(baselines.walWriters) writers", "Synod / core",
        ]
        let rows = summary.filter { [.put, .txnCAS].contains($0.row.kind) && !$0.tls }.map { line -> [String] in
            func over(_ value: Double?, _ base: Double?) -> Double? {
                guard let value, let base, base > 0 else { return nil }
                return value / base
            }
            return [
                line.row.kind.rawValue, String(line.row.clients),
                CompareFormat.fraction(over(line.synod?.throughput, baselines.rawFsyncPerSecond)),
                CompareFormat.fraction(over(line.etcd?.throughput, baselines.rawFsyncPerSecond)),
                CompareFormat.fraction(over(line.synod?.throughput, baselines.walRecordsPerSecond)),
                CompareFormat.fraction(over(line.synod?.throughput, baselines.coreCommandsPerSecond)),
            ]
        }
        return CompareTable(title: "Writes against the ceilings (ops/s divided by the baseline's rate)", header: header, rows: rows)
    }

    /// Memory and restart figures per system.
    public var serversTable: CompareTable {
        var rows: [[String]] = [
            ["peak RSS, largest member (MiB)", CompareFormat.mebibytes(maxPeakRSSBytes(.synod)), CompareFormat.mebibytes(maxPeakRSSBytes(.etcd))],
        ]
        if !memoryPhases.isEmpty {
            let synod = memoryPhase(.synod)
            let etcd = memoryPhase(.etcd)
            let keys = synod?.keys ?? etcd?.keys ?? 0
            rows.append(["load \(keys) keys (s)", CompareFormat.seconds(synod?.loadSeconds), CompareFormat.seconds(etcd?.loadSeconds)])
            rows.append(["RSS after load, largest member (MiB)", CompareFormat.mebibytes(synod?.maxRSSBytes), CompareFormat.mebibytes(etcd?.maxRSSBytes)])
            if synod?.range != nil || etcd?.range != nil {
                func text(_ range: CompareRange?, _ figure: (CompareRange) -> String) -> String {
                    guard let range else { return "-" }
                    return range.error == nil ? figure(range) : "failed"
                }
                let bytes = synod?.range?.responseBytes ?? etcd?.range?.responseBytes ?? 0
                rows.append(["range of all keys (\(CompareFormat.mebibytes(bytes)) MiB) on the leader (s)",
                             text(synod?.range) { CompareFormat.seconds($0.seconds) }, text(etcd?.range) { CompareFormat.seconds($0.seconds) }])
                rows.append(["range of all keys: leader RSS growth (MiB)",
                             text(synod?.range) { CompareFormat.mebibytes($0.leaderGrowthBytes) },
                             text(etcd?.range) { CompareFormat.mebibytes($0.leaderGrowthBytes) }])
            }
            if synod?.snapshotWrites != nil || etcd?.snapshotWrites != nil {
                func p99(_ summary: LatencySummary?) -> String {
                    guard let summary, summary.count > 0 else { return "-" }
                    return CompareFormat.millis(summary.p99Micros) + " (\(summary.count))"
                }
                let writers = synod?.snapshotWrites?.writers ?? etcd?.snapshotWrites?.writers ?? 0
                rows.append(["\(writers) writers, put p99 ms (puts): all", p99(synod?.snapshotWrites?.all), p99(etcd?.snapshotWrites?.all)])
                rows.append(["  during a leader snapshot", p99(synod?.snapshotWrites?.during), p99(etcd?.snapshotWrites?.during)])
                rows.append(["  outside one", p99(synod?.snapshotWrites?.outside), p99(etcd?.snapshotWrites?.outside)])
                rows.append(["  snapshots taken (s in progress)",
                             synod?.snapshotWrites.map { "\($0.snapshots) (\(CompareFormat.seconds($0.snapshotSeconds)))" } ?? "-",
                             etcd?.snapshotWrites.map { _ in "not observable" } ?? "-"])
            }
            rows.append(["follower kill -9 → first read (s)", CompareFormat.seconds(synod?.restartSeconds), CompareFormat.seconds(etcd?.restartSeconds)])
            if synod?.join != nil || etcd?.join != nil {
                rows.append(["learner join: start → caught up (s)", CompareFormat.seconds(synod?.join?.seconds), CompareFormat.seconds(etcd?.join?.seconds)])
                rows.append(["learner join: leader RSS growth (MiB)", CompareFormat.mebibytes(synod?.join?.senderGrowthBytes), CompareFormat.mebibytes(etcd?.join?.senderGrowthBytes)])
                rows.append(["learner join: a follower's RSS growth meanwhile (MiB)", CompareFormat.mebibytes(synod?.join?.followerGrowthBytes), CompareFormat.mebibytes(etcd?.join?.followerGrowthBytes)])
                rows.append(["learner join: joiner peak RSS (MiB)", CompareFormat.mebibytes(synod?.join?.joinerPeakBytes), CompareFormat.mebibytes(etcd?.join?.joinerPeakBytes)])
                rows.append(["learner join: joiner's state on disk (MiB)", CompareFormat.mebibytes(synod?.join?.joinerStateBytes), CompareFormat.mebibytes(etcd?.join?.joinerStateBytes)])
                rows.append(["learner join: joiner peak / its state", Self.ratio(synod?.join), Self.ratio(etcd?.join)])
                rows.append(["learner join: puts acknowledged meanwhile", synod?.join.map { String($0.writesDuring) } ?? "-", etcd?.join.map { String($0.writesDuring) } ?? "-"])
            }
        }
        return CompareTable(title: "Servers", header: ["figure", "Synod", "etcd"], rows: rows, labelColumns: 1)
    }

    /// The joiner's peak RSS over the state it received (issue 16 asks at most 1.2).
    static func ratio(_ join: CompareJoin?) -> String {
        guard let peak = join?.joinerPeakBytes, let state = join?.joinerStateBytes, state > 0 else { return "-" }
        return String(format: "%.2f", Double(peak) / Double(state))
    }

    /// Per member: peak RSS after the workloads, RSS after the memory phase's load, restart errors.
    public var memberLines: [String] {
        var lines: [String] = []
        for system in CompareSystem.allCases {
            let peaks = members.filter { $0.system == system }
            if !peaks.isEmpty {
                lines.append("\(system.rawValue) peak RSS per member (MiB): " + peaks.map { "\($0.name) \(CompareFormat.mebibytes($0.peakRSSBytes))" }.joined(separator: ", "))
            }
            guard let phase = memoryPhase(system) else { continue }
            if !phase.afterLoad.isEmpty {
                lines.append("\(system.rawValue) RSS after loading \(phase.keys) keys (MiB): "
                    + phase.afterLoad.map { "\($0.name) \(CompareFormat.mebibytes($0.rssBytes))" }.joined(separator: ", ")
                    + (phase.restartedMember.map { "; restarted \($0)" } ?? ""))
            }
            if let error = phase.error { lines.append("\(system.rawValue) memory phase failed: \(error)") }
            if let error = phase.range?.error { lines.append("\(system.rawValue) range of all keys failed: \(error)") }
            if let error = phase.snapshotWrites?.error { lines.append("\(system.rawValue) puts during snapshots failed: \(error)") }
            if let error = phase.join?.error { lines.append("\(system.rawValue) join failed: \(error)") }
        }
        return lines
    }

    /// One line with the in-process baselines.
    public var baselinesLine: String? { baselines?.line }

    /// Lines describing the machine and the method.
    public var headerLines: [String] {
        var lines = [
            "date: \(machine.date)",
            "machine: \(machine.system); \(machine.cpuModel); \(machine.cores) cores; memory \(CompareFormat.mebibytes(machine.memoryBytes)) MiB",
            "etcd: \(machine.etcdVersion ?? (options.skipEtcd ? "skipped" : "unknown")); synod commit: \(machine.synodCommit ?? "unknown")",
            "method: 3-member clusters on loopback, fsync on, each member its own data dir under \(options.outDirectory); "
                + "\(options.rounds) round(s) x \(CompareFormat.seconds(options.durationSeconds)) s per row, rows alternate Synod then etcd\(options.tls ? " (each in plaintext, then with mTLS)" : ""); "
                + "median over rounds (throughput, p50 and p99 each); \(options.valueBytes)-byte values, \(options.keySpace) keys, up to \(options.conns) connections; "
                + "both clusters run throughout, the one not measured is idle (heartbeats only); the load generator runs in this process",
        ]
        lines.append(contentsOf: notes)
        return lines
    }

    /// What the command prints at the end.
    public var text: String {
        var parts = [headerLines.joined(separator: "\n") + "\n", resultsTable.text]
        if let cost = tlsCostTable { parts.append(cost.text) }
        if let line = baselinesLine { parts.append(line + "\n") }
        if let ceilings = ceilingsTable { parts.append(ceilings.text) }
        parts.append(serversTable.text)
        if !memberLines.isEmpty { parts.append(memberLines.joined(separator: "\n") + "\n") }
        return parts.joined(separator: "\n")
    }

    /// results.md.
    public var markdown: String {
        var parts = ["# synod bench compare\n", headerLines.map { "- " + $0 }.joined(separator: "\n") + "\n", resultsTable.markdown]
        if let cost = tlsCostTable { parts.append(cost.markdown) }
        if let line = baselinesLine { parts.append(line + "\n") }
        if let ceilings = ceilingsTable { parts.append(ceilings.markdown) }
        parts.append(serversTable.markdown)
        if !memberLines.isEmpty { parts.append(memberLines.map { "- " + $0 }.joined(separator: "\n") + "\n") }
        let failed = measurements.filter { $0.error != nil }
        if !failed.isEmpty {
            parts.append("### Failed measurements\n\n" + failed.map { "- round \($0.step.round) \($0.step.row) \($0.step.label): \($0.error ?? "")" }.joined(separator: "\n") + "\n")
        }
        return parts.joined(separator: "\n")
    }
}

extension CompareBaselines {
    /// One line with the in-process baselines.
    public var line: String? {
        var parts: [String] = []
        if let raw = rawFsyncPerSecond { parts.append("raw fdatasync \(CompareFormat.rate(raw))/s") }
        if let wal = walRecordsPerSecond {
            parts.append("Synod WAL with \(walWriters) writers \(CompareFormat.rate(wal)) records/s (\(CompareFormat.fraction(walRecordsPerSync)) per fsync)")
        }
        if let core = coreCommandsPerSecond {
            parts.append("pure core \(CompareFormat.rate(core)) commands/s (\(CompareFormat.fraction(coreCommandsPerSlot)) per slot)")
        }
        if let error { parts.append("baseline error: \(error)") }
        return parts.isEmpty ? nil : "Baselines (in-process, same disk): " + parts.joined(separator: "; ")
    }
}
