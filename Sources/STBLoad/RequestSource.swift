import STBJSON
import STBMessages

/// The requests a run sends, as wire encodings of the method's input type, made from
/// proto3 JSON: a list used round-robin, or one template whose `{{n}}` is replaced by a
/// counter (0, 1, 2, …) for each request.
public struct RequestSource: Sendable {
    private enum Form: Sendable {
        case list([[UInt8]])
        case template(prefix: String, pieces: [String])
    }

    private let form: Form
    /// The input type's proto name.
    public let typeName: String

    /// The placeholder a template's counter replaces.
    public static let counterPlaceholder = "{{n}}"

    /// Requests from `text`, a JSON array of messages (sent in turn) or a single message;
    /// a text holding `{{n}}` is a template (it need not be JSON before the substitution).
    /// `origin` names the input in errors. Every request is converted now: one that is not
    /// the JSON form of `typeName` is refused with its position, path and reason.
    public init(text: String, typeName: String, origin: String) throws(LoadError) {
        self.typeName = typeName
        guard ProtoDynamicMessage.isKnown(typeName) else {
            throw LoadError(.unknownMethod, "\(origin): \(typeName) is not a message of Protos/")
        }
        if text.contains(Self.counterPlaceholder) {
            let parts = text.split(separator: Self.counterPlaceholder, omittingEmptySubsequences: false).map(String.init)
            form = .template(prefix: parts[0], pieces: Array(parts.dropFirst()))
            // The first two requests show a template that cannot make valid ones.
            for counter in [0, 1] {
                do {
                    _ = try ProtoDynamicMessage.wireEncoding(ofJSON: Array(Self.fill(parts[0], Array(parts.dropFirst()), counter).utf8), type: typeName)
                } catch {
                    throw LoadError(.badRequest, "\(origin) (n = \(counter)): \(error)")
                }
            }
            return
        }
        let value: JSONValue
        do {
            value = try JSONValue.parse(text)
        } catch {
            throw LoadError(.badRequest, "\(origin): not JSON: \(error)")
        }
        let messages: [JSONValue]
        switch value {
        case .array(let items):
            guard !items.isEmpty else { throw LoadError(.badRequest, "\(origin): the list of requests is empty") }
            messages = items
        default:
            messages = [value]
        }
        var encoded: [[UInt8]] = []
        for (index, message) in messages.enumerated() {
            do {
                encoded.append(try ProtoDynamicMessage.wireEncoding(ofJSON: Array(message.canonicalText.utf8), type: typeName))
            } catch {
                let place = value.arrayValue == nil ? origin : "\(origin)[\(index)]"
                throw LoadError(.badRequest, "\(place): \(error)")
            }
        }
        form = .list(encoded)
    }

    /// The wire encoding of request number `index` (0-based); nil only when a template
    /// makes an invalid request for this counter (counted as an error of the run).
    public func request(_ index: Int) -> [UInt8]? {
        switch form {
        case .list(let encoded):
            return encoded[index % encoded.count]
        case .template(let prefix, let pieces):
            return try? ProtoDynamicMessage.wireEncoding(ofJSON: Array(Self.fill(prefix, pieces, index).utf8), type: typeName)
        }
    }

    /// The requests of a list, in turn (request `index` is `fixedRequests[index % count]`);
    /// nil for a template, whose requests are made one by one.
    public var fixedRequests: [[UInt8]]? {
        if case .list(let encoded) = form { return encoded }
        return nil
    }

    /// Whether each request is converted as it is sent (a template) rather than once.
    public var isTemplate: Bool {
        if case .template = form { return true }
        return false
    }

    private static func fill(_ prefix: String, _ pieces: [String], _ counter: Int) -> String {
        var text = prefix
        for piece in pieces {
            text += String(counter)
            text += piece
        }
        return text
    }
}
