import STBJSON
import STBMessages

// MARK: - The project service's messages as people and scripts read them

/// A SHA-256 (or any digest) as lowercase hex; `-` when empty.
func hexText(_ bytes: [UInt8]) -> String {
    guard !bytes.isEmpty else { return "-" }
    let digits = Array("0123456789abcdef")
    var text = ""
    text.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0f)])
    }
    return text
}

/// The first 12 hex digits of a digest, for tables.
func shortHash(_ bytes: [UInt8]) -> String {
    String(hexText(bytes).prefix(12))
}

extension Record {
    /// A digest field: hex for people and in JSON.
    mutating func add(hash name: String, _ bytes: [UInt8]) {
        add(name, hexText(bytes))
    }

    init(_ project: Stb_Project_V1_Project) {
        add("key", project.key)
        add("name", project.name)
        add("description", project.description_p)
        add("my_role", project.myRole.name)
        add("latest_version", project.latestVersion)
        add("valid", project.valid)
        add(hash: "draft_hash", project.draftHash)
        add("archived", project.archived)
        add(json: "meta_json", project.metaJson, emptyMeans: Self.emptyMeta)
        add("id", project.id)
        add(time: "created_at_ms", project.createdAtMs)
        add(time: "updated_at_ms", project.updatedAtMs)
    }

    init(_ version: Stb_Project_V1_Version) {
        add("project_key", version.projectKey)
        add("number", version.number)
        add("parent", version.parent)
        add("message", version.message)
        add(hash: "hash", version.hash_p)
        add("valid", version.valid)
        add("rolled_back_from", version.rolledBackFrom)
        add("catalog_revision", version.catalogRevision)
        add("rules_revision", version.rulesRevision)
        add("author", version.author)
        add("author_id", version.authorID)
        add(time: "created_at_ms", version.createdAtMs)
        if !version.canonicalJson.isEmpty { add(json: "canonical_json", version.canonicalJson, emptyMeans: .null) }
    }

    init(_ signoff: Stb_Project_V1_SignoffRecord) {
        add("project_key", signoff.projectKey)
        add("version", signoff.version)
        add("aspect", signoff.aspect)
        add(hash: "hash", signoff.hash_p)
        add("signer", signoff.signer)
        add("signer_id", signoff.signerID)
        add("notes", signoff.notes)
        add(time: "signed_at_ms", signoff.signedAtMs)
    }

    init(_ request: Stb_Project_V1_ChangeRequest) {
        add("id", request.id)
        add("project_key", request.projectKey)
        add("status", request.status.name)
        add("base_version", request.baseVersion)
        add(hash: "base_hash", request.baseHash)
        add("changes", request.changes.map(\.text).joined(separator: " "))
        add("reason", request.reason)
        add("author", request.author)
        add("author_id", request.authorID)
        add("reviewer", request.reviewer)
        add("reviewer_id", request.reviewerID)
        add("review_notes", request.reviewNotes)
        add("stale_reason", request.staleReason)
        add("applied_version", request.appliedVersion)
        add(time: "created_at_ms", request.createdAtMs)
        add(time: "updated_at_ms", request.updatedAtMs)
    }

    init(_ member: Stb_Project_V1_Member) {
        add("user_id", member.userID)
        add("username", member.username)
        add("role", member.role.name)
        add(time: "added_at_ms", member.addedAtMs)
    }

    init(_ entry: Stb_Project_V1_AuditEntry) {
        add("id", entry.id)
        add("project_key", entry.projectKey)
        add(time: "at_ms", entry.atMs)
        add("actor", entry.actor)
        add("actor_id", entry.actorID)
        add("entity", entry.entity)
        add("entity_key", entry.entityKey)
        add("action", entry.action)
        add(json: "before_json", entry.beforeJson, emptyMeans: .null)
        add(json: "after_json", entry.afterJson, emptyMeans: .null)
        add(hash: "old_hash", entry.oldHash)
        add(hash: "new_hash", entry.newHash)
        add(hash: "previous_row_hash", entry.previousRowHash)
        add(hash: "row_hash", entry.rowHash)
    }
}

extension Stb_Project_V1_ProjectRole {
    /// viewer, editor, approver, owner; `-` when unset (an admin who is not a member).
    var name: String {
        switch self {
        case .unspecified: "-"
        case .viewer: "viewer"
        case .editor: "editor"
        case .approver: "approver"
        case .owner: "owner"
        case .unrecognized(let value): "role(\(value))"
        }
    }

    /// The role a command-line word names.
    init?(word: String) {
        switch word.lowercased() {
        case "viewer": self = .viewer
        case "editor": self = .editor
        case "approver": self = .approver
        case "owner": self = .owner
        default: return nil
        }
    }
}

extension Stb_Project_V1_ChangeRequestStatus {
    /// pending, approved, rejected, applied, stale.
    var name: String {
        switch self {
        case .unspecified: "unspecified"
        case .pending: "pending"
        case .approved: "approved"
        case .rejected: "rejected"
        case .applied: "applied"
        case .stale: "stale"
        case .unrecognized(let value): "status(\(value))"
        }
    }
}

extension Stb_Project_V1_ValueSource {
    var name: String {
        switch self {
        case .unspecified: "unspecified"
        case .default: "default"
        case .override: "override"
        case .unrecognized(let value): "source(\(value))"
        }
    }
}

extension Stb_Project_V1_OptionChange {
    /// As the command line writes it: `key=value`, `+key` (include), `-key` (exclude),
    /// `key!` (reset), `key=default` for the default value.
    var text: String {
        switch change {
        case .valueJson(let json): "\(key)=\(JSONValue.compact(json))"
        case .include(let on): on ? "+\(key)" : "-\(key)"
        case .reset: "\(key)!"
        case .resetValue: "\(key)=(default)"
        case nil: key
        }
    }

    var json: JSONValue {
        var object: [String: JSONValue] = ["key": .string(key)]
        switch change {
        case .valueJson(let text): object["value"] = (try? JSONValue.parse(text)) ?? .string(text)
        case .include(let on): object["include"] = .bool(on)
        case .reset(let on): object["reset"] = .bool(on)
        case .resetValue(let on): object["reset_value"] = .bool(on)
        case nil: break
        }
        return .object(object)
    }
}

extension Stb_Rules_V1_Violation {
    /// `error RULE: message`, its explanation and the options it refers to, one per line.
    var lines: [String] {
        var lines = ["\(severity.name) \(ruleKey): \(message.isEmpty ? explanation : message)"]
        if !message.isEmpty {
            lines += explanation.split(separator: "\n", omittingEmptySubsequences: true).map { "    \($0)" }
        }
        lines += references.map { "  \($0.text)" }
        return lines
    }
}
