// SPDX-License-Identifier: Apache-2.0
import Etcd
import Testing

@Suite("KV errors against etcd", .timeLimit(.minutes(2)))
struct KVErrorTests {
    @Test("reading a compacted revision fails with compacted")
    func compactedRevision() async throws {
        try await withEtcd { _, client in
            let first = try await client.put("k", value: "1").header.revision
            let second = try await client.put("k", value: "2").header.revision
            try await client.compact(second)
            let error = await etcdErrorCode { _ = try await client.get("k", options: .revision(first)) }
            #expect(error?.code == .compacted)
            #expect(error?.message == "etcdserver: mvcc: required revision has been compacted")
            // Compacting again at an older revision is also refused.
            #expect(await etcdErrorCode { try await client.compact(first) }?.code == .compacted)
        }
    }

    @Test("reading or compacting a future revision fails with futureRevision")
    func futureRevision() async throws {
        try await withEtcd { _, client in
            let current = try await client.put("k", value: "1").header.revision
            let get = await etcdErrorCode { _ = try await client.get("k", options: .revision(current + 100)) }
            #expect(get?.code == .futureRevision)
            #expect(get?.message == "etcdserver: mvcc: required revision is a future revision")
            #expect(await etcdErrorCode { try await client.compact(current + 100) }?.code == .futureRevision)
        }
    }

    @Test("a transaction over the server's 128 operations fails with tooManyOps and applies nothing")
    func tooManyOps() async throws {
        try await withEtcd { _, client in
            let ops = (0..<129).map { EtcdOp.put("many/\($0)", value: "v") }
            let error = await etcdErrorCode { _ = try await client.txn(if: [], then: ops) }
            #expect(error?.code == .tooManyOps)
            #expect(error?.message == "etcdserver: too many operations in txn request")
            let remaining = try await client.get("many/", options: .prefix).count
            #expect(remaining == 0)
            // 128 is allowed.
            _ = try await client.txn(if: [], then: Array(ops.prefix(128)))
            #expect(try await client.get("many/", options: [.prefix, .countOnly]).count == 128)
        }
    }

    @Test("a transaction writing one key twice fails with duplicateKey and applies nothing")
    func duplicateKey() async throws {
        try await withEtcd { _, client in
            let error = await etcdErrorCode {
                _ = try await client.txn(
                    if: [], then: [.put("dup", value: "1"), .put("other", value: "x"), .put("dup", value: "2")])
            }
            #expect(error?.code == .duplicateKey)
            #expect(error?.message == "etcdserver: duplicate key given in txn request")
            let remaining = try await client.get("", options: .prefix).count
            #expect(remaining == 0)
        }
    }

    @Test("a request over the server's --max-request-bytes fails with requestTooLarge and applies nothing")
    func serverRequestLimit() async throws {
        try await withEtcd(arguments: ["--max-request-bytes", "4096"]) { _, client in
            let big = [UInt8](repeating: 0x61, count: 8192)
            let error = await etcdErrorCode { try await client.put("big", value: big) }
            #expect(error?.code == .requestTooLarge)
            #expect(error?.message == "etcdserver: request is too large")
            let remaining = try await client.get("big").count
            #expect(remaining == 0)
            try await client.put("small", value: [UInt8](repeating: 0x61, count: 1024))
            // Over the server's gRPC limit (--max-request-bytes plus 512 KiB), which grpc-go enforces
            // with the code etcd's "too many requests" also has: still requestTooLarge, not a reason
            // to retry.
            let huge = [UInt8](repeating: 0x61, count: 600 << 10)
            let refused = await etcdErrorCode { try await client.put("huge", value: huge) }
            #expect(refused?.code == .requestTooLarge)
            #expect(
                refused?.message.contains("over its gRPC limit of 528384 bytes") == true,
                "\(String(describing: refused))")
            #expect(refused?.message.contains("--max-request-bytes") == true)
            #expect(try await client.get("huge").count == 0)
        }
    }

    @Test("a request over the client's send limit fails before it is sent")
    func clientRequestLimit() async throws {
        try await withEtcd(configure: { $0.maxCallSendMessageSize = 2048 }) { _, client in
            let error = await etcdErrorCode { try await client.put("big", value: [UInt8](repeating: 1, count: 4096)) }
            #expect(error?.code == .requestTooLarge)
            #expect(error?.message.contains("send limit of 2048 bytes") == true)
            let txn = await etcdErrorCode {
                _ = try await client.txn(
                    if: [],
                    then: [
                        .put("a", value: [UInt8](repeating: 1, count: 1500)),
                        .put("b", value: [UInt8](repeating: 1, count: 1500)),
                    ])
            }
            #expect(txn?.code == .requestTooLarge)
            let watch = await etcdErrorCode {
                try await client.watch(String(repeating: "w", count: 4096)) { _ in _ = Issue.record("the watch ran") }
            }
            #expect(watch?.code == .requestTooLarge)
            #expect(watch?.message.contains("Watch request") == true, "\(String(describing: watch))")
            let remaining = try await client.get("", options: .prefix).count
            #expect(remaining == 0)
        }
    }

    @Test("a range larger than the receive limit fails naming the limit; paged it arrives whole at one revision")
    func largeRange() async throws {
        try await withEtcd(configure: { $0.maxCallReceiveMessageSize = 64 * 1024 }) { _, client in
            let value = [UInt8](repeating: 0x62, count: 1024)
            for i in 0..<100 { try await client.put("big/\(1000 + i)", value: value) }
            let error = await etcdErrorCode { _ = try await client.get("big/", options: .prefix) }
            #expect(error?.code == .responseTooLarge)
            #expect(error?.message.contains("65536") == true)
            #expect(error?.message.contains(".paged(pageSize:)") == true)

            // Writers add keys while we page; the pages must still form one snapshot.
            let writer = Task {
                for i in 0..<200 { try await client.put("big/9\(1000 + i)", value: "new") }
            }
            let paged = try await client.get("big/", options: [.prefix, .paged(pageSize: 20)])
            try await writer.value
            let snapshot = try await client.get(
                "big/",
                options: [.prefix, .keysOnly, .revision(paged.header.revision)]
            )
            #expect(paged.kvs.map(\.keyString) == snapshot.kvs.map(\.keyString))
            #expect(paged.count == snapshot.count)
            #expect(paged.kvs.count >= 100)
            #expect(paged.kvs.allSatisfy { $0.modRevision <= paged.header.revision })
            #expect(!paged.more)

            // A limit across pages is honoured.
            let limited = try await client.get("big/", options: [.prefix, .paged(pageSize: 30), .limit(45)])
            #expect(limited.kvs.map(\.keyString) == (0..<45).map { "big/\(1000 + $0)" })
            #expect(limited.more)
        }
    }
}
