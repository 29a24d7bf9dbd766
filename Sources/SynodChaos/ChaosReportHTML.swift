import Foundation

// index.html of a chaos report: one self-contained page (inline SVG, CSS and a few lines of JS;
// no external assets). Large histories are drawn with ops of at most one pixel aggregated per
// client per pixel column, so a 30-minute run stays a few megabytes; violation and lost
// operations are always drawn one by one.

/// Appends HTML to one growing string; text is escaped on the way in.
struct HTMLBuilder {
    private(set) var out: String

    init(capacity: Int) {
        out = ""
        out.reserveCapacity(capacity)
    }

    /// Appends markup as is (only for literals and numbers, never for outside text).
    mutating func raw(_ markup: String) { out.append(markup) }

    /// Appends text escaped for HTML/XML content and attribute values. Control characters XML
    /// forbids become U+FFFD.
    mutating func text(_ text: String) {
        var clean = true
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "&"), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "\""), UInt8(ascii: "'"),
                 0x7F:
                clean = false
            case 0x09, 0x0A, 0x0D:
                break
            case 0x00..<0x20:
                clean = false
            default:
                break
            }
            if !clean { break }
        }
        if clean {
            out.append(text)
            return
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out.append("&amp;")
            case "<": out.append("&lt;")
            case ">": out.append("&gt;")
            case "\"": out.append("&quot;")
            case "'": out.append("&#39;")
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out.append("\u{FFFD}")
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
    }

    /// Appends a coordinate with at most one decimal.
    mutating func num(_ value: Double) {
        guard value.isFinite else {
            out.append("0")
            return
        }
        let tenths = Int((value * 10).rounded())
        if tenths < 0 { out.append("-") }
        let magnitude = tenths.magnitude
        out.append(String(magnitude / 10))
        let fraction = magnitude % 10
        if fraction != 0 {
            out.append(".")
            out.append(String(fraction))
        }
    }

    mutating func int(_ value: Int) { out.append(String(value)) }
}

/// Renders the report page. Pure: no I/O.
struct ChaosHTMLRenderer {
    let operations: [ChaosOperation]
    let nemesis: [NemesisEvent]
    let verdict: ChaosVerdict
    let nodeNames: [String]
    let title: String

    // Layout (pixels).
    static let svgWidth = 1600
    static let plotLeft = 64.0
    static let plotColumns = 1500
    static let laneHeight = 16.0
    static let nodeRowHeight = 12.0
    /// Above this many operations, ops at most one pixel wide are aggregated.
    static let aggregationThreshold = 20_000
    /// Longest key/value/error text shown in a tooltip.
    static let tooltipTextLimit = 160
    /// Longest text shown in the tables below the plot.
    static let tableTextLimit = 2000

    private var plotWidth: Double { Double(Self.plotColumns) }

    func render() -> String {
        let highlighted = Set(verdict.violationOperationIDs).union(verdict.lostOperationIDs)
        let aggregate = operations.count > Self.aggregationThreshold
        let estimate = 64 * 1024 + (aggregate ? 4 * 1024 * 1024 : operations.count * 260)
            + nemesis.count * 600 + highlighted.count * 1200
        var html = HTMLBuilder(capacity: estimate)

        html.raw("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>")
        html.text(title)
        html.raw("</title>\n<style>\n")
        html.raw(Self.css)
        html.raw("</style>\n</head>\n<body>\n<h1>")
        html.text(title)
        html.raw("</h1>\n")
        renderHeader(&html)
        html.raw("<h2>Timeline</h2>\n")
        renderLegend(&html, aggregate: aggregate)
        html.raw("<div class=\"scroll\">\n")
        renderTimeline(&html, highlighted: highlighted, aggregate: aggregate)
        html.raw("</div>\n")
        renderBadOperations(&html, highlighted: highlighted)
        renderNemesisTable(&html)
        html.raw("<script>\n")
        html.raw(Self.script)
        html.raw("</script>\n</body>\n</html>\n")
        return html.out
    }

    // MARK: - Time scale

    /// The end of the plot: the run's duration, or the last recorded time if later.
    private var endNanos: UInt64 {
        var end: UInt64 = 0
        if verdict.durationSeconds.isFinite, verdict.durationSeconds > 0, verdict.durationSeconds < 1e9 {
            end = UInt64(verdict.durationSeconds * 1e9)
        }
        for op in operations {
            end = max(end, op.completedNanos ?? op.invokedNanos, op.invokedNanos)
        }
        for event in nemesis {
            end = max(end, event.endNanos ?? event.startNanos, event.startNanos)
        }
        return max(end, 1)
    }

    private func nodeName(_ index: Int) -> String {
        index >= 0 && index < nodeNames.count ? nodeNames[index] : "n\(index + 1)"
    }

    // MARK: - Header

