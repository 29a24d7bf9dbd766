import Foundation

/// Ctrl-C / SIGTERM for commands that own child processes (`synod chaos`, `synod bench
/// compare`): kill the children at once, cancel the run so it can clean up, and exit 130 if
/// the clean-up takes longer than `graceSeconds`. Cancel the returned sources when done.
func installInterruptHandler(command: String, graceSeconds: Double, killChildren: @escaping @Sendable () -> Void,
                             cancel: @escaping @Sendable () -> Void) -> [any DispatchSourceSignal] {
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    return [SIGINT, SIGTERM].map { (number: Int32) -> any DispatchSourceSignal in
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler {
            killChildren()
            cancel()
            DispatchQueue.global().asyncAfter(deadline: .now() + graceSeconds) {
                killChildren()
                FileHandle.standardError.write(Data("\(command): interrupted; cleanup took too long\n".utf8))
                Foundation.exit(130)
            }
        }
        source.resume()
        return source
    }
}
