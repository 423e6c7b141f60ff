import STBJSON
import Synchronization

/// Recently evaluated selections by the hash their responses gave them, so that a caller
/// can send only what changed since. Bounded: when full, the oldest entry goes first.
final class SelectionCache: Sendable {
    private struct Entries {
        var byHash: [[UInt8]: HeldSelection] = [:]
        /// Hashes in insertion order, as a ring of `capacity` slots.
        var ring: [[UInt8]] = []
        var next = 0
    }

    let capacity: Int
    private let entries = Mutex(Entries())

    init(capacity: Int) {
        precondition(capacity > 0, "a selection cache holds at least one selection")
        self.capacity = capacity
    }

    /// Keeps `selection` under `hash` (again: an entry already held stays where it is).
    func insert(_ hash: [UInt8], _ selection: HeldSelection) {
        entries.withLock { entries in
            guard entries.byHash[hash] == nil else { return }
            if entries.ring.count < capacity {
                entries.ring.append(hash)
            } else {
                entries.byHash[entries.ring[entries.next]] = nil
                entries.ring[entries.next] = hash
                entries.next = (entries.next + 1) % capacity
            }
            entries.byHash[hash] = selection
        }
    }

    /// Whether a selection is held under `hash` (so a caller can skip making one to insert).
    func contains(_ hash: [UInt8]) -> Bool {
        entries.withLock { $0.byHash[hash] != nil }
    }

    /// The selection held under `hash`, if any.
    func selection(_ hash: [UInt8]) -> HeldSelection? {
        entries.withLock { $0.byHash[hash] }
    }

    var count: Int { entries.withLock { $0.byHash.count } }
}

/// A selection held for `base_selection_hash`: its choices by key, and by option slot of
/// the catalog copy that evaluated it, so that a request naming it while that copy serves
/// lays its choices by slot without looking each key up.
struct HeldSelection: Sendable {
    let selection: Selection
    /// The key table `slots` are positions in (shared by the engines of one catalog copy).
    let keyTable: OptionKeyTable
    let slots: [(slot: Int, choice: Selection.Choice)]

    /// The selection whose differences from the defaults are `differences`, as `engine` gave
    /// them: every key is one of `engine`'s options, once.
    init(differences: [(key: String, choice: Selection.Choice)], engine: RuleEngine) {
        selection = Selection(choices: Dictionary(differences, uniquingKeysWith: { $1 }))
        keyTable = engine.keyTable
        slots = differences.compactMap { difference in engine.slot(of: difference.key).map { ($0, difference.choice) } }
    }
}

extension Selection {
    /// The SHA-256 of a selection's canonical form (see `EvaluateResponse.selection_hash`):
    /// its differences from the catalog defaults in key order.
    static func hash(differences: [(key: String, choice: Selection.Choice)]) -> [UInt8] {
        // The canonical form in one buffer, hashed in one call.
        var text: [UInt8] = []
        text.reserveCapacity(differences.count * 24)
        for (key, choice) in differences {
            text.append(contentsOf: key.utf8)
            text.append(0)
            text.append(choice.included == true ? UInt8(ascii: "1") : UInt8(ascii: "0"))
            if let value = choice.value {
                text.append(1)
                // The common values' canonical text written in place, without a String.
                switch value {
                case .bool(true): text.append(contentsOf: [0x74, 0x72, 0x75, 0x65])
                case .bool(false): text.append(contentsOf: [0x66, 0x61, 0x6C, 0x73, 0x65])
                case .integer(let number): EvaluateReplyEncoder.appendDecimal(number, to: &text)
                default: text.append(contentsOf: value.canonicalText.utf8)
                }
            }
            text.append(UInt8(ascii: "\n"))
        }
        var hasher = SHA256()
        hasher.update(text)
        return hasher.finalize()
    }
}

extension EvaluatedSelection {
    /// The SHA-256 of the selection's canonical form, as `EvaluateResponse.selection_hash` gives it.
    public var selectionHash: [UInt8] { Selection.hash(differences: differences) }
}
