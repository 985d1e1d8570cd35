// SPDX-License-Identifier: Apache-2.0
import Dispatch
import EtcdAPI
import EtcdTesting
import FoundationEssentials
import Synchronization
import Testing

@testable import Etcd
@testable import EtcdConcurrency
@testable import EtcdDiscovery

/// The library's response sequences read on the consumer's actor: an actor reading responses that
/// have already arrived does not leave it (and come back through its executor) for each one.
@Suite("Response sequences keep the consumer's isolation", .timeLimit(.minutes(1)))
struct SequenceIsolationTests {
    static let count = 50

    @Test("a watch on a real server, read on an actor after its writes were answered")
    func watchOnServer() async throws {
        try await withEtcd { _, client in
            let (events, hops) = try await CountingReader().watchAfterPuts(client, count: 100)
            #expect(events == 100)
            // One response per put; only those still on their way when reading begins need a wait,
            // and each wait one return to the actor.
            #expect(hops < 10, "the reader left its actor and came back \(hops) times for 100 responses")
        }
    }

    @Test("watch responses")
    func watchResponses() async throws {
        let buffer = ResponseBuffer<EtcdWatchResponse>(limit: nil)
        for _ in 0..<Self.count { _ = buffer.push(Self.watchResponse(events: [])) }
        buffer.finish()
        let (read, hops) = try await CountingReader().readAll(EtcdWatchResponses(buffer: buffer, transform: nil))
        #expect(read == Self.count)
        #expect(hops == 0, "the reader left its actor and came back \(hops) times")
    }

    @Test("lease keepalive responses")
    func keepAliveResponses() async throws {
        let buffer = ResponseBuffer<EtcdLeaseKeepAliveResponse>(limit: nil)
        var proto = Etcdserverpb_LeaseKeepAliveResponse()
        proto.id = 7
        proto.ttl = 60
        for _ in 0..<Self.count { _ = buffer.push(EtcdLeaseKeepAliveResponse(proto)) }
        buffer.finish()
        let lease = EtcdLease(id: 7, ttl: 60, since: .now, unknownTTLDeadline: .seconds(60))
        let (read, hops) = try await CountingReader().readAll(EtcdLeaseKeepAliveResponses(lease: lease, buffer: buffer))
        #expect(read == Self.count)
        #expect(hops == 0, "the reader left its actor and came back \(hops) times")
    }

    @Test("endpoint updates and endpoint lists")
    func endpointSequences() async throws {
        func responses() -> EtcdWatchResponses {
            let buffer = ResponseBuffer<EtcdWatchResponse>(limit: nil)
            for index in 0..<Self.count {
                var event = Mvccpb_Event()
                event.kv.key = Data("service/\(index)".utf8)
                event.kv.value = EtcdServiceEndpoint(address: "10.0.0.\(index):80").encoded
                _ = buffer.push(Self.watchResponse(events: [event]))
            }
            buffer.finish()
            return EtcdWatchResponses(buffer: buffer, transform: nil)
        }
        let updates = EtcdEndpointUpdates(initial: [], responses: responses())
        let (readUpdates, updateHops) = try await CountingReader().readAll(updates)
        #expect(readUpdates == Self.count)
        #expect(updateHops == 0, "the reader left its actor and came back \(updateHops) times")

        let lists = EtcdEndpointLists(updates: EtcdEndpointUpdates(initial: [], responses: responses()))
        let (readLists, listHops) = try await CountingReader().readAll(lists)
        // The empty list first (there was no initial batch), then one list per change.
        #expect(readLists == Self.count + 1)
        #expect(listHops == 0, "the reader left its actor and came back \(listHops) times")
    }

    @Test("election leaders")
    func electionLeaders() async throws {
        let buffer = ResponseBuffer<EtcdKeyValue>(limit: nil)
        var kv = Mvccpb_KeyValue()
        kv.key = Data("election/leader".utf8)
        for index in 0..<Self.count {
            kv.value = Data("candidate \(index)".utf8)
            _ = buffer.push(EtcdKeyValue(kv))
        }
        buffer.finish()
        let (read, hops) = try await CountingReader().readAll(EtcdElectionLeaders(buffer: buffer))
        #expect(read == Self.count)
        #expect(hops == 0, "the reader left its actor and came back \(hops) times")
    }

    static func watchResponse(events: [Mvccpb_Event]) -> EtcdWatchResponse {
        EtcdWatchResponse(header: Etcdserverpb_ResponseHeader(), events: events, created: false)
    }
}

/// A serial executor that counts the jobs it is given: each is a task arriving on its actor, or
/// coming back to it after an `await` left it.
private final class CountingExecutor: SerialExecutor {
    private let queue = DispatchQueue(label: "counting-executor")
    let jobs = Atomic<Int>(0)

    func enqueue(_ job: consuming ExecutorJob) {
        self.jobs.add(1, ordering: .relaxed)
        let job = UnownedJob(job)
        self.queue.async { job.runSynchronously(on: self.asUnownedSerialExecutor()) }
    }
}

private actor CountingReader {
    private let executor = CountingExecutor()
    nonisolated var unownedExecutor: UnownedSerialExecutor { self.executor.asUnownedSerialExecutor() }

    /// Reads `sequence` to its end on this actor: how many elements, and how many times the task came
    /// back to the actor through its executor meanwhile.
    func readAll(_ sequence: some AsyncSequence & Sendable) async throws -> (read: Int, hops: Int) {
        let before = self.executor.jobs.load(ordering: .relaxed)
        var read = 0
        for try await _ in sequence { read += 1 }
        return (read, self.executor.jobs.load(ordering: .relaxed) - before)
    }

    /// Watches a prefix from this actor, puts `count` keys under it one by one (each its own
    /// response), then reads their events: how many, and how many times the task came back to the
    /// actor through its executor while reading.
    func watchAfterPuts(_ client: EtcdClient, count: Int) async throws -> (events: Int, hops: Int) {
        try await client.watch("isolation/", options: .prefix) { responses in
            for index in 0..<count { try await client.put("isolation/\(index)", value: "v") }
            let before = self.executor.jobs.load(ordering: .relaxed)
            var events = 0
            for try await response in responses {
                events += response.events.count
                if events >= count { break }
            }
            return (events, self.executor.jobs.load(ordering: .relaxed) - before)
        }
    }
}
