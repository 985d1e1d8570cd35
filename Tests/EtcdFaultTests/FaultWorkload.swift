// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Foundation
import Synchronization
import Testing

/// What a workload saw during a fault, for the assertions and the summary line.
struct FaultRecord: Sendable {
    var operations = 0
    var errors: [String: Int] = [:]
    /// Errors that were not `EtcdClientError` (everything should be typed).
    var untyped: [String] = []
    /// Calls that ended later than their deadline plus a second.
    var late: [String] = []
    /// Guarded creates answered "already there": the client sent a write twice.
    var appliedTwice: [String] = []
    /// Keys whose creation was acknowledged.
    var acknowledged: [String] = []
}

/// A mixed workload over one client: guarded creates, linearizable reads, 20 watches and 20 kept
/// leases, recording everything the fault suite asserts.
final class FaultWorkload: Sendable {
    static let writers = 4
    static let deadline = Duration.seconds(2)

    let client: EtcdClient
    let record = Mutex(FaultRecord())
    /// Events seen by each watch: (key, revision).
    private let watched = Mutex([[(String, Int64)]](repeating: [], count: 20))
    let leases: Mutex<[EtcdLease]> = Mutex([])
    /// Every operation on the registers `r/0`...`r/2`, for the linearizability check.
    let history: Mutex<[EtcdRegisterOperation]> = Mutex([])
    static let registers = 3

    init(client: EtcdClient) {
        self.client = client
    }

    /// Runs the writers and the reader until the task is cancelled.
    func run() async {
        await withDiscardingTaskGroup { group in
            for worker in 0..<Self.writers {
                group.addTask { await self.write(worker) }
            }
            group.addTask { await self.read() }
            for worker in 0..<Self.registers {
                group.addTask { await self.useRegisters(worker) }
            }
        }
    }

    /// Grants 20 leases of `ttl` seconds kept alive by the client.
    func keepLeases(ttl: Int64) async throws {
        for _ in 0..<20 {
            let grant = try await self.client.grant(ttl: ttl)
            let lease = try self.client.keepAliveInBackground(grant.id)
            self.leases.withLock { $0.append(lease) }
        }
    }

    private func write(_ worker: Int) async {
        var sequence = 0
        while !Task.isCancelled {
            let key = "f/\(worker)/\(String(format: "%06d", sequence))"
            sequence += 1
            await self.call(key) {
                let response = try await self.client.txn(if: [.keyMissing(key)], then: [.put(key, value: "v")])
                self.record.withLock { record in
                    if response.succeeded { record.acknowledged.append(key) } else { record.appliedTwice.append(key) }
                }
            }
        }
    }

    private func read() async {
        while !Task.isCancelled {
            guard let key = self.record.withLock({ $0.acknowledged.randomElement() }) else {
                try? await Task.sleep(for: .milliseconds(10))  // nothing written yet: pace the loop
                continue
            }
            await self.call("get \(key)") {
                let value = try await self.client.get(key).kvs.first?.valueString
                if value != "v" {
                    self.record.withLock { $0.untyped.append("acknowledged \(key) read as \(value ?? "nothing")") }
                }
            }
        }
    }

    /// Writes unique values to and reads the registers, recording each operation's interval and outcome.
    private func useRegisters(_ worker: Int) async {
        var sequence = 0
        while !Task.isCancelled {
            let key = "r/\(Int.random(in: 0..<Self.registers))"
            sequence += 1
            let call = ContinuousClock.now
            if Bool.random() {
                let value = "\(worker)-\(sequence)"
                let ok = await self.call("put \(key)") { try await self.client.put(key, value: value) }
                // A write cut off by the end of the workload is of unknown outcome too.
                let end: ContinuousClock.Instant? = ok ? .now : nil
                self.history.withLock { $0.append(.init(key: key, kind: .write(value), call: call, return: end)) }
            } else {
                let value = Mutex<String?>(nil)
                let ok = await self.call("get \(key)") {
                    let read = try await self.client.get(key).kvs.first?.valueString
                    value.withLock { $0 = read }
                }
                let end = ContinuousClock.now
                // A failed read tells nothing.
                if ok {
                    self.history.withLock {
                        $0.append(.init(key: key, kind: .read(value.withLock { $0 }), call: call, return: end))
                    }
                }
            }
        }
    }

    /// One call with the suite's deadline, classified; returns whether it succeeded.
    @discardableResult
    private func call(_ what: String, _ body: @escaping @Sendable () async throws -> Void) async -> Bool {
        let start = ContinuousClock.now
        var ok = false
        do {
            try await withEtcdTimeout(Self.deadline) { try await body() }
            ok = true
        } catch is CancellationError {
            return false
        } catch let error as EtcdClientError {
            self.record.withLock { $0.errors["\(error.code)", default: 0] += 1 }
        } catch {
            if Task.isCancelled { return false }
            self.record.withLock { $0.untyped.append("\(what): \(error)") }
        }
        let elapsed = ContinuousClock.now - start
        self.record.withLock { record in
            record.operations += 1
            if elapsed > Self.deadline + .seconds(1) { record.late.append("\(what) took \(elapsed)") }
        }
        return ok
    }

    /// Runs watch `index` (of 20) from `revision` until the task is cancelled.
    func watch(_ index: Int, from revision: Int64) async {
        let prefix = "f/\(index % Self.writers)/"
        do {
            try await self.client.watch(prefix, options: [.prefix, .revision(revision)]) { responses in
                for try await response in responses {
                    let events = response.events.map { ($0.kv.keyString, $0.kv.modRevision) }
                    self.watched.withLock { $0[index] += events }
                }
            }
        } catch is CancellationError {
        } catch {
            if !Task.isCancelled { self.record.withLock { $0.untyped.append("watch \(index) ended: \(error)") } }
        }
    }

    /// What watch `index` has seen so far.
    func seen(_ index: Int) -> [(String, Int64)] { self.watched.withLock { $0[index] } }

    /// What each watch must have seen: every key under its prefix, in revision order (keys are
    /// created once and never changed).
    func expectedEvents(_ index: Int) async throws -> [(String, Int64)] {
        let response = try await self.client.get(
            "f/\(index % Self.writers)/", options: [.prefix, .paged(pageSize: 1000)])
        return response.kvs.map { ($0.keyString, $0.createRevision) }.sorted { $0.1 < $1.1 }
    }
}
