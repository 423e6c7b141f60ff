import STBJSON
import STBMessages
import Synchronization

/// Every stub in force, from files and from the admin API, indexed by method path in
/// the order they are tried: priority descending (higher wins), then id ascending (the
/// deterministic tie-break).
///
/// Changes replace the whole index at once, so a call sees the stubs before a change or
/// after it, never half of one.
public final class StubRegistry: Sendable {
    /// Where a stub came from.
    public enum Source: Sendable, Hashable, CustomStringConvertible {
        case api
        case file(String)

        public var description: String {
            switch self {
            case .api: "api"
            case .file(let path): path
            }
        }
    }

    private struct State {
        var stubs: [String: (stub: StubDefinition, source: Source)] = [:]
        var index: [String: [StubDefinition]] = [:]
        /// Faults of whole mocks, by service.
        var mockFaults: [String: (fault: StubDefinition.Fault, probability: Double)] = [:]
        /// Delays of whole mocks, by service.
        var mockDelays: [String: StubDefinition.Delay] = [:]

        mutating func reindex() {
            var index: [String: [StubDefinition]] = [:]
            for (stub, _) in stubs.values { index[stub.method.path, default: []].append(stub) }
            for path in index.keys {
                index[path]?.sort { $0.priority != $1.priority ? $0.priority > $1.priority : $0.id < $1.id }
            }
            self.index = index
        }
    }

    private let state = Mutex(State())

    public init() {}

    /// The stubs tried for a call to `path`, in order, and the fault and delay of the mock
    /// of `service` (which apply when the answering stub has none of its own).
    func candidates(for path: String, service: String) -> (
        stubs: [StubDefinition], mockFault: (fault: StubDefinition.Fault, probability: Double)?, mockDelay: StubDefinition.Delay?
    ) {
        state.withLock { state in
            (state.index[path] ?? [], state.mockFaults.isEmpty ? nil : state.mockFaults[service],
             state.mockDelays.isEmpty ? nil : state.mockDelays[service])
        }
    }

    /// Sets (or with nil removes) the fault of every call the mock of `service` answers
    /// with a stub that sets no fault of its own. Read from JSON in the stub file's form:
    /// `{"kind": "RST_STREAM", "code": 2, "probability": 0.5}`.
    public func setMockFault(service: String, fault value: JSONValue?) throws(StubError) {
        let fault = try value.map { (value) throws(StubError) in try StubDefinition.fault(value) }
        state.withLock { $0.mockFaults[service] = fault }
    }

    /// Sets (or with nil removes) the delay before every answer the mock of `service` gives
    /// with a stub that sets no delay of its own. Read from JSON in the stub file's form:
    /// `{"fixedMs": 100}`.
    public func setMockDelay(service: String, delay value: JSONValue?) throws(StubError) {
        let delay = try value.map { (value) throws(StubError) in try StubDefinition.delay(value) }
        state.withLock { $0.mockDelays[service] = delay }
    }

    /// The mocks' faults as given, by service.
    public func mockFaultServices() -> [String] {
        state.withLock { $0.mockFaults.keys.sorted() }
    }

    /// Replaces every stub read from `file` with `stubs`, all at once. Refuses (changing
    /// nothing) when an id repeats or belongs to another source.
    public func replaceFileStubs(_ stubs: [StubDefinition], file: String) throws(StubError) {
        var seen = Set<String>()
        for (position, stub) in stubs.enumerated() where !seen.insert(stub.id).inserted {
            throw StubError("stubs[\(position)].id", "\(stub.id) is used twice")
        }
        let result: StubError? = state.withLock { state in
            for stub in stubs {
                if let existing = state.stubs[stub.id], existing.source != .file(file) {
                    return StubError("id", "\(stub.id) is already a stub of \(existing.source)")
                }
            }
            state.stubs = state.stubs.filter { $0.value.source != .file(file) }
            for stub in stubs { state.stubs[stub.id] = (stub, .file(file)) }
            state.reindex()
            return nil
        }
        if let result { throw result }
    }

    /// Adds or replaces a stub saved through the admin API; refuses an id a file owns.
    public func put(_ stub: StubDefinition) throws(StubError) {
        let result: StubError? = state.withLock { state in
            if let existing = state.stubs[stub.id], existing.source != .api {
                return StubError("id", "\(stub.id) is a stub of \(existing.source): change it there")
            }
            state.stubs[stub.id] = (stub, .api)
            state.reindex()
            return nil
        }
        if let result { throw result }
    }

    /// Removes an admin-API stub; false when there is none with that id.
    public func delete(_ id: String) throws(StubError) -> Bool {
        let result: Result<Bool, StubError> = state.withLock { state in
            guard let existing = state.stubs[id] else { return .success(false) }
            guard existing.source == .api else { return .failure(StubError("id", "\(id) is a stub of \(existing.source): change it there")) }
            state.stubs[id] = nil
            state.reindex()
            return .success(true)
        }
        return try result.get()
    }

    /// One stub and its source.
    public func stub(_ id: String) -> (stub: StubDefinition, source: Source)? {
        state.withLock { $0.stubs[id] }
    }

    /// Every stub, by method path then the order they are tried.
    public func all() -> [(stub: StubDefinition, source: Source)] {
        state.withLock { state in
            state.index.keys.sorted().flatMap { path in
                (state.index[path] ?? []).compactMap { state.stubs[$0.id] }
            }
        }
    }
}
