import STBJSON
import STBMessages

// MARK: - The rules service's messages as people and scripts read them

extension Record {
    init(_ rule: Stb_Rules_V1_Rule) {
        add("id", rule.id)
        add("key", rule.key)
        add("subject", rule.subject)
        add("type", rule.type.name)
        add(json: "payload_json", rule.payloadJson, emptyMeans: .null)
        add("severity", rule.severity.name)
        add("message", rule.message)
        add("active", rule.active)
        add(time: "created_at_ms", rule.createdAtMs)
        add(time: "updated_at_ms", rule.updatedAtMs)
    }
}

extension Stb_Rules_V1_RuleType {
    /// The seed document's word: requires, forbidden, validation, choice.
    var name: String {
        switch self {
        case .unspecified: "unspecified"
        case .requires: "requires"
        case .forbidden: "forbidden"
        case .validation: "validation"
        case .choice: "choice"
        case .unrecognized(let value): "type(\(value))"
        }
    }
}

extension Stb_Rules_V1_Severity {
    /// error, warning.
    var name: String {
        switch self {
        case .unspecified: "unspecified"
        case .error: "error"
        case .warning: "warning"
        case .unrecognized(let value): "severity(\(value))"
        }
    }
}

extension Stb_Rules_V1_RuleRef {
    /// A rule named on the command line: its key, or its id when made only of digits.
    init(argument: String) {
        self.init()
        if !argument.isEmpty, argument.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let id = Int64(argument) {
            ref = .id(id)
        } else {
            ref = .key(argument)
        }
    }
}

extension Stb_Rules_V1_Reference {
    /// Kconfig style: `uhd_output [=n]` for an option the selection leaves out, its value
    /// as JSON for one it includes (`max_video_bitrate_kbps [=60000]`, `hdr [=true]`,
    /// `resolution [="2160p"]`), `[=y]` when included without a value.
    var text: String {
        guard included else { return "\(optionKey) [=n]" }
        guard !valueJson.isEmpty else { return "\(optionKey) [=y]" }
        return "\(optionKey) [=\(JSONValue.compact(valueJson))]"
    }

    var json: JSONValue {
        [
            "option_key": .string(optionKey),
            "included": .bool(included),
            "value": valueJson.isEmpty ? .null : ((try? JSONValue.parse(valueJson)) ?? .string(valueJson)),
        ]
    }
}

extension Stb_Rules_V1_Violation {
    var json: JSONValue {
        [
            "rule_key": .string(ruleKey),
            "type": .string(type.name),
            "severity": .string(severity.name),
            "message": .string(message),
            "explanation": .string(explanation),
            "references": .array(references.map(\.json)),
        ]
    }
}
