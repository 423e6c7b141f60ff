/// File descriptors by file name, symbol and extension: what server reflection looks
/// things up in.
public struct ProtoDescriptorIndex: Sendable {
    /// Every file, in the order given.
    public let files: [ProtoFileDescriptor]
    private let filesByName: [String: Int]
    private let filesBySymbol: [String: Int]
    private let messageTypes: Set<String>
    private let extensionNumbers: [String: [Int32]]

    /// The descriptors `scripts/gen-messages` embedded: every file under `Protos/` and
    /// what they import.
    public static let generated = ProtoDescriptorIndex(files: ProtoFileDescriptor.generated)

    /// Indexes `files`. When two files claim a name or symbol (not a valid descriptor
    /// set), the first one keeps it.
    public init(files: [ProtoFileDescriptor]) {
        self.files = files
        var byName: [String: Int] = [:]
        var bySymbol: [String: Int] = [:]
        var messages = Set<String>()
        var extensions: [String: [Int32]] = [:]
        for (position, file) in files.enumerated() {
            if byName[file.name] == nil { byName[file.name] = position }
            for symbol in file.messageTypes + file.otherSymbols where bySymbol[symbol] == nil {
                bySymbol[symbol] = position
            }
            messages.formUnion(file.messageTypes)
            for ext in file.extensions { extensions[ext.extendee, default: []].append(ext.number) }
        }
        self.filesByName = byName
        self.filesBySymbol = bySymbol
        self.messageTypes = messages
        self.extensionNumbers = extensions.mapValues { $0.sorted() }
    }

    /// The file named `name` (e.g. `stb/common/v1/common.proto`).
    public func file(named name: String) -> ProtoFileDescriptor? {
        filesByName[name].map { files[$0] }
    }

    /// The file defining a fully qualified symbol (`stb.catalog.v1.Catalog`,
    /// `stb.catalog.v1.Catalog.GetConfig`, `stb.catalog.v1.Option`, a nested message or
    /// enum, an enum value, a field). A leading dot is accepted.
    public func file(containingSymbol symbol: String) -> ProtoFileDescriptor? {
        let name = symbol.hasPrefix(".") ? String(symbol.dropFirst()) : symbol
        return filesBySymbol[name].map { files[$0] }
    }

    /// The file defining extension `number` of the message type `extendee`.
    public func file(containingExtension extendee: String, number: Int32) -> ProtoFileDescriptor? {
        let extendee = extendee.hasPrefix(".") ? String(extendee.dropFirst()) : extendee
        return files.first { $0.extensions.contains(ProtoFileDescriptor.Extension(extendee: extendee, number: number)) }
    }

    /// The field numbers of every extension of the message type `name`, ascending;
    /// nil when no file defines that message type.
    public func extensionNumbers(ofType name: String) -> [Int32]? {
        let name = name.hasPrefix(".") ? String(name.dropFirst()) : name
        guard messageTypes.contains(name) else { return nil }
        return extensionNumbers[name] ?? []
    }

    /// `file` followed by everything it imports, directly or not, each once (breadth
    /// first). Imports missing from the index are left out.
    public func withDependencies(_ file: ProtoFileDescriptor) -> [ProtoFileDescriptor] {
        var result = [file]
        var seen: Set<String> = [file.name]
        var next = 0
        while next < result.count {
            for dependency in result[next].dependencies where !seen.contains(dependency) {
                seen.insert(dependency)
                if let found = self.file(named: dependency) { result.append(found) }
            }
            next += 1
        }
        return result
    }
}
