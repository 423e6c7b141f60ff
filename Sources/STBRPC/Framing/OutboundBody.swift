/// Framed messages queued for one stream's DATA frames, read by nghttp2's data provider.
struct OutboundBody {
    private var bytes: [UInt8] = []
    private var index = 0
    /// Whether nghttp2 was told the body is deferred (resume it when data arrives).
    var isDeferred = false
    /// Handlers or callers waiting for the queue to drain.
    var drainWaiters: [UnsafeContinuation<Void, any Error>] = []

    var pending: Int { bytes.count - index }

    mutating func append(message: [UInt8]) {
        // One allocation for prefix and message, not two. Only when empty: reserving a
        // little more each time would copy the whole queue on every append.
        if bytes.isEmpty { bytes.reserveCapacity(5 + message.count) }
        appendFramedMessage(message, to: &bytes)
    }

    /// Queues `raw` as it is, without gRPC framing (a plain HTTP response body).
    mutating func append(raw: [UInt8]) {
        bytes.append(contentsOf: raw)
    }

    /// Queues one Connect envelope with `flags` (0x02: the end-of-stream message).
    mutating func append(envelope message: [UInt8], flags: UInt8) {
        appendEnvelope(flags: flags, message, to: &bytes)
    }

    /// Drops what is queued and not yet sent.
    mutating func discard() {
        bytes.removeAll()
        index = 0
    }

    /// Copies up to `length` queued bytes into `buffer`; returns the count.
    mutating func copy(into buffer: UnsafeMutablePointer<UInt8>, length: Int) -> Int {
        let count = min(pending, length)
        guard count > 0 else { return 0 }
        bytes.withUnsafeBytes { source in
            UnsafeMutableRawPointer(buffer).copyMemory(from: source.baseAddress! + index, byteCount: count)
        }
        index += count
        if index == bytes.count {
            bytes.removeAll(keepingCapacity: bytes.capacity <= 1 << 16)
            index = 0
        } else if index > 1 << 18 {
            bytes.removeFirst(index)
            index = 0
        }
        return count
    }

    /// Resumes every waiter, with `error` or normally.
    mutating func resumeWaiters(error: (any Error)?) {
        let waiters = drainWaiters
        drainWaiters = []
        for waiter in waiters {
            if let error { waiter.resume(throwing: error) } else { waiter.resume() }
        }
    }
}
