// SPDX-License-Identifier: Apache-2.0
import GRPCCore
import NIOHPACK
import NIOHTTP2
import Testing

@testable import Etcd

@Suite("Unary call encoding")
struct FrameChannelTests {
    @Test("grpc-timeout has at most 8 digits, in the finest unit that fits, rounded up")
    func grpcTimeout() {
        #expect(FrameChannel.grpcTimeout(.nanoseconds(1)) == "1n")
        #expect(FrameChannel.grpcTimeout(.milliseconds(50)) == "50000000n")
        #expect(FrameChannel.grpcTimeout(.milliseconds(500)) == "500000u")
        #expect(FrameChannel.grpcTimeout(.seconds(5)) == "5000000u")
        #expect(FrameChannel.grpcTimeout(.seconds(100)) == "100000m")
        #expect(FrameChannel.grpcTimeout(.seconds(1_000_000)) == "1000000S")
        #expect(FrameChannel.grpcTimeout(.nanoseconds(100_000_000_100)) == "100001m")
        #expect(FrameChannel.grpcTimeout(.seconds(10_000_000_000)) == "2562048H", "beyond Int64 nanoseconds")
        #expect(FrameChannel.grpcTimeout(.zero) == "1n", "a deadline that has passed still travels as one")
    }

    @Test("grpc-message is percent-decoded; text without escapes is left alone")
    func percentDecoding() {
        #expect(FrameConnectionHandler.percentDecoded("etcdserver: key not found") == "etcdserver: key not found")
        #expect(FrameConnectionHandler.percentDecoded("a%20b%25c") == "a b%c")
        #expect(FrameConnectionHandler.percentDecoded("caf%C3%A9") == "café")
        #expect(FrameConnectionHandler.percentDecoded("50%") == "50%", "an unfinished escape stays as it is")
    }

    @Test("a non-200 HTTP status and a reset stream map to gRPC's codes")
    func statusMapping() {
        let ok: HPACKHeaders = [":status": "200"]
        #expect(FrameConnectionHandler.httpStatusError(ok) == nil)
        let cases: [(String, RPCError.Code)] = [
            ("400", .internalError), ("401", .unauthenticated), ("403", .permissionDenied), ("404", .unimplemented),
            ("429", .unavailable), ("503", .unavailable), ("500", .unknown),
        ]
        for (status, code) in cases {
            let headers: HPACKHeaders = [":status": status]
            #expect(FrameConnectionHandler.httpStatusError(headers)?.code == code, "HTTP \(status)")
        }
        #expect(FrameConnectionHandler.resetError(.refusedStream).code == .unavailable)
        #expect(FrameConnectionHandler.resetError(.cancel).code == .cancelled)
        #expect(FrameConnectionHandler.resetError(.enhanceYourCalm).code == .resourceExhausted)
        #expect(FrameConnectionHandler.resetError(.protocolError).code == .internalError)
    }
}
