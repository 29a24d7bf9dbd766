import Foundation

/// The human summary of a run: what ran, throughput, latency percentiles in ms, errors by code.
public func renderText(_ result: BenchResult) -> String {
    let options = result.options
    var lines: [String] = []
    // `all` opens at least one connection per endpoint (see LoadGenerator.run).
    let conns = options.target == .all ? max(options.conns, result.targets.count) : options.conns
    var what = "synod bench \(options.workload.rawValue): "
    what += options.workload == .watch
        ? "\(options.watchers) watchers and 1 writer on \(conns) connections"
        : "\(options.clients) clients on \(conns) connections"
    switch options.workload {
    case .get: what += ", \(options.consistency.rawValue) reads"
    case .mixed: what += ", \(formatFixed(options.readRatio * 100, 0))% reads (\(options.consistency.rawValue))"
    case .watch: break
    case .put, .txnCAS: break
    }
    what += ", \(options.keySpace) keys, \(options.valueBytes)-byte values"
    what += options.rate.map { ", open loop at \(formatFixed($0, 0))/s" } ?? ", closed loop"
    lines.append(what)
    lines.append("targets:    \(result.targets.joined(separator: ", ")) (\(options.target.rawValue))")
    let unit = options.workload == .watch ? "events" : "requests"
    lines.append("\(unit):\(String(repeating: " ", count: max(1, 11 - unit.count - 1)))\(result.operations) in \(formatFixed(result.seconds, 2)) s")
    lines.append("throughput: \(formatFixed(result.throughput, 1)) \(unit)/s")
    if let casFailures = result.casFailures {
        lines.append("cas:        \(result.operations - casFailures) succeeded, \(casFailures) compare failures")
    }
    let latency = result.latency
    lines.append("latency ms: min \(ms(latency.minMicros))  mean \(ms(latency.meanMicros))  p50 \(ms(latency.p50Micros))  "
        + "p90 \(ms(latency.p90Micros))  p99 \(ms(latency.p99Micros))  p99.9 \(ms(latency.p999Micros))  max \(ms(latency.maxMicros))")
    if result.errors.isEmpty {
        lines.append("errors:     none")
    } else {
        let parts = result.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        lines.append("errors:     \(result.errors.values.reduce(0, +)) (\(parts.joined(separator: ", ")))")
    }
    return lines.joined(separator: "\n")
}

/// The JSON form of a run: `BenchResult` with sorted keys, so runs diff cleanly.
public func renderJSON(_ result: BenchResult) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(result), as: UTF8.self)
}

/// The live progress line (no newline): elapsed, completed, live throughput, errors.
public func renderProgress(_ progress: BenchProgress) -> String {
    var line = "\(formatFixed(progress.elapsedSeconds, 1))s"
    if let planned = progress.plannedSeconds { line += "/\(formatFixed(planned, 0))s" }
    line += "  \(progress.completed)"
    if let total = progress.plannedTotal { line += "/\(total)" }
    line += " done  \(formatFixed(progress.recentThroughput, 0))/s  errors \(progress.errors)"
    return line
}

/// Microseconds as milliseconds with 3 decimals.
private func ms(_ micros: Double) -> String { formatFixed(micros / 1_000, 3) }

/// `value` with exactly `decimals` decimals (locale-independent).
private func formatFixed(_ value: Double, _ decimals: Int) -> String {
    guard value.isFinite else { return String(value) }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = scaled / scale
    let integer = whole.rounded(.down)
    var text = (value < 0 && scaled > 0 ? "-" : "") + String(Int64(integer))
    if decimals > 0 {
        let fraction = Int64((scaled - integer * scale).rounded())
        let digits = String(fraction)
        text += "." + String(repeating: "0", count: max(0, decimals - digits.count)) + digits
    }
    return text
}
