// Servers and clients take an `EventLoopGroup`: users of the RPC layer get the loop types too.
@_exported public import STBEventLoop
