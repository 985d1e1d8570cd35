// SPDX-License-Identifier: Apache-2.0
import GRPCCore
import Testing

@testable import Etcd

@Suite("Error mapping")
struct ErrorMappingTests {
    @Test(
        "etcd's server messages map to their codes",
        arguments: [
            ("etcdserver: key is not provided", RPCError.Code.invalidArgument, EtcdClientError.Code.emptyKey),
            ("etcdserver: mvcc: required revision has been compacted", .outOfRange, .compacted),
            ("etcdserver: mvcc: required revision is a future revision", .outOfRange, .futureRevision),
            ("etcdserver: too many operations in txn request", .invalidArgument, .tooManyOps),
            ("etcdserver: duplicate key given in txn request", .invalidArgument, .duplicateKey),
            ("etcdserver: request is too large", .invalidArgument, .requestTooLarge),
            ("etcdserver: permission denied", .permissionDenied, .permissionDenied),
            ("etcdserver: invalid auth token", .unauthenticated, .invalidAuthToken),
            ("etcdserver: no leader", .unavailable, .noLeader),
            ("etcdserver: requested lease not found", .notFound, .leaseNotFound),
            ("etcdserver: authentication failed, invalid user ID or password", .invalidArgument, .authFailed),
        ])
    func serverMessages(message: String, rpcCode: RPCError.Code, expected: EtcdClientError.Code) {
        let error = EtcdClientError.from(RPCError(code: rpcCode, message: message), endpoint: "http://e:1")
        #expect(error.code == expected)
        #expect(error.message == message)
        #expect(error.cause is RPCError)
    }

    @Test("transport errors map by gRPC code")
    func transport() {
        #expect(
            EtcdClientError.from(RPCError(code: .unavailable, message: "connection refused"), endpoint: "http://e:1")
                .code == .unavailable)
        #expect(
            EtcdClientError.from(RPCError(code: .deadlineExceeded, message: "x"), endpoint: nil).code
                == .deadlineExceeded)
        #expect(EtcdClientError.from(RPCError(code: .unimplemented, message: "x"), endpoint: nil).code == .notSupported)
        // etcd 3.4's lock service answers a call whose deadline passed on the server with Go's bare context error.
        #expect(
            EtcdClientError.from(RPCError(code: .unknown, message: "context deadline exceeded"), endpoint: nil).code
                == .deadlineExceeded)
        #expect(EtcdClientError.from(RPCError(code: .unknown, message: "x"), endpoint: nil).code == .unknown)
        let tooBig = RPCError(
            code: .resourceExhausted,
            message: "Message has exceeded the configured maximum payload size (max: 10, actual: 20)")
        #expect(EtcdClientError.from(tooBig, endpoint: nil).code == .responseTooLarge)
    }

    @Test("grpc-swift's client errors (what run() throws when a connection fails as a whole) become typed errors")
    func runtimeErrors() throws {
        let stopped = try #require(
            EtcdClientError.from(RuntimeError(code: .clientIsStopped, message: "stopped") as any Error, endpoint: nil)
                as? EtcdClientError)
        #expect(stopped.code == .unavailable)
        let failed = try #require(
            EtcdClientError.from(
                RuntimeError(code: .transportError, message: "the transport failed") as any Error,
                endpoint: "http://e:1") as? EtcdClientError)
        #expect(failed.code == .internalError)
        #expect(failed.message == "the transport failed")
        #expect(failed.endpoint == "http://e:1")
        #expect(failed.cause is RuntimeError)
    }

    @Test("cancellation passes through unchanged")
    func cancellation() {
        #expect(EtcdClientError.from(CancellationError(), endpoint: nil) is CancellationError)
    }

    @Test("codes compare and print by name")
    func codes() {
        #expect(EtcdClientError.Code.emptyKey == .emptyKey)
        #expect(EtcdClientError.Code.emptyKey != .keyNotFound)
        #expect("\(EtcdClientError.Code.compacted)" == "compacted")
        let error = EtcdClientError(code: .emptyKey, message: "etcdserver: key is not provided")
        #expect("\(error)" == "EtcdClientError(emptyKey): etcdserver: key is not provided")
    }
}
