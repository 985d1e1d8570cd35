// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Logging
import Synchronization
import Testing

@Suite("Lease", .timeLimit(.minutes(2)))
struct LeaseTests {
    @Test("ExampleLease_grant: a key attached to a granted lease")
    func grant() async throws {
        try await withEtcd { _, client in
            let lease = try await client.grant(ttl: 5)
            #expect(lease.id != 0)
            #expect(lease.ttl == 5)
            try await client.put("foo", value: "bar", options: .lease(lease.id))
            #expect(try await client.get("foo").kvs.first?.lease == lease.id)
        }
    }

    @Test("ExampleLease_revoke prints number of keys: 0")
    func revoke() async throws {
        try await withEtcd { _, client in
            let lease = try await client.grant(ttl: 5)
            try await client.put("foo", value: "bar", options: .lease(lease.id))
            try await client.revoke(lease.id)
            let response = try await client.get("foo")
            #expect("number of keys: \(response.kvs.count)" == "number of keys: 0")
        }
    }

    @Test("ExampleLease_keepAlive prints ttl: 5")
    func keepAlive() async throws {
        try await withEtcd { _, client in
            let lease = try await client.grant(ttl: 5)
            try await client.put("foo", value: "bar", options: .lease(lease.id))
            try await client.keepAlive(lease.id) { responses in
                var iterator = responses.makeAsyncIterator()
                let first = try #require(try await iterator.next())
                #expect("ttl: \(first.ttl)" == "ttl: 5")
                #expect(first.id == lease.id)
                #expect(responses.lease.state == .alive)
            }
        }
    }

    @Test("ExampleLease_keepAliveOnce prints ttl: 5")
    func keepAliveOnce() async throws {
        try await withEtcd { _, client in
            let lease = try await client.grant(ttl: 5)
            try await client.put("foo", value: "bar", options: .lease(lease.id))
            let response = try await client.keepAliveOnce(lease.id)
            #expect("ttl: \(response.ttl)" == "ttl: 5")
        }
    }

    @Test("timeToLive reports the granted TTL and the attached keys; leases() lists the lease")
    func timeToLiveAndLeases() async throws {
        try await withEtcd { _, client in
            let lease = try await client.grant(ttl: 30)
            try await client.put("a", value: "1", options: .lease(lease.id))
            try await client.put("b", value: "2", options: .lease(lease.id))
            let info = try await client.timeToLive(lease.id, attachedKeys: true)
            #expect(info.grantedTTL == 30)
            #expect(info.ttl > 0 && info.ttl <= 30)
            #expect(info.keyStrings.sorted() == ["a", "b"])
            #expect(try await client.timeToLive(lease.id).keys.isEmpty)
            #expect(try await client.leases().ids.contains(lease.id))
        }
    }

