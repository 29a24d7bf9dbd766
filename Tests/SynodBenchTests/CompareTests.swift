import Foundation
import XCTest
@testable import SynodBench

/// The pure parts of `synod bench compare`: rows, schedule, medians, ratios, tables, JSON, /proc parsing.
final class CompareTests: XCTestCase {
    private func result(_ workload: BenchWorkload, clients: Int, throughput: Double, p50: Double, p99: Double, errors: [String: Int] = [:]) -> BenchResult {
        var options = BenchOptions(workload: workload, endpoints: ["127.0.0.1:1"])
        options.clients = clients
        let latency = LatencySummary(count: 10, minMicros: p50 / 2, meanMicros: p50, p50Micros: p50, p90Micros: p99 * 0.8,
                                     p99Micros: p99, p999Micros: p99 * 2, maxMicros: p99 * 3)
        return BenchResult(options: options, targets: ["127.0.0.1:1"], operations: Int(throughput), errors: errors, seconds: 1,
                           throughput: throughput, latency: latency)
    }

    private func measurement(_ round: Int, _ row: CompareRow, _ system: CompareSystem, throughput: Double, p50: Double, p99: Double) -> CompareMeasurement {
        CompareMeasurement(step: CompareStep(round: round, row: row, system: system),
                           result: result(.put, clients: row.clients, throughput: throughput, p50: p50, p99: p99))
    }

    private func fixedReport() -> CompareReport {
        let put = CompareRow(.put, clients: 64)
        let get = CompareRow(.get, clients: 64)
        var options = CompareOptions()
        options.rows = [put, get]
        options.rounds = 3
        options.synodBinary = "/bin/true"
        let measurements = [
            measurement(1, put, .synod, throughput: 2_000, p50: 1_000, p99: 4_000),
            measurement(1, put, .etcd, throughput: 1_000, p50: 3_000, p99: 8_000),
            measurement(2, put, .synod, throughput: 9_000, p50: 500, p99: 1_000),
            measurement(2, put, .etcd, throughput: 1_200, p50: 2_000, p99: 6_000),
            measurement(3, put, .synod, throughput: 1_000, p50: 2_000, p99: 5_000),
            measurement(3, put, .etcd, throughput: 800, p50: 2_500, p99: 9_000),
            measurement(1, get, .synod, throughput: 5_000, p50: 200, p99: 900),
            CompareMeasurement(step: CompareStep(round: 1, row: get, system: .etcd), result: nil, error: "connection refused"),
        ]
        let machine = CompareMachine(date: "2026-11-27T08:00:00Z", system: "Linux 6.1 x86_64", cpuModel: "Test CPU", cores: 2,
                                     memoryBytes: 4 << 30, etcdVersion: "3.4.23", synodCommit: "abc1234")
        let members = [
            CompareMemberMemory(system: .synod, name: "s1", peakRSSBytes: 50 << 20, rssBytes: 40 << 20),
            CompareMemberMemory(system: .synod, name: "s2", peakRSSBytes: 70 << 20, rssBytes: 40 << 20),
            CompareMemberMemory(system: .etcd, name: "e1", peakRSSBytes: 90 << 20, rssBytes: nil),
        ]
        let phases = [
            CompareMemoryPhase(system: .synod, keys: 1_000, valueBytes: 256, loadSeconds: 2, afterLoad: members.filter { $0.system == .synod },
                               restartedMember: "s2", restartSeconds: 0.5),
            CompareMemoryPhase(system: .etcd, keys: 1_000, valueBytes: 256, loadSeconds: 3, afterLoad: [], restartedMember: "e2", restartSeconds: 1.5),
        ]
        let baselines = CompareBaselines(rawFsyncPerSecond: 500, walWriters: 256, walRecordsPerSecond: 20_000, walRecordsPerSync: 40,
                                         coreCommandsPerSecond: 1_000_000, coreCommandsPerSlot: 100)
        return CompareReport(machine: machine, options: options, measurements: measurements, baselines: baselines,
                             members: members, memoryPhases: phases, notes: ["a note"])
    }

