import STBEventLoop

/// A server call's writes made on its event loop without suspending, for a fan-out that
/// writes one message to many calls: taken once per call, so each write goes straight to
/// the call (no look through the writer's sink), and the writes of the calls that share a
/// connection can be flushed to its socket together.
public struct ServerCallDirectWriter: Sendable {
    let call: ServerCall

    /// The loop the call's writes are made on; `writeNow` and `flush` only there.
    public var loop: EventLoop { call.loop }

    /// The call's connection: calls with the same one share its socket and its writes.
    public var connection: ObjectIdentifier { ObjectIdentifier(call.connection) }

    /// Queues one message already in protobuf wire form at once, on `loop`, while the
    /// stream holds less than its limit; false (nothing queued) otherwise. Throws if the
    /// call ended.
    public func writeNow(encoded bytes: [UInt8]) throws -> Bool {
        try call.sendNow(bytes)
    }

    /// Writes what the connection has queued to its socket now, instead of at the end of
    /// the loop's turn: a fan-out that flushes each connection once its calls have their
    /// message lets the peer read the first while it writes the rest. Loop only.
    public func flush() {
        guard call.loop.inEventLoop else { return }
        call.connection.transport.flush()
    }
}

extension RPCWriter {
    /// The direct path of a server call's writer in protobuf (nil for other writers).
    public var serverCallDirect: ServerCallDirectWriter? {
        guard sendsProtobuf, let call = sink as? ServerCall else { return nil }
        return ServerCallDirectWriter(call: call)
    }
}
