import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import STBService
import Synchronization

/// A GetConfig reply already in wire form: built once and sent many times.
public typealias EncodedMessage = ProtoEncodedMessage<Stb_Catalog_V1_GetConfigResponse>

/// The assembled catalog, kept in memory in wire form.
///
/// Built in one REPEATABLE READ snapshot with the revision and the outbox cursor that
/// snapshot corresponds to. Each module's `ConfigModule` is encoded once; a reply is the
/// revision and cursor fields followed by the chosen modules' bytes, so no call encodes
/// the tree again. The cache goes stale on a local change, and when the outbox signal
/// (LISTEN, or its periodic poll) fires: then one query compares the revision, and only
/// a different revision rebuilds.
///
/// A caller that keeps a copy (`accept_delta`) and is a few revisions behind gets only
/// what changed since its revision (`ConfigCache+Delta.swift`).
public final class ConfigCache: Sendable {
    /// GetConfig served with a pre-encoded reply.
    static let getConfigEncoded = ProtoMethod<Stb_Catalog_V1_GetConfigRequest, EncodedMessage>(
        path: Stb_Catalog_V1_Catalog.getConfig.path, kind: .unary
    )

    struct Snapshot: Sendable {
        let revision: UInt64
        let cursor: String
        /// Module key → field-4-framed `ConfigModule` bytes, in key order.
        let modules: [(key: String, framed: [UInt8])]
        let index: [String: Int]
        let fullReply: [UInt8]
        /// Every entity of the tree by its event key, for deltas.
        let entities: ConfigEntities
        /// The signal generation the snapshot was checked against.
        var generation: UInt64
    }

    let pool: PostgresPool
    private let signal: ChangeSignal
    private let snapshot = Mutex<Snapshot?>(nil)
    /// The newest revision this process knows was committed.
    private let knownRevision = Atomic<UInt64>(0)
    /// Whether a caller is comparing revisions now; the others keep serving the snapshot.
    private let checking = Atomic<Bool>(false)
    private let building = Mutex<Task<Snapshot, any Error>?>(nil)
    /// Delta replies of the current revision, by base revision and module filter.
    let deltas = Mutex(DeltaReplies())

    init(pool: PostgresPool, signal: ChangeSignal) {
        self.pool = pool
        self.signal = signal
    }

    /// A local commit produced `revision`.
    func invalidate(revision: UInt64) {
        _ = knownRevision.max(revision, ordering: .relaxed)
    }

    func reply(to request: Stb_Catalog_V1_GetConfigRequest) async throws -> EncodedMessage {
        let current = try await currentSnapshot()
        var delta: [UInt8]?
        if try Self.takesDelta(request, current) {
            delta = try await deltaReply(from: request.knownRevision, to: current, modules: request.moduleKeys)
        }
        return Self.answer(request, current, delta: delta)
    }

    /// `reply(to:)` from memory alone, without waiting: nil when the snapshot may be stale,
    /// or the delta the caller needs is not computed yet (then `reply(to:)` answers).
    func immediateReply(to request: Stb_Catalog_V1_GetConfigRequest) throws -> EncodedMessage? {
        let generation = signal.generation
        let known = knownRevision.load(ordering: .relaxed)
        guard let current = snapshot.withLock({ $0 }), current.revision >= known, current.generation == generation else {
            return nil
        }
        var delta: [UInt8]?
        if try Self.takesDelta(request, current) {
            switch cachedDelta(from: request.knownRevision, to: current, modules: request.moduleKeys) {
            case .delta(let bytes)?: delta = bytes
            case .full?: break
            case nil: return nil
            }
        }
        return Self.answer(request, current, delta: delta)
    }

    /// Whether a delta may answer `request`: it holds a copy (`accept_delta`) older than
    /// `current`. NOT_FOUND for a module `current` does not have (unless the copy is current).
    private static func takesDelta(_ request: Stb_Catalog_V1_GetConfigRequest, _ current: Snapshot) throws -> Bool {
        if request.knownRevision != 0, request.knownRevision == current.revision { return false }
        let missing = request.moduleKeys.filter { current.index[$0] == nil }
        if !missing.isEmpty {
            throw RPCError(code: .notFound, message: "no such module: \(missing.map(quoted).joined(separator: ", "))")
        }
        return request.acceptDelta && request.knownRevision != 0 && request.knownRevision < current.revision
    }

    /// The reply to `request` from `current`: unchanged, the `delta` when there is one,
    /// else the whole tree or the modules asked for.
    private static func answer(_ request: Stb_Catalog_V1_GetConfigRequest, _ current: Snapshot, delta: [UInt8]?) -> EncodedMessage {
        if request.knownRevision != 0, request.knownRevision == current.revision {
            var unchanged = Stb_Catalog_V1_GetConfigResponse()
            unchanged.revision = current.revision
            unchanged.unchanged = true
            unchanged.cursor = current.cursor
            return EncodedMessage(bytes: unchanged.serializedBytes())
        }
        if let delta { return EncodedMessage(bytes: delta) }
        if request.moduleKeys.isEmpty { return EncodedMessage(bytes: current.fullReply) }
        var reply = header(revision: current.revision, cursor: current.cursor)
        for key in request.moduleKeys {
            if let position = current.index[key] { reply += current.modules[position].framed }
        }
        return EncodedMessage(bytes: reply)
    }

