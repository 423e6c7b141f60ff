import Glibc

// What every benchmark program shares: its output and its clock. The programs do
// without Foundation.

/// The program's name, for messages.
private let programName: String = {
    let path = CommandLine.arguments.first ?? "bench"
    return String(path[(path.lastIndex(of: "/").map(path.index(after:)) ?? path.startIndex)...])
}()

/// A message on standard error, prefixed with the program's name.
public func complain(_ message: String) {
    let line = Array("\(programName): \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// One line to standard output at once (scripts wait for and parse these lines).
public func report(_ line: String) {
    print(line)
    fflush(nil)
}

/// Complains and exits 1.
public func fail(_ message: String) -> Never {
    complain(message)
    exit(1)
}

/// Nanoseconds on the monotonic clock.
public func now() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

/// `value` with `digits` decimals.
public func format(_ value: Double, _ digits: Int = 1) -> String {
    var buffer = [CChar](repeating: 0, count: 64)
    _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.\(digits)f", $0) }
    return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// The nearest-rank `p`th percentile of sorted samples (0 when there are none).
public func percentile(_ sorted: [UInt64], _ p: Double) -> UInt64 {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
}
