// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdSync
import EtcdTesting
import Foundation
import Testing

@Suite("Mirror and ordering (EtcdSync)", .timeLimit(.minutes(2)))
struct SyncTests {
    @Test("syncBase reads a prefix in pages at one revision; syncUpdates continues right after it")
    func syncer() async throws {
        try await withEtcd { _, client in
            for i in 0..<25 { try await client.put("s/\(String(format: "%02d", i))", value: "\(i)") }
            try await client.put("t", value: "outside")
            let syncer = EtcdSyncer(client: client, prefix: "s/")
            var pages: [[String]] = []
            let revision = try await syncer.syncBase(pageSize: 10) { page in
                pages.append(page.kvs.map(\.keyString))
                // Written while paging: not part of the snapshot.
                if pages.count == 1 { try await client.put("s/99", value: "late") }
            }
            #expect(pages.map(\.count) == [10, 10, 5])
            #expect(pages.joined().first == "s/00" && pages.joined().last == "s/24")
            try await syncer.syncUpdates(after: revision) { responses in
                var keys: [String] = []
                for try await response in responses {
                    keys += response.events.map(\.kv.keyString)
                    break
                }
                // The write made during the base read is the first update.
                #expect(keys == ["s/99"])
            }
            let bad = await etcdErrorCode { _ = try await syncer.syncBase(pageSize: 0) { _ in } }
            #expect(bad?.code == .invalidArgument)
        }
    }

