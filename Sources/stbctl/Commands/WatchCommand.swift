import STBJSON
import ArgumentParser
import Dispatch
import Foundation
import STBMessages
import STBRPC
import Synchronization

/// `stbctl watch`: the catalog's change feed.
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Follow the catalog's changes as they happen.",
        discussion: """
            Prints one line per change:

              <cursor>  <action> <entity> <key>  by <actor>  rev <revision>

            With --after, first replays the changes made after that cursor (from an earlier \
            event, or the `cursor` of `stbctl config --json`), then follows new ones. Runs \
            until Ctrl-C (exit 0). If the stream breaks, the error names the last cursor \
            to resume from.

            --json prints one JSON object per line instead: cursor, action, entity, key, \
            actor, at_ms, revision, and state (the entity after the change, or before it \
            for a deletion).

            Examples:
              stbctl watch
              stbctl watch --after "$(stbctl config --json | jq -r .cursor)"
              stbctl watch --json | jq 'select(.entity == "option")'
            """
    )

    @Option(help: ArgumentHelp("Replay the changes after this cursor first. (default: only new changes)", valueName: "cursor"))
    var after: String?

    @Flag(help: "Print one JSON object per line.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let request = Stb_Catalog_V1_WatchRequest(after: after ?? "")
        let progress = WatchProgress(cursor: after ?? "")
        let json = json
        if Terminal.stderrIsTerminal {
            Terminal.writeError(
                "watching the catalog at \(global.resolvedAddress)\(after == nil ? "" : " after \(after!)") (Ctrl-C to stop)")
        }
        let interrupted: Bool
        do {
            interrupted = try await global.withCatalog { session in
                try await withThrowingTaskGroup(of: Bool.self) { group in
                    let interrupts = Interrupts()
                    group.addTask {
                        try await Self.follow(session, request, json: json, progress: progress)
                        return false
                    }
                    group.addTask {
                        await interrupts.first()
                        return true
                    }
                    // The first child to finish decides; the other is cancelled.
                    let interrupted = try await group.next() ?? false
                    group.cancelAll()
                    return interrupted
                }
            }
        } catch let failure as CommandFailure {
            throw CommandFailure(failure.message + progress.resumeHint)
        }
        if !interrupted {
            throw CommandFailure("the catalog ended the watch stream" + progress.resumeHint)
        }
    }

    private static func follow(
        _ session: CatalogSession, _ request: Stb_Catalog_V1_WatchRequest, json: Bool, progress: WatchProgress
    ) async throws {
        // No deadline: a watch runs until it is stopped.
        try await session.client.serverStreaming(
            Stb_Catalog_V1_Catalog.watch, request: request, metadata: session.metadata, timeout: nil
        ) { events in
            for try await event in events {
                Terminal.write(json ? Self.json(event).rendered() : line(event))
                Terminal.flush()
                progress.advance(to: event.cursor)
            }
        }
    }

    /// `<cursor>  <action> <entity> <key>  by <actor>  rev <revision>`.
    static func line(_ event: Stb_Catalog_V1_ChangeEvent) -> String {
        let actor = event.actor.isEmpty ? "-" : event.actor
        return "\(event.cursor)  \(event.action.name) \(event.entity) \(event.key)  by \(actor)  rev \(event.revision)"
    }

    static func json(_ event: Stb_Catalog_V1_ChangeEvent) -> JSONValue {
        [
            "cursor": .string(event.cursor),
            "action": .string(event.action.name),
            "entity": .string(event.entity),
            "key": .string(event.key),
            "actor": .string(event.actor),
            "at_ms": .number(event.atMs),
            "revision": .number(event.revision),
            "state": Record(event.state).map { .object($0.json) } ?? .null,
        ]
    }
}

/// The last cursor a watch printed, to resume from after a failure.
private final class WatchProgress: Sendable {
    private let cursor: Mutex<String>

    init(cursor: String) {
        self.cursor = Mutex(cursor)
    }

    func advance(to cursor: String) {
        self.cursor.withLock { $0 = cursor }
    }

    /// `; resume with: stbctl watch --after CURSOR`, or nothing before the first event.
    var resumeHint: String {
        let cursor = cursor.withLock { $0 }
        return cursor.isEmpty ? "" : "; resume with: stbctl watch --after \(cursor)"
    }
}

/// SIGINT and SIGTERM, caught while a watch runs so that they end it cleanly.
private struct Interrupts: Sendable {
    private let signals: AsyncStream<Int32>

    init() {
        signals = AsyncStream { continuation in
            let sources = SignalSources([SIGINT, SIGTERM]) { continuation.yield($0) }
            continuation.onTermination = { _ in sources.cancel() }
        }
    }

    /// Returns at the first signal, or when the task is cancelled.
    func first() async {
        for await _ in signals { return }
    }
}

/// Dispatch sources for some signals, whose default action is off while they run.
private final class SignalSources: @unchecked Sendable {
    // @unchecked: `sources` is set in init and only read after; DispatchSource is thread-safe.
    private let sources: [any DispatchSourceSignal]
    private let numbers: [Int32]

    init(_ numbers: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        self.numbers = numbers
        sources = numbers.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(number) }
            source.resume()
            return source
        }
    }

    /// Stops catching: a second Ctrl-C ends the process at once.
    func cancel() {
        for source in sources { source.cancel() }
        for number in numbers { signal(number, SIG_DFL) }
    }
}

extension Stb_Common_V1_ChangeAction {
    /// `created`, `updated`, `deleted`.
    var name: String {
        switch self {
        case .unspecified: "changed"
        case .created: "created"
        case .updated: "updated"
        case .deleted: "deleted"
        case .unrecognized(let value): "action_\(value)"
        }
    }
}
