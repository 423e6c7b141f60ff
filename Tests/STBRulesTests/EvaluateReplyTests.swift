import STBJSON
import STBMessages
import STBTestSupport
import Testing

@testable import STBRules

// The Evaluate reply written by hand (the defaults' violations copied from their encoding)
// against the generated message's encoding of the same answer, byte for byte, on random
// catalogs, rule sets and selections (the generators of IncrementalEvaluationTests).
@Suite struct EvaluateReplyTests {
    @Test func encodedReplyIsTheGeneratedEncoding() {
        var rng = SplitMix(seed: 0x5EED_2026_1217)
        var compared = 0
        var reused = 0
        var closureReused = 0
        for _ in 0..<100 {
            let catalog = randomCatalog(&rng)
            let keys = catalog.optionKeys
            let rules = (0..<(4 + Int(rng.next() % 30))).map { randomRule($0, keys, &rng) }
            let engine = RuleEngine(rules: rules, catalog: catalog)
            let defaults = EncodedDefaults(engine)
            for _ in 0..<20 {
                let selection = randomSelection(keys, catalog, &rng)
                let evaluated = engine.evaluateWithDifferences(selection)
                let revisions = RulesService.Revisions(
                    catalog: rng.next() % 4 == 0 ? 0 : rng.next() % 100_000, rules: rng.next() % 4 == 0 ? 0 : rng.next())
                let hash = rng.next() % 5 == 0 ? [] : evaluated.selectionHash
                var expected = RulesService.response(evaluated.evaluation, revisions)
                expected.selectionHash = hash
                let bytes = EvaluateReplyEncoder.reply(evaluated.evaluation, defaults: defaults, revisions: revisions, selectionHash: hash)
                #expect(bytes == expected.serializedBytes(), "\(selection)")
                // The same bytes as the full evaluation's reply (every rule checked, nothing
                // taken from the defaults), as the generated encoder and as this one write it.
                let full = engine.evaluateFully(selection)
                var fromFull = RulesService.response(full, revisions)
                fromFull.selectionHash = hash
                #expect(bytes == fromFull.serializedBytes(), "full: \(selection)")
                #expect(bytes == EvaluateReplyEncoder.reply(full, defaults: defaults, revisions: revisions, selectionHash: hash), "full, encoded: \(selection)")
                compared += 1
                if evaluated.evaluation.fromDefaults.contains(where: { $0 >= 0 }) { reused += 1 }
                if evaluated.evaluation.closureFromDefaults && !evaluated.evaluation.closure.isEmpty { closureReused += 1 }
            }
        }
        // The copies are exercised, not only the encoder.
        #expect(compared == 2_000)
        #expect(reused > compared / 4)
        #expect(closureReused > compared / 20)
    }

    /// Over Connect the reply goes as JSON: the generated message's JSON form.
    @Test func jsonFormIsTheGeneratedMessages() throws {
        var rng = SplitMix(seed: 0x5EED_2026_1218)
        let catalog = randomCatalog(&rng)
        let engine = RuleEngine(rules: (0..<20).map { randomRule($0, catalog.optionKeys, &rng) }, catalog: catalog)
        let evaluated = engine.evaluateWithDifferences(randomSelection(catalog.optionKeys, catalog, &rng))
        var expected = RulesService.response(evaluated.evaluation, RulesService.Revisions(catalog: 3, rules: 4))
        expected.selectionHash = evaluated.selectionHash
        let reply = EvaluateReply(bytes: EvaluateReplyEncoder.reply(
            evaluated.evaluation, defaults: EncodedDefaults(engine), revisions: RulesService.Revisions(catalog: 3, rules: 4),
            selectionHash: evaluated.selectionHash))
        #expect(reply.jsonString() == expected.jsonString())
        #expect(reply.jsonString().contains(#""rulesRevision":"4""#))
    }
}

// The reply's violations and conflicts are written in place with a guessed length size,
// fixed up after: the lengths where the varint grows (127/128, 16,383/16,384 bytes) must
// give the generated encoding's bytes.
@Suite struct EvaluateReplyLengthTests {
    @Test(arguments: [0, 1, 100, 127, 128, 200, 16_300, 16_383, 16_384, 20_000])
    func violationAtEveryLengthIsTheGeneratedEncoding(size: Int) {
        let text = String(repeating: "é", count: size / 2) + String(repeating: "x", count: size % 2)
        let values: [JSONValue?] = [nil, .bool(true), .bool(false), .integer(0), .integer(-9_223_372_036_854_775_808), .integer(42), .string(text)]
        for (index, value) in values.enumerated() {
            let violation = Violation(
                ruleKey: "rule_\(index)", kind: index % 2 == 0 ? "validation" : "constraint", subject: "s", severity: index % 3 == 0 ? .warning : .error,
                message: text, references: [Reference(optionKey: text, included: index % 2 == 1, value: value)],
                explanation: index % 4 == 0 ? "" : text, constraint: index == 1 ? "max" : nil)
            var bytes: [UInt8] = []
            EvaluateReplyEncoder.appendViolation(violation, to: &bytes)
            var response = Stb_Rules_V1_EvaluateResponse()
            response.violations = [RulesService.message(violation)]
            #expect(bytes == response.serializedBytes(), "violation \(index), \(size) bytes")
        }
    }
}
