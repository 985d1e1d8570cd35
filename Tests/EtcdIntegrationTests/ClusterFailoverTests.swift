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
}
