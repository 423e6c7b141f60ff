/// Framed messages queued for one stream's DATA frames, read by nghttp2's data provider.
struct OutboundBody {
    private var bytes: [UInt8] = []
    private var index = 0
    /// The gRPC prefix of a message queued on an empty body, which `bytes` then is as the
    /// handler gave it (shared, not copied into a framed buffer); `prefixSent` of its 5
    /// bytes have gone (5: no prefix pending).
    private var prefix: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0)
    private var prefixSent = 5
    /// Whether `bytes` is such a message, whose storage others may share.
    private var adopted = false
    /// Whether nghttp2 was told the body is deferred (resume it when data arrives).
    var isDeferred = false
    /// Handlers or callers waiting for the queue to drain.
    var drainWaiters: [UnsafeContinuation<Void, any Error>] = []

    var pending: Int { 5 - prefixSent + bytes.count - index }

    mutating func append(message: [UInt8]) {
        if bytes.isEmpty, prefixSent == 5 {
            // The usual unary answer: its bytes as they are, with the prefix beside them.
            let length = UInt32(truncatingIfNeeded: message.count)
            prefix = (
                0, UInt8(truncatingIfNeeded: length >> 24), UInt8(truncatingIfNeeded: length >> 16),
                UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length)
            )
            prefixSent = 0
            bytes = message
            index = 0
            adopted = true
            return
        }
        // One allocation for prefix and message, not two. Only when empty: reserving a
        // little more each time would copy the whole queue on every append.
        if bytes.isEmpty { bytes.reserveCapacity(5 + message.count) }
        appendFramedMessage(message, to: &bytes)
        adopted = false
    }

    /// Queues `raw` as it is, without gRPC framing (a plain HTTP response body).
    mutating func append(raw: [UInt8]) {
        bytes.append(contentsOf: raw)
        adopted = false
    }

    /// Queues one Connect envelope with `flags` (0x02: the end-of-stream message).
    mutating func append(envelope message: [UInt8], flags: UInt8) {
        appendEnvelope(flags: flags, message, to: &bytes)
        adopted = false
    }

    /// Drops what is queued and not yet sent.
    mutating func discard() {
        bytes.removeAll()
        index = 0
        prefixSent = 5
        adopted = false
    }

    /// Copies up to `length` queued bytes into `buffer`; returns the count.
    mutating func copy(into buffer: UnsafeMutablePointer<UInt8>, length: Int) -> Int {
        var copied = 0
        if prefixSent < 5 {
            copied = min(5 - prefixSent, length)
            let from = prefixSent
            withUnsafeBytes(of: prefix) { prefix in
                UnsafeMutableRawPointer(buffer).copyMemory(from: prefix.baseAddress! + from, byteCount: copied)
            }
            prefixSent += copied
        }
        let count = min(bytes.count - index, length - copied)
        guard count > 0 else { return copied }
        bytes.withUnsafeBytes { source in
            UnsafeMutableRawPointer(buffer + copied).copyMemory(from: source.baseAddress! + index, byteCount: count)
        }
        index += count
        if index == bytes.count {
            if adopted {
                // Shared storage: keeping its capacity would allocate a copy.
                bytes = []
                adopted = false
            } else {
                bytes.removeAll(keepingCapacity: bytes.capacity <= 1 << 16)
            }
            index = 0
        } else if index > 1 << 18, !adopted {
            // Shared storage is not ours to shrink.
            bytes.removeFirst(index)
            index = 0
        }
        return copied + count
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
