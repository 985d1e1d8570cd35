// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Testing

@Suite("EtcdTestBridge", .timeLimit(.minutes(2)))
struct BridgeTests {
    @Test("a bridge passes traffic, black-holes it, delays it, and drops connections on demand")
    func modes() async throws {
        try await withEtcdTestCluster { cluster in
            try await withEtcdTestBridges(for: cluster) { bridges in
                var configuration = EtcdClient.Configuration(endpoints: [bridges[0].endpoint])
                configuration.dialTimeout = .seconds(2)
                configuration.keepAlive = .init(time: .seconds(1), timeout: .seconds(1))
                try await withEtcdClient(configuration) { client in
                    try await withEtcdTimeout(.seconds(5)) { try await client.put("k", value: "1") }
                    bridges[0].mode = .blackhole
                    let blackholed = await etcdErrorCode {
                        try await withEtcdTimeout(.seconds(1)) { _ = try await client.get("k") }
                    }
                    #expect(blackholed?.code == .deadlineExceeded)
                    bridges[0].mode = .pass
                    // The black-holed connection is dead; the client notices (keepalive) and reconnects.
                    let healed = try await within(.seconds(10), "the client to get through again") {
                        while true {
                            if let value = try? await withEtcdTimeout(.seconds(1), { try await client.get("k") }) {
                                return value.kvs.first?.valueString
                            }
                        }
                    }
                    #expect(healed == "1")
                    bridges[0].mode = .delay(.milliseconds(200))
                    let start = ContinuousClock.now
                    _ = try await client.get("k")
                    #expect(ContinuousClock.now - start >= .milliseconds(400))  // request and answer each delayed
                    bridges[0].mode = .pass
                    bridges[0].dropConnections()
                    // The read may race the drop; it is retried on a new connection, within 10 s.
                    let afterDrop = try await withEtcdTimeout(.seconds(10)) { try await client.get("k") }
                    #expect(afterDrop.kvs.first?.valueString == "1")
                }
            }
        }
    }
}
