/// The Prometheus text exposition format (version 0.0.4), as `GET /metrics` serves it.
public enum PrometheusText {
    /// The content type of an exposition.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// `exposition` with a `# HELP` line before each `# TYPE` line of a metric that `help`
    /// describes and that has none: metrics recorded through swift-metrics carry no help
    /// text, and `promtool check metrics` asks for one.
    public static func addingHelp(to exposition: [UInt8], help: [String: String]) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(exposition.count + help.count * 64)
        var previousLine: ArraySlice<UInt8> = []
        for line in exposition.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if line.starts(with: "# TYPE ".utf8), !previousLine.starts(with: "# HELP ".utf8) {
                let name = String(decoding: line.dropFirst(7).prefix { $0 != UInt8(ascii: " ") }, as: UTF8.self)
                if let text = help[name] {
                    result.append(contentsOf: "# HELP \(name) \(escaped(text))\n".utf8)
                }
            }
            result.append(contentsOf: line)
            result.append(UInt8(ascii: "\n"))
            previousLine = line
        }
        // One newline was added per line, one more than the text had between them.
        if !result.isEmpty { result.removeLast() }
        return result
    }

    /// A help text with backslashes and newlines escaped, as the format requires.
    private static func escaped(_ text: String) -> String {
        text.replacing("\\", with: "\\\\").replacing("\n", with: "\\n")
    }
}
