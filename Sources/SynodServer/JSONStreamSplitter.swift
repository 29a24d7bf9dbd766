/// Cuts a byte stream of concatenated JSON values into one value per piece, as a streaming
/// gateway request body arrives (`{"create_request":{...}}{"cancel_request":{...}}` or one value
/// per line): it tracks nesting, strings and escapes only, and leaves parsing to the decoder.
/// Whitespace between values is skipped. Only objects and arrays are accepted at the top level
/// (every gateway request is an object); anything else is an error.
struct JSONStreamSplitter: Sendable {
    enum SplitError: Error, Equatable, CustomStringConvertible {
        /// A byte that cannot start a value (offset within the stream).
        case unexpected(byte: UInt8, offset: Int)
        /// An unterminated value at the end of the stream.
        case truncated
        /// A closing bracket with nothing open, or of the wrong kind.
        case unbalanced(offset: Int)
        /// One value is longer than the limit.
        case tooLarge(limit: Int)

        var description: String {
            switch self {
            case .unexpected(let byte, let offset):
                return "unexpected byte 0x\(String(byte, radix: 16)) at offset \(offset) of the request stream (expected a JSON object)"
            case .truncated: return "the request stream ended inside a JSON value"
            case .unbalanced(let offset): return "unbalanced bracket at offset \(offset) of the request stream"
            case .tooLarge(let limit): return "a JSON value in the request stream is larger than \(limit) bytes"
            }
        }
    }

    /// The longest single value accepted.
    let limit: Int
    private var pending: [UInt8] = []
    /// Brackets open in the current value (`{` or `[`).
    private var stack: [UInt8] = []
    private var inString = false
    private var escaped = false
    /// Bytes consumed before `pending` (for error offsets).
    private var consumed = 0
    /// Once an error was reported, every later call reports it again.
    private var failure: SplitError?

    init(limit: Int) {
        self.limit = limit
    }

    /// Adds bytes; returns the values completed by them, in order, and the error that stopped
    /// the stream, if any (the values before it are still returned).
    mutating func append(_ bytes: some Sequence<UInt8>) -> (values: [[UInt8]], failure: SplitError?) {
        var values: [[UInt8]] = []
        do throws(SplitError) {
            try split(bytes, into: &values)
            return (values, nil)
        } catch {
            return (values, error)
        }
    }

    private mutating func split(_ bytes: some Sequence<UInt8>, into values: inout [[UInt8]]) throws(SplitError) {
        if let failure { throw failure }
        for byte in bytes {
            if stack.isEmpty {
                switch byte {
                case 0x20, 0x0A, 0x0D, 0x09:
                    consumed += 1
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    break
                default:
                    try fail(.unexpected(byte: byte, offset: consumed))
                }
            }
            pending.append(byte)
            guard pending.count <= limit else { try fail(.tooLarge(limit: limit)) }
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                stack.append(byte)
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                let opener = byte == UInt8(ascii: "}") ? UInt8(ascii: "{") : UInt8(ascii: "[")
                guard stack.last == opener else { try fail(.unbalanced(offset: consumed + pending.count - 1)) }
                stack.removeLast()
                if stack.isEmpty {
                    values.append(pending)
                    consumed += pending.count
                    pending.removeAll(keepingCapacity: true)
                }
            default:
                break
            }
        }
    }

    /// The stream ended: an error if a value was left open.
    func finish() throws(SplitError) {
        if let failure { throw failure }
        if !pending.isEmpty { throw .truncated }
    }

    private mutating func fail(_ error: SplitError) throws(SplitError) -> Never {
        failure = error
        pending = []
        stack = []
        throw error
    }
}
