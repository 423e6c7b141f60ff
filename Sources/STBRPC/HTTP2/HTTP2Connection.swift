internal import CNghttp2
import Glibc
internal import CLinux
import STBEventLoop

/// One HTTP/2 connection on one event loop: the socket, the nghttp2 session that
/// turns bytes into frames and back, and the read/write buffers between them.
///
/// nghttp2 is the protocol engine only (`mem_recv`/`mem_send`); this class owns the I/O.
/// Subclasses (server and client) override the frame callbacks. Loop only: every method
/// runs on `loop`'s thread, and never from inside an nghttp2 callback unless noted.
class HTTP2Connection: EventLoopSource, FlushTarget {
    let loop: EventLoop
    let fd: Int32
    /// The nghttp2 session; nil once closed.
    var session: OpaquePointer?
    private(set) var isClosed = false
    var flushScheduled = false

    private var writeBuffer: [UInt8] = []
    private var writeOffset = 0
    private var watchingWritable = false
    /// Upper bound on bytes pulled from nghttp2 ahead of the socket.
    let maxWriteBuffered: Int
    /// Loop time of the last successful write (stall detection).
    private(set) var lastWriteProgress: UInt64
    /// Loop time of the last bytes read.
    private(set) var lastReadTime: UInt64

    init(loop: EventLoop, fd: Int32, maxWriteBuffered: Int = 1 << 20) {
        self.loop = loop
        self.fd = fd
        self.maxWriteBuffered = maxWriteBuffered
        self.lastWriteProgress = loop.now
        self.lastReadTime = loop.now
    }

    deinit {
        if let session { nghttp2_session_del(session) }
    }

    /// Pending output not yet accepted by the socket.
    var bufferedOutput: Int { writeBuffer.count - writeOffset }

    /// Registers the socket with the loop. Call once, after the session exists.
    func activate(connecting: Bool = false) throws(SocketError) {
        let events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | (connecting ? EPOLLOUT.rawValue : 0)
        watchingWritable = connecting
        try loop.register(self, fd: fd, events: events)
        loop.addTickHandler(self) { [unowned self] in self.tick(now: self.loop.now) }
    }

    // MARK: - Hooks for subclasses

    /// Called once per loop tick (about every 250 ms) for timers.
    func tick(now: UInt64) {}

    /// Called once when the connection is closed, for whatever reason.
    func connectionDidClose(reason: String) {}

    /// Called when a non-blocking connect finishes (client only).
    func connectDidComplete(error: Int32) {}

    var isConnecting: Bool { false }

    // MARK: - I/O

