/// Why a stub definition, a stub file or an admin request was refused: the place (a file
/// and a path inside the definition) and the reason, with nothing internal.
public struct StubError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The JSON path in the definition (`when.and[1].value`), empty for the whole of it.
    public var path: String
    /// What is wrong.
    public var reason: String

    public init(_ path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }

    /// This error with `prefix` (a file, a stub's position) before its path.
    func within(_ prefix: String) -> StubError {
        StubError(path.isEmpty ? prefix : (prefix.isEmpty ? path : "\(prefix).\(path)"), reason)
    }

    public var description: String { path.isEmpty ? reason : "\(path): \(reason)" }
}
