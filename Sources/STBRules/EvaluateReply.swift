// The Evaluate reply in wire form. Most of a sparse selection's violations are the
// defaults' own, unchanged: each of those is encoded once per engine and copied into the
// replies that carry it; only what the selection changed is encoded per call. The bytes are
// those protobuf-c writes for the same `Stb_Rules_V1_EvaluateResponse` (fields in number
// order, zero values left out), which a test checks.
import STBJSON
import STBMessages
import Synchronization

/// A reply already in wire form (its JSON form is the generated message's).
typealias EvaluateReply = ProtoEncodedMessage<Stb_Rules_V1_EvaluateResponse>

/// The defaults' violations, closure and conflicts of one engine, each encoded as the
/// reply's field (tag, length, message).
public final class EncodedDefaults: Sendable {
    let engine: RuleEngine
    /// Every violation's field, one after another, in the defaults' order: violation `i`
    /// is `violations[starts[i]..<starts[i + 1]]`, so that a run of them a reply carries in
    /// the same order is copied at once.
    let violations: [UInt8]
    let starts: [Int]
    /// Fields 3 and 4: the closure's keys, then the conflicts.
    let closureAndConflicts: [UInt8]

    /// Encodes `engine`'s evaluation of the defaults.
    public init(_ engine: RuleEngine) {
        self.engine = engine
        let evaluation = engine.defaultEvaluation
        var violations: [UInt8] = []
        var starts = [0]
        for violation in evaluation.violations {
            EvaluateReplyEncoder.appendViolation(violation, to: &violations)
            starts.append(violations.count)
        }
        self.violations = violations
        self.starts = starts
        var fields: [UInt8] = []
        EvaluateReplyEncoder.appendClosureAndConflicts(evaluation, to: &fields)
        closureAndConflicts = fields
    }
}

/// Writes `EvaluateResponse` fields as protobuf-c does.
enum EvaluateReplyEncoder {
    // Field numbers of stb.rules.v1.EvaluateResponse, with their wire types.
    static let validTag: UInt8 = 1 << 3 | 0
    static let violationTag: UInt8 = 2 << 3 | 2
    static let closureTag: UInt8 = 3 << 3 | 2
    static let conflictTag: UInt8 = 4 << 3 | 2
    static let catalogRevisionTag: UInt8 = 5 << 3 | 0
    static let selectionHashTag: UInt8 = 6 << 3 | 2
    static let rulesRevisionTag: UInt8 = 7 << 3 | 0

