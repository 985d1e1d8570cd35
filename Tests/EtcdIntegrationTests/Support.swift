// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Logging
import Synchronization
import Testing

/// Launches a real etcd cluster, runs a client against all its members, and removes both afterwards.
func withEtcd<Result: Sendable>(
    members: Int = 1,
    arguments: [String] = [],
    configure: (inout EtcdClient.Configuration) -> Void = { _ in },
    _ body: (EtcdTestCluster, EtcdClient) async throws -> Result
) async throws -> Result {
    try await withEtcdTestCluster(.init(members: members, extraArguments: arguments)) { cluster in
        var configuration = EtcdClient.Configuration(endpoints: cluster.clientEndpoints)
        configure(&configuration)
        return try await withEtcdClient(configuration) { client in
            try await body(cluster, client)
        }
    }
}

/// A test cluster of `members` with short raft timeouts (heartbeat 50 ms, election 500 ms), as in Go's
/// integration clusters, for tests that wait for an election.
func quickElectingCluster(members: Int) -> EtcdTestCluster.Configuration {
    var configuration = EtcdTestCluster.Configuration(members: members)
    configuration.heartbeatInterval = 50
    configuration.electionTimeout = 500
    return configuration
}

/// The code of an ``EtcdClientError`` thrown by `body`, or `nil` if it succeeded or threw something else.
func etcdErrorCode(_ body: () async throws -> Void) async -> EtcdClientError? {
    do {
        try await body()
        return nil
    } catch let error as EtcdClientError {
        return error
    } catch {
        Issue.record("expected an EtcdClientError, got \(error)")
        return nil
    }
}

/// Puts `value` under each of `keys` and returns those puts as a register history. The
/// linearizability checker's registers start missing; a test that counts deletes as writes of a
/// value (`missing`, say) starts its keys with that value.
func initialWrites(_ client: EtcdClient, keys: [String], value: String) async throws -> [EtcdRegisterOperation] {
    var history: [EtcdRegisterOperation] = []
    for key in keys {
        let call = ContinuousClock.now
        try await client.put(key, value: value)
        history.append(.init(key: key, kind: .write(value), call: call, return: .now))
    }
    return history
}

/// A counter tasks can share.
final class SharedCounter: Sendable {
    private let value = Atomic<Int>(0)
    func increment() { self.value.add(1, ordering: .relaxed) }
    func decrement() { self.value.subtract(1, ordering: .relaxed) }
    var count: Int { self.value.load(ordering: .relaxed) }
}

/// A put retried until it succeeds (for writes during faults, whose outcome may be unknown): a retry
/// may apply the value twice, which adds a revision but no other effect.
func putWithRetry(_ client: EtcdClient, _ key: String, _ value: String) async throws {
    let deadline = ContinuousClock.now + .seconds(30)
    while true {
        do {
            try await withEtcdTimeout(.seconds(5)) { try await client.put(key, value: value) }
            return
        } catch let error as EtcdClientError where ContinuousClock.now < deadline {
            _ = error
        }
    }
}

/// A value tasks can share.
final class Shared<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    init(_ value: Value) { self.storage = Mutex(value) }
    var value: Value {
        get { self.storage.withLock { $0 } }
        set { self.storage.withLock { $0 = newValue } }
    }
    func mutate(_ body: (inout Value) -> Void) { self.storage.withLock { body(&$0) } }
}

/// A client that calls its own ``EtcdClient/shutdown()`` when it logs the line `message`, once:
/// tests use it to shut down at that exact point of the client's code.
func clientShuttingDown(at message: String, _ configuration: EtcdClient.Configuration) throws -> EtcdClient {
    let client = Mutex<EtcdClient?>(nil)
    let logger = hookedLogger { line in
        // Taking the client out also breaks the cycle client -> logger -> client.
        if line.message == message { client.withLock { $0.take() }?.shutdown() }
    }
    let created = try EtcdClient(configuration: configuration, logger: logger)
    client.withLock { $0 = created }
    return created
}
