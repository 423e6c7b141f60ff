// Fuzz target: the hand-written EvaluateRequest reader (STBRules/Wire) against the
// generated decoder (STBMessages over protobuf-c). On any bytes both accept or both
// refuse; refusals are the same (malformed, or the same string field not UTF-8 or holding
// a NUL); accepted bytes give the same choices in the same order (keys resolved by the key
// table exactly as a dictionary of the keys would), the same `included` and `value_json`,
// and the same base hash.

/// Keys the inputs may spell: short and long ones, a dotted one, a repeated one (its last
/// slot counts), one with a NUL (never resolved), one not ASCII.
private let keys = [
    "a", "hdr", "4k_output", "max_bitrate", "o.x", "k\u{0}z", "a", "an_option_key_of_thirty_two_b", "é", "hdmi_2_1",
]
private let table = OptionKeyTable(keys)
private let slotOf: [String: Int] = {
    var slots: [String: Int] = [:]
    for (slot, key) in keys.enumerated() where !key.utf8.contains(0) { slots[key] = slot }
    return slots
}()

private func fail(_ what: String, _ bytes: UnsafeRawBufferPointer) -> Never {
    fatalError("evaluate: \(what) for \(bytes.count) bytes: \(bytes.map { String($0, radix: 16) }.joined(separator: " "))")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEvaluate(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    var seen: [(index: Int, choice: WireChoice)] = []
    let scanned: Result<Range<Int>?, WireDecodeProblem>
    do {
        scanned = .success(try EvaluateRequestScanner.scan(bytes, keys: table) { seen.append(($0, $1)) })
    } catch {
        scanned = .failure(error)
    }
    let reference: Result<Stb_Rules_V1_EvaluateRequest, ProtoDecodingError>
    do {
        reference = .success(try Stb_Rules_V1_EvaluateRequest(serializedBytes: bytes))
    } catch {
        reference = .failure(error)
    }
    switch (reference, scanned) {
    case (.success(let message), .success(let hash)):
        guard seen.count == message.options.count else { fail("\(seen.count) choices read, \(message.options.count) decoded", bytes) }
        for (position, (index, choice)) in seen.enumerated() {
            let option = message.options[position]
            guard index == position else { fail("choice \(position) read as \(index)", bytes) }
            if let slot = choice.slot {
                guard slotOf[option.key] == slot, choice.unknownKey == nil else { fail("options[\(index)].key resolved to \(slot)", bytes) }
            } else {
                guard slotOf[option.key] == nil, choice.unknownKey == option.key else { fail("options[\(index)].key not resolved", bytes) }
            }
            guard choice.included == option.included else { fail("options[\(index)].included", bytes) }
            guard choice.valueJSON == option.valueJson else { fail("options[\(index)].value_json", bytes) }
        }
        let read = hash.map { Array(bytes[$0]) } ?? []
        guard read == message.baseSelectionHash else { fail("base_selection_hash", bytes) }
    case (.failure(let expected), .failure(let problem)):
        switch problem.kind {
        case .malformed:
            guard expected.code == .malformed else { fail("malformed, where the decoder says \(expected)", bytes) }
        case .invalidUTF8:
            guard expected.code == .invalidUTF8, expected.fieldPath == problem.fieldPath else { fail("\(problem), where the decoder says \(expected)", bytes) }
        case .nulCharacter:
            guard expected.code == .nulCharacter, expected.fieldPath == problem.fieldPath else { fail("\(problem), where the decoder says \(expected)", bytes) }
        }
    case (.success, .failure(let problem)):
        fail("refused (\(problem)) what the decoder accepts", bytes)
    case (.failure(let expected), .success):
        fail("accepted what the decoder refuses (\(expected))", bytes)
    }
    return 0
}