    func handleEvents(_ events: UInt32) {
        if isConnecting {
            if events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
                connectDidComplete(error: Socket.pendingError(fd))
            }
            return
        }
        if events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue | EPOLLRDHUP.rawValue) != 0 {
            readAvailable()
        }
        if !isClosed, events & EPOLLOUT.rawValue != 0 {
            flush()
        }
    }

    private func readAvailable() {
        let buffer = loop.readBuffer
        // A few reads per wake-up keeps one busy connection from starving the others.
        for _ in 0..<4 {
            guard let session, !isClosed else { return }
            let count = read(fd, buffer.baseAddress, buffer.count)
            if count > 0 {
                lastReadTime = loop.now
                let consumed = nghttp2_session_mem_recv(
                    session, buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), count)
                if consumed < 0 {
                    // FLOODED, TOO_MANY_CONTINUATIONS, BAD_CLIENT_MAGIC, …: all fatal.
                    protocolFailure(Int(consumed))
                    return
                }
                loop.scheduleFlush(self)
                if count < buffer.count { return }
            } else if count == 0 {
                close(reason: "peer closed the connection")
                return
            } else {
                if errno == EAGAIN || errno == EINTR { return }
                close(reason: "read failed: \(String(cString: strerror(errno)))")
                return
            }
        }
    }

    /// Called when `mem_recv` fails; the session cannot continue.
    func protocolFailure(_ code: Int) {
        // Let nghttp2 emit its GOAWAY if it queued one, then close.
        if let session {
            var data: UnsafePointer<UInt8>?
            while true {
                let length = nghttp2_session_mem_send(session, &data)
                guard length > 0, let data else { break }
                writeBuffer.append(contentsOf: UnsafeBufferPointer(start: data, count: length))
            }
            _ = writeSome()
        }
        close(reason: "protocol error: \(LibError.describe(code))")
    }

    /// Moves frames from nghttp2 to the socket. Runs once per loop iteration when scheduled.
    func flush() {
        guard let session, !isClosed else { return }
        var data: UnsafePointer<UInt8>?
        // Pull at most `maxWriteBuffered` ahead of the socket; while the socket takes all
        // of it, pull again, until nghttp2 has nothing left or the socket is full.
        while true {
            var drainedSession = false
            while bufferedOutput < maxWriteBuffered {
                let length = nghttp2_session_mem_send(session, &data)
                if length < 0 {
                    close(reason: "send failed: \(LibError.describe(length))")
                    return
                }
                guard length > 0, let data else {
                    drainedSession = true
                    break
                }
                writeBuffer.append(contentsOf: UnsafeBufferPointer(start: data, count: length))
            }
            guard writeSome() else { return }
            if drainedSession || bufferedOutput > 0 { break }
        }
        let pending = bufferedOutput > 0
        if pending != watchingWritable {
            watchingWritable = pending
            loop.modify(fd: fd, events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue | (pending ? EPOLLOUT.rawValue : 0))
        }
        if !pending, nghttp2_session_want_read(session) == 0, nghttp2_session_want_write(session) == 0 {
            close(reason: "session finished")
        }
    }

    /// Writes what the socket takes; false when the connection was closed.
    private func writeSome() -> Bool {
        while writeOffset < writeBuffer.count {
            let written = writeBuffer.withUnsafeBytes { bytes in
                write(fd, bytes.baseAddress! + writeOffset, bytes.count - writeOffset)
            }
            if written > 0 {
                writeOffset += written
                lastWriteProgress = loop.now
            } else if written < 0 && (errno == EAGAIN || errno == EINTR) {
                break
            } else {
                close(reason: "write failed: \(String(cString: strerror(errno)))")
                return false
            }
        }
        if writeOffset == writeBuffer.count {
            writeBuffer.removeAll(keepingCapacity: writeBuffer.capacity <= 1 << 16)
            writeOffset = 0
        } else if writeOffset > 1 << 20 {
            writeBuffer.removeFirst(writeOffset)
            writeOffset = 0
        }
        return true
    }

    /// Closes the socket and frees the session. Safe to call more than once.
    func close(reason: String) {
        guard !isClosed else { return }
        isClosed = true
        loop.deregister(fd: fd)
        loop.removeTickHandler(self)
        Glibc.close(fd)
        connectionDidClose(reason: reason)
        if let session {
            self.session = nil
            nghttp2_session_del(session)
        }
        writeBuffer = []
    }

    // MARK: - Frame callbacks (override)

    func onBeginHeaders(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 { 0 }
    func onHeader(
        _ frame: UnsafePointer<nghttp2_frame>, name: UnsafePointer<UInt8>, nameLength: Int,
        value: UnsafePointer<UInt8>, valueLength: Int
    ) -> Int32 { 0 }
    func onFrameReceived(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 { 0 }
    func onDataChunk(streamID: Int32, flags: UInt8, data: UnsafePointer<UInt8>, length: Int) -> Int32 { 0 }
    func onStreamClose(streamID: Int32, errorCode: UInt32) -> Int32 { 0 }
    func onInvalidFrame(_ frame: UnsafePointer<nghttp2_frame>, error: Int32) -> Int32 { 0 }
    func onFrameSent(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 { 0 }
    /// Copies up to `length` bytes of the stream's body into `buffer` (data provider).
    func readBody(streamID: Int32, into buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        LibError.deferred
    }

    // MARK: - Shared helpers

    /// A data provider whose reads call `readBody(streamID:…)` on this connection.
    static var bodyProvider: nghttp2_data_provider {
        var provider = nghttp2_data_provider()
        provider.read_callback = { _, streamID, buffer, length, flags, _, userData in
            let connection = Unmanaged<HTTP2Connection>.fromOpaque(userData!).takeUnretainedValue()
            return connection.readBody(streamID: streamID, into: buffer!, length: length, flags: flags!)
        }
        return provider
    }

    /// The `user_data` pointer handed to nghttp2. Unretained: the connection owns the session.
    var userDataPointer: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }
}

/// The callback table shared by every session (nghttp2 copies it at session creation).
enum HTTP2Callbacks {
    nonisolated(unsafe) static let shared: OpaquePointer = {
        var callbacks: OpaquePointer?
        let rc = nghttp2_session_callbacks_new(&callbacks)
        precondition(rc == 0, "nghttp2_session_callbacks_new failed: out of memory")
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
            connection(userData).onBeginHeaders(frame!)
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, nameLength, value, valueLength, _, userData in
            connection(userData).onHeader(frame!, name: name!, nameLength: nameLength, value: value!, valueLength: valueLength)
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            connection(userData).onFrameReceived(frame!)
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, flags, streamID, data, length, userData in
            connection(userData).onDataChunk(streamID: streamID, flags: flags, data: data!, length: length)
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
            connection(userData).onStreamClose(streamID: streamID, errorCode: errorCode)
        }
        nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks) { _, frame, error, userData in
            connection(userData).onInvalidFrame(frame!, error: error)
        }
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks) { _, frame, userData in
            connection(userData).onFrameSent(frame!)
        }
        return callbacks!
    }()

    @inline(__always)
    private static func connection(_ userData: UnsafeMutableRawPointer?) -> HTTP2Connection {
        Unmanaged<HTTP2Connection>.fromOpaque(userData!).takeUnretainedValue()
    }
}
