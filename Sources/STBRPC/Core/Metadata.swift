import STBMessages

/// gRPC custom metadata: ordered, case-insensitive keys; keys ending in `-bin` carry bytes.
public struct Metadata: Hashable, Sendable, Sequence {
    /// One metadata value: text for ordinary keys, bytes for `-bin` keys.
    public enum Value: Hashable, Sendable {
        case string(String)
        case binary([UInt8])
    }

    public typealias Element = (key: String, value: Value)

    private var entries: [Entry] = []

    private struct Entry: Hashable, Sendable {
        var key: String
        var value: Value
    }

    public init() {}

    /// Creates metadata from text pairs, for example `["x-request-id": "42"]`.
    public init(_ pairs: KeyValuePairs<String, String>) {
        for (key, value) in pairs { addString(value, forKey: key) }
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    /// Appends a text value. The key is lowercased.
    public mutating func addString(_ value: String, forKey key: String) {
        entries.append(Entry(key: key.lowercased(), value: .string(value)))
    }

    /// Appends a binary value; the key must end in `-bin`.
    public mutating func addBinary(_ value: [UInt8], forKey key: String) {
        precondition(key.hasSuffix("-bin"), "binary metadata keys end in -bin")
        entries.append(Entry(key: key.lowercased(), value: .binary(value)))
    }

    /// Appends all entries of `other`.
    public mutating func add(contentsOf other: Metadata) {
        entries.append(contentsOf: other.entries)
    }

    /// Every text value stored under `key`.
    public func strings(forKey key: String) -> [String] {
        let key = key.lowercased()
        return entries.compactMap { entry in
            if entry.key == key, case .string(let value) = entry.value { return value }
            return nil
        }
    }

    /// The first text value stored under `key`.
    public func firstString(forKey key: String) -> String? {
        // Asked on every call (authorization): no array built, and no lowercasing for a
        // key of lowercase ASCII.
        let lowercase = !key.utf8.contains { ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || $0 >= 0x80 }
        let key = lowercase ? key : key.lowercased()
        for entry in entries where entry.key == key {
            if case .string(let value) = entry.value { return value }
        }
        return nil
    }

    /// Every binary value stored under `key`.
    public func binaries(forKey key: String) -> [[UInt8]] {
        let key = key.lowercased()
        return entries.compactMap { entry in
            if entry.key == key, case .binary(let value) = entry.value { return value }
            return nil
        }
    }

    public func makeIterator() -> some IteratorProtocol<Element> {
        entries.lazy.map { (key: $0.key, value: $0.value) }.makeIterator()
    }
}

extension Metadata {
    /// Whether `key` may be sent as custom metadata: `[0-9a-z_.-]+`, not reserved.
    static func isValidCustomKey(_ key: String) -> Bool {
        guard !key.isEmpty, !key.hasPrefix("grpc-"), !key.hasPrefix(":") else { return false }
        return key.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x5F || byte == 0x2E || byte == 0x2D
        }
    }

    /// Headers that are part of the protocol, never handed to handlers as metadata.
    static func isProtocolHeader(_ key: String) -> Bool {
        key.hasPrefix(":") || key.hasPrefix("grpc-") || key == "content-type" || key == "te"
            || key == "user-agent" || key == "content-length" || key == "host"
            || key == "accept-encoding"
    }

    /// Adds one received header field; `-bin` values are base64-decoded, comma-separated
    /// duplicates split. Values that fail to decode are dropped, as the protocol allows.
    mutating func addReceived(key: String, value: String) {
        if key.hasSuffix("-bin") {
            for part in value.split(separator: ",", omittingEmptySubsequences: true) {
                let trimmed = part.trimmingSpaces()
                if let bytes = Base64.decode(trimmed) { entries.append(Entry(key: key, value: .binary(bytes))) }
            }
        } else {
            entries.append(Entry(key: key, value: .string(value)))
        }
    }

    /// The header fields to send: binary values base64 (unpadded), invalid keys skipped.
    func headerFields() -> [(String, String)] {
        entries.compactMap { entry in
            guard Metadata.isValidCustomKey(entry.key) else { return nil }
            switch entry.value {
            case .string(let value):
                guard !entry.key.hasSuffix("-bin") else { return nil }
                return (entry.key, value)
            case .binary(let bytes):
                guard entry.key.hasSuffix("-bin") else { return nil }
                return (entry.key, Base64.encode(bytes, padded: false))
            }
        }
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var slice = self
        while slice.first == " " { slice = slice.dropFirst() }
        while slice.last == " " { slice = slice.dropLast() }
        return slice
    }
}