    /// The snapshot, rebuilt first when it may be stale.
    func currentSnapshot() async throws -> Snapshot {
        let generation = signal.generation
        let known = knownRevision.load(ordering: .relaxed)
        if let cached = snapshot.withLock({ $0 }), cached.revision >= known {
            if cached.generation == generation { return cached }
            // Something may have changed elsewhere: one caller compares revisions (one
            // cheap query) while the others are served the snapshot meanwhile.
            guard checking.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return cached }
            defer { checking.store(false, ordering: .releasing) }
            let rows = try await pool.query("SELECT revision FROM catalog_revision")
            let revision = UInt64(try rows[0].decode(0, as: Int64.self))
            if revision == cached.revision {
                var refreshed = cached
                refreshed.generation = generation
                snapshot.withLock { if ($0?.revision ?? 0) <= refreshed.revision { $0 = refreshed } }
                return refreshed
            }
        }
        var built = try await rebuild(generation: generation)
        // A build that started before this caller's own commit cannot show it: build again.
        while built.revision < known {
            built = try await rebuild(generation: generation)
        }
        _ = knownRevision.max(built.revision, ordering: .relaxed)
        snapshot.withLock { current in
            if current == nil || current!.revision <= built.revision { current = built }
        }
        return built
    }

    /// One build at a time: callers arriving meanwhile share its result.
    private func rebuild(generation: UInt64) async throws -> Snapshot {
        let task = building.withLock { current -> Task<Snapshot, any Error> in
            if let current { return current }
            let task = Task { try await self.build(generation: generation) }
            current = task
            return task
        }
        defer { building.withLock { if $0 == task { $0 = nil } } }
        return try await task.value
    }

    private func build(generation: UInt64) async throws -> Snapshot {
        try await pool.withTransaction(isolationLevel: .repeatableRead) { transaction in
            let results = try await transaction.pipeline([
                "SELECT revision FROM catalog_revision",
                // The newest event in this snapshot: events are ordered by revision, which
                // follows commit order, so every later event has a higher cursor.
                "SELECT revision, id FROM events ORDER BY revision DESC, id DESC LIMIT 1",
                "SELECT revision, event_id FROM events_horizon",
                Module.selectAll(orderedBy: "m.key"),
                Group.selectAll(orderedBy: "m.key, g.position, g.key"),
                Option.selectAll(orderedBy: "o.group_id, o.key"),
                State.selectAll(orderedBy: "m.key, s.name"),
                Transition.selectAll(orderedBy: "m.key, t.from_state, t.event"),
            ])
            let revision = UInt64(try results[0][0].decode(0, as: Int64.self))
            // With every event pruned, the horizon is where the snapshot stands.
            let cursorRow = results[1].first ?? results[2][0]
            let cursor = OutboxCursor(revision: UInt64(clamping: try cursorRow.decode(0, as: Int64.self)), sequence: try cursorRow.decode(1, as: Int64.self))
            var entities = ConfigEntities()
            var modules: [String: Stb_Catalog_V1_ConfigModule] = [:]
            var order: [String] = []
            for row in results[3] {
                let module = try Module(row: row)
                var entry = Stb_Catalog_V1_ConfigModule()
                entry.module = module
                modules[module.key] = entry
                order.append(module.key)
                entities.modules[module.entityKey] = module
            }
            var groupIndex: [Int64: (module: String, position: Int)] = [:]
            for row in results[4] {
                let group = try Group(row: row)
                var entry = Stb_Catalog_V1_ConfigGroup()
                entry.group = group
                groupIndex[group.id] = (group.moduleKey, modules[group.moduleKey]!.groups.count)
                modules[group.moduleKey]!.groups.append(entry)
                entities.groups[group.entityKey] = group
            }
            var groupIDs: [String: Int64] = [:]
            for (id, place) in groupIndex {
                groupIDs["\(place.module)/\(modules[place.module]!.groups[place.position].group!.key)"] = id
            }
            for row in results[5] {
                let option = try Option(row: row)
                guard let id = groupIDs["\(option.moduleKey)/\(option.groupKey)"], let place = groupIndex[id] else { continue }
                modules[place.module]!.groups[place.position].options.append(option)
                entities.options[option.entityKey] = option
            }
            for row in results[6] {
                let state = try State(row: row)
                guard modules[state.moduleKey] != nil else { continue }
                modules[state.moduleKey]!.states.append(state)
                entities.states[state.entityKey] = state
            }
            for row in results[7] {
                let transition = try Transition(row: row)
                guard modules[transition.moduleKey] != nil else { continue }
                modules[transition.moduleKey]!.transitions.append(transition)
                entities.transitions[transition.entityKey] = transition
            }
            var framed: [(key: String, framed: [UInt8])] = []
            var index: [String: Int] = [:]
            var full = Self.header(revision: revision, cursor: cursor.description)
            for key in order {
                var bytes: [UInt8] = []
                Self.appendLengthDelimited(field: 4, modules[key]!.serializedBytes(), to: &bytes)
                index[key] = framed.count
                framed.append((key, bytes))
                full += bytes
            }
            return Snapshot(
                revision: revision, cursor: cursor.description, modules: framed, index: index,
                fullReply: full, entities: entities, generation: generation
            )
        }
    }

    /// `GetConfigResponse` fields 1 (revision) and 3 (cursor).
    static func header(revision: UInt64, cursor: String) -> [UInt8] {
        var header = Stb_Catalog_V1_GetConfigResponse()
        header.revision = revision
        header.cursor = cursor
        return header.serializedBytes()
    }

    private static func appendLengthDelimited(field: UInt64, _ payload: [UInt8], to buffer: inout [UInt8]) {
        appendVarint(field << 3 | 2, to: &buffer)
        appendVarint(UInt64(payload.count), to: &buffer)
        buffer += payload
    }

    private static func appendVarint(_ value: UInt64, to buffer: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            buffer.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        buffer.append(UInt8(value))
    }
}

