import STBJSON
import STBMessages
import STBOptionValues

extension CatalogModel {
    /// The engine's view of a catalog `GetConfig` reply. Transitions whose condition does
    /// not compile are left out (the catalog validates conditions when they are written).
    public init(_ configuration: Stb_Catalog_V1_GetConfigResponse) {
        var options: [OptionInfo] = []
        var modules: [ModuleInfo] = []
        for entry in configuration.modules {
            guard let module = entry.module else { continue }
            for group in entry.groups {
                for option in group.options {
                    let type: OptionType
                    switch option.type {
                    case .boolean: type = .boolean
                    case .integer: type = .integer
                    case .enum: type = .enum
                    default: type = .string
                    }
                    // The catalog checked both when they were written; what still does not
                    // read (written before a check existed) is left unconstrained or null.
                    let value = (try? type.valueType.parse(option.defaultValue).json) ?? .null
                    let meta = (try? JSONValue.parse(option.metaJson.isEmpty ? "{}" : option.metaJson)) ?? .object([:])
                    let constraints = OptionConstraints.parse(type: type.valueType, meta: meta).0
                    options.append(OptionInfo(
                        key: option.key, module: module.key, type: type, defaultValue: value,
                        includedByDefault: option.includedByDefault, constraints: constraints))
                }
            }
            var transitions: [TransitionInfo] = []
            for transition in entry.transitions {
                let condition = transition.conditionJson.isEmpty ? nil : try? JSONValue.parse(transition.conditionJson)
                if let compiled = try? TransitionInfo(from: transition.fromState, event: transition.event, to: transition.toState, conditionJSON: condition) {
                    transitions.append(compiled)
                }
            }
            modules.append(ModuleInfo(key: module.key, transitions: transitions))
        }
        self.init(options: options, modules: modules)
    }
}
