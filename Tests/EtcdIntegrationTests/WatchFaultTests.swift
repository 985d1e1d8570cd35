// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Synchronization
import Testing

/// The member that answered the latest watch response, shared between the watcher and the fault injector.
private final class ServingMember: Sendable {
    private let id = Mutex<UInt64>(0)
    func set(_ value: UInt64) { self.id.withLock { $0 = value } }
    var value: UInt64 { self.id.withLock { $0 } }
}

@Suite("Watch under faults", .serialized, .timeLimit(.minutes(3)))
struct WatchFaultTests {
    @Test(
        "the member serving a watch is killed and restarted twice during 2,000 writes: every revision arrives once, in order"
    )
    func killServingMemberTwice() async throws {
        try await withEtcdTestCluster(.init(members: 3)) { cluster in
            var watchConfiguration = cluster.clientConfiguration()
            watchConfiguration.keepAlive = .init(time: .seconds(1), timeout: .milliseconds(500))
            try await withEtcdClient(watchConfiguration) { watcher in
                try await withEtcdClient(cluster.clientConfiguration()) { writer in
                    let ids = try await Self.memberIDs(cluster, writer)
                    let serving = ServingMember()
                    let total = 2000
                    try await watcher.watch("seq/", options: .prefix) { responses in
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask {
                                for i in 0..<total {
                                    if i == 400 || i == 1200 { try await Self.killServing(serving, ids) }
                                    if i == 800 || i == 1600 { try await Self.restartStopped(cluster) }
                                    try await putWithRetry(writer, "seq/\(i)", "\(i)")
                                }
                                try await putWithRetry(writer, "seq/end", "end")
                            }
                            var revisions: [Int64] = []
                            reading: for try await response in responses {
                                serving.set(response.header.memberID)
                                for event in response.events {
                                    revisions.append(event.kv.modRevision)
                                    if event.kv.keyString == "seq/end" { break reading }
                                }
                            }
                            try await group.waitForAll()
                            let start = try #require(revisions.first)
                            let end = try #require(revisions.last)
                            #expect(revisions == Array(start...end), "a revision was lost, repeated or reordered")
                            #expect(revisions.count >= total + 1)
                        }
                    }
                }
            }
        }
    }

    @Test("a watch whose resume revision is compacted while it is disconnected ends with compacted, never skips")
    func compactedWhileDisconnected() async throws {
        try await withEtcdTestCluster(.init(members: 3)) { cluster in
            let pinned = cluster.members[0]
            let others = EtcdClient.Configuration(endpoints: cluster.members.dropFirst().map(\.clientEndpoint))
            try await withEtcdClient(others) { writer in
                try await withEtcdClient(.init(endpoints: [pinned.clientEndpoint])) { client in
                    let error = await etcdErrorCode {
                        try await client.watch("c") { responses in
                            try await writer.put("c", value: "seen")
                            var iterator = responses.makeAsyncIterator()
                            #expect(try await iterator.next()?.events.first?.kv.valueString == "seen")
                            try await pinned.kill()
                            try await putWithRetry(writer, "c", "missed-1")
                            try await putWithRetry(writer, "c", "missed-2")
                            let current = try await writer.get("c").header.revision
                            try await writer.compact(current, physical: true)
                            try pinned.start()
                            try await cluster.waitUntilHealthy()
                            while let response = try await iterator.next() {
                                Issue.record(
                                    "a response arrived after the compaction: \(response.events.map(\.kv.valueString))")
                            }
                        }
                    }
                    #expect(error?.code == .compacted)
                    #expect((error?.compactRevision ?? 0) > 0)
                }
            }
        }
    }

    @Test("a requireLeader watch ends with noLeader when its member loses its leader")
    func requireLeader() async throws {
        try await withEtcdTestCluster(.init(members: 3)) { cluster in
            let member = cluster.members[0]
            try await withEtcdClient(.init(endpoints: [member.clientEndpoint])) { client in
                let error = await etcdErrorCode {
                    try await client.watch("k", options: .requireLeader) { responses in
                        for other in cluster.members where other !== member { try await other.kill() }
                        for try await _ in responses {}
                    }
                }
                #expect(error?.code == .noLeader)
            }
        }
    }

    @Test("a watch opened before the server forgets the auth token keeps delivering")
    func watchAcrossReauthentication() async throws {
        try await withEtcdTestCluster { cluster in
            try await cluster.etcdctl(["user", "add", "root:rootpw"])
            try await cluster.etcdctl(["auth", "enable"])
            var configuration = cluster.clientConfiguration()
            configuration.authentication = .init(username: "root", password: "rootpw")
            try await withEtcdClient(configuration) { client in
                try await client.watch("k") { responses in
                    try await client.put("k", value: "before")
                    try await cluster.members[0].restart()
                    try await cluster.waitUntilHealthy()
                    try await withEtcdTimeout(.seconds(10)) { try await client.put("k", value: "after") }
                    let values = try await collectEvents(responses, count: 2).map(\.kv.valueString)
                    #expect(values == ["before", "after"])
                }
            }
        }
    }

    // MARK: Helpers

    private static func memberIDs(_ cluster: EtcdTestCluster, _ client: EtcdClient) async throws -> [UInt64:
        EtcdTestMember]
    {
        var ids: [UInt64: EtcdTestMember] = [:]
        for member in cluster.members {
            ids[try await client.status(endpoint: member.clientEndpoint).header.memberID] = member
        }
        return ids
    }

    private static func killServing(_ serving: ServingMember, _ ids: [UInt64: EtcdTestMember]) async throws {
        let member = try #require(ids[serving.value], "no watch response seen yet")
        try await member.kill()
    }

    private static func restartStopped(_ cluster: EtcdTestCluster) async throws {
        for member in cluster.members where !member.isRunning { try member.start() }
        try await cluster.waitUntilHealthy()
    }

}
