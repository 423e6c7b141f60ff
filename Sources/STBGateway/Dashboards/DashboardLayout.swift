import STBJSON
import STBOptionValues

/// A dashboard's layout document, checked before it is stored:
/// `{"widgets": [{"type": "option_value"|"project_validity"|"alarm_list", "x", "y", "w",
/// "h", …}]}`. Positions are non-negative integers up to `maxCoordinate`, sizes from 1;
/// an `option_value` widget names an `option_key`, a `project_validity` widget a
/// `project_key`, an `alarm_list` widget a `topic` (and may name a `project_key`).
/// Unknown members are refused so that a typo is not stored silently.
public enum DashboardLayout {
    /// The largest layout document, in bytes.
    public static let maxBytes = 65_536
    /// The most widgets a layout holds.
    public static let maxWidgets = 100
    /// The largest x, y, w or h.
    public static let maxCoordinate: Int64 = 1000

    static let kinds: [String: Set<String>] = [
        "option_value": ["option_key"],
        "project_validity": ["project_key"],
        "alarm_list": ["topic"],
    ]
    static let optional: [String: Set<String>] = ["alarm_list": ["project_key"]]

    /// The problems with `text` at `field` (each `path: problem`), and its canonical form
    /// when there are none.
    public static func check(_ text: String, at field: String) -> (canonical: String?, problems: [String]) {
        guard text.utf8.count <= maxBytes else { return (nil, ["\(field): must be at most \(maxBytes) bytes"]) }
        let document: JSONValue
        do {
            document = try JSONValue.parse(text)
        } catch {
            return (nil, ["\(field): is not JSON (\(error.description))"])
        }
        guard let members = document.objectValue else { return (nil, ["\(field): must be an object with \"widgets\""]) }
        var problems: [String] = []
        for key in members.keys.sorted() where key != "widgets" {
            problems.append("\(field).\(key): unknown member")
        }
        guard let widgets = members["widgets"]?.arrayValue else {
            return (nil, problems + ["\(field).widgets: must be an array"])
        }
        if widgets.count > maxWidgets { problems.append("\(field).widgets: at most \(maxWidgets) widgets") }
        for (index, widget) in widgets.prefix(maxWidgets).enumerated() {
            problems += widgetProblems(widget, at: "\(field).widgets[\(index)]")
        }
        return (problems.isEmpty ? document.canonicalText : nil, problems)
    }

    static func widgetProblems(_ widget: JSONValue, at path: String) -> [String] {
        guard let members = widget.objectValue else { return ["\(path): must be an object"] }
        guard let type = members["type"]?.stringValue else { return ["\(path).type: required, one of alarm_list, option_value, project_validity"] }
        guard let required = kinds[type] else {
            return ["\(path).type: \(quoted(type)) is not one of alarm_list, option_value, project_validity"]
        }
        var problems: [String] = []
        for name in ["x", "y", "w", "h"] {
            let least: Int64 = name == "w" || name == "h" ? 1 : 0
            guard let value = members[name]?.integerValue, case .integer = members[name], (least...maxCoordinate).contains(value) else {
                problems.append("\(path).\(name): must be an integer from \(least) to \(maxCoordinate)")
                continue
            }
        }
        let allowed = required.union(optional[type] ?? []).union(["type", "x", "y", "w", "h"])
        for key in members.keys.sorted() where !allowed.contains(key) {
            problems.append("\(path).\(key): not a member of a \(type) widget")
        }
        for name in required.union(optional[type] ?? []).sorted() {
            guard let value = members[name] else {
                if required.contains(name) { problems.append("\(path).\(name): required for a \(type) widget") }
                continue
            }
            guard let text = value.stringValue else {
                problems.append("\(path).\(name): must be a string")
                continue
            }
            if name == "topic" {
                if !isTopic(text) { problems.append("\(path).topic: \(quoted(text)) is not a topic (alarms, or alarms/<project key>)") }
            } else if !isValidKey(text) {
                problems.append("\(path).\(name): \(quoted(text)) is not a valid key")
            }
        }
        return problems
    }

    /// `alarms` or `alarms/<project key>`.
    static func isTopic(_ text: String) -> Bool {
        if text == "alarms" { return true }
        guard text.hasPrefix("alarms/") else { return false }
        return isValidKey(String(text.dropFirst("alarms/".count)))
    }
}
