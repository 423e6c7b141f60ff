import STBJSON
import STBMessages

/// One entity of any kind, as the catalog returns it.
typealias Entity = Stb_Catalog_V1_CatalogEntity.OneOf_Entity

extension CatalogSession {
    /// Fetches the entity `ref` names.
    func get(_ ref: EntityRef) async throws -> Entity {
        switch ref.target {
        case .module(let ref): .module(try await call(Stb_Catalog_V1_Catalog.getModule, ref))
        case .group(let ref): .group(try await call(Stb_Catalog_V1_Catalog.getGroup, ref))
        case .option(let ref): .option(try await call(Stb_Catalog_V1_Catalog.getOption, ref))
        case .state(let ref): .state(try await call(Stb_Catalog_V1_Catalog.getState, ref))
        case .transition(let ref): .transition(try await call(Stb_Catalog_V1_Catalog.getTransition, ref))
        }
    }

    /// Deletes the entity `ref` names.
    func delete(_ ref: EntityRef) async throws {
        switch ref.target {
        case .module(let ref): _ = try await call(Stb_Catalog_V1_Catalog.deleteModule, ref)
        case .group(let ref): _ = try await call(Stb_Catalog_V1_Catalog.deleteGroup, ref)
        case .option(let ref): _ = try await call(Stb_Catalog_V1_Catalog.deleteOption, ref)
        case .state(let ref): _ = try await call(Stb_Catalog_V1_Catalog.deleteState, ref)
        case .transition(let ref): _ = try await call(Stb_Catalog_V1_Catalog.deleteTransition, ref)
        }
    }

    /// Every entity of `kind`, all pages, filtered by module (and group, for options) when given.
    func list(_ kind: EntityKind, moduleKey: String, groupKey: String) async throws -> [Entity] {
        switch kind {
        case .module:
            return try await allPages { page in
                let reply = try await call(Stb_Catalog_V1_Catalog.listModules, .init(page: page))
                return (reply.modules.map(Entity.module), reply.page)
            }
        case .group:
            return try await allPages { page in
                let reply = try await call(Stb_Catalog_V1_Catalog.listGroups, .init(moduleKey: moduleKey, page: page))
                return (reply.groups.map(Entity.group), reply.page)
            }
        case .option:
            return try await allPages { page in
                let reply = try await call(
                    Stb_Catalog_V1_Catalog.listOptions, .init(moduleKey: moduleKey, groupKey: groupKey, page: page))
                return (reply.options.map(Entity.option), reply.page)
            }
        case .state:
            // Not paged in the proto.
            return try await call(Stb_Catalog_V1_Catalog.listStates, .init(moduleKey: moduleKey)).states.map(Entity.state)
        case .transition:
            return try await call(Stb_Catalog_V1_Catalog.listTransitions, .init(moduleKey: moduleKey)).transitions
                .map(Entity.transition)
        }
    }
}

extension Entity {
    /// The entity's fields for `key: value` or JSON output.
    var record: Record {
        switch self {
        case .module(let module): Record(module)
        case .group(let group): Record(group)
        case .option(let option): Record(option)
        case .state(let state): Record(state)
        case .transition(let transition): Record(transition)
        }
    }

    /// Prints the entity as `key: value` lines, or as a JSON object.
    func print(json: Bool) {
        Terminal.write(json ? JSONValue.object(record.json).rendered(pretty: true) : record.text)
    }
}
