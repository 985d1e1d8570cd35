// SPDX-License-Identifier: Apache-2.0
import Etcd
import Testing

/// The lease state is computed from acknowledged renewals; these place the renewals in the past
/// instead of waiting.
@Suite("Lease state")
struct LeaseStateTests {
    @Test("alive within half the TTL of the last renewal, at risk after, lost after the TTL")
    func stateFollowsRenewals() {
        let now = ContinuousClock.now
        #expect(EtcdLease(id: 1, ttl: 10, since: now, unknownTTLDeadline: .seconds(5)).state == .alive)
        #expect(
            EtcdLease(id: 1, ttl: 10, since: now - .seconds(6), unknownTTLDeadline: .seconds(5)).state == .atRisk)
        let lost = EtcdLease(id: 1, ttl: 10, since: now - .seconds(11), unknownTTLDeadline: .seconds(5))
        #expect(lost.state == .lost)
        #expect(lost.lossReason?.code == .leaseExpired)
    }

    @Test("a renewal makes an at-risk lease alive and moves its deadline; an older one does not move it back")
    func renewal() {
        let now = ContinuousClock.now
        let lease = EtcdLease(id: 7, ttl: 10, since: now - .seconds(6), unknownTTLDeadline: .seconds(5))
        #expect(lease.state == .atRisk)
        lease.renewed(ttl: 10, sentAt: now)
        #expect(lease.state == .alive)
        #expect(lease.deadline == now + .seconds(10))
        lease.renewed(ttl: 10, sentAt: now - .seconds(3))
        #expect(lease.deadline == now + .seconds(10))
    }

    @Test("before the first renewal of a lease of unknown TTL, the first answer sets the deadline")
    func unknownTTL() {
        let now = ContinuousClock.now
        let lease = EtcdLease(id: 7, ttl: nil, since: now, unknownTTLDeadline: .seconds(5))
        #expect(lease.ttl == nil)
        #expect(lease.state == .alive)
        lease.renewed(ttl: 2, sentAt: now)
        #expect(lease.ttl == 2)
        #expect(lease.deadline == now + .seconds(2))
    }

    @Test("a lease the server ended stays lost, whatever arrives later")
    func endIsFinal() async throws {
        let lease = EtcdLease(id: 7, ttl: 10, since: .now, unknownTTLDeadline: .seconds(5))
        lease.end(EtcdClientError(code: .leaseNotFound, message: "gone"))
        lease.renewed(ttl: 10, sentAt: .now)
        #expect(lease.state == .lost)
        #expect(lease.lossReason?.code == .leaseNotFound)
        #expect(try await lease.waitUntilLost().code == .leaseNotFound)
    }
}
