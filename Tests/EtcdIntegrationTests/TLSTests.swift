// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Testing

@Suite("TLS", .timeLimit(.minutes(2)))
struct TLSTests {
    private func tlsCluster(
        _ tls: EtcdTestCluster.Configuration.TLS,
        _ body: (EtcdTestCluster) async throws -> Void
    ) async throws {
        var configuration = EtcdTestCluster.Configuration()
        configuration.tls = tls
        try await withEtcdTestCluster(configuration) { try await body($0) }
    }

    private func roundTrip(_ configuration: EtcdClient.Configuration) async throws {
        try await withEtcdClient(configuration) { client in
            try await withEtcdTimeout(.seconds(10)) {
                try await client.put("tls", value: "yes")
                #expect(try await client.get("tls").kvs.first?.valueString == "yes")
            }
        }
    }

    /// The error of a put with no deadline of its own: it must end (within the dial timeout) with a clear error.
    private func failure(_ configuration: EtcdClient.Configuration) async -> EtcdClientError? {
        var configuration = configuration
        configuration.dialTimeout = .seconds(2)
        return await etcdErrorCode {
            try await withEtcdClient(configuration) { client in _ = try await client.put("tls", value: "no") }
        }
    }

    @Test("https with the CA trusted round-trips")
    func serverTLS() async throws {
        try await tlsCluster(.server) { cluster in
            #expect(cluster.clientEndpoints.allSatisfy { $0.hasPrefix("https://") })
            try await roundTrip(cluster.clientConfiguration())
            // A bare host:port endpoint uses TLS when TLS is configured.
            var bare = cluster.clientConfiguration()
            bare.endpoints = cluster.members.map { "127.0.0.1:\($0.clientPort)" }
            try await roundTrip(bare)
        }
    }

    @Test("mutual TLS round-trips with the client certificate, and fails clearly without it")
    func mutualTLS() async throws {
        try await tlsCluster(.mutual) { cluster in
            try await roundTrip(cluster.clientConfiguration())
            var noCertificate = cluster.clientConfiguration()
            noCertificate.tls?.certificateFile = nil
            noCertificate.tls?.keyFile = nil
            let error = await failure(noCertificate)
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("TLS handshake") == true, "\(String(describing: error))")
        }
    }

    @Test("an unknown CA fails verification at once with a clear error; skip-verify connects")
    func unknownCA() async throws {
        try await tlsCluster(.server) { cluster in
            let certificates = try #require(cluster.certificates)
            var otherCA = cluster.clientConfiguration()
            otherCA.tls?.trustedCAFile = certificates.otherCAFile
            let unknown = await failure(otherCA)
            #expect(unknown?.code == .unavailable)
            #expect(unknown?.message.contains("TLS handshake") == true, "\(String(describing: unknown))")
            #expect(unknown?.message.contains("could not be verified") == true, "\(String(describing: unknown))")
            #expect(unknown?.message.contains("trustedCAFile") == true)

            var skip = cluster.clientConfiguration()
            skip.tls = .init(insecureSkipVerify: true)
            try await roundTrip(skip)
        }
    }

    @Test(
        "the server name is verified: the right serverName connects (with a :port too), a wrong one or none fails clearly"
    )
    func serverName() async throws {
        try await tlsCluster(.named) { cluster in
            try await roundTrip(cluster.clientConfiguration())
            var withPort = cluster.clientConfiguration()
            withPort.tls?.serverName = EtcdTestCertificates.namedServerName + ":2379"
            try await roundTrip(withPort)
            var wrongName = cluster.clientConfiguration()
            wrongName.tls?.serverName = "etcd.wrong.example"
            let wrong = await failure(wrongName)
            #expect(wrong?.code == .unavailable)
            #expect(wrong?.message.contains("TLS handshake") == true, "\(String(describing: wrong))")
            var noName = cluster.clientConfiguration()
            noName.tls?.serverName = nil
            let none = await failure(noName)
            #expect(none?.message.contains("TLS handshake") == true, "\(String(describing: none))")
        }
    }

    @Test("plaintext to a TLS server, and TLS to a plaintext server, fail with a clear error")
    func schemeMismatch() async throws {
        try await tlsCluster(.server) { cluster in
            var plaintext = EtcdClient.Configuration(
                endpoints: cluster.members.map { "http://127.0.0.1:\($0.clientPort)" })
            plaintext.dialTimeout = .seconds(2)
            let error = await failure(plaintext)
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("use the https:// scheme") == true, "\(String(describing: error))")
        }
        try await withEtcdTestCluster { cluster in
            var tls = EtcdClient.Configuration(endpoints: cluster.members.map { "https://127.0.0.1:\($0.clientPort)" })
            tls.tls = .init(insecureSkipVerify: true)
            let error = await failure(tls)
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("TLS handshake") == true, "\(String(describing: error))")
        }
    }

    @Test("auth over TLS: credentials are exchanged for a token on a TLS connection")
    func authOverTLS() async throws {
        try await tlsCluster(.server) { cluster in
            try await cluster.etcdctl(["user", "add", "root:rootpw"])
            try await cluster.etcdctl(["auth", "enable"])
            var configuration = cluster.clientConfiguration()
            configuration.authentication = .init(username: "root", password: "rootpw")
            try await roundTrip(configuration)
        }
    }
}
