// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Foundation
import Testing

@Suite("Configuration files against real servers", .timeLimit(.minutes(2)))
struct ConfigurationFileConnectionTests {
    private func write(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("etcd-\(UUID().uuidString).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("a Go-style YAML file with insecure-transport reaches a plaintext cluster")
    func plaintext() async throws {
        try await withEtcdTestCluster(.init(members: 3)) { cluster in
            let path = try self.write(
                """
                endpoints: [\(cluster.clientEndpoints.map { "\"\($0)\"" }.joined(separator: ", "))]
                dial-timeout: 5s
                insecure-transport: true
                """)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let configuration = try EtcdClient.Configuration(contentsOfFile: path)
            #expect(configuration.endpoints.count == 3)
            try await withEtcdClient(configuration) { client in
                try await client.put("from-file", value: "yes")
                #expect(try await client.get("from-file").kvs.first?.valueString == "yes")
            }
        }
    }

    @Test("a JSON file with cert-file, key-file and trusted-ca-file reaches a mutual-TLS cluster by bare host:port")
    func mutualTLS() async throws {
        var test = EtcdTestCluster.Configuration()
        test.tls = .mutual
        try await withEtcdTestCluster(test) { cluster in
            let tls = try #require(cluster.clientConfiguration().tls)
            let bare = cluster.members.map { "\"127.0.0.1:\($0.clientPort)\"" }.joined(separator: ", ")
            let path = try self.write(
                """
                {"endpoints": [\(bare)], "cert-file": "\(tls.certificateFile ?? "")",
                 "key-file": "\(tls.keyFile ?? "")", "trusted-ca-file": "\(tls.trustedCAFile ?? "")"}
                """)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let configuration = try EtcdClient.Configuration(contentsOfFile: path)
            try await withEtcdClient(configuration) { client in
                try await withEtcdTimeout(.seconds(10)) {
                    try await client.put("from-json", value: "yes")
                    #expect(try await client.get("from-json").kvs.first?.valueString == "yes")
                }
            }
        }
    }
}
