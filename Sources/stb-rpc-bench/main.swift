import Glibc
import STBBench
import STBMessages
import STBRPC

// Client-side measurements for scripts/bench-rpc (run it with no arguments for usage).
// --host defaults to 127.0.0.1 (an IPv4 address); --port is required.
//
//   stream --host H --port P --messages N --streams S
//       S concurrent Expand calls on one connection, each asking for N/S replies of text "x".
//       Prints `stream_msgs_per_s=<v> messages=<n> seconds=<t> streams=<s>`; exit 1 when a
//       call fails or the count received is not the count requested.
//   unary --host H --port P --calls N --concurrency C
//       N Get calls ("hello"), C at a time on one connection. Prints
//       `unary_calls_per_s=<v> calls=<n> errors=<e> seconds=<t> ... p50_us= p90_us= p99_us= max_us=`;
//       exit 1 when a call fails.
//   idle --host H --port P --connections N [--hold-seconds S]
//       N raw TCP connections, each sent the HTTP/2 client preface and an empty SETTINGS
//       (and later an ACK of the server's SETTINGS). After ~2 s prints `idle_connections=<open>`,
//       then holds them until stdin reaches EOF or S seconds (default 10) pass.

let usage = """
    usage: stb-rpc-bench stream --host H --port P --messages N --streams S
           stb-rpc-bench unary  --host H --port P --calls N --concurrency C
           stb-rpc-bench idle   --host H --port P --connections N [--hold-seconds S]
    """

/// `--name value` pairs after the subcommand.
struct Options {
    var values: [String: String] = [:]

    init(_ arguments: ArraySlice<String>) {
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            guard argument.hasPrefix("--") else { fail("unexpected argument \(argument)\n\(usage)") }
            let name = String(argument.dropFirst(2))
            if let equals = name.firstIndex(of: "=") {
                values[String(name[..<equals])] = String(name[name.index(after: equals)...])
                continue
            }
            guard let value = iterator.next() else { fail("--\(name) needs a value") }
            values[name] = value
        }
    }

    /// Fails on an option the subcommand does not know.
    func allow(_ known: Set<String>) {
        for name in values.keys where !known.contains(name) {
            fail("unknown option --\(name)\n\(usage)")
        }
    }

    func string(_ name: String, default fallback: String? = nil) -> String {
        guard let value = values[name] ?? fallback else { fail("missing --\(name)\n\(usage)") }
        return value
    }

    func int(_ name: String, default fallback: Int? = nil) -> Int {
        guard let text = values[name] else {
            guard let fallback else { fail("missing --\(name)\n\(usage)") }
            return fallback
        }
        guard let value = Int(text), value >= 0 else { fail("--\(name) must be a non-negative integer, not \(text)") }
        return value
    }
}

// MARK: - stream

func runStream(_ options: Options) async {
    options.allow(["host", "port", "messages", "streams"])
    let host = options.string("host", default: "127.0.0.1")
    let port = options.int("port")
    let messages = options.int("messages", default: 1_000_000)
    let streams = max(1, options.int("streams", default: 1))
    guard messages >= streams else { fail("--messages must be at least --streams") }

    let client: RPCClient
    do { client = try RPCClient(host: host, port: port) } catch { fail("client: \(error)") }

    // Warm up: connect and run one short stream so the timed part starts on an open connection.
    do {
        let n = try await client.serverStreaming(Stb_Testing_V1_Echo.expand, request: Stb_Testing_V1_EchoRequest(text: "x", count: 10)) { responses in
            var n = 0
            for try await _ in responses { n += 1 }
            return n
        }
        guard n == 10 else { fail("warm-up stream returned \(n) of 10 messages") }
    } catch {
        fail("warm-up stream to \(host):\(port) failed: \(error)")
    }

    let per = messages / streams
    let counts = (0..<streams).map { $0 == streams - 1 ? messages - per * (streams - 1) : per }
    let start = now()
    let results: [(requested: Int, received: Int, error: String?)] = await withTaskGroup(of: (Int, Int, String?).self) { group in
        for count in counts {
            group.addTask {
                var received = 0
                do {
                    let request = Stb_Testing_V1_EchoRequest(text: "x", count: UInt32(count))
                    received = try await client.serverStreaming(Stb_Testing_V1_Echo.expand, request: request) { responses in
                        var n = 0
                        var last: UInt32 = 0
                        for try await response in responses {
                            if n > 0 && response.index != last &+ 1 {
                                throw RPCError(code: .internal, message: "reply \(n) has index \(response.index), expected \(last &+ 1)")
                            }
                            last = response.index
                            n += 1
                        }
                        return n
                    }
                    return (count, received, nil)
                } catch {
                    return (count, received, "\(error)")
                }
            }
        }
        var all: [(requested: Int, received: Int, error: String?)] = []
        for await result in group { all.append(result) }
        return all
    }
    let seconds = Double(now() - start) / 1e9
    await client.close()

    let received = results.reduce(0) { $0 + $1.received }
    report("stream_msgs_per_s=\(format(Double(received) / seconds, 0)) messages=\(received) seconds=\(format(seconds, 3)) streams=\(streams)")
    var ok = true
    for (index, result) in results.enumerated() {
        if let error = result.error {
            complain("stream \(index) failed after \(result.received) messages: \(error)")
            ok = false
        } else if result.received != result.requested {
            complain("stream \(index) received \(result.received) of \(result.requested) messages")
            ok = false
        }
    }
    if received != messages {
        complain("received \(received) messages, requested \(messages)")
        ok = false
    }
    exit(ok ? 0 : 1)
}

