/// Room left in one response header block (headers, trailers, or Trailers-Only), counted
/// as SETTINGS_MAX_HEADER_LIST_SIZE counts: Σ(name + value + 32) bytes.
///
/// A status must always reach the client, so the protocol's own fields are always
/// added (`charge`) and everything else only when it fits (`take`).
struct HeaderBudget {
    private(set) var remaining: Int

    init(limit: Int) {
        remaining = max(limit, 0)
    }

    /// The HPACK size of a field.
    static func size(name: String, valueBytes: Int) -> Int {
        name.utf8.count + valueBytes + 32
    }

    /// Counts a field that is sent whether it fits or not.
    mutating func charge(_ name: String, _ value: String) {
        remaining = max(remaining - Self.size(name: name, valueBytes: value.utf8.count), 0)
    }

    /// Counts a field if it fits; false (and nothing counted) if it does not.
    mutating func take(_ name: String, _ value: String) -> Bool {
        let size = Self.size(name: name, valueBytes: value.utf8.count)
        guard size <= remaining else { return false }
        remaining -= size
        return true
    }

    /// The longest value a field named `name` could still have.
    func valueRoom(forName name: String) -> Int {
        max(remaining - Self.size(name: name, valueBytes: 0), 0)
    }
}
