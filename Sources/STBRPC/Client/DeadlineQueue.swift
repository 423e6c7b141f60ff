import STBEventLoop

/// The deadlines of one prepared method's calls. Every call has the same timeout and they
/// start in order, so they expire in order: a FIFO with one timer for its head replaces a
/// timer per call. Loop only.
final class DeadlineQueue: @unchecked Sendable {
    // @unchecked: touched only on `loop`.
    private let loop: EventLoop
    private let timeoutNanos: UInt64
    /// Started calls by deadline; nil where a call was dropped. From `head` on.
    private var entries: [(deadline: UInt64, exchange: UnaryExchange?)] = []
    private var head = 0
    private var timer: TimerHandle?

    init(loop: EventLoop, timeoutNanos: UInt64) {
        self.loop = loop
        self.timeoutNanos = timeoutNanos
    }

    /// Watches a call that has just started.
    func add(_ exchange: UnaryExchange) {
        dropFinished()
        entries.append((monotonicNanos() &+ timeoutNanos, exchange))
        if timer == nil { arm() }
    }

    /// Drops ended calls from the head, so the queue holds about the calls in flight.
    private func dropFinished() {
        while head < entries.count, entries[head].exchange?.isFinished ?? true {
            entries[head] = (0, nil)
            head += 1
        }
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024, head * 2 >= entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }

    private func arm() {
        guard head < entries.count else { return }
        let now = monotonicNanos()
        let due = entries[head].deadline
        timer = loop.schedule(afterNanoseconds: due > now ? due - now : 0) { [weak self] in
            // Weak: one timer per timeout, not per call; a dropped queue lets it fire idle.
            self?.timer = nil
            self?.expire()
        }
    }

    private func expire() {
        let now = monotonicNanos()
        while head < entries.count, entries[head].deadline <= now {
            let exchange = entries[head].exchange
            entries[head] = (0, nil)
            head += 1
            guard let exchange, !exchange.isFinished else { continue }
            let status = RPCError(code: .deadlineExceeded, message: "deadline exceeded")
            if let connection = exchange.connection { connection.cancel(exchange, status: status) } else { exchange.finish(.failure(status)) }
        }
        dropFinished()
        arm()
    }
}
