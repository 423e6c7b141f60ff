import STBMessages
import Synchronization

/// The body of a `SubscribeEvent` (its `kind`), encoded once and shared by every stream
/// that sends it: a stream adds only its own resume token, so fan-out copies a reference
/// and the bytes, never encodes the message again.
final class EncodedKind: Sendable {
    let kind: Stb_Gateway_V1_SubscribeEvent.OneOf_Kind
    /// The `kind` field in protobuf wire form (a `SubscribeEvent` without a token).
    let bytes: [UInt8]

    init(_ kind: Stb_Gateway_V1_SubscribeEvent.OneOf_Kind) {
        self.kind = kind
        var message = Stb_Gateway_V1_SubscribeEvent()
        message.kind = kind
        self.bytes = message.serializedBytes()
    }

    /// The message with `token`.
    func message(token: String) -> Stb_Gateway_V1_SubscribeEvent {
        Stb_Gateway_V1_SubscribeEvent(resumeToken: token, kind: kind)
    }

    /// The message with `token` in protobuf wire form: the shared bytes, then the token's
    /// field (a decoder takes fields in any order).
    func encoded(token: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(size(token: token))
        out.append(contentsOf: bytes)
        guard !token.isEmpty else { return out }
        out.append(0x0A)  // field 1 (resume_token), length-delimited
        var length = token.utf8.count
        while length >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: length) | 0x80)
            length >>= 7
        }
        out.append(UInt8(length))
        out.append(contentsOf: token.utf8)
        return out
    }

    /// The encoded size of the message with `token` (its bound, for the token's field).
    func size(token: String) -> Int { bytes.count + token.utf8.count + 6 }
}

/// The deltas made of one event, by topic, made by the first stream that sends each and
/// shared with the rest.
final class DeltaEncodings: Sendable {
    private let byTopic = Mutex<[Topic: EncodedKind]>([:])

    /// The delta of `event` on `topic`, made by `make` the first time.
    func delta(_ topic: Topic, make: () -> Stb_Gateway_V1_Delta) -> EncodedKind {
        if let known = byTopic.withLock({ $0[topic] }) { return known }
        let made = EncodedKind(.delta(make()))
        return byTopic.withLock { table in
            if let known = table[topic] { return known }
            table[topic] = made
            return made
        }
    }
}
