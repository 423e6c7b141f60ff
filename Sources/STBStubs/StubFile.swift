import Glibc
import Logging
import ServiceLifecycle
import STBJSON

/// A stub file: `{"mocks": [{"service": …, "port": …}], "stubs": [ … ]}` (the schema is
/// `services/stubs/stub.schema.json`), in JSON, or in YAML (`.yaml`, `.yml`; see `StubYAML`). Read whole and checked whole: one bad stub refuses
/// the file, naming the file, the path inside it and the reason, and the stubs in force
/// stay as they were.
public struct StubFile: Sendable {
    public var mocks: [(service: String, port: Int, fault: JSONValue?)]
    public var stubs: [StubDefinition]

    /// Whether `path` names a YAML file (`.yaml`, `.yml`); any other is read as JSON.
    public static func isYAML(_ path: String) -> Bool {
        let lower = path.lowercased()
        return lower.hasSuffix(".yaml") || lower.hasSuffix(".yml")
    }

    /// Parses and checks `text`, read from `path` (YAML or JSON by its extension).
    public init(text: String, path: String) throws(StubError) {
        let value: JSONValue
        if Self.isYAML(path) {
            value = try StubYAML.parse(text, path: path)
        } else {
            do {
                value = try JSONValue.parse(text)
            } catch {
                throw StubError(path, "not JSON: \(error)")
            }
        }
        guard case .object(let members) = value else { throw StubError(path, "a stub file is an object with \"mocks\" and \"stubs\"") }
        for key in members.keys.sorted() where key != "mocks" && key != "stubs" && key != "$schema" {
            throw StubError("\(path): \(key)", "unknown member (mocks, stubs)")
        }
        var mocks: [(String, Int, JSONValue?)] = []
        if let list = members["mocks"] {
            guard case .array(let items) = list else { throw StubError("\(path): mocks", "a list") }
            for (index, item) in items.enumerated() {
                guard case .string(let service)? = item["service"] else { throw StubError("\(path): mocks[\(index)].service", "a service name") }
                guard MockHost.stubbableServices.contains(service) else {
                    throw StubError("\(path): mocks[\(index)].service", "no service \(service) in Protos/")
                }
                var port = 0
                if let value = item["port"] {
                    guard case .integer(let number) = value, (0...65535).contains(number) else {
                        throw StubError("\(path): mocks[\(index)].port", "0 to 65535")
                    }
                    port = Int(number)
                }
                for key in (item.objectValue?.keys.sorted() ?? []) where !["service", "port", "fault"].contains(key) {
                    throw StubError("\(path): mocks[\(index)].\(key)", "unknown member (service, port, fault)")
                }
                if let fault = item["fault"] {
                    do {
                        _ = try StubDefinition.fault(fault)
                    } catch {
                        throw error.within("\(path): mocks[\(index)]")
                    }
                }
                mocks.append((service, port, item["fault"]))
            }
        }
        var stubs: [StubDefinition] = []
        if let list = members["stubs"] {
            guard case .array(let items) = list else { throw StubError("\(path): stubs", "a list") }
            for (index, item) in items.enumerated() {
                do {
                    stubs.append(try StubDefinition(item))
                } catch {
                    throw error.within("\(path): stubs[\(index)]")
                }
            }
        }
        self.mocks = mocks
        self.stubs = stubs
    }

    /// Reads and parses the file at `path`.
    public static func read(_ path: String) throws(StubError) -> StubFile {
        guard let text = readText(path) else { throw StubError(path, "cannot be read") }
        return try StubFile(text: text, path: path)
    }

    static func readText(_ path: String) -> String? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
            if bytes.count > 16 * 1024 * 1024 { return nil }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Re-reads the stub file when it changes (its modification time or size, checked every
/// half second) and applies it whole, or logs why it was refused and keeps what is in
/// force. Starts the mocks it lists that are not running.
public struct StubFileWatcher: Service {
    let path: String
    let registry: StubRegistry
    let mocks: MockHost
    let logger: Logger

    public init(path: String, registry: StubRegistry, mocks: MockHost, logger: Logger) {
        self.path = path
        self.registry = registry
        self.mocks = mocks
        self.logger = logger
    }

    /// Applies the file once; throws its error (at start, a bad file stops stubd).
    public func load() async throws {
        let file = try StubFile.read(path)
        try registry.replaceFileStubs(file.stubs, file: path)
        for mock in file.mocks {
            try registry.setMockFault(service: mock.service, fault: mock.fault)
            _ = try await mocks.start(service: mock.service, port: mock.port)
        }
        logger.info("stub file loaded", metadata: ["file": "\(path)", "stubs": "\(file.stubs.count)", "mocks": "\(file.mocks.count)"])
    }

    public func run() async throws {
        var last = Self.signature(path)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(500))
            let current = Self.signature(path)
            guard current != last else { continue }
            last = current
            do {
                try await load()
            } catch {
                logger.error("stub file refused; the stubs in force are unchanged", metadata: ["file": "\(path)", "reason": "\(error)"])
            }
        }
    }

    private static func signature(_ path: String) -> [Int] {
        var info = stat()
        guard stat(path, &info) == 0 else { return [] }
        return [Int(info.st_mtim.tv_sec), Int(info.st_mtim.tv_nsec), Int(info.st_size), Int(info.st_ino)]
    }
}
