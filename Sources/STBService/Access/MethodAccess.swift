import STBAuth
import STBMessages

/// Who may call a method: the one place that decides it for every service.
public enum MethodRequirement: Sendable, Hashable, CustomStringConvertible {
    /// No token needed (health, reflection, signing in, the public keys).
    case open
    /// Any verified caller, user or service account.
    case authenticated
    /// Any verified user (not a service account).
    case anyUser
    /// Users holding `least` or a higher role; with `services`, service accounts too.
    case role(Role, services: Bool = false)

    /// Whether a verified caller with `role` may call the method.
    public func permits(_ role: Role) -> Bool {
        switch self {
        case .open, .authenticated: true
        case .anyUser: role != .service
        case .role(let least, let services): role.permits(least) || (services && role == .service)
        }
    }

    /// What a refused caller is told it needs.
    public var description: String {
        switch self {
        case .open: "nothing"
        case .authenticated: "a verified caller"
        case .anyUser: "a user account"
        case .role(let least, let services): "role \(least.claim) or higher\(services ? " (or a service account)" : "")"
        }
    }
}

/// The least role for every RPC path of the platform's services. A path that is not here
/// is refused (fail closed): a new RPC must be given its entry, and
/// `MethodAccessTests` fails until it is.
public struct MethodAccess: Sendable {
    public private(set) var requirements: [String: MethodRequirement]

    public init(_ requirements: [String: MethodRequirement]) {
        self.requirements = requirements
    }

    /// The requirement for `path`; nil refuses the call.
    public subscript(path: String) -> MethodRequirement? { requirements[path] }

    /// This table with `other`'s entries added (a later service's own methods).
    public func merging(_ other: [String: MethodRequirement]) -> MethodAccess {
        MethodAccess(requirements.merging(other) { _, new in new })
    }