    private func renderHeader(_ html: inout HTMLBuilder) {
        html.raw("<div id=\"verdict\" class=\"verdict ")
        html.raw(verdict.failed ? "failed" : "passed")
        html.raw("\">")
        html.text(verdict.line.isEmpty ? (verdict.failed ? "FAILED" : "passed") : verdict.line)
        html.raw("</div>\n<p class=\"meta\">seed <b>")
        html.raw(String(verdict.seed))
        html.raw("</b> · duration <b>")
        html.raw(ChaosReportWriter.formatSeconds(verdict.durationSeconds))
        html.raw(" s</b> · operations <b>")
        html.int(operations.count)
        html.raw("</b> · nemesis events <b>")
        html.int(nemesis.count)
        html.raw("</b> · linearizable <b>")
        html.raw(verdict.linearizable.map { $0 ? "true" : "false" } ?? "unknown")
        html.raw("</b> · lost acknowledged writes <b>")
        html.int(verdict.lostAcknowledgedWrites)
        html.raw("</b> · replica hashes <b>")
        html.raw(verdict.replicaHashesEqual ? "equal" : "DIFFERENT")
        html.raw("</b></p>\n")
        if !verdict.checkTimedOutKeys.isEmpty {
            html.raw("<p class=\"warn\">The checker ran out of budget on keys: ")
            html.text(clip(verdict.checkTimedOutKeys.joined(separator: ", "), Self.tableTextLimit))
            html.raw("</p>\n")
        }

        html.raw("<div class=\"boxes\">\n")

        // Operation counts by kind and status.
        var counts = verdict.operationCounts
        if counts.isEmpty {
            for op in operations {
                counts[op.kind.rawValue, default: [:]][op.status.rawValue, default: 0] += 1
            }
        }
        let statuses = ChaosOperationStatus.allCases.map(\.rawValue)
        html.raw("<table id=\"counts\"><caption>operations</caption>\n<tr><th>kind</th>")
        for status in statuses {
            html.raw("<th>")
            html.text(status)
            html.raw("</th>")
        }
        html.raw("<th>total</th></tr>\n")
        var columnTotals = [Int](repeating: 0, count: statuses.count + 1)
        for kind in ChaosReportWriter.orderedKinds(counts) {
            let byStatus = counts[kind] ?? [:]
            html.raw("<tr><th>")
            html.text(kind)
            html.raw("</th>")
            var total = 0
            for (index, status) in statuses.enumerated() {
                let count = byStatus[status] ?? 0
                total += count
                columnTotals[index] += count
                html.raw("<td>")
                html.int(count)
                html.raw("</td>")
            }
            total += byStatus.filter { !statuses.contains($0.key) }.values.reduce(0, +)
            columnTotals[statuses.count] += total
            html.raw("<td>")
            html.int(total)
            html.raw("</td></tr>\n")
        }
        html.raw("<tr class=\"total\"><th>total</th>")
        for total in columnTotals {
            html.raw("<td>")
            html.int(total)
            html.raw("</td>")
        }
        html.raw("</tr>\n</table>\n")

        // Nemesis counts.
        var nemesisCounts = verdict.nemesisCounts
        if nemesisCounts.isEmpty {
            for event in nemesis { nemesisCounts[event.kind, default: 0] += 1 }
        }
        html.raw("<table id=\"nemesis-counts\"><caption>nemesis</caption>\n<tr><th>kind</th><th>count</th></tr>\n")
        for (kind, count) in nemesisCounts.sorted(by: { $0.key < $1.key }) {
            html.raw("<tr><th><span class=\"swatch\" style=\"background:")
            html.raw(Self.nemesisColour(kind))
            html.raw("\"></span>")
            html.text(kind)
            html.raw("</th><td>")
            html.int(count)
            html.raw("</td></tr>\n")
        }
        if nemesisCounts.isEmpty { html.raw("<tr><td colspan=\"2\">none</td></tr>\n") }
        html.raw("</table>\n")

        // Replica hashes and node logs.
        html.raw("<table id=\"nodes\"><caption>nodes (hashes at revision ")
        html.raw(String(verdict.hashRevision))
        html.raw(")</caption>\n<tr><th>node</th><th>hash</th><th>log</th></tr>\n")
        var names = nodeNames
        for name in verdict.replicaHashes.keys.sorted(by: ChaosReportWriter.naturalLess) where !names.contains(name) {
            names.append(name)
        }
        for name in names {
            html.raw("<tr><th>")
            html.text(name)
            html.raw("</th><td class=\"mono\">")
            if let hash = verdict.replicaHashes[name] {
                html.raw(ChaosReportWriter.hex32(hash))
            } else {
                html.raw("—")
            }
            html.raw("</td><td>")
            if nodeNames.contains(name) {
                let file = name + ".log"
                let encoded = file.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? file
                html.raw("<a class=\"node-log\" href=\"nodes/")
                html.text(encoded.replacingOccurrences(of: "/", with: "%2F"))
                html.raw("\">nodes/")
                html.text(file)
                html.raw("</a>")
            }
            html.raw("</td></tr>\n")
        }
        html.raw("</table>\n")

        // Alarms.
        html.raw("<table id=\"alarms\"><caption>alarms</caption>\n")
        if verdict.alarms.isEmpty {
            html.raw("<tr><td>none</td></tr>\n")
        } else {
            for alarm in verdict.alarms {
                html.raw("<tr><td class=\"bad-text\">")
                html.text(clip(alarm, Self.tableTextLimit))
                html.raw("</td></tr>\n")
            }
        }
        html.raw("</table>\n</div>\n")

        if let violation = verdict.violation {
            html.raw("<h3>Violation</h3>\n<pre id=\"violation\">")
            html.text(violation)
            html.raw("</pre>\n")
        }
    }

