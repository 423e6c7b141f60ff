import STBMessages
import STBPostgres

/// One row of `alarms` and its message.
struct StoredAlarm: Sendable {
    /// The select list `init(row:)` reads, over `alarms a`.
    static let columns = """
        a.id, a.project_key, a.status, a.severity, a.violations,
        (extract(epoch FROM a.raised_at) * 1000)::int8, (extract(epoch FROM a.updated_at) * 1000)::int8,
        a.acknowledged_by, coalesce((extract(epoch FROM a.acknowledged_at) * 1000)::int8, 0), a.acknowledgement_note,
        coalesce((extract(epoch FROM a.cleared_at) * 1000)::int8, 0), a.source_revision
        """

    let message: Stb_Gateway_V1_Alarm

    init(row: PostgresRow) throws {
        var alarm = Stb_Gateway_V1_Alarm()
        alarm.id = try row.decode(0, as: Int64.self)
        alarm.projectKey = try row.decode(1, as: String.self)
        alarm.status = AlarmStatusName.status(try row.decode(2, as: String.self))
        alarm.severity = AlarmSeverityName.severity(try row.decode(3, as: String.self))
        alarm.violations = try Stb_Rules_V1_ViolationList(serializedBytes: try row.decode(4, as: [UInt8].self)).violations
        alarm.raisedAtMs = try row.decode(5, as: Int64.self)
        alarm.updatedAtMs = try row.decode(6, as: Int64.self)
        alarm.acknowledgedBy = try row.decode(7, as: String.self)
        alarm.acknowledgedAtMs = try row.decode(8, as: Int64.self)
        alarm.acknowledgementNote = try row.decode(9, as: String.self)
        alarm.clearedAtMs = try row.decode(10, as: Int64.self)
        alarm.sourceRevision = UInt64(clamping: try row.decode(11, as: Int64.self))
        message = alarm
    }
}

/// The words `alarms.status` stores.
enum AlarmStatusName {
    static func name(_ status: Stb_Gateway_V1_AlarmStatus) -> String? {
        switch status {
        case .active: "active"
        case .acknowledged: "acknowledged"
        case .cleared: "cleared"
        default: nil
        }
    }

    static func status(_ name: String) -> Stb_Gateway_V1_AlarmStatus {
        switch name {
        case "active": .active
        case "acknowledged": .acknowledged
        case "cleared": .cleared
        default: .unspecified
        }
    }
}

/// The words `alarms.severity` stores, and the severity a set of violations earns.
public enum AlarmSeverityName {
    static func name(_ severity: Stb_Gateway_V1_AlarmSeverity) -> String? {
        switch severity {
        case .info: "info"
        case .warning: "warning"
        case .critical: "critical"
        default: nil
        }
    }

    static func severity(_ name: String) -> Stb_Gateway_V1_AlarmSeverity {
        switch name {
        case "info": .info
        case "warning": .warning
        case "critical": .critical
        default: .unspecified
        }
    }

    /// CRITICAL when any violation is error-severity, WARNING when there are only
    /// warnings, INFO otherwise.
    public static func severity(of violations: [Stb_Rules_V1_Violation]) -> Stb_Gateway_V1_AlarmSeverity {
        if violations.contains(where: { $0.severity == .error }) { return .critical }
        if violations.contains(where: { $0.severity == .warning }) { return .warning }
        return .info
    }

    /// Order for "did it get worse".
    static func rank(_ severity: Stb_Gateway_V1_AlarmSeverity) -> Int {
        switch severity {
        case .critical: 3
        case .warning: 2
        case .info: 1
        default: 0
        }
    }
}
