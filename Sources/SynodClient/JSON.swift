import SwiftProtobuf

/// JSON rendering of API messages (proto3 JSON mapping with the .proto field names, as in
/// `etcdctl -w json`; 64-bit integers are strings and bytes are base64, per the mapping).
public enum SynodJSON {
    public static func encode(_ message: some SwiftProtobuf.Message) throws -> String {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        return try message.jsonString(options: options)
    }
}
