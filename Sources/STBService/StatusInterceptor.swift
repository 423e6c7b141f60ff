import Logging
import STBPostgres
import STBRPC

/// Turns what a handler throws into the status a caller sees, for every call of a
/// service: an `RPCError` as it is, a database error as the status it means (unique
/// violation → ALREADY_EXISTS, lost connection → UNAVAILABLE, …), cancellation as
/// CANCELLED, and anything else as INTERNAL "internal error" — logged, never shown.
///
/// Every status leaves with structured details: an `ErrorInfo` in the `stb` domain
/// (the handler's, or one whose reason is the code's name, with the service), and on
/// the retryable UNAVAILABLE and ABORTED a `RetryInfo` saying how long to wait.
public struct StatusInterceptor: ServerInterceptor {
    /// The service's name as callers read it: "catalog", "rules".
    public let service: String
    public let logger: Logger

    public init(service: String, logger: Logger) {
        self.service = service
        self.logger = logger
    }

    /// How long a caller should wait before retrying an UNAVAILABLE call (the database or
    /// a peer is away) and an ABORTED one (a conflicting concurrent change).
    public static let retryDelays: [RPCError.Code: Duration] = [.unavailable: .seconds(1), .aborted: .milliseconds(100)]

    public func intercept<Result: Sendable>(
        context: ServerContext, next: @Sendable (ServerContext) async throws -> Result
    ) async throws -> Result {
        do {
            return try await next(context)
        } catch {
            throw status(for: error, path: context.path)
        }
    }

    public func interceptImmediately<Result: Sendable>(
        context: ServerContext, next: (ServerContext) throws -> Result?
    ) throws -> Result? {
        do {
            return try next(context)
        } catch {
            throw status(for: error, path: context.path)
        }
    }

    /// The status a caller sees for what a handler threw. Synchronous and never inlined:
    /// in `intercept` its work would widen the async frame that a streaming call keeps
    /// for as long as it lasts.
    @inline(never)
    func status(for error: any Error, path: String) -> RPCError {
        switch error {
        case let error as RPCError:
            return detailed(error)
        case let error as PostgresError:
            return detailed(status(for: error))
        case is CancellationError:
            return detailed(RPCError(code: .cancelled, message: "the call was cancelled"))
        default:
            logger.error("\(service) call failed", metadata: ["path": "\(path)", "error": "\(error)"])
            return detailed(RPCError(code: .internal, message: "internal error"))
        }
    }

    /// `status` with the details every status carries: a `RetryInfo` when it is retryable,
    /// an `ErrorInfo` when it has none (its reason the code's name).
    public func detailed(_ status: RPCError) -> RPCError {
        var status = status
        if let delay = Self.retryDelays[status.code], status.retryInfo == nil {
            status.details.append(.retry(after: delay))
        }
        if status.errorInfo == nil {
            status.details.append(.errorInfo(reason: "\(status.code)", metadata: ["service": service]))
        }
        return status
    }

    /// The status for a database error.
    public func status(for error: PostgresError) -> RPCError {
        switch error.code {
        case .uniqueViolation:
            return RPCError(code: .alreadyExists, message: "already exists\(error.detail.map { ": \($0)" } ?? "")")
        case .foreignKeyViolation:
            return RPCError(code: .failedPrecondition, message: "still referenced or refers to something missing\(error.detail.map { ": \($0)" } ?? "")")
        case .checkViolation, .notNullViolation, .invalidData:
            return RPCError(code: .invalidArgument, message: "invalid value: \(error.message)")
        case .serializationFailure, .deadlockDetected:
            return RPCError(code: .aborted, message: "conflicting concurrent change; retry")
        case .connectionLost, .connectionFailed, .poolClosed:
            return RPCError(code: .unavailable, message: "the \(service) database is unavailable; retry")
        case .queryCancelled:
            return RPCError(code: .cancelled, message: "the call was cancelled")
        default:
            logger.error("database error", metadata: ["error": "\(error)"])
            return RPCError(code: .internal, message: "internal database error")
        }
    }
}

extension ServerContext {
    /// The name audit rows and events record for this call: the established identity's,
    /// "anonymous" without one.
    public var actor: String { identity?.name ?? "anonymous" }

    /// The established identity, or an anonymous one (subject empty) without one.
    public var caller: CallerIdentity { identity ?? CallerIdentity(subject: "", name: "anonymous") }
}
