// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Testing

@Suite("Failover in a 3-member cluster", .serialized, .timeLimit(.minutes(3)))
struct ClusterFailoverTests {
    @Test("after the member the client talks to is killed, the next get with a 5 s deadline succeeds through another")
    func killServingMember() async throws {
        try await withEtcd(members: 3) { cluster, client in
            try await client.put("k", value: "v")
            // Find the member that answered, and make it the client's first choice by killing it.
            let answered = try await client.get("k").header.memberID
            var victim: EtcdTestMember?
            for member in cluster.members
            where try await client.status(endpoint: member.clientEndpoint).header.memberID == answered {
                victim = member
            }
            let dead = try #require(victim)
            try await dead.kill()
            // Round-robin sends some of these to the dead member first; each must still succeed in time.
            for _ in 0..<cluster.members.count * 2 {
                let response = try await withEtcdTimeout(.seconds(5)) { try await client.get("k") }
                #expect(response.kvs.first?.valueString == "v")
                #expect(response.header.memberID != answered)
            }
            // Writes never reached the dead member, so they fail over too.
            try await withEtcdTimeout(.seconds(5)) { try await client.put("k", value: "after") }
            #expect(try await client.get("k").kvs.first?.valueString == "after")
        }
    }

    @Test("a killed follower restarted with its data rejoins and serves again")
    func restartMember() async throws {
        try await withEtcd(members: 3) { cluster, client in
            try await client.put("k", value: "1")
            let leader = try await cluster.leaderIndex()
            let member = cluster.members[(leader + 1) % cluster.members.count]
            try await member.kill()
            #expect(!member.isRunning)
            // A put in flight to the member as it dies has an unknown outcome and is not retried by the
            // client; this test is about the restart, so it repeats the (idempotent) write.
            try await putWithRetry(client, "k", "2")
            try member.start()
            try await cluster.waitUntilHealthy()
            let status = try await withEtcdTimeout(.seconds(5)) {
                try await client.status(endpoint: member.clientEndpoint)
            }
            #expect(status.leader != 0)
            #expect(try await client.get("k").kvs.first?.valueString == "2")
        }
    }

    @Test(
        "keepalive finds a black-holed endpoint within its timeout; it is left until a probe finds it answering (no call waits on it meanwhile), then serves again"
    )
    func blackholedEndpointProbed() async throws {
        try await withEtcdTestCluster(quickElectingCluster(members: 3)) { cluster in
            try await withEtcdTestBridges(for: cluster) { bridges in
                var configuration = EtcdClient.Configuration(endpoints: [bridges[0].endpoint, bridges[1].endpoint])
                configuration.dialTimeout = .seconds(2)
                configuration.keepAlive = .init(time: .seconds(1), timeout: .milliseconds(500))
                try await withEtcdClient(configuration) { client in
                    let blackholed = try await client.status(endpoint: bridges[0].endpoint).header.memberID
                    bridges[0].mode = .blackhole
                    // Round robin sends one of these into the black hole; keepalive pings (1 s / 0.5 s) find
                    // it dead and the read moves on.
                    for _ in 0..<2 {
                        let start = ContinuousClock.now
                        _ = try await withEtcdTimeout(.seconds(5)) { try await client.get("k") }
                        #expect(
                            ContinuousClock.now - start < .milliseconds(2500), "took \(ContinuousClock.now - start)")
                    }
                    // Left: for the next 5 s (ten probe periods) no write goes near it; one that did
                    // would wait out its deadline there (a write that was sent is not retried).
                    let start = ContinuousClock.now
                    var writes = 0
                    while ContinuousClock.now - start < .seconds(5) {
                        let response = try await withEtcdTimeout(.seconds(2)) {
                            try await client.put("k", value: "\(writes)")
                        }
                        #expect(response.header.memberID != blackholed)
                        writes += 1
                    }
                    bridges[0].mode = .pass
                    // A probe finds it answering, and calls reach it again.
                    try await within(.seconds(10), "a read answered by the healed member") {
                        while try await withEtcdTimeout(.seconds(2), { try await client.get("k") }).header.memberID
                            != blackholed
                        {}
                    }
                }
            }
        }
    }
}