    @Test("bad input: unknown leases, negative TTL, a taken ID, a TTL over the maximum")
    func badInput() async throws {
        try await withEtcd { _, client in
            let unknown: Int64 = 0x7777
            #expect(await etcdErrorCode { try await client.revoke(unknown) }?.code == .leaseNotFound)
            #expect(await etcdErrorCode { _ = try await client.timeToLive(unknown) }?.code == .leaseNotFound)
            #expect(await etcdErrorCode { _ = try await client.keepAliveOnce(unknown) }?.code == .leaseNotFound)
            #expect(
                await etcdErrorCode { try await client.put("k", value: "v", options: .lease(unknown)) }?.code
                    == .leaseNotFound)
            #expect(await etcdErrorCode { _ = try await client.grant(ttl: -1) }?.code == .invalidArgument)
            #expect(await etcdErrorCode { _ = try await client.grant(ttl: 5, id: -3) }?.code == .invalidArgument)
            #expect(
                await etcdErrorCode { _ = try await client.grant(ttl: 9_000_000_001) }?.code == .leaseTTLTooLarge)
            let taken = try await client.grant(ttl: 5, id: 0x1234)
            #expect(taken.id == 0x1234)
            #expect(await etcdErrorCode { _ = try await client.grant(ttl: 5, id: 0x1234) }?.code == .leaseExists)
            // The failed calls changed nothing.
            #expect(try await client.get("k").kvs.isEmpty)
        }
    }

    @Test("keepAlive of an unknown lease ends its sequence with leaseNotFound and the lease is lost")
    func keepAliveUnknown() async throws {
        try await withEtcd { _, client in
            try await client.keepAlive(0x4242) { responses in
                let error = await etcdErrorCode {
                    for try await _ in responses { Issue.record("an unknown lease was renewed") }
                }
                #expect(error?.code == .leaseNotFound)
                #expect(responses.lease.state == .lost)
                #expect(responses.lease.lossReason?.code == .leaseNotFound)
            }
        }
    }

    @Test("keys attached to a lease that is not kept alive disappear when it expires")
    func expiry() async throws {
        try await withEtcd { _, client in
            // 4 s, not etcd's 2 s minimum: on a loaded machine the put may come a second or two after the grant.
            let lease = try await client.grant(ttl: 4)
            let put = try await client.put("ephemeral", value: "x", options: .lease(lease.id))
            try await client.watch("ephemeral", options: .revision(put.header.revision + 1)) { responses in
                let events = try await within(.seconds(15), "the lease to expire") {
                    try await collectEvents(responses, count: 1)
                }
                #expect(events.map(\.type) == [.delete])
            }
            #expect(try await client.get("ephemeral").kvs.isEmpty)
            #expect(await etcdErrorCode { _ = try await client.timeToLive(lease.id) }?.code == .leaseNotFound)
        }
    }

    @Test("a kept-alive lease outlives its TTL, and every renewal reaches a reader that reads late")
    func keepAliveOutlivesTTL() async throws {
        try await withEtcd { _, client in
            // TTLs of a few seconds, not etcd's 2 s minimum: a loaded 2-core machine running the
            // whole suite can delay a member's renewal handling by a second.
            let kept = try await client.grant(ttl: 4)
            let clock = try await client.grant(ttl: 4)
            try await client.put("kept", value: "x", options: .lease(kept.id))
            try await client.keepAlive(kept.id) { keptResponses in
                // Don't read `keptResponses` for a while; time is measured by the other lease's renewals.
                let start = ContinuousClock.now
                try await client.keepAlive(clock.id) { clockResponses in
                    try await within(.seconds(20), "renewals for 6 s") {
                        for try await _ in clockResponses where ContinuousClock.now - start > .seconds(6) { break }
                    }
                }
                #expect(keptResponses.lease.state == .alive)
                #expect(try await client.timeToLive(kept.id).ttl > 0)
                #expect(try await client.get("kept").kvs.count == 1)
                // 6 s at one renewal per TTL/3 (1.33 s): every acknowledgement was kept for the late reader.
                var count = 0
                var iterator = keptResponses.makeAsyncIterator()
                while count < 4, try await iterator.next() != nil { count += 1 }
                #expect(count == 4)
            }
        }
    }

    @Test("a revoke from another client ends the keepalive sequence with leaseNotFound")
    func revokeFromAnotherClient() async throws {
        try await withEtcd { cluster, client in
            let lease = try await client.grant(ttl: 5)
            try await client.keepAlive(lease.id) { responses in
                try await withEtcdClient(cluster.clientConfiguration()) { other in
                    try await other.revoke(lease.id)
                }
                let error = try await within(.seconds(10), "the keepalive to end") {
                    await etcdErrorCode { for try await _ in responses {} }
                }
                #expect(error?.code == .leaseNotFound)
                #expect(responses.lease.state == .lost)
                let reason = try await within(.seconds(1), "waitUntilLost") {
                    try await responses.lease.waitUntilLost()
                }
                #expect(reason.code == .leaseNotFound)
            }
        }
    }

    @Test("withLease revokes its lease after the body: returning, throwing, or cancelled")
    func withLease() async throws {
        struct Failure: Error {}
        try await withEtcd { _, client in
            let id = try await client.withLease(ttl: 30) { lease in
                try await client.put("scoped", value: "1", options: .lease(lease.id))
                #expect(lease.state == .alive)
                return lease.id
            }
            #expect(try await client.get("scoped").kvs.isEmpty)
            #expect(await etcdErrorCode { _ = try await client.timeToLive(id) }?.code == .leaseNotFound)

            let thrownID = Shared<Int64>(0)
            await #expect(throws: Failure.self) {
                try await client.withLease(ttl: 30) { lease in
                    thrownID.value = lease.id
                    try await client.put("scoped", value: "2", options: .lease(lease.id))
                    throw Failure()
                }
            }
            #expect(try await client.get("scoped").kvs.isEmpty)
            #expect(
                await etcdErrorCode { _ = try await client.timeToLive(thrownID.value) }?.code
                    == .leaseNotFound)

            // Cancelled while the body waits: the revoke still happens.
            let (started, startedContinuation) = AsyncStream.makeStream(of: Int64.self)
            let task = Task {
                try await client.withLease(ttl: 30) { lease in
                    try await client.put("scoped", value: "3", options: .lease(lease.id))
                    startedContinuation.yield(lease.id)
                    try await Task.sleep(for: .seconds(600))
                }
            }
            var iterator = started.makeAsyncIterator()
            let cancelledID = try #require(await iterator.next())
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(try await client.get("scoped").kvs.isEmpty)
            #expect(await etcdErrorCode { _ = try await client.timeToLive(cancelledID) }?.code == .leaseNotFound)
        }
    }

    @Test("2,000 leases kept in the background by one client outlive their TTL, every one renewed")
    func manyLeases() async throws {
        try await withEtcd { _, client in
            // Renewals come due in bursts (every lease granted within the same tick) and go out on the
            // client's one keepalive stream, many to a write; etcd answers them in order.
            var leases: [EtcdLease] = []
            for _ in 0..<2_000 {
                // Each lease is kept from its grant on: granting them all first could take longer than
                // the TTL on a loaded machine.
                let grant = try await client.grant(ttl: 4)
                leases.append(try client.keepAliveInBackground(grant.id))
            }
            // Time is measured by another lease's renewals: 6 s after the last grant, more than the TTL.
            let granted = ContinuousClock.now
            let clock = try await client.grant(ttl: 4)
            try await client.keepAlive(clock.id) { responses in
                try await within(.seconds(30), "renewals for 6 s") {
                    for try await _ in responses where ContinuousClock.now - granted > .seconds(6) { break }
                }
            }
            let lost = leases.filter { $0.state == .lost }
            #expect(lost.isEmpty, "\(lost.count) leases lost, the first: \(String(describing: lost.first?.lossReason))")
            // Renewed after the last grant, so each lease's deadline moved past its first TTL.
            let stale = leases.filter { $0.deadline < granted + .seconds(4) }
            #expect(stale.isEmpty, "\(stale.count) leases not renewed since the last grant")
            let onServer = Set(try await client.leases().ids)
            #expect(leases.allSatisfy { onServer.contains($0.id) })
            for lease in leases { lease.stopKeepAlive() }
        }
    }

    @Test("keepAliveInBackground keeps a lease until stopKeepAlive; then it expires and is seen lost")
    func background() async throws {
        try await withEtcd { _, client in
            let grant = try await client.grant(ttl: 3)
            let put = try await client.put("background", value: "x", options: .lease(grant.id))
            let lease = try client.keepAliveInBackground(grant.id)
            // Time is measured by another lease's renewals: 5 s, more than the TTL.
            let clock = try await client.grant(ttl: 3)
            let start = ContinuousClock.now
            try await client.keepAlive(clock.id) { responses in
                try await within(.seconds(20), "renewals for 5 s") {
                    for try await _ in responses where ContinuousClock.now - start > .seconds(5) { break }
                }
            }
            #expect(lease.state == .alive)
            #expect(try await client.timeToLive(grant.id).ttl > 0)
            lease.stopKeepAlive()
            let reason = try await within(.seconds(10), "the lease to be lost") { try await lease.waitUntilLost() }
            #expect(reason.code == .leaseExpired)
            #expect(lease.state == .lost)
            // The server expires it too, deleting its key.
            try await client.watch("background", options: .revision(put.header.revision + 1)) { responses in
                let events = try await within(.seconds(10), "the server to expire the lease") {
                    try await collectEvents(responses, count: 1)
                }
                #expect(events.map(\.type) == [.delete])
            }
        }
    }
}