    /// The whole reply; violations and the closure the defaults have are copied from
    /// `defaults` (which must be the evaluating engine's).
    static func reply(
        _ evaluation: Evaluation, defaults: EncodedDefaults?, revisions: RulesService.Revisions, selectionHash hash: [UInt8]
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        let count = evaluation.violationCount
        if let defaults, !evaluation.fromDefaults.isEmpty {
            // The defaults' violations are copied from their encoding, each run of them that
            // lies in the same order there at once; only the others are encoded.
            let starts = defaults.starts
            var size = 64 + hash.count
            for origin in evaluation.fromDefaults where origin >= 0 { size += starts[Int(origin) + 1] - starts[Int(origin)] }
            bytes.reserveCapacity(size + (evaluation.ownViolations.count + evaluation.closure.count) * 192 + defaults.closureAndConflicts.count)
            if evaluation.valid { bytes.append(contentsOf: [validTag, 1]) }
            defaults.violations.withUnsafeBufferPointer { encoded in
                // The run of the defaults' fields not copied yet.
                var run = 0..<0
                for origin in evaluation.fromDefaults {
                    if origin >= 0 {
                        let field = starts[Int(origin)]..<starts[Int(origin) + 1]
                        if field.lowerBound == run.upperBound {
                            run = run.lowerBound..<field.upperBound
                        } else {
                            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: encoded[run]))
                            run = field
                        }
                    } else {
                        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: encoded[run]))
                        run = 0..<0
                        appendViolation(evaluation.ownViolations[Int(~origin)], to: &bytes)
                    }
                }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: encoded[run]))
            }
        } else {
            bytes.reserveCapacity(256 + count * 192)
            if evaluation.valid { bytes.append(contentsOf: [validTag, 1]) }
            for violation in evaluation.violations { appendViolation(violation, to: &bytes) }
        }
        if let defaults, evaluation.closureFromDefaults {
            bytes.append(contentsOf: defaults.closureAndConflicts)
        } else {
            appendClosureAndConflicts(evaluation, to: &bytes)
        }
        if revisions.catalog != 0 {
            bytes.append(catalogRevisionTag)
            appendVarint(revisions.catalog, to: &bytes)
        }
        if !hash.isEmpty {
            appendField(selectionHashTag, hash, to: &bytes)
        }
        if revisions.rules != 0 {
            bytes.append(rulesRevisionTag)
            appendVarint(revisions.rules, to: &bytes)
        }
        return bytes
    }

    /// A violation as field 2, written in place (no generated message, no copy of its
    /// encoding): the bytes `RulesService.message(violation)` encodes to.
    static func appendViolation(_ violation: Violation, to bytes: inout [UInt8]) {
        appendMessage(violationTag, reserving: 2, to: &bytes) { bytes in
            appendString(1 << 3 | 2, violation.ruleKey, to: &bytes)
            let type = ruleTypeNumber(violation.kind)
            if type != 0 {
                bytes.append(2 << 3 | 0)
                appendVarint(UInt64(type), to: &bytes)
            }
            // Severity: ERROR = 1, WARNING = 2 (never the zero value).
            bytes.append(contentsOf: [3 << 3 | 0, violation.severity == .warning ? 2 : 1])
            appendString(4 << 3 | 2, violation.message, to: &bytes)
            for reference in violation.references {
                appendMessage(5 << 3 | 2, reserving: 1, to: &bytes) { bytes in
                    appendString(1 << 3 | 2, reference.optionKey, to: &bytes)
                    if reference.included { bytes.append(contentsOf: [2 << 3 | 0, 1]) }
                    if let value = reference.value { appendCanonicalText(3 << 3 | 2, value, to: &bytes) }
                }
            }
            appendString(6 << 3 | 2, violation.explanation, to: &bytes)
            if let constraint = violation.constraint { appendString(7 << 3 | 2, constraint, to: &bytes) }
        }
    }

    /// `Stb_Rules_V1_RuleType(named:)`'s number, without a search by name per violation.
    @inline(__always)
    static func ruleTypeNumber(_ kind: String) -> Int32 {
        switch kind {
        case "requires": Stb_Rules_V1_RuleType.requires.rawValue
        case "forbidden": Stb_Rules_V1_RuleType.forbidden.rawValue
        case "validation": Stb_Rules_V1_RuleType.validation.rawValue
        case "choice": Stb_Rules_V1_RuleType.choice.rawValue
        default: (Stb_Rules_V1_RuleType(named: kind) ?? .unspecified).rawValue
        }
    }

    /// A message field written in place: the tag, `reserving` bytes for its length (what
    /// most bodies need), the body, then the length as a minimal varint (the body moved
    /// when it needs fewer or more bytes than reserved).
    @inline(__always)
    static func appendMessage(_ tag: UInt8, reserving reserved: Int, to bytes: inout [UInt8], body: (inout [UInt8]) -> Void) {
        bytes.append(tag)
        let lengthAt = bytes.count
        for _ in 0..<reserved { bytes.append(0x80) }
        body(&bytes)
        let length = bytes.count - lengthAt - reserved
        var varint: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &varint) { out in
            var rest = UInt64(length)
            while rest >= 0x80 {
                out[count] = UInt8(truncatingIfNeeded: rest) | 0x80
                rest >>= 7
                count += 1
            }
            out[count] = UInt8(rest)
            count += 1
        }
        withUnsafeBytes(of: varint) { out in
            let written = UnsafeRawBufferPointer(rebasing: out[0..<count])
            if count == reserved {
                for index in 0..<count { bytes[lengthAt + index] = written[index] }
            } else {
                bytes.replaceSubrange(lengthAt..<lengthAt + reserved, with: written)
            }
        }
    }

    /// A proto3 string field: left out when empty, as protobuf-c does.
    @inline(__always)
    static func appendString(_ tag: UInt8, _ text: String, to bytes: inout [UInt8]) {
        let utf8 = text.utf8
        if utf8.isEmpty { return }
        bytes.append(tag)
        appendVarint(UInt64(utf8.count), to: &bytes)
        bytes.append(contentsOf: utf8)
    }

    /// A value's canonical JSON text as a string field; integers and booleans are written
    /// without making a String.
    @inline(__always)
    static func appendCanonicalText(_ tag: UInt8, _ value: JSONValue, to bytes: inout [UInt8]) {
        switch value {
        case .bool(let flag):
            bytes.append(tag)
            if flag { bytes.append(contentsOf: [4, 0x74, 0x72, 0x75, 0x65]) } else { bytes.append(contentsOf: [5, 0x66, 0x61, 0x6C, 0x73, 0x65]) }
        case .integer(let number):
            bytes.append(tag)
            let lengthAt = bytes.count
            bytes.append(0)
            appendDecimal(number, to: &bytes)
            bytes[lengthAt] = UInt8(bytes.count - lengthAt - 1)
        default:
            appendString(tag, value.canonicalText, to: &bytes)
        }
    }

    /// `String(number)`'s bytes (at most 20).
    @inline(__always)
    static func appendDecimal(_ number: Int64, to bytes: inout [UInt8]) {
        if number < 0 { bytes.append(UInt8(ascii: "-")) }
        var magnitude = number.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { out in
            repeat {
                out[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            } while magnitude != 0
        }
        withUnsafeBytes(of: digits) { out in
            var index = count
            while index > 0 {
                index -= 1
                bytes.append(out[index])
            }
        }
    }

    static func appendClosureAndConflicts(_ evaluation: Evaluation, to bytes: inout [UInt8]) {
        evaluation.closure.withUnsafeBufferPointer { entries in
            // Each key read in place (not the entry copied with its chain), its bytes
            // straight into the reply, with no array made per entry.
            for index in entries.indices {
                let key = entries[index].optionKey.utf8
                bytes.append(closureTag)
                appendVarint(UInt64(key.count), to: &bytes)
                if key.withContiguousStorageIfAvailable({ bytes.append(contentsOf: $0) }) == nil { bytes.append(contentsOf: key) }
            }
        }
        for entry in evaluation.conflicts {
            // Stb_Rules_V1_ClosureConflict written in place.
            appendMessage(conflictTag, reserving: 1, to: &bytes) { bytes in
                appendString(1 << 3 | 2, entry.ruleKey, to: &bytes)
                for link in entry.chain {
                    // A repeated string keeps its empty elements.
                    bytes.append(2 << 3 | 2)
                    appendVarint(UInt64(link.utf8.count), to: &bytes)
                    bytes.append(contentsOf: link.utf8)
                }
                appendString(3 << 3 | 2, entry.explanation, to: &bytes)
            }
        }
    }

    static func appendField(_ tag: UInt8, _ body: [UInt8], to bytes: inout [UInt8]) {
        bytes.append(tag)
        appendVarint(UInt64(body.count), to: &bytes)
        bytes.append(contentsOf: body)
    }

    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }
}

extension RulesService {
    /// The Evaluate reply in wire form, as the service sends it: what `evaluation` shares
    /// with the defaults is copied from `defaults`, which must be the evaluating engine's.
    public static func encodedReply(
        _ evaluation: Evaluation, defaults: EncodedDefaults, revisions: Revisions, selectionHash: [UInt8]
    ) -> [UInt8] {
        EvaluateReplyEncoder.reply(evaluation, defaults: defaults, revisions: revisions, selectionHash: selectionHash)
    }
}
