import Glibc
internal import CLibpq
internal import CLinux
import STBEventLoop
import Metrics
import Synchronization

/// One non-blocking libpq connection, living on one event loop.
///
/// The loop watches the connection's socket; libpq is only ever called on the loop
/// thread, never in a way that blocks. Requests queue and run one at a time, in order.
/// Every extended-protocol request runs in pipeline mode: a statement not yet prepared on
/// this connection is prepared in the same round trip as its first execution, and a batch
/// of statements costs one round trip. Statements up to the pipeline's sync run as one
/// implicit transaction, unless an explicit transaction is open.
///
/// Get connections from a `PostgresPool`; a connection is not meant to be shared by
/// unrelated tasks.
public final class PostgresConnection: @unchecked Sendable {
    // @unchecked: all mutable state is loop-only; `usable` is atomic.

    /// The loop the connection lives on; tasks using it prefer this loop as executor.
    public let loop: EventLoop

    // Loop only.
    private var conn: OpaquePointer?
    private var fd: Int32 = -1
    private var phase: Phase = .idle
    /// The caller of `connect`, resumed once the connection is open or has failed.
    private var connectContinuation: CheckedContinuation<Void, any Error>?
    private var queue: [Request] = []
    private var current: Request?
    private var statements: [StatementKey: StatementName] = [:]
    /// The statement run last, checked before hashing: callers often repeat one.
    private var lastStatement: (key: StatementKey, name: StatementName)?
    private var statementCounter = 0
    private var wantsWrite = false
    private var connectTimer: TimerHandle?
    private var cancelsInFlight = 0
    private var whenQuiet: [() -> Void] = []
    /// Called once when the connection closes for any reason (pool bookkeeping).
    var onClose: (() -> Void)?
    /// Called with the channel of each notification received (LISTEN).
    var onNotification: ((String) -> Void)?

    private let usable = Atomic<Bool>(false)

    /// Payload-free, so the per-query checks of it copy nothing.
    private enum Phase {
        case idle
        case connecting
        case ready
        case closed
    }

    /// At most this many statements are kept prepared per connection; later ones run unnamed.
    static let statementCacheLimit = 512

    /// Times each statement or pipeline (a pooled connection's); nil: not timed.
    private let queryTimer: Metrics.Timer?

    private init(loop: EventLoop, queryTimer: Metrics.Timer? = nil) {
        self.loop = loop
        self.queryTimer = queryTimer
    }

    /// Whether the connection is open and has seen no fatal error.
    public var isUsable: Bool { usable.load(ordering: .acquiring) }

    // MARK: - Connecting

    /// Opens a connection on `loop`. `conninfo` is a libpq URI or `key=value` string.
    public static func connect(
        to conninfo: String, on loop: EventLoop, timeoutSeconds: Int = 10
    ) async throws(PostgresError) -> PostgresConnection {
        try await connect(to: conninfo, on: loop, timeoutSeconds: timeoutSeconds, onClose: nil)
    }