    private func renderLegend(_ html: inout HTMLBuilder, aggregate: Bool) {
        html.raw("<div class=\"legend\">")
        let statusItems: [(String, String)] = [
            ("r", "ok read"), ("w", "ok write / cas / delete"), ("f", "fail"), ("u", "unknown (to end of run)"),
            ("bad", "violation / lost"),
        ]
        for (cls, label) in statusItems {
            html.raw("<span><svg width=\"14\" height=\"10\"><rect width=\"14\" height=\"10\" class=\"")
            html.raw(cls)
            html.raw("\"/></svg> ")
            html.raw(label)
            html.raw("</span>")
        }
        let kinds = Set(nemesis.map(\.kind)).sorted()
        for kind in kinds {
            html.raw("<span><span class=\"swatch band\" style=\"background:")
            html.raw(Self.nemesisColour(kind))
            html.raw("\"></span>")
            html.text(kind)
            html.raw("</span>")
        }
        html.raw("</div>\n")
        if aggregate {
            html.raw("<p class=\"note\">")
            html.int(operations.count)
            html.raw(" operations: those at most one pixel wide are aggregated per client per pixel column, "
                + "coloured by the worst status in the column (unknown &gt; fail &gt; ok write &gt; ok read); "
                + "unknown operations are shown at their invocation. Violation and lost operations are drawn "
                + "one by one.</p>\n")
        }
    }

    // MARK: - Timeline

