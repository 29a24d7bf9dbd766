import Foundation

/// chart.png: p50 and p99 per row for both systems, drawn by gnuplot when it is installed.
enum CompareChart {
    /// The data file: one line per row (label, Synod p50, etcd p50, Synod p99, etcd p99 in ms;
    /// `NaN` where missing).
    static func data(_ report: CompareReport) -> String {
        func ms(_ micros: Double?) -> String { micros.map { String(format: "%.4f", $0 / 1_000) } ?? "NaN" }
        var lines = ["# row synod_p50_ms etcd_p50_ms synod_p99_ms etcd_p99_ms"]
        for line in report.summary {
            lines.append("\"\(line.label)\" \(ms(line.synod?.p50Micros)) \(ms(line.etcd?.p50Micros)) \(ms(line.synod?.p99Micros)) \(ms(line.etcd?.p99Micros))")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func script(dataPath: String, pngPath: String, title: String) -> String {
        """
        set terminal pngcairo size 1400,700 noenhanced
        set output '\(pngPath)'
        set title '\(title.replacingOccurrences(of: "'", with: ""))'
        set style data histogram
        set style histogram clustered gap 1
        set style fill solid 0.8 border -1
        set logscale y
        set ylabel 'latency (ms, log scale)'
        set xtics rotate by -30
        set key top left
        set grid ytics
        plot '\(dataPath)' using 2:xtic(1) title 'Synod p50', '' using 3 title 'etcd p50', '' using 4 title 'Synod p99', '' using 5 title 'etcd p99'

        """
    }

    /// Writes chart.png next to the results when gnuplot is on PATH; returns a note saying what happened.
    static func write(_ report: CompareReport, directory: String) -> String {
        guard let gnuplot = CompareMachineInfo.which("gnuplot") else {
            return "chart: gnuplot not found, no chart.png (apt-get install gnuplot-nox)"
        }
        let dataPath = directory + "/chart.dat"
        let scriptPath = directory + "/chart.gp"
        let pngPath = directory + "/chart.png"
        do {
            try Data(data(report).utf8).write(to: URL(fileURLWithPath: dataPath))
            let title = "synod bench compare: latency per workload (median of \(report.options.rounds) round(s))"
            try Data(script(dataPath: dataPath, pngPath: pngPath, title: title).utf8).write(to: URL(fileURLWithPath: scriptPath))
        } catch {
            return "chart: cannot write \(dataPath): \(error.localizedDescription)"
        }
        guard CompareMachineInfo.capture(gnuplot, [scriptPath]) != nil else {
            return "chart: gnuplot failed on \(scriptPath)"
        }
        return "chart: \(pngPath)"
    }
}
