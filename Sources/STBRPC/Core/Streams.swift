import STBMessages
import STBEventLoop

/// Where a call's outgoing messages go: the server's response or the client's request body.
protocol MessageSink: Sendable {
    /// Queues one encoded message; suspends while too much is queued (backpressure).
    func send(_ message: [UInt8]) async throws
}

/// Writes messages of one type to the other side of a call.
public struct RPCWriter<Message: ProtoMessage>: Sendable {
    let sink: any MessageSink
    /// How messages are encoded on this call.
    var codec: MessageCodec = .proto

    init(sink: any MessageSink, codec: MessageCodec = .proto) {
        self.sink = sink
        self.codec = codec
    }

    /// A writer that hands each message, encoded as protobuf, to `send` (a handler called
    /// directly, its messages carried some other way).
    public init(encodedMessages send: @escaping @Sendable ([UInt8]) async throws -> Void) {
        self.sink = ClosureSink(send: send)
    }

    /// Sends one message. Suspends while the peer is slow to read; throws if the call ended.
    public func write(_ message: Message) async throws {
        try await sink.send(message.encoded(codec))
    }

    /// Whether messages go out as protobuf (else JSON): then `write(encoded:)` may send
    /// bytes encoded once for many calls.
    public var sendsProtobuf: Bool { codec == .proto }

    /// Sends one message already in protobuf wire form (only when `sendsProtobuf`).
    public func write(encoded bytes: [UInt8]) async throws {
        try await sink.send(bytes)
    }

    /// The event loop a server call's messages are written on (nil for other writers):
    /// `writeNow(encoded:)` queues at once only on its thread.
    public var eventLoop: EventLoop? { (sink as? ServerCall)?.loop }

    /// Queues one message already in protobuf wire form (only when `sendsProtobuf`) at
    /// once, without suspending, on a server call's event loop while its transport holds
    /// less than its per-stream limit; false (nothing queued) otherwise, and the caller
    /// uses `write(encoded:)`, which waits. Throws if the call ended.
    public func writeNow(encoded bytes: [UInt8]) throws -> Bool {
        guard let call = sink as? ServerCall else { return false }
        return try call.sendNow(bytes)
    }

    /// Sends each message in order.
    public func write(contentsOf messages: some Sequence<Message>) async throws {
        for message in messages { try await write(message) }
    }
}

/// The messages received on a call, in order.
///
/// A server handler's request stream ends when the client half-closes; a client's response
/// stream ends at the server's status and throws `RPCError` if that status is not OK.
public struct RPCMessageStream<Message: ProtoMessage>: AsyncSequence, Sendable {
    public typealias Element = Message
    let queue: MessageQueue
    /// A server's request stream: a message the client got wrong is its fault
    /// (INVALID_ARGUMENT), where a bad response on a client's stream is not.
    var carriesRequests = false
    /// How messages are encoded on this call.
    var codec: MessageCodec = .proto

    public struct AsyncIterator: AsyncIteratorProtocol {
        let queue: MessageQueue
        let carriesRequests: Bool
        let codec: MessageCodec

        public mutating func next() async throws -> Message? {
            guard let bytes = try await queue.next() else { return nil }
            if codec == .json {
                do {
                    return try Message(jsonUTF8: bytes)
                } catch {
                    throw RPCError(decodingJSONRequest: error)
                }
            }
            do {
                return try Message(serializedBytes: bytes)
            } catch {
                if carriesRequests { throw RPCError(decodingRequest: error) }
                throw RPCError(code: .internal, message: "could not decode \(Message.protoMessageName)")
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(queue: queue, carriesRequests: carriesRequests, codec: codec)
    }
}

/// A sink that hands each encoded message to a function.
private struct ClosureSink: MessageSink {
    let send: @Sendable ([UInt8]) async throws -> Void
    func send(_ message: [UInt8]) async throws { try await send(message) }
}
