import Glibc
import STBBench
import STBMessages
import STBRPC

// A login flood for scripts/bench-login:
//
//   stb-gateway-bench flood --addr HOST:PORT --username U --password-file F
//                           [--concurrency 200] [--rounds 3] [--connections 8]
//
// Each round starts `concurrency` Login calls at once (spread over `connections`
// connections) and waits for all of them; prints one line per round and a summary:
//   login flood round=N calls=… ok=… seconds=… logins_per_s=… p50_ms=… p99_ms=…
//   login flood total calls=… ok=… logins_per_s=… p50_ms=… p99_ms=… max_ms=…

struct FloodOptions {
    var address = "127.0.0.1:50050"
    var username = ""
    var passwordFile = ""
    var concurrency = 200
    var rounds = 3
    var connections = 8
}

func parseFlood(_ given: ArraySlice<String>) -> FloodOptions {
    var options = FloodOptions()
    var arguments = given
    while let flag = arguments.first {
        arguments = arguments.dropFirst()
        guard let value = arguments.first else { fail("\(flag) needs a value") }
        arguments = arguments.dropFirst()
        switch flag {
        case "--addr": options.address = value
        case "--username": options.username = value
        case "--password-file": options.passwordFile = value
        case "--concurrency": options.concurrency = Int(value) ?? 0
        case "--rounds": options.rounds = Int(value) ?? 0
        case "--connections": options.connections = Int(value) ?? 0
        default: fail("unknown option \(flag)")
        }
    }
    guard options.concurrency > 0, options.rounds > 0, options.connections > 0, !options.username.isEmpty else {
        fail("--username, and positive --concurrency, --rounds and --connections, are required")
    }
    return options
}

func readPassword(_ path: String) -> String {
    guard let file = fopen(path, "r") else { fail("cannot open \(path)") }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 1024)
    guard fgets(&buffer, Int32(buffer.count), file) != nil else { fail("\(path) is empty") }
    return String(cString: buffer).trimmingNewline
}

extension String {
    var trimmingNewline: String {
        var text = self
        while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
        return text
    }
}

/// Runs the flood with `arguments` (after `flood`).
func runFlood(_ arguments: ArraySlice<String>) async {
    let options = parseFlood(arguments)
    let password = readPassword(options.passwordFile)
    guard let colon = options.address.lastIndex(of: ":"), let port = Int(options.address[options.address.index(after: colon)...]) else {
        fail("--addr must be host:port")
    }
    let host = String(options.address[..<colon])
    var clients: [RPCClient] = []
    for _ in 0..<options.connections {
        do { clients.append(try RPCClient(host: host, port: port)) } catch { fail("cannot connect: \(error)") }
    }
    var login = Stb_Gateway_V1_LoginRequest()
    login.username = options.username
    login.password = password
    let request = login

    var all: [UInt64] = []
    var totalOK = 0
    let started = now()
    for round in 1...options.rounds {
        let roundStart = now()
        let results = await withTaskGroup(of: (UInt64, Bool).self) { group in
            for index in 0..<options.concurrency {
                let client = clients[index % clients.count]
                group.addTask {
                    let start = now()
                    let ok = (try? await client.unary(Stb_Gateway_V1_Auth.login, request: request, timeout: .seconds(300))) != nil
                    return (now() - start, ok)
                }
            }
            var results: [(UInt64, Bool)] = []
            for await result in group { results.append(result) }
            return results
        }
        let seconds = Double(now() - roundStart) / 1e9
        let ok = results.filter(\.1).count
        let latencies = results.map(\.0).sorted()
        all += latencies
        totalOK += ok
        report("login flood round=\(round) calls=\(results.count) ok=\(ok) seconds=\(format(seconds, 2)) logins_per_s=\(format(Double(ok) / seconds, 1)) p50_ms=\(format(Double(percentile(latencies, 50)) / 1e6, 0)) p99_ms=\(format(Double(percentile(latencies, 99)) / 1e6, 0))")
    }
    let seconds = Double(now() - started) / 1e9
    all.sort()
    report("login flood total calls=\(all.count) ok=\(totalOK) logins_per_s=\(format(Double(totalOK) / seconds, 1)) p50_ms=\(format(Double(percentile(all, 50)) / 1e6, 0)) p99_ms=\(format(Double(percentile(all, 99)) / 1e6, 0)) max_ms=\(format(Double(all.last ?? 0) / 1e6, 0))")
    for client in clients { await client.close() }
}