    func testWorkloadListParsing() throws {
        XCTAssertEqual(try CompareRow.parseList("put@1, get@64", clients: nil), [CompareRow(.put, clients: 1), CompareRow(.get, clients: 64)])
        XCTAssertEqual(try CompareRow.parseList("put,txn-cas", clients: nil),
                       [CompareRow(.put, clients: 1), CompareRow(.put, clients: 64), CompareRow(.put, clients: 256), CompareRow(.txnCAS, clients: 64)])
        XCTAssertEqual(try CompareRow.parseList("sget,put@2,put", clients: [2, 4]),
                       [CompareRow(.sget, clients: 2), CompareRow(.sget, clients: 4), CompareRow(.put, clients: 2), CompareRow(.put, clients: 4)])
        XCTAssertThrowsError(try CompareRow.parseList("put,scan", clients: nil)) { error in
            XCTAssertTrue("\(error)".contains("unknown workload 'scan'"), "\(error)")
        }
        XCTAssertThrowsError(try CompareRow.parseList("put@x", clients: nil))
        XCTAssertThrowsError(try CompareRow.parseList(" , ", clients: nil))
        XCTAssertEqual(CompareRow.defaults.map(\.description),
                       ["put@1", "put@64", "put@256", "get@64", "get@256", "sget@256", "txn-cas@64", "mixed@64", "watch@100"])
    }

    func testRowsMapToLoadGeneratorOptions() {
        let endpoints = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
        let put = CompareRow(.put, clients: 1).benchOptions(endpoints: endpoints, durationSeconds: 2, conns: 8, valueBytes: 100, keySpace: 50)
        XCTAssertEqual(put.workload, .put)
        XCTAssertEqual(put.conns, 1, "never more connections than clients")
        XCTAssertEqual(put.durationSeconds, 2)
        XCTAssertEqual(put.valueBytes, 100)
        XCTAssertEqual(put.keySpace, 50)
        XCTAssertEqual(put.target, .leader)
        let sget = CompareRow(.sget, clients: 256).benchOptions(endpoints: endpoints, durationSeconds: 1, conns: 8, valueBytes: 256, keySpace: 10)
        XCTAssertEqual(sget.workload, .get)
        XCTAssertEqual(sget.consistency, .serializable)
        XCTAssertEqual(sget.target, .all)
        let get = CompareRow(.get, clients: 64).benchOptions(endpoints: endpoints, durationSeconds: 1, conns: 8, valueBytes: 256, keySpace: 10)
        XCTAssertEqual(get.consistency, .linearizable)
        let watch = CompareRow(.watch, clients: 100).benchOptions(endpoints: endpoints, durationSeconds: 1, conns: 8, valueBytes: 256, keySpace: 10)
        XCTAssertEqual(watch.workload, .watch)
        XCTAssertEqual(watch.watchers, 100)
        XCTAssertEqual(watch.clients, 1)
    }

    func testScheduleAlternatesSystemsWithinEveryRound() {
        let rows = [CompareRow(.put, clients: 1), CompareRow(.get, clients: 64)]
        let steps = compareSchedule(rounds: 2, rows: rows, systems: [.synod, .etcd])
        XCTAssertEqual(steps.map { "\($0.round) \($0.row) \($0.system.rawValue)" }, [
            "1 put@1 synod", "1 put@1 etcd", "1 get@64 synod", "1 get@64 etcd",
            "2 put@1 synod", "2 put@1 etcd", "2 get@64 synod", "2 get@64 etcd",
        ])
        XCTAssertEqual(compareSchedule(rounds: 3, rows: rows, systems: [.synod]).count, 6)
        XCTAssertTrue(compareSchedule(rounds: 0, rows: rows, systems: [.synod]).isEmpty)
    }

