/// The `--name value` options of a benchmark program: each name must be one `allowed`
/// lists, and each needs a value; anything else stops the program with `usage`.
public struct BenchOptions: Sendable {
    private let values: [String: String]

    /// Reads `arguments` (without the program name). `scope` names the mode the options
    /// were given for, in the message about an unknown one.
    public init(_ arguments: some Sequence<String>, allowed: [String], usage: String, scope: String? = nil) {
        var values: [String: String] = [:]
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            guard argument.hasPrefix("--") else { fail("unexpected argument \(argument)\n\(usage)") }
            let name = String(argument.dropFirst(2))
            guard allowed.contains(name) else {
                fail("unknown option --\(name)\(scope.map { " for \($0)" } ?? "")\n\(usage)")
            }
            guard let value = iterator.next() else { fail("--\(name) needs a value") }
            values[name] = value
        }
        self.values = values
    }

    /// The value given for `name`, if any.
    public subscript(name: String) -> String? { values[name] }

    /// The positive integer given for `name`, else `fallback`; anything else stops the program.
    public func positiveInt(_ name: String, _ fallback: Int) -> Int {
        guard let text = values[name] else { return fallback }
        guard let value = Int(text), value > 0 else { fail("--\(name) must be a positive integer, not \(text)") }
        return value
    }
}
