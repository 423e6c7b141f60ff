import Synchronization

/// The in-flight cap of a unary run: at most `cap` calls in all and `perConnection` on each
/// connection. The dispatcher takes a slot (on the next connection with room, round robin)
/// before each call; the call's completion gives it back.
final class CallSlots: Sendable {
    private struct State {
        var inFlight: [Int]
        var total = 0
        var cursor = 0
        /// The dispatcher, waiting for a slot (it gets the connection of the freed one).
        var waiter: UnsafeContinuation<Int, Never>?
        /// The dispatcher, waiting for every call to end.
        var drainWaiter: UnsafeContinuation<Void, Never>?
    }

    private let state: Mutex<State>
    private let cap: Int
    private let perConnection: Int

    init(connections: Int, perConnection: Int, cap: Int) {
        self.state = Mutex(State(inFlight: Array(repeating: 0, count: connections)))
        self.cap = cap
        self.perConnection = perConnection
    }

    /// A connection with a free slot, taken; waits while the cap is full (only the
    /// dispatcher calls this).
    func acquire() async -> Int {
        if let connection = state.withLock({ Self.take(&$0, cap: cap, perConnection: perConnection) }) { return connection }
        return await withUnsafeContinuation { (continuation: UnsafeContinuation<Int, Never>) in
            let connection = state.withLock { state -> Int? in
                if let connection = Self.take(&state, cap: cap, perConnection: perConnection) { return connection }
                state.waiter = continuation
                return nil
            }
            if let connection { continuation.resume(returning: connection) }
        }
    }

    /// Gives back a slot of `connection` (a call ended, or was not sent).
    func release(_ connection: Int) {
        enum Wake { case none, dispatcher(UnsafeContinuation<Int, Never>), drained(UnsafeContinuation<Void, Never>) }
        let wake = state.withLock { state -> Wake in
            if let waiter = state.waiter {
                // The freed slot goes straight to the waiting dispatcher.
                state.waiter = nil
                return .dispatcher(waiter)
            }
            state.inFlight[connection] -= 1
            state.total -= 1
            if state.total == 0, let drainWaiter = state.drainWaiter {
                state.drainWaiter = nil
                return .drained(drainWaiter)
            }
            return .none
        }
        switch wake {
        case .none: break
        case .dispatcher(let waiter): waiter.resume(returning: connection)
        case .drained(let waiter): waiter.resume()
        }
    }

    /// Returns once no call is in flight.
    func drained() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let idle = state.withLock { state -> Bool in
                if state.total == 0 { return true }
                state.drainWaiter = continuation
                return false
            }
            if idle { continuation.resume() }
        }
    }

    private static func take(_ state: inout State, cap: Int, perConnection: Int) -> Int? {
        guard state.total < cap else { return nil }
        let count = state.inFlight.count
        for step in 0..<count {
            let connection = (state.cursor + step) % count
            if state.inFlight[connection] < perConnection {
                state.inFlight[connection] += 1
                state.total += 1
                state.cursor = (connection + 1) % count
                return connection
            }
        }
        return nil
    }
}
