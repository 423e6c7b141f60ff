import STBMessages
import STBPostgres
import Synchronization

/// Every entity of an assembled tree, by the key its change events carry
/// (`Module.entityKey`, …): what a delta reply reads current values from.
struct ConfigEntities: Sendable {
    var modules: [String: Module] = [:]
    var groups: [String: Group] = [:]
    var options: [String: Option] = [:]
    var states: [String: State] = [:]
    var transitions: [String: Transition] = [:]
}

/// The delta replies computed for one current revision, so that the many callers one or
/// a few revisions behind after a change cost one query between them.
struct DeltaReplies: Sendable {
    struct Key: Hashable, Sendable {
        let base: UInt64
        let modules: [String]
    }

    enum Reply: Sendable {
        case delta([UInt8])
        /// The feed no longer holds every change after the base: the whole tree.
        case full
    }

    /// The revision every entry leads to.
    private(set) var revision: UInt64 = 0
    private var replies: [Key: Reply] = [:]

    /// At most this many bases and filters are kept per revision.
    static let limit = 64

    func reply(for key: Key, revision: UInt64) -> Reply? {
        revision == self.revision ? replies[key] : nil
    }

    mutating func store(_ reply: Reply, for key: Key, revision: UInt64) {
        if revision > self.revision {
            self.revision = revision
            replies.removeAll(keepingCapacity: true)
        }
        guard revision == self.revision else { return }
        if replies.count >= Self.limit { replies.removeAll(keepingCapacity: true) }
        replies[key] = reply
    }
}

extension ConfigCache {
    /// The reply taking a copy at `base` to `current`, restricted to `modules` when not
    /// empty (every one of them exists in `current`); nil when the outbox no longer holds
    /// every change after `base` (pruned), so only the whole tree will do.
    func deltaReply(from base: UInt64, to current: Snapshot, modules: [String]) async throws -> [UInt8]? {
        let key = DeltaReplies.Key(base: base, modules: modules)
        switch cachedDelta(from: base, to: current, modules: modules) {
        case .delta(let bytes)?: return bytes
        case .full?: return nil
        case nil: break
        }
        let reply = try await computeDelta(from: base, to: current, modules: modules)
        deltas.withLock { $0.store(reply, for: key, revision: current.revision) }
        if case .delta(let bytes) = reply { return bytes }
        return nil
    }

    /// The reply `deltaReply` computed before for these arguments, if any.
    func cachedDelta(from base: UInt64, to current: Snapshot, modules: [String]) -> DeltaReplies.Reply? {
        let key = DeltaReplies.Key(base: base, modules: modules)
        return deltas.withLock { $0.reply(for: key, revision: current.revision) }
    }

    /// One query: the horizon and every entity touched after `base` up to the snapshot's
    /// revision. Events up to that revision were all committed before the snapshot was
    /// taken (revisions follow commit order), so the rows match the snapshot exactly.
    private func computeDelta(from base: UInt64, to current: Snapshot, modules: [String]) async throws -> DeltaReplies.Reply {
        let rows = try await pool.query("""
            SELECT h.revision,
                   EXISTS (SELECT 1 FROM events WHERE revision = 0),
                   e.entity, e.entity_key
            FROM events_horizon h
            LEFT JOIN LATERAL (
                SELECT DISTINCT entity, entity_key FROM events
                WHERE revision > \(Int64(clamping: base)) AND revision <= \(Int64(clamping: current.revision))
            ) e ON true
            ORDER BY e.entity, e.entity_key
            """)
        guard let first = rows.first else { return .full }
        let (horizon, unstamped) = try first.decode(Int64.self, Bool.self)
        // Events older than the horizon may be gone; events written before the outbox
        // was ordered by revision carry none, so a base among them cannot be placed.
        if horizon > Int64(clamping: base) || unstamped { return .full }
        let wanted = Set(modules)
        func included(_ module: Substring) -> Bool { wanted.isEmpty || wanted.contains(String(module)) }
        func moduleOf(_ key: String) -> Substring { key.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)[0] }

        var delta = Stb_Catalog_V1_ConfigDelta()
        delta.baseRevision = base
        let entities = current.entities
        for row in rows {
            guard let entity: String = try row.decode(2), let key: String = try row.decode(3),
                let kind = EntityKind(rawValue: entity)
            else { continue }
            switch kind {
            case .module:
                guard included(Substring(key)) else { continue }
                if let module = entities.modules[key] { delta.modules.append(module) } else { delta.deletedModules.append(key) }
            case .group:
                guard included(moduleOf(key)) else { continue }
                if let group = entities.groups[key] { delta.groups.append(group) } else { delta.deletedGroups.append(key) }
            case .option:
                // Option keys are global: the option may have moved into or out of the
                // requested modules, so one outside them now is gone from the caller's view.
                if let option = entities.options[key], included(Substring(option.moduleKey)) {
                    delta.options.append(option)
                } else {
                    delta.deletedOptions.append(key)
                }
            case .state:
                guard included(moduleOf(key)) else { continue }
                if let state = entities.states[key] { delta.states.append(state) } else { delta.deletedStates.append(key) }
            case .transition:
                guard included(moduleOf(key)) else { continue }
                if let transition = entities.transitions[key] { delta.transitions.append(transition) } else { delta.deletedTransitions.append(key) }
            }
        }
        var reply = Stb_Catalog_V1_GetConfigResponse()
        reply.revision = current.revision
        reply.cursor = current.cursor
        reply.delta = true
        reply.changes = delta
        return .delta(reply.serializedBytes())
    }
}
