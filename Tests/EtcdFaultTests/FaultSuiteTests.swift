// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Foundation
import Synchronization
import Testing

/// The faults of the suite: each is injected into a 3-member cluster behind bridges while the
/// workload runs, then healed.
enum Fault: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case killLeader = "kill the leader"
    case killFollower = "kill a follower the client uses"
    case blackholeEndpoint = "black-hole the endpoint the client uses"
    case dropConnections = "drop all connections"
    case pauseMember = "pause a follower for 5 s"
    case pauseLeader = "pause the leader for 5 s"
    case restartCluster = "restart the whole cluster"
    case partitionLeader = "partition the leader away"

    var testDescription: String { self.rawValue }

    /// All faults, or those named (by case name, comma-separated) in `ETCD_FAULTS`, to repeat one.
    static var selected: [Fault] {
        guard let names = ProcessInfo.processInfo.environment["ETCD_FAULTS"] else { return Self.allCases }
        let wanted = Set(names.split(separator: ",").map(String.init))
        return Self.allCases.filter { wanted.contains("\($0)") }
    }
}

@Suite("Faults", .serialized, .timeLimit(.minutes(3)))
struct FaultSuiteTests {
    static let dialTimeout = Duration.seconds(2)

    @Test(
        "during and after the fault nothing acknowledged is lost, watches see every revision once, leases live",
        arguments: Fault.selected)
    func fault(_ fault: Fault) async throws {
        var test = EtcdTestCluster.Configuration(members: 3)
        test.heartbeatInterval = 50
        test.electionTimeout = 500
        try await withEtcdTestCluster(test) { cluster in
            try await withEtcdTestBridges(for: cluster) { bridges in
                var configuration = EtcdClient.Configuration(endpoints: bridges.map(\.endpoint))
                configuration.dialTimeout = Self.dialTimeout
                configuration.keepAlive = .init(time: .seconds(1), timeout: .seconds(1))
                try await withEtcdClient(configuration) { client in
                    try await self.run(fault, cluster, bridges, client)
                }
            }
        }
    }

    private func run(_ fault: Fault, _ cluster: EtcdTestCluster, _ bridges: [EtcdTestBridge], _ client: EtcdClient)
        async throws
    {
        let workload = FaultWorkload(client: client)
        // A whole-cluster restart leaves no member to renew through: its outage (stop, start,
        // election, reconnection) comes out of each lease's TTL, which gets a margin there that a
        // slow machine cannot use up. The other faults leave a member that must take the renewals.
        let ttl: Int64 = fault == .restartCluster ? 10 : 5
        try await workload.keepLeases(ttl: ttl)
        let start = try await client.get("f/", options: [.prefix, .countOnly]).header.revision
        let leader = try await cluster.leaderIndex()
        let follower = (leader + 1) % cluster.members.count

        // The watches run until they have been checked; the writers stop earlier.
        try await withThrowingTaskGroup(of: Void.self) { watches in
            for index in 0..<20 {
                watches.addTask { await workload.watch(index, from: start + 1) }
            }
            var recovery = Duration.zero
            var injected = ContinuousClock.now
            var lasted = Duration.zero
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await workload.run() }
                // The workload runs before, during and after the fault; these durations are the fault's
                // shape, not waits for an event.
                try await Task.sleep(for: .seconds(1))
                injected = ContinuousClock.now
                let heal = try await self.inject(
                    fault, cluster, bridges, leader: leader, follower: follower, group: &group)
                try await heal()
                let healed = ContinuousClock.now
                lasted = healed - injected
                // Recovery: the first write that succeeds after the fault heals.
                try await within(Self.dialTimeout * 2 + .seconds(8), "a write to succeed after healing") {
                    while true {
                        do {
                            try await withEtcdTimeout(.seconds(1)) { try await client.put("recovered", value: "1") }
                            return
                        } catch let error as EtcdClientError {
                            _ = error  // still recovering
                        }
                    }
                }
                recovery = ContinuousClock.now - healed
                try await Task.sleep(for: .seconds(2))
                group.cancelAll()
            }

            let record = workload.record.withLock { $0 }
            let history = workload.history.withLock { $0 }
            print(
                "fault \(fault.rawValue): \(record.operations) calls, \(record.acknowledged.count) writes acknowledged, errors \(record.errors.sorted { $0.key < $1.key }), fault and healing \(lasted), recovery \(recovery), register history \(history.count) operations (\(history.filter { $0.return == nil }.count) of unknown outcome)"
            )
            // The registers' history is linearizable: no stale read, no lost or resurrected write.
            #expect(throws: Never.self) { try EtcdLinearizability.check(history) }
            #expect(history.count > 20, "too few register operations to judge")
            #expect(recovery < Self.dialTimeout * 2, "recovery took \(recovery)")
            #expect(record.untyped.isEmpty, "\(record.untyped.prefix(5))")
            #expect(record.late.isEmpty, "\(record.late.prefix(5))")
            #expect(record.appliedTwice.isEmpty, "writes sent twice: \(record.appliedTwice.prefix(5))")
            #expect(record.acknowledged.count > 20, "the workload made too little progress to judge")

