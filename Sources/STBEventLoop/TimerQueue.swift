/// A one-shot timer on a loop; cancel it to stop it firing. Loop only.
package final class TimerHandle {
    package let deadline: UInt64
    package fileprivate(set) var isCancelled = false
    fileprivate var action: (() -> Void)?
    /// The queue holding the timer, and its place in the queue's heap; nil once the timer
    /// fired or was cancelled.
    fileprivate var queue: TimerQueue?
    fileprivate var position = 0

    init(deadline: UInt64, action: @escaping () -> Void) {
        self.deadline = deadline
        self.action = action
    }

    /// Stops the timer firing, and takes it out of its loop's queue at once.
    package func cancel() {
        isCancelled = true
        action = nil
        queue?.remove(self)
    }

    /// Runs the action, unless cancelled; the queue has already let the timer go.
    func fire() {
        guard !isCancelled else { return }
        isCancelled = true
        let action = self.action
        self.action = nil
        action?()
    }
}

/// A loop's pending timers: a binary min-heap by deadline in which each timer knows its
/// place, so that a cancelled timer leaves at once. Most timers are calls' deadlines,
/// cancelled when the call ends long before them: left in the heap until due, a 30 s
/// deadline at 10,000 calls/s would keep 300,000 dead timers that every insert and
/// removal walks past. Loop only.
final class TimerQueue {
    private var items: [TimerHandle] = []

    /// Timers waiting to fire.
    var count: Int { items.count }

    /// The timer due first.
    func peek() -> TimerHandle? { items.first }

    func insert(_ handle: TimerHandle) {
        handle.queue = self
        handle.position = items.count
        items.append(handle)
        siftUp(items.count - 1)
    }

    /// Takes out the timer due first.
    func removeFirst() {
        guard let first = items.first else { return }
        remove(first)
    }

    /// Takes `handle` out; nothing when it is not here.
    func remove(_ handle: TimerHandle) {
        let position = handle.position
        guard handle.queue === self, position < items.count, items[position] === handle else { return }
        handle.queue = nil
        let last = items.removeLast()
        guard position < items.count else { return }
        items[position] = last
        last.position = position
        siftDown(position)
        siftUp(position)
    }

    /// Lets every timer go without firing it (the loop is going away).
    func removeAll() {
        for handle in items { handle.queue = nil }
        items.removeAll()
    }

    private func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].deadline < items[parent].deadline else { break }
            swapAt(child, parent)
            child = parent
        }
    }

    private func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < items.count, items[left].deadline < items[smallest].deadline { smallest = left }
            if right < items.count, items[right].deadline < items[smallest].deadline { smallest = right }
            if smallest == parent { return }
            swapAt(parent, smallest)
            parent = smallest
        }
    }

    private func swapAt(_ first: Int, _ second: Int) {
        items.swapAt(first, second)
        items[first].position = first
        items[second].position = second
    }
}