@Suite("Lease keepalive across failures", .serialized, .timeLimit(.minutes(3)))
struct LeaseFaultTests {
    @Test("renewals that go unanswered (the only member is frozen) end the keepalive with leaseExpired")
    func unanswered() async throws {
        try await withEtcd { cluster, client in
            let grant = try await client.grant(ttl: 3)
            let member = cluster.members[0]
            try await client.keepAlive(grant.id) { responses in
                for try await _ in responses { break }  // renewed once
                try member.pause()
                let error = try await within(.seconds(10), "the keepalive to end") {
                    await etcdErrorCode { for try await _ in responses {} }
                }
                try member.resume()
                #expect(error?.code == .leaseExpired)
                #expect(responses.lease.state == .lost)
                #expect(responses.lease.lossReason?.code == .leaseExpired)
            }
        }
    }

    @Test(
        "keepAlive(id) learns the TTL from the first renewal: unanswered renewals then end it at that deadline, not at the guess made before"
    )
    func unansweredAfterLearningTTL() async throws {
        // keepAlive(id) does not know the TTL and assumes the dial timeout (here 30 s) until the first
        // answer; the answer's TTL (3 s) sets the deadline the client must end the lease at.
        try await withEtcd(configure: { $0.dialTimeout = .seconds(30) }) { cluster, client in
            let grant = try await client.grant(ttl: 3)
            let member = cluster.members[0]
            try await client.keepAlive(grant.id) { responses in
                for try await _ in responses { break }  // renewed once: the TTL is known
                try member.pause()
                let error = try await within(.seconds(10), "the keepalive to end at the TTL's deadline") {
                    await etcdErrorCode { for try await _ in responses {} }
                }
                try member.resume()
                #expect(error?.code == .leaseExpired)
                #expect(responses.lease.ttl == 3)
            }
        }
    }

