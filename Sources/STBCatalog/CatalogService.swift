import Logging
import STBJSON
import STBAPI
import STBMessages
import STBPostgres
import STBRPC
import STBOptionValues
import STBService

/// The catalog service: CRUD for modules, groups, options, states and transitions, the
/// assembled configuration, seed imports and the change feed; one file per entity
/// (`CatalogService+Modules.swift`, …).
///
/// Every change runs in one transaction that also writes its audit rows, its outbox
/// events and the revision bump (`ChangeSet`); bad input is refused before anything is
/// written.
public struct CatalogService: Stb_Catalog_V1_CatalogService {
    let pool: PostgresPool
    /// The change feed: one event per change, in commit order.
    public let outbox: Outbox
    let cache: ConfigCache
    let feed: OutboxFeed
    let logger: Logger

    /// The outbox channel woken on every catalog commit.
    public static let channel = "catalog_events"

    public init(pool: PostgresPool, signal: ChangeSignal, logger: Logger) {
        self.pool = pool
        self.outbox = Outbox(table: "events", channel: Self.channel, revisionTable: "catalog_revision")
        self.cache = ConfigCache(pool: pool, signal: signal)
        self.feed = OutboxFeed(outbox: outbox, pool: pool, signal: signal)
        self.logger = logger
    }

    /// Every method, with `GetConfig` answered from the cache's pre-encoded bytes (at once,
    /// on the connection's thread, while the cache is current).
    public func register(in router: inout RPCRouter) {
        registerMethods(in: &router)
        router.register(ConfigCache.getConfigEncoded, unary: { request, _ in try await cache.reply(to: request) })
        router.register(ConfigCache.getConfigEncoded, immediate: { request, _ in try cache.immediateReply(to: request) })
    }

    /// Runs `body` in a transaction whose changes are recorded (audit, events, revision).
    func change<R: Sendable>(actor: CallerIdentity, _ body: (PostgresTransaction, ChangeSet) async throws -> R) async throws -> R {
        let (result, revision) = try await pool.withTransaction(maxAttempts: 3) { transaction in
            let changes = ChangeSet(caller: actor)
            let result = try await body(transaction, changes)
            return (result, try await changes.write(in: transaction, outbox: outbox))
        }
        if let revision { cache.invalidate(revision: revision) }
        return result
    }

    /// Runs `statement` (an insert that does nothing on conflict, then `E.selectWritten`)
    /// and records the created entity; ALREADY_EXISTS with `duplicate` when nothing was
    /// inserted.
    func created<E: CatalogRecord>(
        _ type: E.Type, _ statement: PostgresQuery, in transaction: PostgresTransaction, _ changes: ChangeSet,
        duplicate: @autoclosure () -> String
    ) async throws -> E {
        guard let row = try await transaction.query(statement).first else {
            throw RPCError(code: .alreadyExists, message: duplicate())
        }
        let entity = try E(row: row)
        changes.created(entity)
        return entity
    }

    /// Runs `statement` (an update of `before`'s row, then `E.selectWritten`) and records
    /// the change.
    func updated<E: CatalogRecord>(_ before: E, _ statement: PostgresQuery, in transaction: PostgresTransaction, _ changes: ChangeSet) async throws -> E {
        let after = try E(row: try await transaction.query(statement)[0])
        changes.updated(before, to: after)
        return after
    }

    /// An update of the entity `ref` names: loads it locked, lets `apply` change a copy, and when that
    /// changed anything runs `statement` (for the changed copy: an update of its row, then
    /// `E.selectWritten`) and records the change. An update that changes nothing writes
    /// nothing.
    func update<E: CatalogRecord, Ref>(
        _ context: ServerContext, _ ref: Ref?, load: (Ref, PostgresConnection, Bool) async throws -> E,
        _ apply: (inout E, PostgresTransaction) async throws -> Void, statement: (E) -> PostgresQuery
    ) async throws -> E {
        guard let ref else { throw invalid("ref: required") }
        return try await change(actor: context.caller) { transaction, changes in
            let before = try await load(ref, transaction.connection, true)
            var after = before
            try await apply(&after, transaction)
            guard after.auditJSON != before.auditJSON else { return before }
            return try await updated(before, statement(after), in: transaction, changes)
        }
    }

    /// An entity by id, or else by its module's key and its names within the module
    /// (`names`: each column and the ref's value); NOT_FOUND when there is none.
    func load<E: CatalogRecord>(
        _ type: E.Type, id: Int64, moduleKey: String = "", names: [(column: String, value: String)] = [],
        forUpdate: Bool, on connection: PostgresConnection
    ) async throws -> E {
        if id != 0 || names.isEmpty { return try await E.find(id: id, forUpdate: forUpdate, on: connection) }
        guard !moduleKey.isEmpty, names.allSatisfy({ !$0.value.isEmpty }) else {
            let fields = ["module_key"] + names.map { String($0.column.drop { $0 != "." }.dropFirst()) }
            throw invalid("ref: give an id, or \(fields.dropLast().joined(separator: ", ")) and \(fields.last!)")
        }
        let values = [moduleKey] + names.map(\.value)
        return try await E.find(
            where: ["m.key"] + names.map(\.column), equal: values, described: quoted(values.joined(separator: "/")),
            forUpdate: forUpdate, on: connection)
    }

    /// An entity by its catalog-wide key (modules, options); NOT_FOUND when there is none.
    func load<E: CatalogRecord>(_ type: E.Type, key: String, forUpdate: Bool, on connection: PostgresConnection) async throws -> E {
        try await E.find(where: ["\(E.alias).key"], equal: [key], described: quoted(key), forUpdate: forUpdate, on: connection)
    }

    /// Deletes `entity` in `transaction`, recording the deletion.
    func delete<E: CatalogRecord>(_ entity: E, in transaction: PostgresTransaction, _ changes: ChangeSet) async throws {
        try await entity.delete(in: transaction)
        changes.deleted(entity)
    }

    /// Every entity of a module (every module's when `moduleKey` is empty), by module then id.
    func all<E: CatalogRecord>(_ type: E.Type, inModule moduleKey: String) async throws -> [E] {
        try E.decode(try await pool.query("""
            SELECT \(unescaped: E.columns) FROM \(unescaped: E.source)
            WHERE \(moduleKey) = '' OR m.key = \(moduleKey) ORDER BY m.key, \(unescaped: E.alias).id
            """))
    }

    /// Checks the fields most partial updates share; returns the parsed meta when given.
    func checkedUpdate(name: String?, description: String? = nil, metaJson: String?, more: [String] = []) throws -> JSONValue? {
        var problems = more
        if let name { problems += Validation.name(name, at: "name") }
        if let description { problems += Validation.text(description, limit: .description, at: "description") }
        var meta: JSONValue?
        if let metaJson {
            let (value, metaProblems) = Validation.meta(metaJson, at: "meta_json")
            meta = value
            problems += metaProblems
        }
        try check(problems)
        return meta
    }
}

func invalid(_ problem: String) -> RPCError {
    invalidArgument([problem])
}
