import Logging
import STBJSON
import STBMessages
import STBPostgres
import STBRPC
import STBService
import ServiceLifecycle
import Synchronization

/// Drift: when the catalog or the rules change, every project's draft is evaluated again
/// in one pass; a project whose validity (or effective configuration) changed gets its
/// row updated and a `validity` event (`project.validity_changed`) with the violations.
/// And the caches: this instance's change feed tells it what other instances changed.
extension ProjectService {
    /// The identity drift acts as: the project service account.
    static let driftIdentity = CallerIdentity(subject: "service:project", name: "project", role: "service")

    /// What one drift pass did.
    public struct DriftReport: Sendable {
        public var evaluated = 0
        public var changed = 0
        public var failed = 0
        public var seconds = 0.0
    }

    /// Runs drift passes whenever the catalog copy or the rules change (a burst of changes
    /// costs one pass), until cancelled or the service group shuts down.
    public var driftFollower: some Service {
        ClosureService { [self] in
            await cancelWhenGracefulShutdown { await self.followDrift() }
        }
    }

    func followDrift() async {
        var seen = driftSignal.generation
        while !Task.isCancelled {
            seen = await driftSignal.wait(after: seen)
            if Task.isCancelled { return }
            try? await Task.sleep(for: .milliseconds(200))
            seen = driftSignal.generation
            do {
                let report = try await reevaluateAll()
                logger.info("drift pass", metadata: [
                    "evaluated": "\(report.evaluated)", "changed": "\(report.changed)", "failed": "\(report.failed)",
                    "seconds": "\(report.seconds)",
                ])
            } catch {
                logger.warning("drift pass failed; retrying on the next change", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Evaluates every project's draft against the current catalog copy and rules, and
    /// records the projects whose validity or hash changed.
    @discardableResult
    public func reevaluateAll() async throws -> DriftReport {
        let started = ContinuousClock.now
        let catalog = try catalog()
        let caller = Self.driftIdentity
        // Every project and its settings, in two queries.
        struct Stored: Sendable {
            let id: Int64
            let key: String
            let hash: [UInt8]
            let valid: Bool
            let violations: [UInt8]
            let draftRevision: Int64
            let catalogRevision: Int64
            var draft = Draft()
        }
        let projects: [Stored] = try await withIdentity(caller) { transaction in
            var byID: [Int64: Stored] = [:]
            var order: [Int64] = []
            for row in try await transaction.query(
                "SELECT id, key, draft_hash, valid, violations, draft_revision, catalog_revision FROM projects WHERE NOT archived ORDER BY id") {
                let (id, key, hash, valid, violations, revision, catalogRevision) = try row.decode(
                    Int64.self, String.self, [UInt8].self, Bool.self, [UInt8].self, Int64.self, Int64.self)
                byID[id] = Stored(id: id, key: key, hash: hash, valid: valid, violations: violations, draftRevision: revision,
                                  catalogRevision: catalogRevision)
                order.append(id)
            }
            for row in try await transaction.query("SELECT project_id, option_key, included, value::text FROM project_options") {
                let (id, key, included, value) = try row.decode(Int64.self, String.self, Bool?.self, String?.self)
                byID[id]?.draft.settings[key] = OptionSetting(included: included, value: try value.map { try JSONValue.parse($0) })
            }
            return order.compactMap { byID[$0] }
        }
        var report = DriftReport()
        var next = 0
        let width = driftConcurrency
        try await withThrowingTaskGroup(of: Bool?.self) { group in
            func add() {
                guard next < projects.count else { return }
                let project = projects[next]
                next += 1
                group.addTask {
                    do {
                        let verdict = try await self.evaluate(project.draft, catalog: catalog, metadata: Metadata(), project: project.id)
                        // The configuration (and its hash) moves only with the catalog.
                        let hash = project.catalogRevision == Int64(catalog.revision) && !project.hash.isEmpty
                            ? project.hash : EffectiveConfig(catalog: catalog, draft: project.draft).hash
                        let encoded = Self.encodeViolations(verdict.violations)
                        guard verdict.valid != project.valid || encoded != project.violations || hash != project.hash else {
                            return false
                        }
                        return try await self.recordDrift(
                            (project.id, project.key), seenRevision: project.draftRevision, verdict: verdict, hash: hash,
                            before: (project.valid, Self.decodeViolations(project.violations), project.hash))
                    } catch {
                        self.logger.warning("drift could not evaluate a project", metadata: ["project": "\(project.key)", "error": "\(error)"])
                        return nil
                    }
                }
            }
            for _ in 0..<width { add() }
            while let outcome = try await group.next() {
                report.evaluated += 1
                switch outcome {
                case .some(true): report.changed += 1
                case .some(false): break
                case .none: report.failed += 1
                }
                add()
            }
        }
        let elapsed = (ContinuousClock.now - started).components
        report.seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        return report
    }

    /// Stores a project's new validity unless its draft changed since it was read (then
    /// the change that moved it was evaluated already); true when it was stored.
    func recordDrift(
        _ project: (id: Int64, key: String), seenRevision: Int64, verdict: Verdict, hash: [UInt8],
        before: (valid: Bool, violations: [Stb_Rules_V1_Violation], hash: [UInt8])
    ) async throws -> Bool {
        let stored = try await change(Self.driftIdentity) { transaction, changes -> Bool in
            let rows = try await transaction.query("SELECT draft_revision FROM projects WHERE id = \(project.id) FOR UPDATE")
            guard let row = rows.first, try row.decode(0, as: Int64.self) == seenRevision else { return false }
            try await storeVerdict(project.id, verdict: verdict, hash: hash, draftChanged: false, in: transaction)
            changes.record(
                project, entity: "validity", action: .updated,
                before: Self.validityJSON(before.valid, before.violations), after: Self.validityJSON(verdict.valid, verdict.violations),
                oldHash: before.hash, newHash: hash, validity: (verdict.valid, verdict.violations))
            return true
        }
        if stored { invalidateConfig(project.id) }
        return stored
    }

    static func validityJSON(_ valid: Bool, _ violations: [Stb_Rules_V1_Violation]) -> JSONValue {
        .object([
            "valid": .bool(valid),
            "violations": .array(violations.map { .string($0.ruleKey) }),
        ])
    }

    // MARK: - Followers

    /// Follows the rules service's change feed as the service account: each rules change
    /// starts a drift pass. Reconnects with backoff.
    public func rulesFollower() -> some Service {
        ClosureService { [self] in
            await cancelWhenGracefulShutdown { await self.followRules() }
        }
    }

    func followRules() async {
        var delay = Duration.milliseconds(100)
        var cursor = ""
        while !Task.isCancelled {
            do {
                try await rules.serverStreaming(Stb_Rules_V1_Rules.watch, request: Stb_Rules_V1_WatchRequest(after: cursor)) { stream in
                    for try await event in stream {
                        delay = .milliseconds(100)
                        cursor = event.cursor
                        rulesChanged(revision: event.revision)
                    }
                }
            } catch {
                if Task.isCancelled { return }
                if (error as? RPCError)?.code == .failedPrecondition { cursor = "" }
                logger.warning("following the rules failed; retrying", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    /// Follows this service's own change feed and drops what other instances changed from
    /// the caches.
    public func cacheFollower() -> some Service {
        ClosureService { [self] in
            await cancelWhenGracefulShutdown { await self.followOwnChanges() }
        }
    }

    func followOwnChanges() async {
        while !Task.isCancelled {
            do {
                let head = try await outbox.head(pool: pool)
                for try await batch in feed.batches(after: head) {
                    for event in batch {
                        let key = event.key.split(separator: "/", maxSplits: 1).first.map(String.init) ?? event.key
                        if event.entity == "member" || event.entity == "project" {
                            invalidate(project: key)
                        } else if let id = state.withLock({ $0.ids[key] }) {
                            invalidateConfig(id)
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("following the project feed failed; retrying", metadata: ["error": "\(error)"])
                state.withLock { state in
                    state.access.removeAll()
                    state.configs.removeAll()
                    for id in state.generations.keys { state.generations[id]! &+= 1 }
                }
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}
