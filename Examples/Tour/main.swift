// SPDX-License-Identifier: Apache-2.0
// A tour of swift-etcd: run it against any etcd with `scripts/try`, or
// `ETCD_ENDPOINTS=127.0.0.1:2379 swift run Tour`, or with a configuration file in the Go client's
// YAML or JSON format: `ETCD_CONFIG_FILE=etcd.yaml swift run Tour`.
import Etcd
import EtcdConcurrency
import Foundation
import Prometheus

let environment = ProcessInfo.processInfo.environment
let configuration: EtcdClient.Configuration
if let path = environment["ETCD_CONFIG_FILE"] {
    do {
        configuration = try EtcdClient.Configuration(contentsOfFile: path)
    } catch {
        print(error.message)  // names the file, the line and the key
        exit(2)
    }
} else {
    configuration = .init(
        endpoints: (environment["ETCD_ENDPOINTS"] ?? "127.0.0.1:2379").split(separator: ",").map(String.init))
}

// Metrics (off unless a factory is set): here into a Prometheus registry, printed at the end.
let prometheus = PrometheusCollectorRegistry()
var observed = configuration
observed.observability.metricsFactory = PrometheusMetricsFactory(registry: prometheus)

try await withEtcdClient(observed) { client in
    print("connected to \(client.endpoints.joined(separator: ", "))")

    // Keys and values are bytes; Strings are converted as UTF-8.
    try await client.put("tour/greeting", value: "hello")
    let greeting = try await client.get("tour/greeting")
    print("tour/greeting = \(greeting.kvs.first?.valueString ?? "<missing>") at revision \(greeting.header.revision)")

    // Many calls in a row run faster on the client's own I/O thread: no hand-off to it and back
    // per call. Code there must not block.
    try await withTaskExecutorPreference(client.taskExecutor) {
        for i in 0..<3 { try await client.put("tour/key_\(i)", value: "value \(i)") }
    }

    // Ranges: prefix, sorting, limits.
    let sorted = try await client.get("tour/key_", options: [.prefix, .sort(by: .key, order: .descending)])
    print("sorted descending: \(sorted.kvs.map(\.keyString).joined(separator: ", "))")
    let firstTwo = try await client.get("tour/key_", options: [.prefix, .limit(2)])
    print("first two of \(firstTwo.count): \(firstTwo.kvs.map(\.keyString)), more: \(firstTwo.more)")

    // Reading the past: every write makes a revision.
    let first = try await client.put("tour/counter", value: "1")
    try await client.put("tour/counter", value: "2")
    let past = try await client.get("tour/counter", options: .revision(first.header.revision))
    print("tour/counter was \(past.kvs.first?.valueString ?? "?") at revision \(first.header.revision)")

    // Transactions: compare, then / else, atomically.
    let txn = try await client.txn(
        if: [.value("tour/greeting") == "hello"],
        then: [.put("tour/greeting", value: "hello again"), .get("tour/greeting")],
        else: [.put("tour/greeting", value: "hello")]
    )
    print("txn succeeded: \(txn.succeeded); greeting now \(txn.responses[1].get?.kvs.first?.valueString ?? "?")")

    // Deadlines, like a Go context: every call inside ends by then.
    let count = try await withEtcdTimeout(.seconds(5)) {
        try await client.get("tour/", options: [.prefix, .countOnly]).count
    }
    print("tour/ holds \(count) keys")

    // Requiring a leader, like Go's WithRequireLeader: a member cut off from its cluster answers
    // noLeader at once (and the call moves to another endpoint) instead of holding the call.
    let led = try await withEtcdRequireLeader { try await client.get("tour/greeting") }
    print("read with a leader: \(led.kvs.first?.valueString ?? "?")")

    // Watches: the closure starts once the watch exists; leaving it cancels the watch. The loop reads
    // on the caller's actor (here the main actor) without leaving it for each response.
    try await client.watch("tour/", options: [.prefix, .prevKV]) { responses in
        try await client.put("tour/greeting", value: "hello, watcher")
        for try await response in responses {
            for event in response.events {
                print("watch: \(event.type) \(event.kv.keyString) = \(event.kv.valueString)", terminator: "")
                print(" (was \(event.prevKV?.valueString ?? "nothing"), revision \(event.kv.modRevision))")
            }
            break
        }
    }

    // Leases: keys that vanish when their owner stops renewing. withLease keeps the lease alive for
    // the closure and revokes it afterwards, deleting its keys.
    try await client.withLease(ttl: 5) { lease in
        try await client.put("tour/instance", value: "10.0.0.1:8080", options: .lease(lease.id))
        let info = try await client.timeToLive(lease.id, attachedKeys: true)
        print("lease \(lease.id): \(info.ttl) s left, keys \(info.keyStrings), state \(lease.state)")
    }
    print("after the lease: tour/instance exists: \(try await client.get("tour/instance").count == 1)")

    // Locks and elections (EtcdConcurrency), interoperable with Go's and etcdctl's: a session is a
    // kept-alive lease; withLock's body is cancelled if the session is lost.
    try await client.withSession(ttl: 10) { session in
        let mutex = EtcdMutex(session: session, name: "tour/lock")
        try await mutex.withLock { fencingToken in
            print("holding tour/lock (fencing token \(fencingToken))")
        }
        let election = EtcdElection(session: session, name: "tour/election")
        try await election.campaign("tour-process")
        print("leader of tour/election: \(try await election.leader().valueString)")
        try await election.resign()
    }

    // Software transactions: reads and writes committed atomically, retried on conflict.
    try await client.put("tour/alice", value: "100")
    try await client.put("tour/bob", value: "0")
    try await client.runSTM { stm in
        let alice = Int(try await stm.get("tour/alice")) ?? 0
        let bob = Int(try await stm.get("tour/bob")) ?? 0
        stm.put("tour/alice", String(alice - 30))
        stm.put("tour/bob", String(bob + 30))
    }
    let balances = try await client.get("tour/", options: .prefix).kvs.filter {
        $0.keyString.hasSuffix("alice") || $0.keyString.hasSuffix("bob")
    }
    print("after the transfer: \(balances.map { "\($0.keyString)=\($0.valueString)" }.joined(separator: ", "))")

    // Namespaces: a view whose keys live under a prefix, which responses and events leave out.
    let team = client.namespace("tour/team/")
    try await team.txn(if: [.keyMissing("owner")], then: [.put("owner", value: "ada")])
    let owned = try await team.get("", options: .prefix)
    print("in tour/team/: \(owned.kvs.map { "\($0.keyString)=\($0.valueString)" })")

    // Bad input gets a typed error before anything is sent.
    do {
        try await client.put("", value: "")
    } catch let error as EtcdClientError where error.code == .emptyKey {
        print("empty key refused: \(error.message)")
    }

    // Clean up.
    let deleted = try await client.delete("tour/", options: [.prefix, .prevKV])
    print("deleted \(deleted.deleted) keys")
}
// What a Prometheus scrape of this process would show, the etcd request counters among it.
let exposition = prometheus.emitToString().split(separator: "\n")
for line in exposition where line.hasPrefix("etcd_client_requests_total") && line.contains("KV/Put") {
    print("metrics: \(line)")
}
print("tour finished")