    /// `onClose` runs on the loop once the open connection closes (not when opening fails).
    static func connect(
        to conninfo: String, on loop: EventLoop, timeoutSeconds: Int, queryTimer: Metrics.Timer? = nil,
        onClose: (@Sendable () -> Void)?
    ) async throws(PostgresError) -> PostgresConnection {
        let connection = PostgresConnection(loop: loop, queryTimer: queryTimer)
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                loop.runOnLoop {
                    connection.onClose = onClose
                    connection.startConnecting(conninfo, timeoutSeconds: timeoutSeconds, continuation)
                }
            }
        } catch let error as PostgresError {
            throw error
        } catch {
            throw PostgresError(code: .connectionFailed, message: "\(error)")
        }
        return connection
    }

    private func startConnecting(_ conninfo: String, timeoutSeconds: Int, _ continuation: CheckedContinuation<Void, any Error>) {
        let keywords = ["dbname", "application_name"]
        let values = [conninfo, "stb"]
        conn = withCStrings(keywords) { keywordPointers in
            withCStrings(values) { valuePointers in
                PQconnectStartParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let conn, PQstatus(conn) != CONNECTION_BAD else {
            continuation.resume(throwing: connectFailure())
            closeSocket()
            return
        }
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
        phase = .connecting
        connectContinuation = continuation
        connectTimer = loop.schedule(afterNanoseconds: UInt64(timeoutSeconds) * 1_000_000_000) { [self] in
            failConnecting(PostgresError(code: .connectionFailed, message: "connecting to the database timed out after \(timeoutSeconds) s"))
        }
        // Before the first poll, libpq asks the caller to wait for writability.
        watchConnectingSocket(events: EPOLLOUT.rawValue)
    }

    /// During connection set-up libpq may replace its socket (another address, SSL
    /// fallback), possibly under the same number: register afresh each step.
    private func watchConnectingSocket(events: UInt32) {
        if fd >= 0 { loop.deregister(fd: fd) }
        fd = PQsocket(conn)
        guard fd >= 0 else {
            failConnecting(connectFailure())
            return
        }
        do {
            try loop.register(self, fd: fd, events: events)
        } catch {
            failConnecting(PostgresError(code: .connectionFailed, message: "\(error)"))
        }
    }

    private func continueConnecting() {
        switch PQconnectPoll(conn) {
        case PGRES_POLLING_READING:
            watchConnectingSocket(events: EPOLLIN.rawValue)
        case PGRES_POLLING_WRITING:
            watchConnectingSocket(events: EPOLLOUT.rawValue)
        case PGRES_POLLING_OK:
            guard phase == .connecting, let continuation = connectContinuation else { return }
            connectTimer?.cancel()
            connectTimer = nil
            PQsetnonblocking(conn, 1)
            loop.deregister(fd: fd)
            fd = PQsocket(conn)
            do {
                try loop.register(self, fd: fd, events: EPOLLIN.rawValue)
            } catch {
                failConnecting(PostgresError(code: .connectionFailed, message: "\(error)"))
                return
            }
            phase = .ready
            connectContinuation = nil
            usable.store(true, ordering: .releasing)
            continuation.resume()
        default:
            failConnecting(connectFailure())
        }
    }

    private func connectFailure() -> PostgresError {
        let reason = conn.map { errorText(PQerrorMessage($0)) } ?? "out of memory"
        return PostgresError(code: .connectionFailed, message: "could not connect to the database: \(reason)")
    }

    private func failConnecting(_ error: PostgresError) {
        guard phase == .connecting, let continuation = connectContinuation else { return }
        connectContinuation = nil
        connectTimer?.cancel()
        connectTimer = nil
        phase = .closed
        closeSocket()
        continuation.resume(throwing: error)
    }

    // MARK: - Requests

    /// Runs one statement and returns its rows.
    nonisolated(nonsending) public func query(_ query: PostgresQuery) async throws(PostgresError) -> PostgresRows {
        let request = Request(.single(query))
        guard let queryTimer else {
            try await run(request)
            return request.single ?? PostgresRows()
        }
        let start = monotonicNanos()
        defer { queryTimer.recordNanoseconds(Int64(monotonicNanos() &- start)) }
        try await run(request)
        return request.single ?? PostgresRows()
    }

    /// Runs several statements in one round trip (pipeline mode) and returns each one's
    /// rows, in order. Outside an explicit transaction the batch is atomic: if one
    /// statement fails, none of them takes effect.
    nonisolated(nonsending) public func pipeline(_ queries: [PostgresQuery]) async throws(PostgresError) -> [PostgresRows] {
        if queries.isEmpty { return [] }
        guard let queryTimer else { return try await run(.extended(queries)) }
        let start = monotonicNanos()
        defer { queryTimer.recordNanoseconds(Int64(monotonicNanos() &- start)) }
        return try await run(.extended(queries))
    }

    /// Runs a script of one or more statements with the simple protocol (no parameters,
    /// text results); for migrations and administrative commands.
    nonisolated(nonsending) public func execute(script: String) async throws(PostgresError) {
        _ = try await run(.simple(script))
    }

    /// Runs a request and returns each statement's rows. Non-cancellable requests
    /// (rollback, cleanup) run even in a cancelled task.
    nonisolated(nonsending) func run(_ kind: Request.Kind, cancellable: Bool = true) async throws(PostgresError) -> [PostgresRows] {
        let request = Request(kind)
        try await run(request, cancellable: cancellable)
        if case .single = kind { return request.single.map { [$0] } ?? [] }
        return request.rows
    }

    /// Runs `request`; its rows are on it afterwards. The caller suspends once, and when
    /// it runs on the connection's loop (the usual case) the request is queued without a
    /// closure or a hop; the loop resumes it when the results are in.
    nonisolated(nonsending) func run(_ request: Request, cancellable: Bool = true) async throws(PostgresError) {
        if cancellable && Task.isCancelled { throw PostgresError.cancelled }
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                request.continuation = continuation
                if loop.inEventLoop {
                    enqueue(request)
                } else {
                    loop.execute { self.enqueue(request) }
                }
            }
        } onCancel: {
            if cancellable { loop.runOnLoop { self.cancel(request) } }
        }
        if let error = request.error { throw error }
    }

    private func enqueue(_ request: Request) {
        if request.cancelRequested {
            request.finish(PostgresError.cancelled)
            return
        }
        guard phase == .ready, usable.load(ordering: .relaxed) else {
            request.finish(PostgresError.connectionLost("the connection is closed"))
            return
        }
        // The usual case, an idle connection, starts the request without queueing it.
        if current == nil, queue.isEmpty {
            start(request)
        } else {
            queue.append(request)
        }
    }

    private func startNext() {
        guard current == nil, !queue.isEmpty else { return }
        start(queue.removeFirst())
    }

    /// Sends `request`, which becomes the current one.
    private func start(_ request: Request) {
        current = request
        switch request.kind {
        case .single(let query):
            let key = StatementKey(query)
            if let name = preparedName(for: key) {
                // Prepared already: one Bind/Execute/Sync outside pipeline mode, which
                // spares the pipeline's extra sync result.
                request.pipelined = false
                guard execute(query, named: name) else { return failConnection(libpqFailure()) }
            } else {
                guard PQenterPipelineMode(conn) == 1 else { return failConnection(libpqFailure()) }
                guard send(query, key: key, for: request) else { return failConnection(libpqFailure()) }
                guard PQpipelineSync(conn) == 1 else { return failConnection(libpqFailure()) }
            }
        case .extended(let queries):
            guard PQenterPipelineMode(conn) == 1 else { return failConnection(libpqFailure()) }
            for query in queries {
                guard send(query, key: StatementKey(query), for: request) else { return failConnection(libpqFailure()) }
            }
            guard PQpipelineSync(conn) == 1 else { return failConnection(libpqFailure()) }
        case .simple(let script):
            guard PQsendQuery(conn, script) == 1 else { return failConnection(libpqFailure()) }
        }
        flush()
    }

    /// The name `key` is prepared under on this connection, if it is.
    private func preparedName(for key: StatementKey) -> StatementName? {
        if let last = lastStatement, last.key == key { return last.name }
        guard let name = statements[key] else { return nil }
        lastStatement = (key, name)
        return name
    }

    /// Queues one statement in pipeline mode: prepare (first use on this connection) and
    /// execute.
    private func send(_ query: PostgresQuery, key: StatementKey, for request: Request) -> Bool {
        var name = preparedName(for: key)
        if name == nil, statements.count < Self.statementCacheLimit {
            let newName = StatementName(counter: statementCounter)
            statementCounter += 1
            let prepared = query.bindings.types.withUnsafeBufferPointer { types in
                newName.withCString { PQsendPrepare(conn, $0, query.sql, Int32(types.count), types.baseAddress) }
            }
            guard prepared == 1 else { return false }
            statements[key] = newName
            request.prepares.append((request.stepCount, key))
            request.stepCount += 1
            name = newName
        }
        request.stepCount += 1
        return execute(query, named: name)
    }

    /// Sends Bind/Execute for `query`: the prepared statement `name`, or unnamed.
    private func execute(_ query: PostgresQuery, named name: StatementName?) -> Bool {
        withParameterPointers(query.bindings) { count, values, lengths, formats in
            if let name {
                return name.withCString { PQsendQueryPrepared(conn, $0, count, values, lengths, formats, 1) == 1 }
            }
            return query.bindings.types.withUnsafeBufferPointer { types in
                PQsendQueryParams(conn, query.sql, count, types.baseAddress, values, lengths, formats, 1) == 1
            }
        }
    }

    private func flush() {
        guard let conn else { return }
        switch PQflush(conn) {
        case 0:
            if wantsWrite {
                wantsWrite = false
                loop.modify(fd: fd, events: EPOLLIN.rawValue)
            }
        case 1:
            if !wantsWrite {
                wantsWrite = true
                loop.modify(fd: fd, events: EPOLLIN.rawValue | EPOLLOUT.rawValue)
            }
        default:
            failConnection(PostgresError.connectionLost(errorText(PQerrorMessage(conn))))
        }
    }

    // MARK: - Input

    private func readInput() {
        guard let conn else { return }
        guard PQconsumeInput(conn) == 1 else {
            return failConnection(PostgresError.connectionLost(errorText(PQerrorMessage(conn))))
        }
        while let notification = PQnotifies(conn) {
            let channel = String(cString: notification.pointee.relname)
            PQfreemem(notification)
            onNotification?(channel)
        }
        processResults()
        if self.conn != nil, PQstatus(conn) != CONNECTION_OK {
            failConnection(PostgresError.connectionLost(errorText(PQerrorMessage(conn))))
        }
    }

    private func processResults() {
        while let request = current, let conn, PQisBusy(conn) == 0 {
            let result = PQgetResult(conn)
            if request.pipelined {
                handlePipelineResult(result, request)
            } else {
                handleSimpleResult(result, request)
            }
        }
    }

    private func handlePipelineResult(_ result: OpaquePointer?, _ request: Request) {
        guard let result else {
            // End of one statement's results.
            request.stepIndex += 1
            return
        }
        let status = PQresultStatus(result)
        if status == PGRES_PIPELINE_SYNC {
            PQclear(result)
            PQexitPipelineMode(conn)
            complete(request)
            return
        }
        let prepared = request.preparedKey(atStep: request.stepIndex)
        switch status {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            if prepared == nil {
                request.add(PostgresRows(result: result))
            } else {
                PQclear(result)
            }
        case PGRES_PIPELINE_ABORTED:
            if let prepared { forget(prepared) }
            PQclear(result)
        default:
            if request.error == nil { request.error = serverError(result) }
            if let prepared { forget(prepared) }
            PQclear(result)
        }
    }

    private func handleSimpleResult(_ result: OpaquePointer?, _ request: Request) {
        guard let result else {
            complete(request)
            return
        }
        switch PQresultStatus(result) {
        case PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            request.add(PostgresRows(result: result))
        default:
            if request.error == nil { request.error = serverError(result) }
            PQclear(result)
        }
    }

    /// A statement whose preparation failed is prepared again on its next use.
    private func forget(_ key: StatementKey) {
        statements[key] = nil
        if let last = lastStatement, last.key == key { lastStatement = nil }
    }

    private func complete(_ request: Request) {
        current = nil
        request.finish(request.error)
        startNext()
    }

    private func serverError(_ result: OpaquePointer) -> PostgresError {
        func field(_ code: Character) -> String? {
            guard let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: value)
        }
        let state = field("C")
        let message = field("M") ?? errorText(PQresultErrorMessage(result))
        return PostgresError(
            code: state.map(PostgresError.code(forSQLState:)) ?? .server,
            message: message, sqlState: state, detail: field("D"),
            constraint: field("n"), table: field("t"), column: field("c")
        )
    }

    private func libpqFailure() -> PostgresError {
        PostgresError.connectionLost(conn.map { errorText(PQerrorMessage($0)) } ?? "closed")
    }

    // MARK: - Cancellation

    /// Cancels `request`: dropped if still queued; if running, the server is asked to
    /// cancel it (the request then fails with `queryCancelled`).
    private func cancel(_ request: Request) {
        request.cancelRequested = true
        if let index = queue.firstIndex(where: { $0 === request }) {
            queue.remove(at: index)
            request.finish(PostgresError.cancelled)
            return
        }
        guard current === request, let conn, let handle = PQgetCancel(conn) else { return }
        // PQcancel opens its own connection and blocks: it runs on a short-lived thread.
        // The connection is not handed to anyone else until it returns, so a late cancel
        // cannot hit the next user's statement.
        cancelsInFlight += 1
        let cancelHandle = CancelHandle(handle)
        runOnDetachedThread { [self] in
            cancelHandle.send()
            loop.execute { [self] in
                cancelsInFlight -= 1
                if cancelsInFlight == 0 { runWhenQuiet() }
            }
        }
    }

    /// Loop only: whether a cancel request sent for this connection is still on its way.
    var hasCancelsInFlight: Bool { cancelsInFlight > 0 }

    /// Runs `body` on the loop once no cancel request is in flight.
    func whenQuiet(_ body: @escaping () -> Void) {
        if cancelsInFlight == 0 { body() } else { whenQuiet.append(body) }
    }

    private func runWhenQuiet() {
        let callbacks = whenQuiet
        whenQuiet.removeAll()
        for callback in callbacks { callback() }
    }

    /// Loop only: whether the connection is idle outside any transaction.
    var isIdleOutsideTransaction: Bool {
        guard let conn, current == nil, queue.isEmpty else { return false }
        return PQtransactionStatus(conn) == PQTRANS_IDLE
    }

    // MARK: - Closing

    /// Closes the connection; pending requests fail with `connectionLost`.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            loop.runOnLoop {
                self.failConnection(PostgresError.connectionLost("the connection was closed"))
                continuation.resume()
            }
        }
    }

    /// Loop only: closes the connection now.
    func closeNow() {
        failConnection(PostgresError.connectionLost("the connection was closed"))
    }

    private func failConnection(_ error: PostgresError) {
        if phase == .connecting { return failConnecting(error) }
        if phase == .closed { return }
        phase = .closed
        usable.store(false, ordering: .releasing)
        closeSocket()
        var failed = queue
        queue.removeAll()
        if let current { failed.insert(current, at: 0) }
        current = nil
        for request in failed { request.finish(error) }
        let onClose = self.onClose
        self.onClose = nil
        onClose?()
    }

    private func closeSocket() {
        if fd >= 0 {
            loop.deregister(fd: fd)
            fd = -1
        }
        if let conn {
            PQfinish(conn)
            self.conn = nil
        }
    }
}