    @Test("make-mirror copies a prefix into another cluster under a new prefix and follows every change")
    func mirror() async throws {
        try await withEtcd { _, source in
            try await withEtcd { _, destination in
                try await source.put("m/a", value: "1")
                try await source.put("m/b", value: "2")
                try await source.put("outside", value: "x")
                let (progress, continuation) = AsyncStream.makeStream(of: EtcdMirror.Progress.self)
                let mirror = EtcdMirror(
                    source: source, destination: destination, prefix: "m/", destinationPrefix: "copy/")
                try await withThrowingTaskGroup { group in
                    group.addTask { try await mirror.run { continuation.yield($0) } }
                    try await within(.seconds(20), "the mirror copying and following the source") {
                        var iterator = progress.makeAsyncIterator()
                        let base = await iterator.next()
                        #expect(base?.keys == 2)
                        try await source.put("m/a", value: "1b")
                        try await source.delete("m/b")
                        let last = try await source.txn(
                            if: [],
                            then: [.put("m/c", value: "3"), .put("m/d", value: "4"), .put("outside2", value: "y")]
                        )
                        while let step = await iterator.next(), step.revision < last.header.revision {}
                    }
                    group.cancelAll()
                }
                let copied = try await destination.get("", options: .prefix)
                #expect(
                    copied.kvs.map { "\($0.keyString)=\($0.valueString)" } == ["copy/a=1b", "copy/c=3", "copy/d=4"])
            }
        }
    }

    @Test(
        "a mirror run from a start revision applies the changes from there without copying the prefix again; a compacted or negative start fails"
    )
    func mirrorResumes() async throws {
        try await withEtcd { _, source in
            try await withEtcd { _, destination in
                try await source.put("m/a", value: "1")
                let first = try await source.put("m/b", value: "1")
                // Mirrored up to `first` (as by an earlier run), then the destination's copy of m/a
                // went: a base copy would bring it back.
                try await destination.put("m/b", value: "1")
                let changed = try await source.put("m/b", value: "2")
                try await source.put("m/c", value: "3")
                let deleted = try await source.delete("m/b")
                let (progress, continuation) = AsyncStream.makeStream(of: EtcdMirror.Progress.self)
                let mirror = EtcdMirror(source: source, destination: destination, prefix: "m/")
                try await withThrowingTaskGroup { group in
                    group.addTask {
                        defer { continuation.finish() }
                        try await mirror.run(from: first.header.revision + 1) { continuation.yield($0) }
                    }
                    try await within(.seconds(20), "the mirror applying the changes after the start") {
                        var applied: [Int64] = []
                        for await step in progress {
                            applied.append(step.revision)
                            if step.revision >= deleted.header.revision { break }
                        }
                        #expect(applied.first == changed.header.revision)  // no base copy first
                    }
                    group.cancelAll()
                }
                let copied = try await destination.get("m/", options: .prefix)
                #expect(copied.kvs.map { "\($0.keyString)=\($0.valueString)" } == ["m/c=3"])

                try await source.compact(deleted.header.revision)
                let compacted = await etcdErrorCode { try await mirror.run(from: first.header.revision + 1) }
                #expect(compacted?.code == .compacted)
                let negative = await etcdErrorCode { try await mirror.run(from: -1) }
                #expect(negative?.code == .invalidArgument)
            }
        }
    }

    @Test(
        "a source revision with more changes than a destination transaction may hold is applied in parts; a limit below 1 is refused"
    )
    func mirrorLargeRevision() async throws {
        try await withEtcd { _, source in
            try await withEtcd { _, destination in
                for i in 0..<300 { try await source.put("m/\(i)", value: "\(i)") }
                let (progress, continuation) = AsyncStream.makeStream(of: EtcdMirror.Progress.self)
                let mirror = EtcdMirror(source: source, destination: destination, prefix: "m/")
                try await withThrowingTaskGroup { group in
                    group.addTask {
                        defer { continuation.finish() }
                        do {
                            try await mirror.run { continuation.yield($0) }
                        } catch let error where !Task.isCancelled {
                            Issue.record(error, "the mirror failed")
                        }
                    }
                    try await within(.seconds(30), "the mirror applying a revision of 300 deletes") {
                        var iterator = progress.makeAsyncIterator()
                        #expect(await iterator.next()?.keys == 300)
                        // One revision, 300 delete events: more than etcd's default of 128 operations.
                        let deleted = try await source.delete("m/", options: .prefix)
                        #expect(deleted.deleted == 300)
                        let step = await iterator.next()
                        #expect(step?.keys == 600 && step?.revision == deleted.header.revision)
                    }
                    group.cancelAll()
                }
                #expect(try await destination.get("m/", options: .prefix).count == 0)
                let refused = await etcdErrorCode {
                    try await EtcdMirror(source: source, destination: destination, maxOperationsPerTransaction: 0).run()
                }
                #expect(refused?.code == .invalidArgument)
            }
        }
    }

    @Test(
        "an ordering KV never goes back in revision across endpoints, and fails with noGreaterRevision when only stale members remain"
    )
    func ordering() async throws {
        // Two single-member clusters stand in for an up-to-date member and a lagging one: `ahead` has
        // revision 21, `behind` revision 1. Serializable reads alternate between them.
        try await withEtcdTestCluster { ahead in
            try await withEtcdTestCluster { behind in
                try await withEtcdClient(.init(endpoints: ahead.clientEndpoints)) { client in
                    for i in 0..<20 { try await client.put("k", value: "\(i)") }
                }
                let configuration = EtcdClient.Configuration(endpoints: ahead.clientEndpoints + behind.clientEndpoints)
                try await withEtcdClient(configuration) { client in
                    // Without the ordering view, time goes backwards.
                    var seen: [Int64] = []
                    for _ in 0..<4 { seen.append(try await client.get("k", options: .serializable).header.revision) }
                    #expect(Set(seen) == [1, 21])

                    let violations = SharedCounter()
                    let ordered = EtcdOrderingKV(client: client) { violation in
                        #expect(violation.previousRevision == 21 && violation.revision == 1)
                        violations.increment()
                    }
                    var revisions: [Int64] = []
                    for _ in 0..<10 {
                        revisions.append(try await ordered.get("k", options: .serializable).header.revision)
                    }
                    #expect(revisions.drop { $0 < 21 }.allSatisfy { $0 == 21 })
                    #expect(revisions.last == 21)
                    #expect(violations.count > 0)

                    // A handler that throws fails the call with its error.
                    let strict = EtcdOrderingKV(client: client) { _ in
                        throw EtcdClientError(code: .noGreaterRevision, message: "stale")
                    }
                    var strictErrors = 0
                    for _ in 0..<6 {
                        do { _ = try await strict.get("k", options: .serializable) } catch let error as EtcdClientError
                        {
                            #expect(error.code == .noGreaterRevision)
                            strictErrors += 1
                        }
                    }
                    #expect(strictErrors > 0)

                    // Once the up-to-date member is gone, the default handler gives up with noGreaterRevision.
                    let fallback = EtcdOrderingKV(client: client)
                    while fallback.revision < 21 { _ = try await fallback.get("k", options: .serializable) }
                    try await ahead.members[0].kill()
                    let error = await etcdErrorCode {
                        try await withEtcdTimeout(.seconds(20)) {
                            _ = try await fallback.get("k", options: .serializable)
                        }
                    }
                    #expect(error?.code == .noGreaterRevision, "\(String(describing: error))")
                    #expect(error?.message.contains("revision 21") == true)
                }
            }
        }
    }
}
