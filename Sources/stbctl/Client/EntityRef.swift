import ArgumentParser
import STBMessages

/// The five kinds of catalog entity.
enum EntityKind: String, CaseIterable, ExpressibleByArgument {
    case module, group, option, state, transition

    var plural: String { rawValue + "s" }

    /// "a" or "an", for messages.
    var article: String { self == .option ? "an" : "a" }

    /// How a REF of this kind is written, for help and errors.
    var refForm: String {
        switch self {
        case .module: "MODULE"
        case .group: "MODULE/GROUP"
        case .option: "OPTION"
        case .state: "MODULE/STATE"
        case .transition: "MODULE/FROM_STATE/EVENT"
        }
    }
}

/// `list`'s argument: a kind in the plural (`options`); the singular works too.
struct PluralKind: ExpressibleByArgument {
    let kind: EntityKind

    init?(argument: String) {
        guard let kind = EntityKind(rawValue: argument) ?? EntityKind.allCases.first(where: { $0.plural == argument })
        else { return nil }
        self.kind = kind
    }

    static var allValueStrings: [String] { EntityKind.allCases.map(\.plural) }
}

/// The parts of a slash-separated key path such as `video/output`.
enum KeyPath {
    /// Splits `text` into exactly `count` non-empty parts.
    static func split(_ text: String, count: Int, form: String) throws(ValidationError) -> [String] {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == count, parts.allSatisfy({ !$0.isEmpty }) else {
            throw ValidationError("'\(text)' is not of the form \(form).")
        }
        return parts
    }

    /// A key that stands alone (a module or option key): no `/`, and not all digits, which
    /// a REF would read as an id.
    static func plainKey(_ text: String, kind: EntityKind) throws(ValidationError) -> String {
        guard !text.isEmpty, !text.contains("/") else {
            throw ValidationError("'\(text)' is not \(kind.article) \(kind.rawValue) key (of the form \(kind.refForm)).")
        }
        guard !isID(text) else {
            throw ValidationError("\(kind.article) \(kind.rawValue) key made only of digits would read as an id: '\(text)'.")
        }
        return text
    }

    /// Whether a REF is an id: digits only.
    static func isID(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }
}

/// A reference to one entity, by id (a REF of digits only) or by key.
struct EntityRef: CustomStringConvertible {
    enum Target {
        case module(Stb_Catalog_V1_ModuleRef)
        case group(Stb_Catalog_V1_GroupRef)
        case option(Stb_Catalog_V1_OptionRef)
        case state(Stb_Catalog_V1_StateRef)
        case transition(Stb_Catalog_V1_TransitionRef)
    }

    let kind: EntityKind
    /// The REF as typed.
    let text: String
    let target: Target

    init(_ kind: EntityKind, _ text: String) throws(ValidationError) {
        self.kind = kind
        self.text = text
        var id: Int64?
        if KeyPath.isID(text) {
            guard let number = Int64(text) else { throw ValidationError("the id \(text) is too large.") }
            id = number
        }
        switch kind {
        case .module:
            if let id {
                target = .module(Stb_Catalog_V1_ModuleRef(ref: .id(id)))
            } else {
                target = .module(Stb_Catalog_V1_ModuleRef(ref: .key(try KeyPath.plainKey(text, kind: kind))))
            }
        case .option:
            if let id {
                target = .option(Stb_Catalog_V1_OptionRef(ref: .id(id)))
            } else {
                target = .option(Stb_Catalog_V1_OptionRef(ref: .key(try KeyPath.plainKey(text, kind: kind))))
            }
        case .group:
            if let id {
                target = .group(Stb_Catalog_V1_GroupRef(id: id))
            } else {
                let parts = try KeyPath.split(text, count: 2, form: kind.refForm)
                target = .group(Stb_Catalog_V1_GroupRef(moduleKey: parts[0], key: parts[1]))
            }
        case .state:
            if let id {
                target = .state(Stb_Catalog_V1_StateRef(id: id))
            } else {
                let parts = try KeyPath.split(text, count: 2, form: kind.refForm)
                target = .state(Stb_Catalog_V1_StateRef(moduleKey: parts[0], name: parts[1]))
            }
        case .transition:
            if let id {
                target = .transition(Stb_Catalog_V1_TransitionRef(id: id))
            } else {
                let parts = try KeyPath.split(text, count: 3, form: kind.refForm)
                target = .transition(Stb_Catalog_V1_TransitionRef(moduleKey: parts[0], fromState: parts[1], event: parts[2]))
            }
        }
    }

    /// `option hdr`, `group #12`.
    var description: String {
        "\(kind.rawValue) \(KeyPath.isID(text) ? "#" : "")\(text)"
    }
}