extension PostgresConnection: EventLoopSource {
    package func handleEvents(_ events: UInt32) {
        switch phase {
        case .connecting:
            continueConnecting()
        case .ready:
            if events & EPOLLOUT.rawValue != 0 { flush() }
            if events & (EPOLLIN.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 { readInput() }
            // Results read may have freed libpq's output buffer for more.
            if wantsWrite, conn != nil { flush() }
        case .idle, .closed:
            break
        }
    }
}

/// One queued unit of work: a statement, a pipeline of statements, or a simple-protocol
/// script. Its results are left on it for the caller, which the loop resumes once.
final class Request: @unchecked Sendable {
    // @unchecked: touched on its connection's loop only, and by the caller after it is
    // resumed (the resumption orders the two).
    enum Kind {
        /// One statement, the common case: no arrays for its statements or results.
        case single(PostgresQuery)
        case extended([PostgresQuery])
        case simple(String)
    }

    let kind: Kind
    var continuation: UnsafeContinuation<Void, Never>?
    /// Whether the request runs in pipeline mode (its results end with a sync).
    var pipelined: Bool
    /// Statements prepared by this request, by the index of their step (a step is one
    /// statement's results: a prepare, or an execution). Empty once everything is prepared.
    var prepares: [(step: Int, key: StatementKey)] = []
    var stepCount = 0
    var stepIndex = 0
    /// The rows of a `.single` request.
    var single: PostgresRows?
    /// The rows of each statement of the other kinds.
    var rows: [PostgresRows] = []
    var error: PostgresError?
    var cancelRequested = false