// MARK: - unary

final class Counter: @unchecked Sendable {
    // @unchecked: guarded by the mutex.
    private var mutex = pthread_mutex_t()
    private var value = 0
    init() { pthread_mutex_init(&mutex, nil) }
    /// Takes the next ticket; nil when `limit` are taken.
    func take(limit: Int) -> Int? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}

func runUnary(_ options: Options) async {
    options.allow(["host", "port", "calls", "concurrency"])
    let host = options.string("host", default: "127.0.0.1")
    let port = options.int("port")
    let calls = options.int("calls", default: 100_000)
    let concurrency = max(1, options.int("concurrency", default: 16))

    let client: RPCClient
    do { client = try RPCClient(host: host, port: port) } catch { fail("client: \(error)") }
    let request = Stb_Testing_V1_EchoRequest(text: "hello")
    do {
        let reply = try await client.unary(Stb_Testing_V1_Echo.get, request: request)
        guard reply.text == "hello" else { fail("warm-up call echoed \"\(reply.text)\"") }
    } catch {
        fail("warm-up call to \(host):\(port) failed: \(error)")
    }

    let counter = Counter()
    let start = now()
    let perWorker: [(latencies: [UInt64], errors: Int, firstError: String?)] = await withTaskGroup(of: ([UInt64], Int, String?).self) { group in
        for _ in 0..<concurrency {
            group.addTask {
                var latencies: [UInt64] = []
                latencies.reserveCapacity(calls / concurrency + 1)
                var errors = 0
                var firstError: String?
                while counter.take(limit: calls) != nil {
                    let begin = now()
                    do {
                        let reply = try await client.unary(Stb_Testing_V1_Echo.get, request: request)
                        if reply.text != "hello" { throw RPCError(code: .internal, message: "echoed \"\(reply.text)\"") }
                        latencies.append(now() - begin)
                    } catch {
                        errors += 1
                        if firstError == nil { firstError = "\(error)" }
                    }
                }
                return (latencies, errors, firstError)
            }
        }
        var all: [(latencies: [UInt64], errors: Int, firstError: String?)] = []
        for await result in group { all.append(result) }
        return all
    }
    let seconds = Double(now() - start) / 1e9
    await client.close()

    let latencies = perWorker.flatMap(\.latencies).sorted()
    let errors = perWorker.reduce(0) { $0 + $1.errors }
    let us = { (p: Double) in format(Double(percentile(latencies, p)) / 1000, 1) }
    report("unary_calls_per_s=\(format(Double(latencies.count) / seconds, 0)) calls=\(latencies.count) errors=\(errors) seconds=\(format(seconds, 3)) concurrency=\(concurrency) p50_us=\(us(50)) p90_us=\(us(90)) p99_us=\(us(99)) max_us=\(us(100))")
    if let firstError = perWorker.compactMap(\.firstError).first {
        complain("\(errors) calls failed; first: \(firstError)")
        exit(1)
    }
    exit(0)
}

// MARK: - idle

/// The client connection preface followed by an empty SETTINGS frame.
let clientPreface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
let settingsAck: [UInt8] = [0, 0, 0, 4, 1, 0, 0, 0, 0]

/// One raw connection and what the server has sent on it.
struct IdleConnection {
    var fd: Int32
    var inbound: [UInt8] = []
    var acked = false
    var closed = false
    var goaway = false
}

func connectTCP(host: String, port: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { close(fd); return nil }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { close(fd); return nil }
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    return fd
}

func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return false }
        offset += n
    }
    return true
}

