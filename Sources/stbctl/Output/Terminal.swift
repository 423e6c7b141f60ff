import Foundation

/// Where stbctl's output goes: results on stdout, diagnostics on stderr.
enum Terminal {
    /// Prints `text` and a newline on stdout.
    static func write(_ text: String) {
        print(text)
    }

    /// Pushes buffered stdout to the reader now (stdout is block-buffered on a pipe).
    static func flush() {
        fflush(nil)
    }

    /// Prints `text` and a newline on stderr, after whatever stdout holds.
    static func writeError(_ text: String) {
        flush()
        FileHandle.standardError.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }

    /// Prints `stbctl: message` on stderr and exits 1.
    static func fail(_ message: String) -> Never {
        writeError("stbctl: \(message)")
        exit(1)
    }

    /// Flushes stdout and ends the process with `code`.
    static func exit(_ code: Int32) -> Never {
        flush()
        Foundation.exit(code)
    }

    /// Whether stderr is a terminal (a person is watching, not a script).
    static var stderrIsTerminal: Bool {
        isatty(STDERR_FILENO) == 1
    }
}
