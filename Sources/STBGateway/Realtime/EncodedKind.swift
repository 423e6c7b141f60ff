import STBMessages
import STBPostgres
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
/// shared with the rest; and the resume tokens of streams standing at the event, by their
/// positions (the last few kinds), likewise made once: the streams a fan-out pass hands
/// the event to mostly stand at the same positions.
final class DeltaEncodings: Sendable {
    private struct Table {
        var byTopic: [Topic: EncodedKind] = [:]
        /// The token of a stream on the event's upstream alone, standing at the event.
        var single: (epoch: String, text: String)?
        /// By topic, the whole message (delta and `single`'s token) in wire form.
        var singleWire: [Topic: [UInt8]] = [:]
        var tokens: [(epoch: String, positions: [Upstream: OutboxCursor], text: String)] = []
        /// The entry `tokens` replaces next once full.
        var nextToken = 0
        /// The bytes of everything above (with `entryOverhead` each).
        var kept = 0
        /// The ring that holds the event, charged with `kept` while it does.
        var charge: RingCharge?

        /// `bytes` more are kept (`-bytes`: fewer), charged to the ring if one holds the event.
        mutating func keep(_ bytes: Int) {
            kept += bytes
            charge?.add(bytes)
        }
    }
    private let table = Mutex(Table())
    /// How many tokens one event keeps.
    static let tokenEntries = 4
    /// What one kept entry costs beside its bytes (its object's and array's headers).
    static let entryOverhead = 48

    /// The bytes kept so far (for the ring's budget and tests).
    var keptBytes: Int { table.withLock { $0.kept } }

    /// A ring holds the event from now on: what is kept counts in `charge` until `detach`.
    func attach(_ charge: RingCharge) {
        table.withLock { table in
            table.charge = charge
            charge.add(table.kept)
        }
    }

    /// The ring no longer holds the event: what it keeps stops counting there.
    func detach() {
        table.withLock { table in
            table.charge?.add(-table.kept)
            table.charge = nil
        }
    }

    /// The delta of `event` on `topic`, made by `make` the first time.
    func delta(_ topic: Topic, make: () -> Stb_Gateway_V1_Delta) -> EncodedKind {
        if let known = table.withLock({ $0.byTopic[topic] }) { return known }
        return store(topic, EncodedKind(.delta(make())))
    }

    /// The delta on `topic` (made by `make` the first time), the token of a stream at
    /// `cursor` of `upstream` alone, and the whole message with that token in wire form
    /// (made once, shared by every such stream), in one look.
    func delta(
        _ topic: Topic, token epoch: String, at upstream: Upstream, _ cursor: OutboxCursor, make: () -> Stb_Gateway_V1_Delta
    ) -> (body: EncodedKind, token: String, wire: [UInt8]) {
        let known = table.withLock { table -> (EncodedKind?, String?, [UInt8]?) in
            guard let single = table.single, single.epoch == epoch else { return (table.byTopic[topic], nil, nil) }
            return (table.byTopic[topic], single.text, table.singleWire[topic])
        }
        if let body = known.0, let text = known.1, let wire = known.2 { return (body, text, wire) }
        let body = known.0 ?? store(topic, EncodedKind(.delta(make())))
        let made = known.1 ?? ResumeToken(epoch: epoch, positions: [upstream: cursor]).text
        return table.withLock { table in
            if table.single == nil {
                table.single = (epoch, made)
                table.keep(made.utf8.count + Self.entryOverhead)
            }
            // Another epoch's stream (none in one gateway) gets its own, unshared.
            guard let single = table.single, single.epoch == epoch else { return (body, made, body.encoded(token: made)) }
            if let wire = table.singleWire[topic] { return (body, single.text, wire) }
            let wire = body.encoded(token: single.text)
            table.singleWire[topic] = wire
            table.keep(wire.count + Self.entryOverhead)
            return (body, single.text, wire)
        }
    }

    /// The token of a stream at `positions` (one of which is this event's), made once.
    func token(epoch: String, positions: [Upstream: OutboxCursor]) -> String {
        let known = table.withLock { table in
            table.tokens.first { $0.positions == positions && $0.epoch == epoch }?.text
        }
        if let known { return known }
        let text = ResumeToken(epoch: epoch, positions: positions).text
        table.withLock { table in
            guard !table.tokens.contains(where: { $0.positions == positions && $0.epoch == epoch }) else { return }
            if table.tokens.count < Self.tokenEntries {
                table.tokens.append((epoch, positions, text))
            } else {
                table.keep(-Self.tokenCost(table.tokens[table.nextToken]))
                table.tokens[table.nextToken] = (epoch, positions, text)
                table.nextToken = (table.nextToken + 1) % Self.tokenEntries
            }
            table.keep(Self.tokenCost((epoch, positions, text)))
        }
        return text
    }

    private func store(_ topic: Topic, _ made: EncodedKind) -> EncodedKind {
        table.withLock { table in
            if let known = table.byTopic[topic] { return known }
            table.byTopic[topic] = made
            table.keep(made.bytes.count + Self.entryOverhead)
            return made
        }
    }

    /// What a kept token costs: its text and its positions.
    private static func tokenCost(_ entry: (epoch: String, positions: [Upstream: OutboxCursor], text: String)) -> Int {
        entry.text.utf8.count + entry.positions.count * 32 + entryOverhead
    }
}