            // Every acknowledged write is readable.
            let stored = Set(
                try await client.get("f/", options: [.prefix, .keysOnly, .paged(pageSize: 1000)]).kvs.map(\.keyString))
            let lost = record.acknowledged.filter { !stored.contains($0) }
            #expect(lost.isEmpty, "acknowledged but lost: \(lost.prefix(5))")

            // Every watch saw every revision of its range exactly once, in order.
            for index in 0..<20 {
                let expected = try await workload.expectedEvents(index)
                try await within(
                    .seconds(15),
                    "watch \(index) to catch up (it has \(workload.seen(index).count) of \(expected.count) events)"
                ) {
                    while workload.seen(index).count < expected.count {
                        try await Task.sleep(for: .milliseconds(50))  // events arrive in the watch's own time
                    }
                }
                let seen = workload.seen(index)
                #expect(
                    seen.map { $0.0 } == expected.map { $0.0 },
                    "watch \(index): \(seen.count) events, expected \(expected.count)")
                #expect(seen.map { $0.1 } == expected.map { $0.1 })
            }

            // No kept-alive lease expired, and each was renewed after the fault began (its deadline
            // counts from the send time of its latest acknowledged renewal).
            let leases = workload.leases.withLock { $0 }
            let renewedSince = injected + .seconds(ttl)
            let checkLeases = {
                for lease in leases {
                    #expect(lease.state != .lost, "lease \(lease.id) lost: \(String(describing: lease.lossReason))")
                    let alive = (try? await client.timeToLive(lease.id).ttl).map { $0 > 0 } ?? false
                    #expect(alive, "lease \(lease.id) is gone from the cluster")
                    await #expect(throws: Never.self, "lease \(lease.id) renewed after the fault") {
                        try await within(.seconds(ttl), "lease \(lease.id) to be renewed after the fault began") {
                            while lease.deadline <= renewedSince, lease.state != .lost {
                                try await Task.sleep(for: .milliseconds(50))  // renewals come on their own schedule
                            }
                        }
                    }
                    #expect(lease.deadline > renewedSince, "lease \(lease.id) not renewed after the fault")
                }
            }
            if fault == .pauseLeader {
                // Known etcd bug (#12528, #15247; fixed by #16822 in 3.4.28 and 3.5.11, newer than
                // both servers here): a leader paused longer than a lease's TTL resumes still
                // believing it leads, finds the lease expired by its own clock, and its revoke is
                // forwarded to the new leader and committed, although the client kept the lease
                // alive through the new leader all along (observed: renewals acknowledged during
                // the pause, "not found" 1.5 s after the old leader resumed). No client can prevent
                // it; it stays visible here.
                await withKnownIssue("a lease may expire across a 5 s pause of its member", isIntermittent: true) {
                    await checkLeases()
                }
            } else {
                await checkLeases()
            }
            watches.cancelAll()
        }
    }

    /// Injects the fault and returns what heals it.
    private func inject(
        _ fault: Fault,
        _ cluster: EtcdTestCluster,
        _ bridges: [EtcdTestBridge],
        leader: Int,
        follower: Int,
        group: inout ThrowingTaskGroup<Void, any Error>
    ) async throws -> @Sendable () async throws -> Void {
        switch fault {
        case .killLeader:
            try await cluster.members[leader].kill()
            return {
                try await Task.sleep(for: .seconds(3))
                try cluster.members[leader].start()
            }
        case .killFollower:
            try await cluster.members[follower].kill()
            return {
                try await Task.sleep(for: .seconds(3))
                try cluster.members[follower].start()
            }
        case .blackholeEndpoint:
            bridges[0].mode = .blackhole
            return {
                try await Task.sleep(for: .seconds(3))
                bridges[0].mode = .pass
            }
        case .dropConnections:
            return {
                for _ in 0..<10 {
                    for bridge in bridges { bridge.dropConnections() }
                    try await Task.sleep(for: .milliseconds(300))
                }
            }
        case .pauseMember, .pauseLeader:
            let paused = fault == .pauseLeader ? leader : follower
            try cluster.members[paused].pause()
            return {
                try await Task.sleep(for: .seconds(5))
                try cluster.members[paused].resume()
            }
        case .restartCluster:
            for member in cluster.members { try await member.stop() }
            return {
                try await Task.sleep(for: .seconds(1))
                for member in cluster.members { try member.start() }
            }
        case .partitionLeader:
            bridges[leader].mode = .blackhole
            return {
                try await Task.sleep(for: .seconds(3))
                bridges[leader].mode = .pass
            }
        }
    }
}