    init(_ kind: Kind) {
        self.kind = kind
        if case .simple = kind { pipelined = false } else { pipelined = true }
    }

    /// The statement prepared at `step`, or nil for an execution.
    func preparedKey(atStep step: Int) -> StatementKey? {
        for prepare in prepares where prepare.step == step { return prepare.key }
        return nil
    }

    func add(_ result: PostgresRows) {
        if case .single = kind, single == nil { single = result } else { rows.append(result) }
    }

    /// Resumes the caller, with `error` when the request failed.
    func finish(_ error: PostgresError?) {
        guard let continuation else { return }
        self.continuation = nil
        if let error { self.error = error }
        continuation.resume()
    }
}

/// A libpq cancel handle, used once from a helper thread and then freed.
private final class CancelHandle: @unchecked Sendable {
    private let handle: OpaquePointer
    init(_ handle: OpaquePointer) { self.handle = handle }

    func send() {
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(handle, &buffer, Int32(buffer.count))
        PQfreeCancel(handle)
    }
}

extension EventLoop {
    /// Runs `body` on the loop: right away when already there, else soon.
    func runOnLoop(_ body: @escaping @Sendable () -> Void) {
        if inEventLoop { body() } else { execute(body) }
    }
}

/// libpq error texts end with a newline.
func errorText(_ pointer: UnsafePointer<CChar>?) -> String {
    guard let pointer else { return "unknown error" }
    var text = String(cString: pointer)
    while text.last == "\n" { text.removeLast() }
    return text
}

/// Calls `body` with a NULL-terminated array of C strings.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let duplicates = strings.map { strdup($0) }
    defer { duplicates.forEach { free($0) } }
    var pointers: [UnsafePointer<CChar>?] = duplicates.map { UnsafePointer($0) }
    pointers.append(nil)
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// Calls `body` with libpq's parameter arrays pointing into `bindings`' buffer.
private func withParameterPointers<R>(
    _ bindings: PostgresBindings,
    _ body: (Int32, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> R
) -> R {
    let count = bindings.count
    if count == 0 { return body(0, nil, nil, nil) }
    // A zero-length value still needs a non-NULL pointer (NULL means SQL NULL).
    return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1) { empty in
        bindings.bytes.withUnsafeBufferPointer { buffer in
            let base = buffer.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(empty.baseAddress!)
            return withUnsafeTemporaryAllocation(of: UnsafePointer<CChar>?.self, capacity: count) { values in
                withUnsafeTemporaryAllocation(of: Int32.self, capacity: count) { lengths in
                    withUnsafeTemporaryAllocation(of: Int32.self, capacity: count) { formats in
                        for index in 0..<count {
                            let parameter = bindings.parameters[index]
                            values[index] = parameter.length < 0 ? nil : (base + parameter.offset).assumingMemoryBound(to: CChar.self)
                            lengths[index] = max(parameter.length, 0)
                            formats[index] = 1
                        }
                        return body(Int32(count), UnsafePointer(values.baseAddress), UnsafePointer(lengths.baseAddress), UnsafePointer(formats.baseAddress))
                    }
                }
            }
        }
    }
}

/// Runs `body` on a new detached thread (for the rare blocking libpq call).
func runOnDetachedThread(_ body: @escaping @Sendable () -> Void) {
    final class Box { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
    let box = Unmanaged.passRetained(Box(body))
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    defer { pthread_attr_destroy(&attributes) }
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attributes, { raw in
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, box.toOpaque())
    if rc != 0 {
        // No thread to be had: run it here rather than lose it.
        box.takeRetainedValue().body()
    }
}

/// Prepared-statement cache key: the text and parameter types, read from the query's own
/// storage (no types array or string is built per call).
struct StatementKey: Hashable {
    let sql: String
    let parameters: [PostgresBindings.Parameter]

    init(_ query: PostgresQuery) {
        sql = query.sql
        parameters = query.bindings.parameters
    }

    static func == (lhs: StatementKey, rhs: StatementKey) -> Bool {
        guard lhs.parameters.count == rhs.parameters.count, lhs.sql == rhs.sql else { return false }
        for index in lhs.parameters.indices where lhs.parameters[index].type != rhs.parameters[index].type { return false }
        return true
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(sql)
        hasher.combine(parameters.count)
        for parameter in parameters { hasher.combine(parameter.type) }
    }
}

/// A prepared statement's name (`s0`, `s1`, ...) as the NUL-terminated text libpq takes,
/// made once when the statement is prepared.
struct StatementName {
    private let text: ContiguousArray<CChar>

    init(counter: Int) {
        text = "s\(counter)".utf8CString
    }

    func withCString<R>(_ body: (UnsafePointer<CChar>) -> R) -> R {
        text.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