/// Reads whatever is available without blocking; acknowledges the server's SETTINGS.
func pump(_ connection: inout IdleConnection) {
    guard !connection.closed else { return }
    var buffer = [UInt8](repeating: 0, count: 16 * 1024)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n > 0 {
            connection.inbound.append(contentsOf: buffer[0..<n])
            continue
        }
        if n == 0 {
            connection.closed = true
        } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
            connection.closed = true
        }
        break
    }
    // Walk whole frames: type 4 without ACK → send an ACK; type 7 → GOAWAY.
    var offset = 0
    while connection.inbound.count - offset >= 9 {
        let bytes = connection.inbound
        let length = Int(bytes[offset]) << 16 | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
        guard bytes.count - offset >= 9 + length else { break }
        let type = bytes[offset + 3], flags = bytes[offset + 4]
        if type == 4 && flags & 1 == 0 && !connection.closed {
            if !sendAll(connection.fd, settingsAck) { connection.closed = true }
            connection.acked = true
        }
        if type == 7 { connection.goaway = true }
        offset += 9 + length
    }
    connection.inbound.removeFirst(offset)
}

func runIdle(_ options: Options) {
    options.allow(["host", "port", "connections", "hold-seconds"])
    let host = options.string("host", default: "127.0.0.1")
    let port = options.int("port")
    let count = options.int("connections", default: 10_000)
    let holdSeconds = options.int("hold-seconds", default: 10)

    var limit = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    if limit.rlim_cur < rlim_t(count + 64) {
        limit.rlim_cur = min(limit.rlim_max, rlim_t(count + 64))
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    var connections: [IdleConnection] = []
    connections.reserveCapacity(count)
    let start = now()
    var connectFailures = 0
    var firstFailure: String?
    for index in 0..<count {
        guard let fd = connectTCP(host: host, port: port) else {
            connectFailures += 1
            if firstFailure == nil { firstFailure = "connection \(index): \(String(cString: strerror(errno)))" }
            continue
        }
        var connection = IdleConnection(fd: fd)
        if !sendAll(fd, clientPreface) { connection.closed = true }
        connections.append(connection)
        // Keep the server's SETTINGS from piling up unread while we connect the rest.
        if index % 256 == 255 {
            for i in connections.indices.suffix(256) { pump(&connections[i]) }
        }
    }
    let connectSeconds = Double(now() - start) / 1e9
    if let firstFailure {
        complain("\(connectFailures) connects failed; first: \(firstFailure)")
    }

    // Give the server ~2 s to settle, answering its SETTINGS meanwhile.
    let settleUntil = now() + 2_000_000_000
    while now() < settleUntil {
        for i in connections.indices { pump(&connections[i]) }
        usleep(200_000)
    }
    for i in connections.indices { pump(&connections[i]) }
    let open = connections.filter { !$0.closed && !$0.goaway }.count
    let acked = connections.filter(\.acked).count
    report("idle_connections=\(open) requested=\(count) settings_acked=\(acked) goaway=\(connections.filter(\.goaway).count) closed=\(connections.filter(\.closed).count) connect_seconds=\(format(connectSeconds, 2))")

    // Hold until stdin reaches EOF or the time is up; keep answering meanwhile.
    let holdUntil = now() + UInt64(holdSeconds) * 1_000_000_000
    var stdinOpen = true
    while stdinOpen && now() < holdUntil {
        var descriptor = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
        let remainingMs = Int32(min(1000, (holdUntil - min(holdUntil, now())) / 1_000_000))
        let rc = poll(&descriptor, 1, max(remainingMs, 1))
        if rc > 0 {
            var byte = [UInt8](repeating: 0, count: 256)
            let n = read(0, &byte, byte.count)
            if n <= 0 { stdinOpen = false }
        } else if rc < 0 && errno != EINTR {
            break
        }
    }
    for i in connections.indices { pump(&connections[i]) }
    let stillOpen = connections.filter { !$0.closed && !$0.goaway }.count
    report("idle_connections_at_end=\(stillOpen)")
    for connection in connections { close(connection.fd) }
    exit(open == count ? 0 : 1)
}

// MARK: - main

let arguments = CommandLine.arguments
guard arguments.count >= 2 else { fail(usage) }
let options = Options(arguments.dropFirst(2))
switch arguments[1] {
case "stream": await runStream(options)
case "unary": await runUnary(options)
case "idle": runIdle(options)
case "-h", "--help", "help": print(usage)
default: fail("unknown subcommand \(arguments[1])\n\(usage)")
}
