// SPDX-License-Identifier: Apache-2.0
import Etcd
import Foundation
import Synchronization

/// Reads `keys` back and counts those whose value is not `value`.
func verify(_ client: EtcdClient, keys: [String], value: String) async throws -> Int {
    var mismatches = 0
    for key in keys where try await client.get(key).kvs.first?.valueString != value {
        mismatches += 1
    }
    return mismatches
}

/// `watches` watches on distinct keys in one client: the time to create them all, memory per watch,
/// and whether every one receives the event written to its key.
func watchScale(_ client: EtcdClient, watches: Int, value: String) async -> String {
    let prefix = "watch-scale-\(UInt64(Date().timeIntervalSince1970 * 1e9))/"
    let before = Usage.now()
    let clock = ContinuousClock()
    let start = clock.now
    let created = Counter()
    let received = Counter()
    let (allCreated, allCreatedContinuation) = AsyncStream.makeStream(of: Void.self)
    var createSeconds = 0.0
    var deliverSeconds = 0.0
    var rssAfterCreate = 0
    await withTaskGroup(of: Void.self) { group in
        for index in 0..<watches {
            group.addTask {
                try? await client.watch("\(prefix)\(index)") { responses in
                    if created.next() + 1 == watches { allCreatedContinuation.yield() }
                    for try await response in responses where !response.events.isEmpty {
                        _ = received.next()
                        return
                    }
                }
            }
        }
        for await _ in allCreated { break }
        createSeconds = seconds(clock.now - start)
        rssAfterCreate = Usage.now().maxRSS
        let writeStart = clock.now
        for index in 0..<watches {
            _ = try? await client.put("\(prefix)\(index)", value: value)
        }
        await group.waitForAll()
        deliverSeconds = seconds(clock.now - writeStart)
    }
    let after = Usage.now()
    let perWatchKB = Double(rssAfterCreate - before.maxRSS) / Double(watches)
    return json([
        ("client", "\"swift-etcd\""), ("op", "\"watch-scale\""), ("watches", "\(watches)"),
        ("received", "\(received.count)"), ("create_seconds", "\(createSeconds)"),
        ("deliver_seconds", "\(deliverSeconds)"), ("rss_kb_per_watch", "\(perWatchKB)"),
        ("cpu_s", "\(after.user + after.sys - before.user - before.sys)"), ("max_rss_kb", "\(after.maxRSS)"),
    ])
}

/// `leases` leases (TTL 10 s) kept alive by one client for `seconds`: CPU per second of keepalive,
/// and how many expired (it must be none).
func leaseScale(_ client: EtcdClient, leases: Int, seconds duration: Int) async -> String {
    var kept: [EtcdLease] = []
    for _ in 0..<leases {
        do {
            let grant = try await client.grant(ttl: 10)
            kept.append(try client.keepAliveInBackground(grant.id))
        } catch {
            fail("grant: \(error)")
        }
    }
    let before = Usage.now()
    try? await Task.sleep(for: .seconds(duration))
    let after = Usage.now()
    let lost = kept.filter { $0.state == .lost }.count
    for lease in kept { _ = try? await client.revoke(lease.id) }
    let cpu = after.user + after.sys - before.user - before.sys
    return json([
        ("client", "\"swift-etcd\""), ("op", "\"lease-scale\""), ("leases", "\(leases)"), ("seconds", "\(duration)"),
        ("lost", "\(lost)"), ("cpu_ms_per_second", "\(cpu * 1000 / Double(duration))"),
        ("max_rss_kb", "\(after.maxRSS)"),
    ])
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func json(_ fields: [(String, String)]) -> String {
    "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
}
