internal import CRE2

/// A `pattern` constraint compiled with RE2: matching takes time linear in the value,
/// whatever the pattern (no backtracking), and compiling is bounded in memory.
///
/// Semantics are RE2's (https://github.com/google/re2/wiki/Syntax) with a full match: the
/// whole value must match, as if the pattern were written `^(?:pattern)$`. Values are
/// matched as UTF-8; `.` matches one Unicode scalar. Backreferences and lookaround do not
/// exist in RE2 and are refused when the pattern is compiled.
// @unchecked: the RE2 handle is only read after init, and RE2 allows matching one compiled pattern from many threads.
public final class OptionPattern: @unchecked Sendable, Hashable, CustomStringConvertible {
    /// The longest pattern accepted, in bytes of UTF-8.
    public static let maxBytes = 1024
    /// The memory RE2 may use for one compiled pattern (program and matching caches).
    static let memoryBudget: Int64 = 1 << 20

    /// The pattern as written.
    public let source: String
    private let handle: OpaquePointer

    /// Compiles `source`; throws RE2's reason (shortened) when it is not a valid pattern.
    public init(_ source: String) throws(OptionPatternError) {
        if source.utf8.count > Self.maxBytes {
            throw OptionPatternError(message: "longer than \(Self.maxBytes) bytes")
        }
        var source = source
        var error = [CChar](repeating: 0, count: 256)
        let compiled = source.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                cre2_compile(chars.baseAddress, chars.count, Self.memoryBudget, &error, error.count)
            }
        }
        guard let compiled else {
            let text = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw OptionPatternError(message: Self.shortened(text.isEmpty ? "not a valid pattern" : text))
        }
        self.source = source
        self.handle = compiled
    }

    deinit {
        cre2_free(handle)
    }

    /// Whether the whole of `value` matches.
    public func matches(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                cre2_full_match(handle, chars.baseAddress, chars.count) == 1
            }
        }
    }

    public var description: String { source }

    /// Two patterns are the same when written the same.
    public static func == (lhs: OptionPattern, rhs: OptionPattern) -> Bool { lhs.source == rhs.source }

    public func hash(into hasher: inout Hasher) { hasher.combine(source) }

    // RE2 quotes the offending part of the pattern in its message; a long pattern would
    // make a long message.
    static func shortened(_ text: String) -> String {
        guard text.count > 160 else { return text }
        return String(text.prefix(159)) + "…"
    }
}

/// Why a `pattern` constraint is refused.
public struct OptionPatternError: Error, Hashable, Sendable, CustomStringConvertible {
    /// RE2's reason (shortened), or the length limit.
    public var message: String

    public init(message: String) {
        self.message = message
    }

    public var description: String { message }
}
