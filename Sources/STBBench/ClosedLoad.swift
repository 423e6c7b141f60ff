/// What a closed-loop load run saw: calls, errors, the size of the last reply and every
/// call's latency (nanoseconds).
public struct LoadResult: Sendable {
    public var calls = 0
    public var errors = 0
    public var bytes = 0
    public var latencies: [UInt64] = []
    public var firstError: String?

    public init() {}
}

/// `callers` tasks calling `call` back to back for `seconds`, each with
/// `clients[i % clients.count]`; a caller stops early after 100 errors. Returns what they
/// saw together and the elapsed seconds.
public func closedLoad<Client: Sendable>(
    clients: [Client], callers: Int, seconds: Int,
    _ call: @escaping @Sendable (Client) async throws -> Int
) async -> (result: LoadResult, elapsed: Double) {
    let start = now()
    let deadline = start + UInt64(seconds) * 1_000_000_000
    let result = await withTaskGroup(of: LoadResult.self) { group in
        for index in 0..<callers {
            let client = clients[index % clients.count]
            group.addTask {
                var mine = LoadResult()
                mine.latencies.reserveCapacity(1 << 16)
                while now() < deadline {
                    let t0 = now()
                    do {
                        mine.bytes = try await call(client)
                        mine.latencies.append(now() - t0)
                        mine.calls += 1
                    } catch {
                        mine.errors += 1
                        if mine.firstError == nil { mine.firstError = "\(error)" }
                        if mine.errors > 100 { break }
                    }
                }
                return mine
            }
        }
        var total = LoadResult()
        for await part in group {
            total.calls += part.calls
            total.errors += part.errors
            total.bytes = max(total.bytes, part.bytes)
            total.latencies += part.latencies
            if total.firstError == nil { total.firstError = part.firstError }
        }
        return total
    }
    return (result, Double(now() - start) / 1e9)
}
