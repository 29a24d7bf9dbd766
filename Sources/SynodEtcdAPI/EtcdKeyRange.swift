import Foundation

/// etcd's key-range conventions, shared by the server, the client and the load generators
/// (written here, not generated: `Scripts/generate-protos.sh` replaces only `*.pb.swift` and
/// `*.grpc.swift`).
public enum EtcdKeyRange {
    /// The range end that selects every key starting with `prefix` (etcd's `GetPrefixRangeEnd`):
    /// the last byte below 0xff incremented and the rest dropped; a prefix of only 0xff bytes (or
    /// the empty prefix) yields `"\0"`, which etcd reads as "to the end of the key space".
    public static func prefixEnd(_ prefix: Data) -> Data {
        var bytes = [UInt8](prefix)
        while let last = bytes.last {
            if last < 0xff {
                bytes[bytes.count - 1] = last + 1
                return Data(bytes)
            }
            bytes.removeLast()
        }
        return Data([0])
    }
}
