internal import CNghttp2
import Glibc

/// What an `HTTP2Connection` reports to its owner (the server's or the client's side of
/// the connection): nghttp2's frame callbacks, the body reads of its data providers, the
/// periodic tick, flushes and the close. Loop only.
///
/// The frame callbacks run inside nghttp2 and return 0 or an nghttp2 error code, as the
/// C callbacks do.
protocol HTTP2ConnectionDelegate: AnyObject {
    func onBeginHeaders(_ frame: UnsafePointer<nghttp2_frame>) -> Int32
    func onHeader(
        _ frame: UnsafePointer<nghttp2_frame>, name: UnsafePointer<UInt8>, nameLength: Int,
        value: UnsafePointer<UInt8>, valueLength: Int
    ) -> Int32
    func onFrameReceived(_ frame: UnsafePointer<nghttp2_frame>) -> Int32
    func onDataChunk(streamID: Int32, flags: UInt8, data: UnsafePointer<UInt8>, length: Int) -> Int32
    func onStreamClose(streamID: Int32, errorCode: UInt32) -> Int32
    func onInvalidFrame(_ frame: UnsafePointer<nghttp2_frame>, error: Int32) -> Int32
    func onFrameSent(_ frame: UnsafePointer<nghttp2_frame>) -> Int32
    /// Copies up to `length` bytes of the stream's body into `buffer` (data provider).
    func readBody(streamID: Int32, into buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int

    /// Once per loop tick (about every 250 ms), for timers.
    func connectionTick(now: UInt64)
    /// Before a flush; false when the delegate closed the connection instead.
    func connectionWillFlush() -> Bool
    /// After a flush that left the connection open.
    func connectionDidFlush()
    /// A non-blocking connect failed with `error` (client only); returns the close reason.
    func connectionFailedToConnect(error: Int32) -> String
    /// Once, when the connection is closed, for whatever reason. The delegate is released
    /// right after.
    func connectionDidClose(reason: String)
}

extension HTTP2ConnectionDelegate {
    func onBeginHeaders(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 { 0 }
    func onInvalidFrame(_ frame: UnsafePointer<nghttp2_frame>, error: Int32) -> Int32 { 0 }
    func onFrameSent(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 { 0 }
    func connectionTick(now: UInt64) {}
    func connectionWillFlush() -> Bool { true }
    func connectionDidFlush() {}
    func connectionFailedToConnect(error: Int32) -> String { "could not connect: \(String(cString: strerror(error)))" }
}