    private func renderTimeline(_ html: inout HTMLBuilder, highlighted: Set<Int>, aggregate: Bool) {
        let end = endNanos
        let endDouble = Double(end)
        let left = Self.plotLeft
        let width = plotWidth
        func x(_ nanos: UInt64) -> Double { left + Double(min(nanos, end)) / endDouble * width }

        let clients = Array(Set(operations.map(\.client))).sorted()
        var laneOf: [Int: Int] = [:]
        for (lane, client) in clients.enumerated() { laneOf[client] = lane }
        let maxNode = nemesis.flatMap(\.nodes).filter { $0 >= 0 && $0 < 10_000 }.max() ?? -1
        let nodeCount = max(nodeNames.count, maxNode + 1)

        let axisHeight = 22.0
        let faultRowTop = axisHeight + 4
        let nodeTop = faultRowTop + Self.nodeRowHeight + 2
        let nodeBottom = nodeTop + Double(nodeCount) * Self.nodeRowHeight
        let clientTop = nodeBottom + (nodeCount > 0 ? 12 : 0)
        let laneCount = max(clients.count, 1)
        let clientBottom = clientTop + Double(laneCount) * Self.laneHeight
        let height = clientBottom + axisHeight + 4
        let endSeconds = endDouble / 1e9

        html.raw("<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"")
        html.int(Self.svgWidth)
        html.raw("\" height=\"")
        html.num(height)
        html.raw("\" viewBox=\"0 0 ")
        html.int(Self.svgWidth)
        html.raw(" ")
        html.num(height)
        html.raw("\" data-left=\"")
        html.num(left)
        html.raw("\" data-plot-width=\"")
        html.num(width)
        html.raw("\" data-end-seconds=\"")
        html.raw(String(endSeconds))
        html.raw("\">\n<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
            + "patternTransform=\"rotate(45)\"><rect width=\"3\" height=\"6\" fill=\"#f39c12\" fill-opacity=\"0.6\"/>"
            + "</pattern></defs>\n<style>\n")
        html.raw(Self.svgCSS)
        html.raw("</style>\n")

        // The fault row (every nemesis event), node rows and client lanes: backgrounds and labels.
        html.raw("<rect class=\"row faults\" x=\"")
        html.num(left)
        html.raw("\" y=\"")
        html.num(faultRowTop)
        html.raw("\" width=\"")
        html.num(width)
        html.raw("\" height=\"")
        html.num(Self.nodeRowHeight)
        html.raw("\"/><text class=\"label\" x=\"")
        html.num(left - 6)
        html.raw("\" y=\"")
        html.num(faultRowTop + Self.nodeRowHeight - 2.5)
        html.raw("\">faults</text>\n")
        for node in 0..<nodeCount {
            let y = nodeTop + Double(node) * Self.nodeRowHeight
            html.raw("<rect class=\"row")
            html.raw(node % 2 == 0 ? "" : " odd")
            html.raw("\" x=\"")
            html.num(left)
            html.raw("\" y=\"")
            html.num(y)
            html.raw("\" width=\"")
            html.num(width)
            html.raw("\" height=\"")
            html.num(Self.nodeRowHeight)
            html.raw("\"/><text class=\"label node-label\" x=\"")
            html.num(left - 6)
            html.raw("\" y=\"")
            html.num(y + Self.nodeRowHeight - 2.5)
            html.raw("\">")
            html.text(nodeName(node))
            html.raw("</text>\n")
        }
        for lane in 0..<laneCount {
            let y = clientTop + Double(lane) * Self.laneHeight
            html.raw("<rect class=\"row lane")
            html.raw(lane % 2 == 0 ? "" : " odd")
            html.raw("\" x=\"")
            html.num(left)
            html.raw("\" y=\"")
            html.num(y)
            html.raw("\" width=\"")
            html.num(width)
            html.raw("\" height=\"")
            html.num(Self.laneHeight)
            html.raw("\"/>")
            if lane < clients.count {
                html.raw("<text class=\"label lane-label\" x=\"")
                html.num(left - 6)
                html.raw("\" y=\"")
                html.num(y + Self.laneHeight - 4)
                html.raw("\">c")
                html.int(clients[lane])
                html.raw("</text>")
            }
            html.raw("\n")
        }
        if clients.isEmpty {
            html.raw("<text class=\"label\" x=\"")
            html.num(left + 6)
            html.raw("\" y=\"")
            html.num(clientTop + Self.laneHeight - 4)
            html.raw("\" text-anchor=\"start\">no operations</text>\n")
        }

        // Time axis (top and bottom) and grid.
        let step = Self.tickStep(seconds: endSeconds)
        var tick = 0.0
        while tick <= endSeconds + step * 1e-9 {
            let tx = left + tick / endSeconds * width
            html.raw("<line class=\"grid\" x1=\"")
            html.num(tx)
            html.raw("\" x2=\"")
            html.num(tx)
            html.raw("\" y1=\"")
            html.num(faultRowTop)
            html.raw("\" y2=\"")
            html.num(clientBottom)
            html.raw("\"/>")
            for ty in [axisHeight - 6, clientBottom + axisHeight - 6] {
                html.raw("<text class=\"tick\" x=\"")
                html.num(tx)
                html.raw("\" y=\"")
                html.num(ty)
                html.raw("\">")
                html.raw(Self.tickLabel(tick, step: step))
                html.raw("</text>")
            }
            html.raw("\n")
            tick += step
        }

        // Every event in the fault row and its nodes' rows, with a tooltip. The shading of the client
        // lanes (windows) and the lines (instants) are drawn over the operations later.
        var bands: [NemesisEvent] = []
        var instants: [NemesisEvent] = []
        html.raw("<g class=\"nemesis\">\n")
        for event in nemesis.sorted(by: { ($0.startNanos, $0.id) < ($1.startNanos, $1.id) }) {
            let colour = Self.nemesisColour(event.kind)
            let x0 = x(event.startNanos)
            let isInstant = event.endNanos.map { $0 <= event.startNanos } ?? true
            let x1 = isInstant ? x0 : x(event.endNanos ?? event.startNanos)
            if isInstant { instants.append(event) } else { bands.append(event) }
            let tooltip = eventTooltip(event)
            var attributes = HTMLBuilder(capacity: 64)
            attributes.raw(" data-event=\"")
            attributes.int(event.id)
            attributes.raw("\" data-kind=\"")
            attributes.text(event.kind)
            attributes.raw("\"")
            faultRect(&html, className: "fault-mark", attributes: attributes.out, x0: x0, x1: x1, instant: isInstant,
                      top: faultRowTop, colour: colour, tooltip: tooltip)
            // The node strip: one row per affected node.
            for node in event.nodes where node >= 0 && node < nodeCount {
                faultRect(&html, className: "node-fault", attributes: "", x0: x0, x1: x1, instant: isInstant,
                          top: nodeTop + Double(node) * Self.nodeRowHeight, colour: colour, tooltip: tooltip)
            }
        }
        html.raw("</g>\n")

        // Operations.
        let xEnd = left + width
        var bad: [ChaosOperation] = []
        let columns = Self.plotColumns
        // Aggregation state: the worst category per (lane, column) (0 = empty, else category + 1),
        // and counts per (lane, column, category).
        var worst = [UInt8](repeating: 0, count: aggregate ? laneCount * columns : 0)
        var counts = [Int32](repeating: 0, count: aggregate ? laneCount * columns * 4 : 0)

        html.raw("<g class=\"ops\">\n")
        // Open (unknown / unfinished) operations first so finished ones are drawn over them.
        for pass in 0..<2 {
            for op in operations {
                if highlighted.contains(op.id) {
                    if pass == 0 { bad.append(op) }
                    continue
                }
                let isOpen = op.status == .unknown || op.completedNanos == nil
                if (pass == 0) != isOpen { continue }
                let lane = laneOf[op.client] ?? 0
                let x0 = x(op.invokedNanos)
                let x1 = isOpen ? xEnd : x(op.completedNanos ?? op.invokedNanos)
                let category = Self.category(op)
                if aggregate && (isOpen || x1 - x0 <= 1) {
                    let first = min(max(Int(x0 - left), 0), columns - 1)
                    let last = isOpen ? first : min(max(Int(x1 - left), first), columns - 1)
                    for column in first...last {
                        let cell = lane * columns + column
                        worst[cell] = max(worst[cell], UInt8(category + 1))
                    }
                    counts[(lane * columns + first) * 4 + category] += 1
                    continue
                }
                let y = clientTop + Double(lane) * Self.laneHeight
                if isOpen {
                    html.raw("<g class=\"open\"><title>")
                    html.text(operationTooltip(op))
                    html.raw("</title><rect class=\"")
                    html.raw(op.status == .unknown ? "t" : Self.categoryClass(category) + " faded")
                    html.raw("\" x=\"")
                    html.num(x0)
                    html.raw("\" y=\"")
                    html.num(y + 12)
                    html.raw("\" width=\"")
                    html.num(max(x1 - x0, 1))
                    html.raw("\" height=\"3\"/><rect class=\"")
                    html.raw(Self.categoryClass(category))
                    html.raw("\" x=\"")
                    html.num(x0)
                    html.raw("\" y=\"")
                    html.num(y + 1)
                    html.raw("\" width=\"2\" height=\"10\"/></g>\n")
                } else {
                    html.raw("<rect class=\"")
                    html.raw(Self.categoryClass(category))
                    html.raw("\" x=\"")
                    html.num(x0)
                    html.raw("\" y=\"")
                    html.num(y + 1)
                    html.raw("\" width=\"")
                    html.num(max(x1 - x0, 1))
                    html.raw("\" height=\"10\"><title>")
                    html.text(operationTooltip(op))
                    html.raw("</title></rect>\n")
                }
            }
        }
        html.raw("</g>\n")

        if aggregate {
            html.raw("<g class=\"agg\">\n")
            for lane in 0..<laneCount {
                let y = clientTop + Double(lane) * Self.laneHeight
                var column = 0
                while column < columns {
                    let value = worst[lane * columns + column]
                    if value == 0 {
                        column += 1
                        continue
                    }
                    let start = column
                    var sums = [Int](repeating: 0, count: 4)
                    while column < columns && worst[lane * columns + column] == value {
                        for category in 0..<4 { sums[category] += Int(counts[(lane * columns + column) * 4 + category]) }
                        column += 1
                    }
                    html.raw("<rect class=\"")
                    html.raw(Self.categoryClass(Int(value) - 1))
                    html.raw("\" x=\"")
                    html.num(left + Double(start))
                    html.raw("\" y=\"")
                    html.num(y + 1)
                    html.raw("\" width=\"")
                    html.int(column - start)
                    html.raw("\" height=\"10\"><title>")
                    let from = Double(start) / width * endSeconds
                    let to = Double(column) / width * endSeconds
                    var tooltip = lane < clients.count ? "c\(clients[lane])" : "?"
                    tooltip += " · \(ChaosReportWriter.formatSeconds(from))–\(ChaosReportWriter.formatSeconds(to)) s · "
                    tooltip += "\(sums.reduce(0, +)) ops"
                    let parts = zip(Self.categoryNames, sums).filter { $0.1 > 0 }.map { "\($0.1) \($0.0)" }
                    if !parts.isEmpty { tooltip += " (" + parts.joined(separator: ", ") + ")" }
                    html.text(tooltip)
                    html.raw("</title></rect>\n")
                }
            }
            html.raw("</g>\n")
        }

        // Fault windows shade the client lanes (over the operations, so they show on busy lanes).
        html.raw("<g class=\"bands\">\n")
        for event in bands {
            let x0 = x(event.startNanos)
            let x1 = x(event.endNanos ?? event.startNanos)
            html.raw("<rect class=\"nemesis-band\" data-event=\"")
            html.int(event.id)
            html.raw("\" data-kind=\"")
            html.text(event.kind)
            html.raw("\" x=\"")
            html.num(x0)
            html.raw("\" y=\"")
            html.num(clientTop)
            html.raw("\" width=\"")
            html.num(max(x1 - x0, 1))
            html.raw("\" height=\"")
            html.num(clientBottom - clientTop)
            html.raw("\" fill=\"")
            html.raw(Self.nemesisColour(event.kind))
            html.raw("\"/>\n")
        }
        html.raw("</g>\n")

        // Violation and lost operations, always one by one, on top.
        html.raw("<g class=\"bad-ops\">\n")
        for op in bad {
            let lane = laneOf[op.client] ?? 0
            let y = clientTop + Double(lane) * Self.laneHeight
            let isOpen = op.status == .unknown || op.completedNanos == nil
            let x0 = x(op.invokedNanos)
            let x1 = isOpen ? xEnd : x(op.completedNanos ?? op.invokedNanos)
            html.raw("<rect class=\"bad")
            html.raw(isOpen ? " faded" : "")
            html.raw("\" data-op=\"")
            html.int(op.id)
            html.raw("\" x=\"")
            html.num(min(x0, xEnd - 3))
            html.raw("\" y=\"")
            html.num(y + 0.5)
            html.raw("\" width=\"")
            html.num(max(x1 - x0, 3))
            html.raw("\" height=\"")
            html.num(Self.laneHeight - 1)
            html.raw("\"><title>")
            html.text(operationTooltip(op))
            html.raw("</title></rect>\n")
        }
        html.raw("</g>\n")

        // Instant nemesis actions as thin lines over everything.
        html.raw("<g class=\"instants\">\n")
        for event in instants {
            let x0 = x(event.startNanos)
            html.raw("<line class=\"nemesis-instant\" data-event=\"")
            html.int(event.id)
            html.raw("\" data-kind=\"")
            html.text(event.kind)
            html.raw("\" x1=\"")
            html.num(x0)
            html.raw("\" x2=\"")
            html.num(x0)
            html.raw("\" y1=\"")
            html.num(clientTop)
            html.raw("\" y2=\"")
            html.num(clientBottom)
            html.raw("\" stroke=\"")
            html.raw(Self.nemesisColour(event.kind))
            html.raw("\"><title>")
            html.text(eventTooltip(event))
            html.raw("</title></line>\n")
        }
        html.raw("</g>\n")

        // The cursor (moved by the script).
        html.raw("<line id=\"cursor\" x1=\"0\" x2=\"0\" y1=\"")
        html.num(faultRowTop)
        html.raw("\" y2=\"")
        html.num(clientBottom)
        html.raw("\" style=\"display:none\"/><text id=\"cursor-label\" x=\"0\" y=\"")
        html.num(faultRowTop + 9)
        html.raw("\" style=\"display:none\"></text>\n</svg>\n")
    }

    // MARK: - Tables below the plot

    private func renderBadOperations(_ html: inout HTMLBuilder, highlighted: Set<Int>) {
        guard !highlighted.isEmpty else { return }
        let violating = Set(verdict.violationOperationIDs)
        let lost = Set(verdict.lostOperationIDs)
        var byID: [Int: ChaosOperation] = [:]
        for op in operations where highlighted.contains(op.id) { byID[op.id] = op }

        html.raw("<h2 id=\"bad\">Violation and lost operations</h2>\n<table class=\"list\" id=\"bad-ops\">\n<tr>"
            + "<th>id</th><th>why</th><th>client</th><th>kind</th><th>key</th><th>value</th><th>expected</th>"
            + "<th>read</th><th>cas</th><th>status</th><th>error</th><th>invoked ms</th><th>completed ms</th>"
            + "<th>revision</th><th>endpoint</th></tr>\n")
        for id in highlighted.sorted() {
            var why: [String] = []
            if violating.contains(id) { why.append("violation") }
            if lost.contains(id) { why.append("lost") }
            html.raw("<tr class=\"bad-op\" id=\"op-")
            html.int(id)
            html.raw("\"><td>")
            html.int(id)
            html.raw("</td><td>")
            html.raw(why.joined(separator: ", "))
            html.raw("</td>")
            guard let op = byID[id] else {
                html.raw("<td colspan=\"13\">not in the history</td></tr>\n")
                continue
            }
            let cells: [String?] = [
                "c\(op.client)", op.kind.rawValue, op.key, op.value, op.expected, op.readValue,
                op.casSucceeded.map { $0 ? "succeeded" : "failed" }, op.status.rawValue, op.error,
                Self.millis(op.invokedNanos), op.completedNanos.map(Self.millis),
                op.revision.map { op.modRevision.map { mod in "\(op.revision ?? 0) (mod \(mod))" } ?? String($0) },
                op.endpoint,
            ]
            for cell in cells {
                html.raw("<td>")
                if let cell {
                    html.text(clip(cell, Self.tableTextLimit))
                } else {
                    html.raw("<i>nil</i>")
                }
                html.raw("</td>")
            }
            html.raw("</tr>\n")
        }
        html.raw("</table>\n")
    }

    private func renderNemesisTable(_ html: inout HTMLBuilder) {
        html.raw("<h2>Nemesis events</h2>\n<table class=\"list\" id=\"nemesis-events\">\n<tr><th>id</th>"
            + "<th>start s</th><th>end s</th><th>duration s</th><th>kind</th><th>nodes</th><th>detail</th></tr>\n")
        for event in nemesis.sorted(by: { ($0.startNanos, $0.id) < ($1.startNanos, $1.id) }) {
            html.raw("<tr><td>")
            html.int(event.id)
            html.raw("</td><td>")
            html.raw(Self.seconds(event.startNanos))
            html.raw("</td><td>")
            if let end = event.endNanos {
                html.raw(Self.seconds(end))
                html.raw("</td><td>")
                html.raw(end >= event.startNanos ? Self.seconds(end - event.startNanos) : "—")
            } else {
                html.raw("—</td><td>instant")
            }
            html.raw("</td><td><span class=\"swatch\" style=\"background:")
            html.raw(Self.nemesisColour(event.kind))
            html.raw("\"></span>")
            html.text(event.kind)
            html.raw("</td><td>")
            html.text(event.nodes.map(nodeName).joined(separator: ", "))
            html.raw("</td><td>")
            html.text(clip(event.detail, Self.tableTextLimit))
            html.raw("</td></tr>\n")
        }
        if nemesis.isEmpty { html.raw("<tr><td colspan=\"7\">none</td></tr>\n") }
        html.raw("</table>\n")
    }

    // MARK: - Text helpers

    private func operationTooltip(_ op: ChaosOperation) -> String {
        var text = "#\(op.id) c\(op.client) \(op.kind.rawValue) \(op.status.rawValue)"
        if op.final { text += " (final read)" }
        text += "\nkey: " + clip(op.key, Self.tooltipTextLimit)
        if let value = op.value { text += "\nvalue: " + clip(value, Self.tooltipTextLimit) }
        if op.kind == .cas { text += "\nexpected: " + (op.expected.map { clip($0, Self.tooltipTextLimit) } ?? "(absent)") }
        if op.kind == .read && op.status == .ok {
            text += "\nread: " + (op.readValue.map { clip($0, Self.tooltipTextLimit) } ?? "(absent)")
        }
        if let succeeded = op.casSucceeded { text += "\ncas: " + (succeeded ? "succeeded" : "failed") }
        if let error = op.error { text += "\nerror: " + clip(error, Self.tooltipTextLimit) }
        text += "\ninvoked: " + Self.millis(op.invokedNanos) + " ms"
        if let completed = op.completedNanos {
            text += "\ncompleted: " + Self.millis(completed) + " ms"
            if completed >= op.invokedNanos { text += " (" + Self.millis(completed - op.invokedNanos) + " ms)" }
        }
        if let revision = op.revision { text += "\nrevision: \(revision)" }
        if let modRevision = op.modRevision { text += " mod: \(modRevision)" }
        if let endpoint = op.endpoint { text += "\nendpoint: " + clip(endpoint, Self.tooltipTextLimit) }
        return text
    }

    /// One fault mark in a row starting at `top`: a band from `x0` to `x1`, or a thin line for an
    /// instant event, with the event's tooltip.
    private func faultRect(_ html: inout HTMLBuilder, className: String, attributes: String, x0: Double, x1: Double,
                           instant: Bool, top: Double, colour: String, tooltip: String) {
        html.raw("<rect class=\"")
        html.raw(className)
        html.raw("\"")
        html.raw(attributes)
        html.raw(" x=\"")
        html.num(instant ? x0 - 1 : x0)
        html.raw("\" y=\"")
        html.num(top + 1)
        html.raw("\" width=\"")
        html.num(instant ? 2 : max(x1 - x0, 2))
        html.raw("\" height=\"")
        html.num(Self.nodeRowHeight - 2)
        html.raw("\" fill=\"")
        html.raw(colour)
        html.raw("\"><title>")
        html.text(tooltip)
        html.raw("</title></rect>\n")
    }

    private func eventTooltip(_ event: NemesisEvent) -> String {
        var text = "#\(event.id) \(event.kind)"
        if !event.nodes.isEmpty { text += " " + event.nodes.map(nodeName).joined(separator: ", ") }
        if !event.detail.isEmpty { text += "\n" + clip(event.detail, Self.tableTextLimit) }
        text += "\n" + Self.seconds(event.startNanos) + " s"
        if let end = event.endNanos, end > event.startNanos {
            text += " – " + Self.seconds(end) + " s (" + Self.seconds(end - event.startNanos) + " s)"
        }
        return text
    }

    private func clip(_ text: String, _ limit: Int) -> String {
        if text.utf8.count <= limit { return text }
        return String(text.prefix(limit)) + "… (\(text.utf8.count) bytes)"
    }

    static func millis(_ nanos: UInt64) -> String {
        let fraction = String(nanos % 1_000_000 / 1000)
        return String(nanos / 1_000_000) + "." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    static func seconds(_ nanos: UInt64) -> String {
        let fraction = String(nanos % 1_000_000_000 / 1_000_000)
        return String(nanos / 1_000_000_000) + "." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    /// 0 ok read, 1 ok write/cas/delete, 2 fail, 3 unknown: higher is worse.
    static func category(_ op: ChaosOperation) -> Int {
        switch op.status {
        case .ok: return op.kind == .read ? 0 : 1
        case .fail: return 2
        case .unknown: return 3
        }
    }

    static let categoryNames = ["ok read", "ok write", "fail", "unknown"]

    static func categoryClass(_ category: Int) -> String {
        switch category {
        case 0: return "r"
        case 1: return "w"
        case 2: return "f"
        default: return "u"
        }
    }

    static func nemesisColour(_ kind: String) -> String {
        let kind = kind.lowercased()
        if kind.hasPrefix("crash") { return "#8b0000" }
        if kind.hasPrefix("kill") { return "#e4572e" }
        if kind.hasPrefix("pause") { return "#8e44ad" }
        if kind.hasPrefix("stall") { return "#c026d3" }
        if kind.hasPrefix("partition") { return "#2563eb" }
        if kind.hasPrefix("failpoint") { return "#e5b800" }
        if kind.hasPrefix("netem") || kind.hasPrefix("delay") || kind.hasPrefix("loss") { return "#0f9d8f" }
        if kind == "member-skip" { return "#9ca3af" }
        if kind.hasPrefix("member-add") || kind.hasPrefix("member-promote") { return "#16a34a" }
        if kind.hasPrefix("member-remove") { return "#b45309" }
        if kind.hasPrefix("move-leader") { return "#db2777" }
        return "#6b7280"
    }

    static func tickStep(seconds: Double) -> Double {
        let steps: [Double] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120,
                               300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400]
        for step in steps where seconds / step <= 16 { return step }
        return max(seconds / 16, 1)
    }

    static func tickLabel(_ value: Double, step: Double) -> String {
        if step >= 1 { return String(Int(value.rounded())) + "s" }
        let decimals = step >= 0.1 ? 1 : (step >= 0.01 ? 2 : 3)
        let scale = decimals == 1 ? 10.0 : (decimals == 2 ? 100.0 : 1000.0)
        let scaled = Int((value * scale).rounded())
        let fraction = String(scaled % Int(scale))
        return String(scaled / Int(scale)) + "." + String(repeating: "0", count: decimals - fraction.count) + fraction + "s"
    }

    // MARK: - Static assets

    static let css = """
        body{font:13px/1.4 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:16px;color:#1f2937}
        h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:20px 0 6px}h3{font-size:14px;margin:12px 0 4px}
        .verdict{font:600 14px/1.4 ui-monospace,Menlo,Consolas,monospace;padding:8px 12px;border-radius:4px;color:#fff;white-space:pre-wrap}
        .verdict.passed{background:#15803d}.verdict.failed{background:#b91c1c}
        .meta{margin:6px 0}.warn{color:#b45309}.note{color:#6b7280;margin:4px 0}.bad-text{color:#b91c1c}
        .boxes{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
        table{border-collapse:collapse}caption{text-align:left;font-weight:600;padding:2px 0}
        th,td{border:1px solid #d1d5db;padding:2px 6px;text-align:right;vertical-align:top}
        th:first-child{text-align:left}tr.total td,tr.total th{font-weight:600}
        table.list td{text-align:left;max-width:420px;word-break:break-all;white-space:pre-wrap}
        tr.bad-op td{background:#fee2e2}.mono,pre{font-family:ui-monospace,Menlo,Consolas,monospace}
        pre{background:#f3f4f6;padding:8px;white-space:pre-wrap;word-break:break-all}
        .swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
        .swatch.band{opacity:.5}.legend span{margin-right:14px;white-space:nowrap}.legend svg{vertical-align:middle}
        .scroll{overflow-x:auto}

        """

    /// Styles of the timeline, inside the SVG so it also renders on its own.
    static let svgCSS = """
        .row{fill:#f9fafb}.row.odd{fill:#f1f5f9}.label{font-size:10px;text-anchor:end;fill:#374151}
        .grid{stroke:#e5e7eb;stroke-width:1}.tick{font-size:10px;text-anchor:middle;fill:#6b7280}
        .r{fill:#3b82f6}.w{fill:#22a559}.f{fill:#9ca3af}.u{fill:#f39c12}.t{fill:url(#hatch)}.faded{opacity:.35}
        .bad{fill:#dc2626;stroke:#7f1d1d;stroke-width:1.5}
        .nemesis-band{fill-opacity:.2;pointer-events:none}.fault-mark{fill-opacity:.85}.node-fault{fill-opacity:.8}.nemesis-instant{stroke-width:2;stroke-opacity:.85}
        #cursor{stroke:#111827;stroke-width:.5;pointer-events:none}#cursor-label{font-size:10px;fill:#111827;pointer-events:none}

        """

    static let script = """
        (function(){var s=document.getElementById('timeline');if(!s)return;
        var l=+s.getAttribute('data-left'),w=+s.getAttribute('data-plot-width'),e=+s.getAttribute('data-end-seconds'),
        W=+s.getAttribute('width'),c=document.getElementById('cursor'),t=document.getElementById('cursor-label');
        function hide(){c.style.display='none';t.style.display='none';}
        s.addEventListener('mousemove',function(ev){var r=s.getBoundingClientRect(),x=(ev.clientX-r.left)*W/r.width;
        if(x<l||x>l+w){hide();return;}c.style.display='';t.style.display='';
        c.setAttribute('x1',x);c.setAttribute('x2',x);t.setAttribute('x',x+4);t.textContent=((x-l)/w*e).toFixed(3)+' s';});
        s.addEventListener('mouseleave',hide);})();

        """
}