    @Test(
        "a renewal answered TTL 0 is asked again half a second later before the lease is given up (etcd 3.5 < 3.5.3 and 3.4 < 3.4.20 answer so for a grant it has not applied yet): a lease granted meanwhile stays kept, by keepAlive and by keepAliveOnce"
    )
    func notFoundAskedAgain() async throws {
        try await withEtcdTestCluster(.init(members: 3)) { cluster in
            let leader = try await cluster.leaderIndex()
            let member = cluster.members[(leader + 1) % 3]
            let (lines, logger) = streamingLogger()
            // The keeper talks to a follower only, the granter to the leader only.
            try await withEtcdClient(.init(endpoints: [member.clientEndpoint]), logger: logger) { keeper in
                try await withEtcdClient(.init(endpoints: [cluster.members[leader].clientEndpoint])) { granter in
                    // Leases that do not exist yet: the first renewal of each is answered TTL 0.
                    func answeredNotFound(_ id: Int64) async throws {
                        _ = try await within(.seconds(10), "lease \(id) to be asked about again") {
                            await lines.first {
                                $0.message.hasPrefix("etcd answered a lease renewal with TTL 0")
                                    && $0.metadata["etcd_lease_id"]?.description == "\(id)"
                            }
                        }
                    }
                    // The keeper's member is held while the lease is granted, so the renewal that asks
                    // again (due half a second after the first answer) is answered after the grant.
                    func grantWhileHeld(_ id: Int64) async throws {
                        try member.pause()
                        do {
                            _ = try await granter.grant(ttl: 5, id: id)
                        } catch {
                            try member.resume()
                            throw error
                        }
                        try member.resume()
                    }

                    let streamed: Int64 = 0x13675
                    try await keeper.keepAlive(streamed) { responses in
                        try await answeredNotFound(streamed)
                        try await grantWhileHeld(streamed)
                        let renewal = try await within(.seconds(10), "a renewal after the grant") {
                            try await responses.first { _ in true }
                        }
                        #expect(renewal?.ttl == 5)
                        #expect(responses.lease.state == .alive)
                    }

                    let once: Int64 = 0x13676
                    let renewal = Task { try await keeper.keepAliveOnce(once) }
                    try await answeredNotFound(once)
                    try await grantWhileHeld(once)
                    #expect(try await renewal.value.ttl == 5)
                }
            }
        }
    }

