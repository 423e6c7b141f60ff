internal import CProtobufC

/// Bump allocator for the C struct graph of one encode.
///
/// Everything protobuf-c needs to pack a message (structs, arrays, C string
/// copies) comes from here and is released at once when the encode ends, so an
/// encode costs no per-field malloc/free. The first chunk lives on the stack,
/// so small messages cost no malloc at all; larger graphs spill into heap
/// chunks linked through their first word.
internal struct ProtoArena: ~Copyable {
    /// Bytes of the first chunk. Temporary allocations up to 1 KiB always go on
    /// the stack; larger ones make Swift probe the stack bounds first, which
    /// costs more than a small encode (measured ~100 ns per encode on Linux).
    static let stackChunkSize = 1024
    /// Bytes of each heap chunk.
    static let chunkSize = 4096
    /// Every chunk starts at this alignment; no C type here needs more.
    private static let chunkAlignment = 16
    /// Room at the start of a heap chunk for the link to the previous one.
    private static let headerSize = 16

    private var cursor: UnsafeMutableRawPointer
    private var end: UnsafeMutableRawPointer
    private var heapChunks: UnsafeMutableRawPointer?

    private init(first: UnsafeMutableRawBufferPointer) {
        // Temporary allocations always have a base address, even when tiny.
        cursor = first.baseAddress!
        end = first.baseAddress! + first.count
        heapChunks = nil
    }

    deinit {
        var chunk = heapChunks
        while let current = chunk {
            chunk = current.load(as: UnsafeMutableRawPointer?.self)
            current.deallocate()
        }
    }

    /// Runs `body` with a fresh arena; all its memory is gone when `body` returns.
    static func with<Result>(_ body: (inout ProtoArena) throws -> Result) rethrows -> Result {
        try withUnsafeTemporaryAllocation(byteCount: stackChunkSize, alignment: chunkAlignment) { first in
            var arena = ProtoArena(first: first)
            return try body(&arena)
        }
    }

    /// Uninitialized memory for `count` values of `type`, aligned for it.
    mutating func allocate<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        let raw = allocateRaw(byteCount: MemoryLayout<T>.stride * count, alignment: MemoryLayout<T>.alignment)
        return raw.bindMemory(to: T.self, capacity: count)
    }

    private mutating func allocateRaw(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
        let aligned = cursor.alignedUp(toMultipleOf: alignment)
        if byteCount <= end - aligned {
            cursor = aligned + byteCount
            return aligned
        }
        // A request that would waste most of a fresh chunk gets its own chunk,
        // leaving the current one usable for the small allocations that follow.
        let wantsOwnChunk = byteCount > Self.chunkSize / 4
        let size = Self.headerSize + (wantsOwnChunk ? byteCount : Swift.max(byteCount, Self.chunkSize - Self.headerSize))
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: Self.chunkAlignment)
        chunk.storeBytes(of: heapChunks, as: UnsafeMutableRawPointer?.self)
        heapChunks = chunk
        let start = chunk + Self.headerSize
        if !wantsOwnChunk {
            cursor = start + byteCount
            end = chunk + size
        }
        return start
    }

    /// A copy of `values` for a repeated scalar field; layouts match the C element type.
    mutating func copy<T: BitwiseCopyable>(_ values: [T]) -> UnsafeMutablePointer<T> {
        let target = allocate(T.self, count: values.count)
        values.withUnsafeBufferPointer { source in
            target.initialize(from: source.baseAddress!, count: source.count)
        }
        return target
    }

    /// A copy of `string`'s UTF-8 as protobuf-c's length + pointer pair: the C
    /// side sees proto `string` fields as `bytes`, so every byte is sent, a NUL too.
    mutating func utf8(_ string: String) -> ProtobufCBinaryData {
        if string.isEmpty {
            return ProtobufCBinaryData(len: 0, data: nil)
        }
        var string = string
        return string.withUTF8 { utf8 in
            let target = allocate(UInt8.self, count: utf8.count)
            target.initialize(from: utf8.baseAddress!, count: utf8.count)
            return ProtobufCBinaryData(len: utf8.count, data: target)
        }
    }

    /// A copy of `bytes` as protobuf-c's length + pointer pair.
    mutating func binaryData(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        if bytes.isEmpty {
            return ProtobufCBinaryData(len: 0, data: nil)
        }
        return ProtobufCBinaryData(len: bytes.count, data: copy(bytes))
    }
}
