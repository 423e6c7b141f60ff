internal import CNghttp2
import Glibc
internal import CLinux
import STBEventLoop

/// One HTTP/2 connection on one event loop: the socket, the nghttp2 session that
/// turns bytes into frames and back, and the read/write buffers between them.
///
/// nghttp2 is the protocol engine only (`mem_recv`/`mem_send`); this class owns the I/O.
/// The server and the client each own one and are its `delegate`, which receives the
/// frame callbacks. Loop only: every method runs on `loop`'s thread, and never from
/// inside an nghttp2 callback unless noted.
final class HTTP2Connection: EventLoopSource, FlushTarget {
    let loop: EventLoop
    let fd: Int32
    /// The nghttp2 session; nil once closed.
    var session: OpaquePointer?
    /// Receives the frame callbacks and the connection's events. Strong, and cleared on
    /// close: the loop keeps the connection (and so its delegate) alive while it is open.
    var delegate: (any HTTP2ConnectionDelegate)?
    private(set) var isClosed = false
    /// Whether a non-blocking connect is still in progress (client only).
    private(set) var isConnecting = false
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
    /// Bytes read from and written to the socket since the connection opened.
    private(set) var bytesRead = 0
    private(set) var bytesWritten = 0

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
        isConnecting = connecting
        try loop.register(self, fd: fd, events: events)
        loop.addTickHandler(self) { [unowned self] in self.delegate?.connectionTick(now: self.loop.now) }
    }

    /// Flushes at the end of this loop iteration.
    func scheduleFlush() {
        loop.scheduleFlush(self)
    }

    // MARK: - I/O

    func handleEvents(_ events: UInt32) {
        if isConnecting {
            if events & (EPOLLOUT.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
                connectFinished(error: Socket.pendingError(fd))
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
                bytesRead += count
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

    /// A non-blocking connect finished: on success, start the session's I/O.
    private func connectFinished(error: Int32) {
        guard error == 0 else {
            close(reason: delegate?.connectionFailedToConnect(error: error) ?? "could not connect")
            return
        }
        isConnecting = false
        loop.modify(fd: fd, events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue)
        flush()
    }

    /// Moves frames from nghttp2 to the socket. Runs once per loop iteration when scheduled;
    /// the delegate may refuse it (and close) first, and look at the result after.
    func flush() {
        guard !isConnecting, session != nil, !isClosed else { return }
        guard delegate?.connectionWillFlush() ?? true else { return }
        flushSession()
        if !isClosed { delegate?.connectionDidFlush() }
    }

    private func flushSession() {
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

    /// Writes what the socket takes; false when the connection was closed. `send` with
    /// `MSG_NOSIGNAL`, not `write`: a write to a connection its peer has closed or reset
    /// must fail with EPIPE, not raise SIGPIPE, whose default action ends the process.
    private func writeSome() -> Bool {
        while writeOffset < writeBuffer.count {
            let written = writeBuffer.withUnsafeBytes { bytes in
                send(fd, bytes.baseAddress! + writeOffset, bytes.count - writeOffset, Int32(MSG_NOSIGNAL))
            }
            if written > 0 {
                writeOffset += written
                bytesWritten += written
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
        let delegate = self.delegate
        self.delegate = nil
        delegate?.connectionDidClose(reason: reason)
        if let session {
            self.session = nil
            nghttp2_session_del(session)
        }
        writeBuffer = []
    }

    // MARK: - Shared helpers

    /// A data provider whose reads call the delegate's `readBody(streamID:…)`.
    static var bodyProvider: nghttp2_data_provider {
        var provider = nghttp2_data_provider()
        provider.read_callback = { _, streamID, buffer, length, flags, _, userData in
            let connection = Unmanaged<HTTP2Connection>.fromOpaque(userData!).takeUnretainedValue()
            guard let delegate = connection.delegate else { return LibError.deferred }
            return delegate.readBody(streamID: streamID, into: buffer!, length: length, flags: flags!)
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
            delegate(userData)?.onBeginHeaders(frame!) ?? 0
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, nameLength, value, valueLength, _, userData in
            delegate(userData)?.onHeader(frame!, name: name!, nameLength: nameLength, value: value!, valueLength: valueLength) ?? 0
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
            delegate(userData)?.onFrameReceived(frame!) ?? 0
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, flags, streamID, data, length, userData in
            delegate(userData)?.onDataChunk(streamID: streamID, flags: flags, data: data!, length: length) ?? 0
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
            delegate(userData)?.onStreamClose(streamID: streamID, errorCode: errorCode) ?? 0
        }
        nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks) { _, frame, error, userData in
            delegate(userData)?.onInvalidFrame(frame!, error: error) ?? 0
        }
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks) { _, frame, userData in
            delegate(userData)?.onFrameSent(frame!) ?? 0
        }
        return callbacks!
    }()

    @inline(__always)
    private static func delegate(_ userData: UnsafeMutableRawPointer?) -> (any HTTP2ConnectionDelegate)? {
        Unmanaged<HTTP2Connection>.fromOpaque(userData!).takeUnretainedValue().delegate
    }
}