    @Test("3 members: killing the leader while 100 leases (TTL 10 s) are kept alive expires none of them")
    func killLeader() async throws {
        try await withEtcd(members: 3) { cluster, client in
            // A second client keeps the leases alive, its one keepalive stream on the leader (its first
            // endpoint is its first pick), so the kill breaks the stream and renewals must move.
            let leader = try await cluster.leaderIndex()
            var configuration = cluster.clientConfiguration()
            configuration.endpoints =
                [cluster.members[leader].clientEndpoint]
                + cluster.members.indices.filter { $0 != leader }.map { cluster.members[$0].clientEndpoint }
            try await withEtcdClient(configuration) { keeper in
                let killedAt = Shared<ContinuousClock.Instant?>(nil)
                let (registered, registration) = AsyncStream.makeStream(of: Void.self)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    // Each lease is kept alive from its grant on: granting all 100 first could take longer
                    // than the TTL on a loaded machine. TTL 10: a lease whose renewal falls due at the
                    // kill has two thirds of it left to outlast the election, which (etcd's 1 s election
                    // timeout, on 2 busy cores) took longer than the 3.3 s a TTL of 5 leaves in two full
                    // parallel runs; renewals resume within half a second of a new leader
                    // (`reopenWhileLeaderless`).
                    for index in 0..<100 {
                        let lease = try await client.grant(ttl: 10)
                        group.addTask {
                            try await keeper.keepAlive(lease.id) { responses in
                                registration.yield()
                                // Read renewals until one arrives 11 s after the kill: more than the TTL.
                                let renewed = try await within(.seconds(60), "renewals after the kill") {
                                    for try await _ in responses {
                                        if let killed = killedAt.value, ContinuousClock.now - killed > .seconds(11) {
                                            return true
                                        }
                                    }
                                    return false
                                }
                                #expect(
                                    renewed,
                                    "lease \(lease.id) was lost: \(String(describing: responses.lease.lossReason))")
                            }
                        }
                        try await client.put("lease/\(index)", value: "x", options: .lease(lease.id))
                    }
                    var count = 0
                    for await _ in registered {
                        count += 1
                        if count == 100 { break }
                    }
                    killedAt.value = .now
                    try await cluster.members[leader].kill()
                    try await group.waitForAll()
                }
            }
            let keys = try await withEtcdTimeout(.seconds(10)) { try await client.get("lease/", options: .prefix) }
            #expect(keys.count == 100)
        }
    }

    @Test(
        "TestLeaseRenewLostQuorum: a keepalive on a member that loses quorum for 2 s is renewed once the others are back, before its lease (TTL 4) ends"
    )
    func renewLostQuorum() async throws {
        // Short raft timeouts, so that the restarted members elect a leader well within the TTL.
        try await withEtcdTestCluster(quickElectingCluster(members: 3)) { cluster in
            // The client knows only the member that stays up, as Go's test client does.
            try await withEtcdClient(.init(endpoints: [cluster.members[0].clientEndpoint])) { client in
                let lease = try await client.grant(ttl: 4)
                try await client.keepAlive(lease.id) { responses in
                    _ = try await within(.seconds(10), "the first renewal") { try await responses.first { _ in true } }
                    let lastRenewal = ContinuousClock.now
                    try await cluster.members[1].stop()
                    try await cluster.members[2].stop()
                    // The outage lasts TTL - 2 s from the last renewal, as in Go's test: the next
                    // renewal (due after TTL/3) goes out while no leader can answer it.
                    try await Task.sleep(until: lastRenewal + .seconds(2))
                    try cluster.members[1].start()
                    try cluster.members[2].start()
                    // A lost lease ends the sequence with its error, which fails the test here.
                    let renewal = try await within(.seconds(4), "a renewal once quorum is back") {
                        try await responses.first { _ in true }
                    }
                    #expect(renewal?.ttl == 4)
                    #expect(responses.lease.state != .lost)
                    print(
                        "lost quorum: renewed \(ContinuousClock.now - lastRenewal) after the last renewal before the outage"
                    )
                }
            }
        }
    }

    @Test(
        "3 members, no leader (leader killed, a follower cut off): the keepalive stream, refused with noLeader, is tried again at least every half second, and renewals resume once a leader is elected"
    )
    func reopenWhileLeaderless() async throws {
        var test = EtcdTestCluster.Configuration(members: 3)
        test.peerBridges = true
        try await withEtcdTestCluster(test) { cluster in
            let leader = try await cluster.leaderIndex()
            let followers = cluster.members.indices.filter { $0 != leader }
            // When each refusal was logged, from the moment the cluster has no leader.
            let refusals = Shared<[ContinuousClock.Instant]>([])
            let (refused, refusal) = AsyncStream.makeStream(of: Int.self)
            let logger = hookedLogger { line in
                guard line.message.hasPrefix("etcd lease keepalive stream broke"),
                    line.metadata["etcd_code"]?.description == "noLeader"
                else { return }
                var count = 0
                refusals.mutate { times in
                    times.append(.now)
                    count = times.count
                }
                refusal.yield(count)
            }
            let lease = try await withEtcdClient(.init(endpoints: cluster.clientEndpoints)) { granter in
                try await granter.grant(ttl: 30)
            }
            let keeper = EtcdClient.Configuration(endpoints: followers.map { cluster.members[$0].clientEndpoint })
            try await withEtcdClient(keeper, logger: logger) { keeper in
                try await keeper.keepAlive(lease.id) { responses in
                    _ = try await within(.seconds(10), "the first renewal") { try await responses.first { _ in true } }
                    // In this order: isolate(_:) asks every member for its ID.
                    try await cluster.isolate(followers[0])
                    try await cluster.members[leader].kill()
                    // Eight refusals in a row: a backoff that kept growing would be at its 1 s maximum by then.
                    _ = try await within(.seconds(30), "eight noLeader refusals") {
                        await refused.first { $0 >= 8 }
                    }
                    cluster.healPartition()
                    let healed = ContinuousClock.now
                    let renewal = try await within(.seconds(15), "a renewal after the partition healed") {
                        try await responses.first { _ in true }
                    }
                    #expect(renewal?.ttl == 30)
                    #expect(responses.lease.state == .alive)
                    print("leaderless keepalive: renewed \(ContinuousClock.now - healed) after the partition healed")
                }
            }
            let times = refusals.value
            let gaps = zip(times.dropFirst(), times).map { $0 - $1 }
            print("leaderless keepalive: refusals \(gaps.count + 1), gaps \(gaps)")
            // The wait between attempts stops growing at 500 ms; an attempt takes a few milliseconds.
            #expect(gaps.count >= 7)
            #expect(gaps.allSatisfy { $0 < .milliseconds(800) }, "gaps between attempts: \(gaps)")
        }
    }
}
