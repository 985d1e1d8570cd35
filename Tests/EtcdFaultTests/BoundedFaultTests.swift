// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Testing

/// The fault cases with their own bounds, from the Go client's integration tests.
@Suite("Bounded faults", .serialized, .timeLimit(.minutes(2)))
struct BoundedFaultTests {
    private func cluster(_ body: (EtcdTestCluster, [EtcdTestBridge]) async throws -> Void) async throws {
        var test = EtcdTestCluster.Configuration(members: 3)
        test.heartbeatInterval = 50
        test.electionTimeout = 500
        try await withEtcdTestCluster(test) { cluster in
            try await withEtcdTestBridges(for: cluster) { bridges in try await body(cluster, bridges) }
        }
    }

    @Test("at most once: 10 puts to one key while connections are dropped repeatedly leave its version at most 11")
    func atMostOnce() async throws {
        try await self.cluster { _, bridges in
            var configuration = EtcdClient.Configuration(endpoints: bridges.map(\.endpoint))
            configuration.dialTimeout = .seconds(2)
            try await withEtcdClient(configuration) { client in
                try await client.put("once", value: "0")
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        while !Task.isCancelled {
                            for bridge in bridges { bridge.dropConnections() }
                            try await Task.sleep(for: .milliseconds(20))  // the fault's rhythm
                        }
                    }
                    for i in 1...10 {
                        _ = try? await withEtcdTimeout(.seconds(2)) { try await client.put("once", value: "\(i)") }
                    }
                    group.cancelAll()
                }
                let version = try await client.get("once").kvs.first?.version ?? 0
                #expect(version <= 11, "a put was applied twice: version \(version)")
            }
        }
    }

    @Test("cancelling a call or a watch returns within 1 s even while its only member is down")
    func cancelWhileDown() async throws {
        try await self.cluster { cluster, bridges in
            var configuration = EtcdClient.Configuration(endpoints: [bridges[0].endpoint])
            configuration.dialTimeout = .seconds(30)
            try await withEtcdClient(configuration) { client in
                try await client.put("k", value: "v")
                try await cluster.members[0].kill()
                for what in ["get", "watch"] {
                    let task = Task {
                        if what == "get" {
                            _ = try await client.get("k")
                        } else {
                            try await client.watch("k") { responses in for try await _ in responses {} }
                        }
                    }
                    try await Task.sleep(for: .milliseconds(300))  // let it start waiting on the dead member
                    let cancelled = ContinuousClock.now
                    task.cancel()
                    _ = await task.result
                    #expect(
                        ContinuousClock.now - cancelled < .seconds(1), "\(what) took \(ContinuousClock.now - cancelled)"
                    )
                }
            }
        }
    }

    @Test("quorum lost for a while, then restored: the same client serves again within 20 s")
    func quorumRestored() async throws {
        try await self.cluster { cluster, bridges in
            var configuration = EtcdClient.Configuration(endpoints: bridges.map(\.endpoint))
            configuration.dialTimeout = .seconds(2)
            try await withEtcdClient(configuration) { client in
                try await client.put("k", value: "before")
                try await cluster.members[1].kill()
                try await cluster.members[2].kill()
                let failed = await etcdFailure {
                    _ = try await withEtcdTimeout(.seconds(3)) { try await client.put("k", value: "x") }
                }
                #expect(failed, "a write without quorum must fail")
                try cluster.members[1].start()
                try cluster.members[2].start()
                let restored = ContinuousClock.now
                try await within(.seconds(20), "the same client to write again") {
                    while true {
                        if (try? await withEtcdTimeout(.seconds(2), { try await client.put("k", value: "after") }))
                            != nil
                        {
                            return
                        }
                    }
                }
                #expect(ContinuousClock.now - restored < .seconds(20))
                #expect(try await client.get("k").kvs.first?.valueString == "after")
            }
        }
    }

    /// Whether `body` failed with a typed etcd error.
    private func etcdFailure(_ body: () async throws -> Void) async -> Bool {
        do {
            try await body()
            return false
        } catch {
            #expect(error is EtcdClientError, "untyped error: \(error)")
            return true
        }
    }
}