    func testMedian() {
        XCTAssertNil(compareMedian([]))
        XCTAssertEqual(compareMedian([7]), 7)
        XCTAssertEqual(compareMedian([9, 1, 5]), 5)
        XCTAssertEqual(compareMedian([4, 1, 3, 2]), 2.5)
    }

    func testSummaryTakesTheMedianOfEachFigureAndTheRatios() throws {
        let report = fixedReport()
        let put = try XCTUnwrap(report.summary.first)
        XCTAssertEqual(put.row, CompareRow(.put, clients: 64))
        XCTAssertEqual(put.synod, CompareFigures(throughput: 2_000, p50Micros: 1_000, p99Micros: 4_000, rounds: 3, errors: 0))
        XCTAssertEqual(put.etcd, CompareFigures(throughput: 1_000, p50Micros: 2_500, p99Micros: 8_000, rounds: 3, errors: 0))
        XCTAssertEqual(try XCTUnwrap(put.throughputRatio), 2, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(put.p50Ratio), 2.5, accuracy: 1e-9, "etcd/Synod: above 1 means Synod is faster")
        XCTAssertEqual(try XCTUnwrap(put.p99Ratio), 2, accuracy: 1e-9)
        let get = report.summary[1]
        XCTAssertEqual(get.synod?.throughput, 5_000)
        XCTAssertNil(get.etcd, "the failed measurement gives no figures")
        XCTAssertNil(get.throughputRatio)

        // A run without operations does not count; errors are summed over the rounds that count.
        let row = CompareRow(.put, clients: 1)
        let measurements = [
            CompareMeasurement(step: CompareStep(round: 1, row: row, system: .synod),
                               result: result(.put, clients: 1, throughput: 0, p50: 0, p99: 0, errors: ["unavailable": 5])),
            CompareMeasurement(step: CompareStep(round: 2, row: row, system: .synod),
                               result: result(.put, clients: 1, throughput: 300, p50: 10, p99: 20, errors: ["deadlineExceeded": 2])),
        ]
        let summary = compareSummary(measurements, rows: [row])
        XCTAssertEqual(summary[0].synod, CompareFigures(throughput: 300, p50Micros: 10, p99Micros: 20, rounds: 1, errors: 2))
    }

