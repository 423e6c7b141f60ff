import STBMessages

/// What the load notes of one `SubscribeEvent` — its kind, a delta's key, a resync's
/// reason and the resume token — read straight from its wire form: the rest (the delta's
/// payload, the snapshot) is skipped, not decoded, so the load's cost per message stays
/// small beside the gateway's. The stream is still a gRPC call over HTTP/2 like any
/// client's; only the decoding is lazy.
struct EventDigest: Sendable {
    enum Kind: Sendable {
        case snapshot
        case delta(key: String)
        case resync(reason: String)
        case other
    }

    var token = ""
    var kind = Kind.other

    /// `Subscribe` with its events kept in wire form, for `EventDigest(_:)`.
    static let subscribe = ProtoMethod<Stb_Gateway_V1_SubscribeRequest, ProtoEncodedMessage<Stb_Gateway_V1_SubscribeEvent>>(
        path: Stb_Gateway_V1_Realtime.subscribe.path, kind: .serverStreaming)

    /// Reads `bytes` (a `SubscribeEvent`); nil when they are not one.
    init?(_ bytes: [UInt8]) {
        var ok = true
        bytes.withUnsafeBytes { raw in
            var reader = WireReader(raw)
            while let (field, value) = reader.next() {
                switch field {
                case 1: token = String(decoding: value, as: UTF8.self)
                case 2: kind = .snapshot
                case 3: kind = .delta(key: Self.string(5, in: value) ?? "")
                case 4: kind = .resync(reason: Self.string(1, in: value) ?? "")
                default: break
                }
            }
            ok = !reader.failed
        }
        if !ok { return nil }
    }

    /// The last length-delimited field `number` of the message `bytes`, as text.
    private static func string(_ number: UInt64, in bytes: UnsafeRawBufferPointer) -> String? {
        var reader = WireReader(bytes)
        var found: String?
        while let (field, value) = reader.next() {
            if field == number { found = String(decoding: value, as: UTF8.self) }
        }
        return reader.failed ? nil : found
    }
}

/// The fields of a protobuf message in wire form, one at a time: each field's number and,
/// for a length-delimited one, its bytes (empty for the other wire types, skipped).
private struct WireReader {
    let bytes: UnsafeRawBufferPointer
    var at = 0
    private(set) var failed = false

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func next() -> (UInt64, UnsafeRawBufferPointer)? {
        guard at < bytes.count, let key = varint() else { return nil }
        let empty = UnsafeRawBufferPointer(rebasing: bytes[at..<at])
        switch key & 7 {
        case 0:
            guard varint() != nil else { return nil }
            return (key >> 3, empty)
        case 1, 5:
            let size = key & 7 == 1 ? 8 : 4
            guard at + size <= bytes.count else { return fail() }
            at += size
            return (key >> 3, empty)
        case 2:
            guard let length = varint(), length <= UInt64(bytes.count - at) else { return fail() }
            let value = UnsafeRawBufferPointer(rebasing: bytes[at..<at + Int(length)])
            at += Int(length)
            return (key >> 3, value)
        default:
            return fail()
        }
    }

    private mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while at < bytes.count, shift < 64 {
            let byte = bytes[at]
            at += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        failed = true
        return nil
    }

    private mutating func fail() -> (UInt64, UnsafeRawBufferPointer)? {
        failed = true
        return nil
    }
}
