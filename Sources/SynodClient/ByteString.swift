import Foundation
import SynodEtcdAPI

/// A value usable as an etcd key or value: etcd keys and values are arbitrary byte strings.
///
/// `String` (UTF-8), `Substring`, `[UInt8]` and `Data` conform, so every key/value parameter of
/// ``SynodClient`` accepts any of them.
public protocol SynodByteString: Sendable {
    /// The bytes sent on the wire.
    var synodBytes: Data { get }
}

extension String: SynodByteString {
    public var synodBytes: Data { Data(self.utf8) }
}

extension Substring: SynodByteString {
    public var synodBytes: Data { Data(self.utf8) }
}

extension Array: SynodByteString where Element == UInt8 {
    public var synodBytes: Data { Data(self) }
}

extension Data: SynodByteString {
    public var synodBytes: Data { self }
}

/// Key-range helpers following etcd's conventions.
public enum SynodKeyRange {
    /// The range end that selects every key starting with `prefix` (etcd's `GetPrefixRangeEnd`).
    ///
    /// The last byte below 0xff is incremented and the rest dropped; a prefix made only of 0xff
    /// bytes (or the empty prefix) yields `"\0"`, which etcd reads as "to the end of the key space".
    public static func prefixEnd(_ prefix: Data) -> Data { EtcdKeyRange.prefixEnd(prefix) }
}
