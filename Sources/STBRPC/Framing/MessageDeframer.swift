/// Splits a gRPC body (Length-Prefixed-Messages) or a Connect streaming body (envelopes:
/// the same 5 bytes, flags and length) into messages, across any DATA boundaries.
///
/// The 5-byte prefix is checked against `maxMessageSize` before any message buffer is
/// allocated, so an oversized length costs nothing.
struct MessageDeframer {
    /// Why a body could not be split.
    enum Failure: Error, Equatable {
        /// The prefix announced a message over the limit (length given).
        case tooLarge(Int)
        /// The flags byte was not 0: the compressed flag (bit 0) though no compression was
        /// negotiated, or another flag no request may carry (the flags are given).
        case unexpectedFlags(UInt8)
    }

    let maxMessageSize: Int
    private var buffer: [UInt8] = []
    private var readIndex = 0

    init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    /// Bytes received but not yet part of a complete message.
    var bufferedByteCount: Int { buffer.count - readIndex }

    /// Feeds one chunk; `emit` is called once per complete message, in order.
    mutating func process(_ chunk: UnsafeRawBufferPointer, emit: ([UInt8]) -> Void) throws(Failure) {
        if bufferedByteCount == 0 {
            // Fast path: whole messages straight from the chunk, no staging copy.
            var offset = 0
            while chunk.count - offset >= 5 {
                let length = try Self.checkedLength(chunk, at: offset, max: maxMessageSize)
                guard chunk.count - offset - 5 >= length else { break }
                emit(Array(UnsafeRawBufferPointer(rebasing: chunk[(offset + 5)..<(offset + 5 + length)])))
                offset += 5 + length
            }
            if offset < chunk.count {
                let rest = UnsafeRawBufferPointer(rebasing: chunk[offset...])
                if rest.count >= 5 { _ = try Self.checkedLength(rest, at: 0, max: maxMessageSize) }
                buffer.removeAll(keepingCapacity: true)
                readIndex = 0
                buffer.append(contentsOf: rest)
            }
            return
        }
        buffer.append(contentsOf: chunk)
        while buffer.count - readIndex >= 5 {
            let length = try Self.checkedLength(buffer, at: readIndex, max: maxMessageSize)
            guard buffer.count - readIndex - 5 >= length else { break }
            emit(Array(buffer[(readIndex + 5)..<(readIndex + 5 + length)]))
            readIndex += 5 + length
        }
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 65_536)
            readIndex = 0
        } else if readIndex > 65_536 {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
    }

    private static func checkedLength<Bytes: RandomAccessCollection<UInt8>>(
        _ bytes: Bytes, at offset: Bytes.Index, max: Int
    ) throws(Failure) -> Int where Bytes.Index == Int {
        guard bytes[offset] == 0 else { throw .unexpectedFlags(bytes[offset]) }
        let length =
            Int(bytes[offset + 1]) << 24 | Int(bytes[offset + 2]) << 16
            | Int(bytes[offset + 3]) << 8 | Int(bytes[offset + 4])
        guard length <= max else { throw .tooLarge(length) }
        return length
    }
}

/// Appends one Length-Prefixed-Message (uncompressed) to `buffer`.
@inline(__always)
func appendFramedMessage(_ message: [UInt8], to buffer: inout [UInt8]) {
    let length = UInt32(truncatingIfNeeded: message.count)
    buffer.append(0)
    buffer.append(UInt8(truncatingIfNeeded: length >> 24))
    buffer.append(UInt8(truncatingIfNeeded: length >> 16))
    buffer.append(UInt8(truncatingIfNeeded: length >> 8))
    buffer.append(UInt8(truncatingIfNeeded: length))
    buffer.append(contentsOf: message)
}

/// Appends one Connect envelope with `flags` (0x02: end of stream) to `buffer`.
func appendEnvelope(flags: UInt8, _ message: [UInt8], to buffer: inout [UInt8]) {
    let length = UInt32(truncatingIfNeeded: message.count)
    buffer.append(flags)
    buffer.append(UInt8(truncatingIfNeeded: length >> 24))
    buffer.append(UInt8(truncatingIfNeeded: length >> 16))
    buffer.append(UInt8(truncatingIfNeeded: length >> 8))
    buffer.append(UInt8(truncatingIfNeeded: length))
    buffer.append(contentsOf: message)
}