    func testTablesAndMarkdown() throws {
        let report = fixedReport()
        let markdown = report.markdown
        XCTAssertTrue(markdown.hasPrefix("# synod bench compare\n"))
        for expected in [
            "- machine: Linux 6.1 x86_64; Test CPU; 2 cores; memory 4096 MiB",
            "- etcd: 3.4.23; synod commit: abc1234",
            "| workload | clients | Synod ops/s | etcd ops/s | Synod/etcd | Synod p50 ms | etcd p50 ms | p50 etcd/Synod | Synod p99 ms | etcd p99 ms | p99 etcd/Synod |",
            "|---|---|---:|",
            "| put | 64 | 2000 | 1000 | 2.00x | 1.00 | 2.50 | 2.50x | 4.00 | 8.00 | 2.00x |",
            "| get | 64 | 5000 | - | - | 0.200 | - | - | 0.900 | - | - |",
            "raw fdatasync 500/s",
            "| put | 64 | 4.00 | 2.00 | 0.1 | 0.002 |",
            "| figure | Synod | etcd |\n|---|---:|---:|",
            "| peak RSS, largest member (MiB) | 70 | 90 |",
            "| load 1000 keys (s) | 2.00 | 3.00 |",
            "| RSS after load, largest member (MiB) | 40 | - |",
            "| follower kill -9 → first read (s) | 0.50 | 1.50 |",
            "- synod peak RSS per member (MiB): s1 50, s2 70",
            "- synod RSS after loading 1000 keys (MiB): s1 40, s2 40; restarted s2",
            "- round 1 get@64 etcd: connection refused",
            "- a note",
        ] {
            XCTAssertTrue(markdown.contains(expected), "missing \(expected) in\n\(markdown)")
        }

        let text = report.resultsTable.text
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 5, text)
        // Aligned: every line of the table has the same width, the numbers right-aligned.
        XCTAssertEqual(Set(lines.dropFirst().map(\.count)).count, 1, text)
        XCTAssertTrue(lines[3].hasPrefix("put       64"), text)
        XCTAssertTrue(lines[3].hasSuffix("2.00x"), text)
        XCTAssertTrue(report.text.contains("Servers"))
    }

    func testReportJSONRoundTrip() throws {
        let report = fixedReport()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(report)
        let decoded = try JSONDecoder().decode(CompareReport.self, from: data)
        XCTAssertEqual(decoded, report)
        XCTAssertEqual(decoded.measurements.count, 8)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertNotNil(object["summary"])
        XCTAssertNotNil(object["measurements"])
    }

    func testProcStatusParsing() {
        let status = """
            Name:\tsynod
            VmPeak:\t 1234567 kB
            VmHWM:\t   81234 kB
            VmRSS:\t   70000 kB
            Threads:\t12
            """
        XCTAssertEqual(CompareMachineInfo.statusField("VmHWM", in: status), 81_234 * 1_024)
        XCTAssertEqual(CompareMachineInfo.statusField("VmRSS", in: status), 70_000 * 1_024)
        XCTAssertEqual(CompareMachineInfo.statusField("Threads", in: status), 12)
        XCTAssertNil(CompareMachineInfo.statusField("VmSwap", in: status))
        XCTAssertNil(CompareMachineInfo.statusField("VmHWM", in: "VmHWM:\tlots kB"))
        XCTAssertNil(CompareMachineInfo.statusField("VmHWM", in: "VmHWM:\t12 MB"))
        XCTAssertNil(CompareMachineInfo.statusField("VmHWM", in: "VmHWM:\t-12 kB"))
        // This process's own status parses.
        let own = CompareMachineInfo.memory(pid: getpid())
        XCTAssertGreaterThan(own.peak ?? 0, 0)
        XCTAssertGreaterThan(own.current ?? 0, 0)
    }

    func testMachineTextParsing() {
        XCTAssertEqual(CompareMachineInfo.cpuModel(cpuinfo: "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: x\n"), "AMD EPYC 7B13")
        XCTAssertNil(CompareMachineInfo.cpuModel(cpuinfo: "processor\t: 0\n"))
        XCTAssertEqual(CompareMachineInfo.etcdVersion(output: "etcd Version: 3.4.23\nGit SHA: Not provided\n"), "3.4.23")
        XCTAssertNil(CompareMachineInfo.etcdVersion(output: "garbage"))
    }

    func testClusterLayoutAndPortCheck() throws {
        let synod = CompareClusterLayout.synod(binary: "/x/synod", basePort: 30_000, directory: "/tmp/out")
        let etcd = CompareClusterLayout.etcd(binary: "/usr/bin/etcd", basePort: 30_000, directory: "/tmp/out")
        XCTAssertEqual(synod.map(\.clientEndpoint), ["127.0.0.1:30021", "127.0.0.1:30022", "127.0.0.1:30023"])
        XCTAssertEqual(etcd.map(\.clientEndpoint), ["127.0.0.1:30001", "127.0.0.1:30002", "127.0.0.1:30003"])
        let ports = (synod + etcd).flatMap { $0.ports.map(\.port) }
        XCTAssertEqual(Set(ports).count, ports.count, "every port is used once")
        XCTAssertEqual(Set((synod + etcd).map(\.dataDirectory)).count, 6, "every member has its own data directory")
        XCTAssertEqual(synod[0].arguments.first, "serve")
        let cluster = try XCTUnwrap(etcd[1].arguments.firstIndex(of: "--initial-cluster")).advanced(by: 1)
        XCTAssertEqual(etcd[1].arguments[cluster], "e1=http://127.0.0.1:30011,e2=http://127.0.0.1:30012,e3=http://127.0.0.1:30013")
        XCTAssertFalse(etcd[0].arguments.contains("--unsafe-no-fsync"))

        // A port something listens on is reported with its role.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        XCTAssertTrue(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        XCTAssertFalse(CompareClusterLayout.portIsFree(port))
        let busy = CompareClusterLayout.synod(binary: "/x/synod", basePort: port - 21, directory: "/tmp/out")
        XCTAssertThrowsError(try CompareClusterLayout.checkPortsFree(busy)) { error in
            XCTAssertEqual("\(error)", "port \(port) (Synod s1 client) is in use; stop what listens there or pick another --base-port")
        }
    }

    func testOptionsValidation() {
        var options = CompareOptions()
        XCTAssertThrowsError(try options.validate(), "no synod binary")
        options.synodBinary = "/bin/true"
        XCTAssertNoThrow(try options.validate())
        options.rounds = 0
        XCTAssertThrowsError(try options.validate())
        options.rounds = 1
        options.basePort = 70_000
        XCTAssertThrowsError(try options.validate())
        XCTAssertEqual(options.systems, [.synod, .etcd])
        options.skipEtcd = true
        XCTAssertEqual(options.systems, [.synod])
        options.basePort = 23790
        options.join = true
        XCTAssertThrowsError(try options.validate(), "--join without --memory-keys") { error in
            XCTAssertTrue("\(error)".contains("--join needs --memory-keys"), "\(error)")
        }
        options.memoryKeys = 1_000
        XCTAssertNoThrow(try options.validate())
        options.skipSynod = true
        XCTAssertThrowsError(try options.validate(), "nothing left to measure")
        options.skipEtcd = false
        XCTAssertEqual(options.systems, [.etcd])
        XCTAssertNoThrow(try options.validate())
    }

    /// The joining fourth member: its own ports and directory, the four-member cluster, and
    /// `existing` as etcd and Synod need for a member added at run time.
    func testJoinerLayout() throws {
        let synod = CompareClusterLayout.synod(binary: "/x/synod", basePort: 30_000, directory: "/tmp/out")
        let etcd = CompareClusterLayout.etcd(binary: "/usr/bin/etcd", basePort: 30_000, directory: "/tmp/out")
        let synodJoiner = CompareClusterLayout.synodJoiner(binary: "/x/synod", basePort: 30_000, directory: "/tmp/out")
        let etcdJoiner = CompareClusterLayout.etcdJoiner(binary: "/usr/bin/etcd", basePort: 30_000, directory: "/tmp/out")
        XCTAssertEqual(synodJoiner.clientEndpoint, "127.0.0.1:30024")
        XCTAssertEqual(etcdJoiner.clientEndpoint, "127.0.0.1:30004")
        let all = synod + etcd + [synodJoiner, etcdJoiner]
        let ports = all.flatMap { $0.ports.map(\.port) }
        XCTAssertEqual(Set(ports).count, ports.count, "every port is used once")
        XCTAssertEqual(Set(all.map(\.dataDirectory)).count, 8)
        for (joiner, prefix) in [(synodJoiner, "s"), (etcdJoiner, "e")] {
            let cluster = try XCTUnwrap(joiner.arguments.firstIndex(of: "--initial-cluster")).advanced(by: 1)
            XCTAssertEqual(joiner.arguments[cluster].split(separator: ",").count, 4)
            XCTAssertTrue(joiner.arguments[cluster].hasSuffix("\(prefix)4=\(joiner.arguments[try XCTUnwrap(joiner.arguments.firstIndex(of: "--initial-advertise-peer-urls")) + 1])"))
            let state = try XCTUnwrap(joiner.arguments.firstIndex(of: "--initial-cluster-state")).advanced(by: 1)
            XCTAssertEqual(joiner.arguments[state], "existing")
        }
        let state = try XCTUnwrap(synod[0].arguments.firstIndex(of: "--initial-cluster-state")).advanced(by: 1)
        XCTAssertEqual(synod[0].arguments[state], "new")
    }
}