    /// The platform's table: catalog, rules, projects, the gateway's `Auth`, `Alarms` and
    /// `Dashboards`, the stub server's admin API, health and reflection.
    public static let platform: MethodAccess = {
        var table: [String: MethodRequirement] = [:]
        for path in Grpc_Health_V1_Health.methodPaths + Grpc_Reflection_V1_ServerReflection.methodPaths
            + Grpc_Reflection_V1alpha_ServerReflection.methodPaths {
            table[path] = .open
        }
        let auth = Stb_Gateway_V1_Auth.self
        for method in [auth.login.path, auth.refresh.path, auth.logout.path, auth.getKeys.path, auth.serviceLogin.path] {
            table[method] = .open
        }
        table[auth.whoAmI.path] = .authenticated
        table[auth.lookupUser.path] = .role(.admin, services: true)
        table[auth.changePassword.path] = .anyUser
        for method in [auth.createUser.path, auth.listUsers.path, auth.updateUser.path, auth.setPassword.path,
                       auth.disableUser.path, auth.listActivity.path] {
            table[method] = .role(.admin)
        }
        let read = MethodRequirement.role(.viewer, services: true)
        let fire = MethodRequirement.role(.operator)
        let change = MethodRequirement.role(.engineer)
        // Reads are for viewers and service accounts, `Fire` for operators, every other
        // change for engineers.
        let data: [String: MethodRequirement] = [
            "/stb.catalog.v1.Catalog/CreateModule": change,
            "/stb.catalog.v1.Catalog/GetModule": read,
            "/stb.catalog.v1.Catalog/ListModules": read,
            "/stb.catalog.v1.Catalog/UpdateModule": change,
            "/stb.catalog.v1.Catalog/DeleteModule": change,
            "/stb.catalog.v1.Catalog/CreateGroup": change,
            "/stb.catalog.v1.Catalog/GetGroup": read,
            "/stb.catalog.v1.Catalog/ListGroups": read,
            "/stb.catalog.v1.Catalog/UpdateGroup": change,
            "/stb.catalog.v1.Catalog/DeleteGroup": change,
            "/stb.catalog.v1.Catalog/CreateOption": change,
            "/stb.catalog.v1.Catalog/GetOption": read,
            "/stb.catalog.v1.Catalog/ListOptions": read,
            "/stb.catalog.v1.Catalog/UpdateOption": change,
            "/stb.catalog.v1.Catalog/DeleteOption": change,
            "/stb.catalog.v1.Catalog/CreateState": change,
            "/stb.catalog.v1.Catalog/GetState": read,
            "/stb.catalog.v1.Catalog/ListStates": read,
            "/stb.catalog.v1.Catalog/UpdateState": change,
            "/stb.catalog.v1.Catalog/DeleteState": change,
            "/stb.catalog.v1.Catalog/CreateTransition": change,
            "/stb.catalog.v1.Catalog/GetTransition": read,
            "/stb.catalog.v1.Catalog/ListTransitions": read,
            "/stb.catalog.v1.Catalog/UpdateTransition": change,
            "/stb.catalog.v1.Catalog/DeleteTransition": change,
            "/stb.catalog.v1.Catalog/GetConfig": read,
            "/stb.catalog.v1.Catalog/ImportSeed": change,
            "/stb.catalog.v1.Catalog/Watch": read,
            "/stb.rules.v1.Rules/CreateRule": change,
            "/stb.rules.v1.Rules/GetRule": read,
            "/stb.rules.v1.Rules/ListRules": read,
            "/stb.rules.v1.Rules/UpdateRule": change,
            "/stb.rules.v1.Rules/DeleteRule": change,
            "/stb.rules.v1.Rules/ImportRules": change,
            "/stb.rules.v1.Rules/Evaluate": read,
            "/stb.rules.v1.Rules/CheckRules": read,
            "/stb.rules.v1.Rules/Impact": read,
            "/stb.rules.v1.Rules/Fire": fire,
            "/stb.rules.v1.Rules/AvailableEvents": read,
            "/stb.rules.v1.Rules/Watch": read,
        ]
        table.merge(data) { _, new in new }
        // Projects: the platform role is the floor; each project's membership (checked by
        // the project service, and by row-level security in its database) decides the rest.
        // Reads for viewers and service accounts; signing and reviewing for operators;
        // every other change for engineers; the membership index and the change feed,
        // which name every project, for admins and service accounts.
        let sign = MethodRequirement.role(.operator)
        let platformWide = MethodRequirement.role(.admin, services: true)
        let projects: [String: MethodRequirement] = [
            "/stb.project.v1.Projects/CreateProject": change,
            "/stb.project.v1.Projects/GetProject": read,
            "/stb.project.v1.Projects/ListProjects": read,
            "/stb.project.v1.Projects/UpdateProject": change,
            "/stb.project.v1.Projects/SetMember": change,
            "/stb.project.v1.Projects/RemoveMember": change,
            "/stb.project.v1.Projects/ListMembers": read,
            "/stb.project.v1.Projects/SetSignoffAspects": change,
            "/stb.project.v1.Projects/ListMemberships": platformWide,
            "/stb.project.v1.Projects/SetOptions": change,
            "/stb.project.v1.Projects/GetProjectConfig": read,
            "/stb.project.v1.Projects/CommitVersion": change,
            "/stb.project.v1.Projects/ListVersions": read,
            "/stb.project.v1.Projects/GetVersion": read,
            "/stb.project.v1.Projects/DiffVersions": read,
            "/stb.project.v1.Projects/Rollback": change,
            "/stb.project.v1.Projects/Signoff": sign,
            "/stb.project.v1.Projects/GetReleaseStatus": read,
            "/stb.project.v1.Projects/CreateChangeRequest": change,
            "/stb.project.v1.Projects/GetChangeRequest": read,
            "/stb.project.v1.Projects/ListChangeRequests": read,
            "/stb.project.v1.Projects/ReviewChangeRequest": sign,
            "/stb.project.v1.Projects/ApplyChangeRequest": change,
            "/stb.project.v1.Projects/ListAudit": read,
            "/stb.project.v1.Projects/VerifyAudit": read,
            "/stb.project.v1.Projects/Watch": platformWide,
        ]
        table.merge(projects) { _, new in new }
        // The stub server: engineers read stubs, mocks and the journal (which holds request
        // bodies); only admins change what the mocks answer.
        let stubs = Stb_Stubs_V1_Stubs.self
        for method in [stubs.getStub.path, stubs.listStubs.path, stubs.listMocks.path, stubs.verify.path, stubs.getJournal.path,
                       stubs.listResults.path] {
            table[method] = .role(.engineer)
        }
        for method in [stubs.putStub.path, stubs.deleteStub.path, stubs.startMock.path, stubs.stopMock.path, stubs.resetJournal.path,
                       stubs.runScenario.path, stubs.setFault.path, stubs.setDelay.path] {
            table[method] = .role(.admin)
        }
        // Alarms: listed by anyone who sees their projects (the gateway filters by
        // membership), acknowledged by operators; their feed names every project.
        // Dashboards belong to users; ownership is checked by the gateway.
        let alarms = Stb_Gateway_V1_Alarms.self
        table[alarms.listAlarms.path] = read
        table[alarms.acknowledgeAlarm.path] = sign
        table[alarms.watchAlarms.path] = platformWide
        let dashboards = Stb_Gateway_V1_Dashboards.self
        for method in [dashboards.createDashboard.path, dashboards.getDashboard.path, dashboards.listDashboards.path,
                       dashboards.updateDashboard.path, dashboards.deleteDashboard.path] {
            table[method] = .role(.viewer)
        }
        // The gateway's live streams: any verified caller (each topic and project is
        // checked by the stream itself); stream sessions for admins.
        let realtime: [String: MethodRequirement] = [
            "/stb.gateway.v1.Realtime/Subscribe": read,
            "/stb.gateway.v1.Realtime/ListSessions": .role(.admin),
            "/stb.gateway.v1.Realtime/EndSession": .role(.admin),
        ]
        table.merge(realtime) { _, new in new }
        return MethodAccess(table)
    }()
}
