import Dispatch
import Synchronization

/// Runs many independent simulations on all cores. Each run is deterministic on its own, so
/// running them in parallel changes nothing but the wall time; results come back in order.
public enum SimulationBatch {
    /// The number of cores the scheduler reports.
    public static var defaultJobs: Int { max(1, ProcessInfoLite.activeProcessorCount) }

    public static func run(_ runs: [SimulationOptions], jobs: Int) -> [SimulationResult] {
        let results = Mutex<[SimulationResult?]>(Array(repeating: nil, count: runs.count))
        let next = Atomic<Int>(0)
        let workers = max(1, min(jobs, runs.count))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard index < runs.count else { return }
                let result = Simulator.run(runs[index])
                results.withLock { $0[index] = result }
            }
        }
        return results.withLock { $0.compactMap { $0 } }
    }
}

/// The processor count without Foundation.
enum ProcessInfoLite {
    static var activeProcessorCount: Int {
        #if canImport(Glibc)
        return Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #else
        return 2
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#endif
