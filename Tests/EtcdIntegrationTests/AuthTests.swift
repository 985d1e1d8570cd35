// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Testing

@Suite("Authentication", .timeLimit(.minutes(2)))
struct AuthTests {
    /// A cluster with auth enabled: user root (password "rootpw") and user alice ("alicepw") with
    /// read-write access to ["foo", "zoo") only, as in the Go client's Auth example.
    private func withAuthCluster(
        arguments: [String] = [],
        _ body: (EtcdTestCluster) async throws -> Void
    ) async throws {
        try await withEtcdTestCluster(.init(members: 1, extraArguments: arguments)) { cluster in
            try await cluster.etcdctl(["user", "add", "root:rootpw"])
            try await cluster.etcdctl(["role", "add", "r"])
            try await cluster.etcdctl(["role", "grant-permission", "r", "readwrite", "foo", "zoo"])
            try await cluster.etcdctl(["user", "add", "alice:alicepw"])
            try await cluster.etcdctl(["user", "grant-role", "alice", "r"])
            try await cluster.etcdctl(["auth", "enable"])
            try await body(cluster)
        }
    }

    private func configuration(
        _ cluster: EtcdTestCluster,
        _ user: String?,
        _ password: String = ""
    ) -> EtcdClient.Configuration {
        var configuration = EtcdClient.Configuration(endpoints: cluster.clientEndpoints)
        if let user { configuration.authentication = .init(username: user, password: password) }
        return configuration
    }

    @Test("credentials are exchanged for a token that rides every request; permissions are the server's")
    func tokenAndPermissions() async throws {
        try await withAuthCluster { cluster in
            try await withEtcdClient(configuration(cluster, "alice", "alicepw")) { client in
                try await client.put("foo1", value: "bar")
                #expect(try await client.get("foo1").kvs.first?.valueString == "bar")
                let denied = await etcdErrorCode { try await client.put("zoo1", value: "bar") }
                #expect(denied?.code == .permissionDenied)
                #expect(denied?.message == "etcdserver: permission denied")
            }
        }
    }

    @Test("with --auth-token-ttl 2, a client idle past its token's life keeps working; an open watch keeps delivering")
    func tokenExpiry() async throws {
        try await withAuthCluster(arguments: ["--auth-token-ttl", "2"]) { cluster in
            try await withEtcdClient(configuration(cluster, "alice", "alicepw")) { client in
                try await client.put("foo1", value: "before")
                try await client.watch("foo2") { responses in
                    // Idle past the token's TTL: that is the condition under test, not a synchronisation.
                    try await Task.sleep(for: .seconds(4))
                    try await client.put("foo2", value: "after")
                    let events = try await within(.seconds(10), "the watch event") {
                        try await collectEvents(responses, count: 1)
                    }
                    #expect(events.map(\.kv.valueString) == ["after"])
                }
                try await Task.sleep(for: .seconds(4))
                #expect(try await client.get("foo1").kvs.first?.valueString == "before")
            }
        }
    }

    @Test("under auth, keepalives continue after the member restarts past the token's TTL")
    func keepAliveReauthenticates() async throws {
        try await withAuthCluster(arguments: ["--auth-token-ttl", "2"]) { cluster in
            try await withEtcdClient(configuration(cluster, "root", "rootpw")) { client in
                let lease = try await client.grant(ttl: 10)
                try await client.keepAlive(lease.id) { responses in
                    for try await _ in responses { break }
                    // Idle past the token's TTL, then the member restarts and the stream reopens. (etcd
                    // 3.4 and 3.5 check no token on LeaseKeepAlive, so this shows the stream comes back
                    // under auth, not that a token is refreshed; unary calls and watches test that.)
                    try await Task.sleep(for: .seconds(3))
                    try await cluster.members[0].restart()
                    try await cluster.waitUntilHealthy()
                    let restartedAt = ContinuousClock.now
                    // Wait for a renewal sent after the restart to be acknowledged.
                    try await within(.seconds(20), "a renewal after the restart") {
                        for try await _ in responses where responses.lease.deadline > restartedAt + .seconds(10) {
                            return
                        }
                    }
                    #expect(responses.lease.state == .alive)
                }
                #expect(try await client.timeToLive(lease.id).ttl > 0)
            }
        }
    }

    @Test("credentials for a cluster without auth are no error; once auth is turned on, the client authenticates")
    func authNotEnabled() async throws {
        try await withEtcdTestCluster { cluster in
            try await withEtcdClient(configuration(cluster, "root", "rootpw")) { client in
                try await client.put("k", value: "1")
                try await cluster.etcdctl(["user", "add", "root:rootpw"])
                try await cluster.etcdctl(["auth", "enable"])
                try await client.put("k", value: "2")
                #expect(try await client.get("k").kvs.first?.valueString == "2")
                let anonymous = try await withEtcdClient(configuration(cluster, nil)) { anonymous in
                    await etcdErrorCode { _ = try await anonymous.get("k") }
                }
                #expect(anonymous?.code == .userEmpty)
            }
        }
    }

    @Test("a watch outside the user's permissions ends with permissionDenied; one inside works")
    func watchPermissions() async throws {
        try await withAuthCluster { cluster in
            try await withEtcdClient(configuration(cluster, "alice", "alicepw")) { client in
                let denied = await etcdErrorCode {
                    try await client.watch("zoo1") { responses in for try await _ in responses {} }
                }
                #expect(denied?.code == .permissionDenied)
                try await client.watch("foo1") { responses in
                    try await client.put("foo1", value: "seen")
                    #expect(try await collectEvents(responses, count: 1).map(\.kv.valueString) == ["seen"])
                }
            }
        }
    }

    @Test("a wrong password is reported as authFailed, once, and never appears in the error")
    func wrongPassword() async throws {
        try await withAuthCluster { cluster in
            let error = await etcdErrorCode {
                try await withEtcdClient(configuration(cluster, "alice", "wrong-secret")) { client in
                    _ = try await client.get("foo")
                }
            }
            #expect(error?.code == .authFailed)
            #expect(error?.message == "etcdserver: authentication failed, invalid user ID or password")
            #expect(
                error.map { "\($0)".contains("wrong-secret") || String(reflecting: $0).contains("wrong-secret") }
                    == false)
        }
    }

    @Test("without credentials, an auth-enabled cluster refuses requests with a typed error")
    func noCredentials() async throws {
        try await withAuthCluster { cluster in
            let error = await etcdErrorCode {
                try await withEtcdClient(configuration(cluster, nil)) { client in
                    _ = try await client.put("foo", value: "x")
                }
            }
            #expect(error?.code == .userEmpty)
        }
    }

    @Test("after a restart forgets the token, the client authenticates again; calls and an open watch carry on")
    func reauthenticateAfterRestart() async throws {
        try await withAuthCluster { cluster in
            try await withEtcdClient(configuration(cluster, "root", "rootpw")) { client in
                try await client.put("foo", value: "before")
                try await client.watch("foo") { responses in
                    // Simple tokens live in the member's memory: a restart invalidates them, for calls
                    // and for the watch stream, which must register its watch again with a new token.
                    try await cluster.members[0].restart()
                    try await cluster.waitUntilHealthy()
                    try await withEtcdTimeout(.seconds(10)) { try await client.put("foo", value: "after") }
                    #expect(try await client.get("foo").kvs.first?.valueString == "after")
                    let events = try await within(.seconds(10), "the watch to deliver after the restart") {
                        try await collectEvents(responses, count: 1)
                    }
                    #expect(events.map(\.kv.valueString) == ["after"])
                }
            }
        }
    }
}
