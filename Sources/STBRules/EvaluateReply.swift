// The Evaluate reply in wire form. Most of a sparse selection's violations are the
// defaults' own, unchanged: each of those is encoded once per engine and copied into the
// replies that carry it; only what the selection changed is encoded per call. The bytes are
// those protobuf-c writes for the same `Stb_Rules_V1_EvaluateResponse` (fields in number
// order, zero values left out), which a test checks.
import STBMessages
import Synchronization

/// A reply already in wire form (its JSON form is the generated message's).
typealias EvaluateReply = ProtoEncodedMessage<Stb_Rules_V1_EvaluateResponse>

/// The defaults' violations, closure and conflicts of one engine, each encoded as the
/// reply's field (tag, length, message).
public final class EncodedDefaults: Sendable {
    let engine: RuleEngine
    let violations: [[UInt8]]
    /// Fields 3 and 4: the closure's keys, then the conflicts.
    let closureAndConflicts: [UInt8]

    /// Encodes `engine`'s evaluation of the defaults.
    public init(_ engine: RuleEngine) {
        self.engine = engine
        let evaluation = engine.defaultEvaluation
        violations = evaluation.violations.map { violation in
            var field: [UInt8] = []
            EvaluateReplyEncoder.appendViolation(violation, to: &field)
            return field
        }
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
            // The defaults' violations are copied from their encoding; only the others are encoded.
            var size = 64 + hash.count
            for origin in evaluation.fromDefaults where origin >= 0 { size += defaults.violations[Int(origin)].count }
            bytes.reserveCapacity(size + (evaluation.ownViolations.count + evaluation.closure.count) * 192 + defaults.closureAndConflicts.count)
            if evaluation.valid { bytes.append(contentsOf: [validTag, 1]) }
            for origin in evaluation.fromDefaults {
                if origin >= 0 {
                    bytes.append(contentsOf: defaults.violations[Int(origin)])
                } else {
                    appendViolation(evaluation.ownViolations[Int(~origin)], to: &bytes)
                }
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

    static func appendViolation(_ violation: Violation, to bytes: inout [UInt8]) {
        appendField(violationTag, RulesService.message(violation).serializedBytes(), to: &bytes)
    }

    static func appendClosureAndConflicts(_ evaluation: Evaluation, to bytes: inout [UInt8]) {
        for entry in evaluation.closure {
            // The key's bytes straight into the reply, with no array made per entry.
            let key = entry.optionKey.utf8
            bytes.append(closureTag)
            appendVarint(UInt64(key.count), to: &bytes)
            bytes.append(contentsOf: key)
        }
        for entry in evaluation.conflicts {
            let message = Stb_Rules_V1_ClosureConflict(ruleKey: entry.ruleKey, chain: entry.chain, explanation: entry.explanation)
            appendField(conflictTag, message.serializedBytes(), to: &bytes)
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
