// SPDX-License-Identifier: Apache-2.0
public import Etcd
import EtcdAPI
public import FoundationEssentials
import Synchronization

/// Runs `body` with a leasing KV: a KV that serves repeated linearizable gets of a key from memory
/// while it holds that key's lease, and stays coherent with every other leasing KV on the same
/// `prefix` (Go's `leasing.NewKV`, same protocol and key layout, so Go and Swift clients share it).
///
/// ```swift
/// try await withEtcdLeasingKV(client: etcd, prefix: "leasing/") { kv in
///     _ = try await kv.get("config/feature")   // acquires the key's lease: from etcd
///     _ = try await kv.get("config/feature")   // from memory
/// }
/// ```
///
/// How it works: the first get of a key records ownership under `prefix + key`, attached to this
/// client's session lease, and caches the value. A leasing KV that wants to write a key another one
/// owns first asks it to give the key up (by writing `REVOKE` to the ownership key) and waits until
/// the owner has dropped its copy and deleted the ownership key; only then does its write go
/// through. So a cached value is never served after a write by another leasing KV, or by this one,
/// has completed; a get whose answer arrives around such a write does not cache it.
///
/// Writes by clients that do not use a leasing KV on the same prefix bypass the protocol, and
/// their changes are not seen by owners until the key is revoked: as in Go, every writer of leased
/// keys must go through a leasing KV. Keys attached to a lease are never cached (they can vanish
/// without a write).
///
/// A key this client gave up to a writer is read through, not acquired again, for `revokeBackoff`
/// (two seconds, as in Go; zero for none), so that a key written often does not change owner on
/// every read.
///
/// Ownership keys are attached to a session lease of `ttl` seconds, kept alive in the background.
/// If it is lost (no renewal was answered before its deadline, or etcd revoked it: this client hears
/// of that at its next renewal or acquisition), the copies are dropped and a new session lease is
/// granted, as Go's leasing KV does; gets read through to etcd meanwhile. Leaving `body` revokes the
/// session lease, which deletes every ownership key.
///
/// `prefix` must be one no other keys live under: writes through the leasing KV to keys under it
/// are refused, and other clients' writes there would change ownership records.
///
/// - Throws: `EtcdClientError` `invalidArgument` for an empty prefix (a key would be its own
///   ownership key); the error of the first session lease's grant; whatever `body` throws.
@discardableResult
public func withEtcdLeasingKV<Result: Sendable>(
    client: EtcdClient,
    prefix: some EtcdBytes,
    ttl: Int64 = 60,
    revokeBackoff: Duration = .seconds(2),
    _ body: (EtcdLeasingKV) async throws -> Result
) async throws -> Result {
    guard !prefix.etcdData.isEmpty else {
        throw EtcdClientError(
            code: .invalidArgument,
            message: "a leasing KV needs a prefix for its ownership keys, such as \"leasing/\", that no other keys use")
    }
    let kv = EtcdLeasingKV(client: client, prefix: prefix.etcdData, ttl: ttl, revokeBackoff: revokeBackoff)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        // Cancelling the session task revokes its lease; the group waits for that.
        defer { group.cancelAll() }
        try await kv.start(group: &group)
        let result = try await body(kv)
        kv.stop()
        return result
    }
}

/// A caching KV view; see ``withEtcdLeasingKV(client:prefix:ttl:revokeBackoff:_:)``.
public final class EtcdLeasingKV: Sendable {
    /// The client underneath.
    public let client: EtcdClient
    /// Where ownership keys live: `prefix + key`.
    public let prefix: Data
    /// The TTL of the session leases, in seconds.
    let ttl: Int64
    /// Where the ownership keys end: the key after every key under `prefix`.
    private let ownersEnd: Data
    /// How long a key this client gave up is read through rather than acquired again (Go's
    /// `revokeBackoff`), so that a key written often does not change owner on every read.
    let revokeBackoff: Duration

    private struct Entry {
        /// The cached answer: the key-value, or none when the key does not exist.
        var response: EtcdGetResponse
        /// The create revision of this client's ownership key.
        var ownership: Int64
    }
    private struct State {
        var entries: [Data: Entry] = [:]
        /// The session lease; nil until the first is granted.
        var lease: EtcdLease?
        var lost = false
        var stopped = false
        /// The session lease's ID, 0 before the first.
        var leaseID: Int64 { self.lease?.id ?? 0 }
        /// Counts writes that completed and revocations this client gave in to. A get caches its
        /// answer only if this did not change while the answer was on its way: the write may have
        /// come after the answer was read and before it was cached, where nothing else would drop it.
        var invalidations: UInt64 = 0
        /// When this client last gave each key up, for the keys given up within `revokeBackoff`.
        var revoked: [Data: ContinuousClock.Instant] = [:]
    }
    private let state = Mutex(State())
    private let cacheHits = Atomic<Int>(0)

    init(client: EtcdClient, prefix: Data, ttl: Int64, revokeBackoff: Duration) {
        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        self.revokeBackoff = revokeBackoff
        self.ownersEnd = EtcdKeys.prefixEnd(prefix)
    }

    /// How many gets and transactions were answered from memory (for tests and metrics).
    public var cachedReads: Int { self.cacheHits.load(ordering: .relaxed) }

    /// Starts the session and the watch for revocations of this client's keys; returns once the
    /// first session lease is granted and the watch is in place.
    func start(group: inout ThrowingTaskGroup<Void, any Error>) async throws {
        let start = try await self.client.get(self.prefix, options: [.prefix, .countOnly]).header.revision
        let (sessions, session) = AsyncStream.makeStream(of: (any Error)?.self)
        group.addTask { try await self.keepSessions(announce: session) }
        var first: (any Error)??
        for await outcome in sessions {
            first = outcome
            break
        }
        guard let first else { throw CancellationError() }  // ended unannounced: cancelled
        if let error = first { throw error }
        group.addTask {
            // Revocation requests: REVOKE written to an ownership key that carries our lease.
            try await self.client.watch(self.prefix, options: [.prefix, .revision(start + 1)]) { responses in
                for try await response in responses {
                    for event in response.events where event.type == .put && event.kv.valueString == "REVOKE" {
                        guard event.kv.lease == self.state.withLock({ $0.leaseID }) else { continue }
                        let key = Data(event.kv.keyData.dropFirst(self.prefix.count))
                        try await self.rescind(key, revision: event.kv.modRevision)
                    }
                }
            }
        }
    }

    /// Holds one session lease at a time until cancelled (Go's `monitorSession`): when one is lost,
    /// the copies go, and a new lease is granted. Announces the first grant (`nil`) or why it failed,
    /// which ends this.
    private func keepSessions(announce: AsyncStream<(any Error)?>.Continuation) async throws {
        defer { announce.finish() }
        var announced = false
        while true {
            do {
                try await self.client.withLease(ttl: self.ttl) { lease in
                    self.state.withLock { state in
                        state.lease = lease
                        state.lost = false
                    }
                    if !announced {
                        announce.yield(nil)
                        announced = true
                    }
                    // A lost session means lost ownership: stop serving from memory.
                    _ = try await lease.waitUntilLost()
                    self.state.withLock { state in
                        state.lost = true
                        state.entries = [:]
                        state.invalidations &+= 1
                    }
                }
            } catch let error where !(error is CancellationError) && !Task.isCancelled {
                guard announced else {
                    announce.yield(error)
                    return
                }
                // No new lease (etcd unreachable, say): gets read through meanwhile; try again.
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    func stop() {
        self.state.withLock { state in
            state.stopped = true
            state.entries = [:]
        }
    }

    /// Drops the cached key and deletes its ownership key, so the waiting writer can go ahead.
    private func rescind(_ key: Data, revision: Int64) async throws {
        self.state.withLock { state in
            state.entries[key] = nil
            state.invalidations &+= 1
            let now = ContinuousClock.now
            state.revoked = state.revoked.filter { now - $0.value < self.revokeBackoff }
            state.revoked[key] = now
        }
        try await self.client.txn(
            if: [.createRevision(self.prefix + key) < revision], then: [.delete(self.prefix + key)])
    }

    private var usable: (leaseID: Int64, ok: Bool) {
        let (lease, ok) = self.state.withLock { state in (state.lease, !state.lost && !state.stopped) }
        guard let lease else { return (0, false) }
        // Past the lease's deadline, etcd may have released the keys: the task that marks the
        // session lost may not have run yet.
        return (lease.id, ok && lease.state != .lost)
    }

    /// Reads a key. A get of one key at the latest revision is answered from memory while this
    /// client owns the key (with its options applied: `countOnly`, `keysOnly`, the revision bounds),
    /// and a linearizable one acquires ownership otherwise; other gets (ranges, past revisions) go to
    /// etcd.
    public func get(_ key: some EtcdBytes, options: EtcdGetOptions = []) async throws -> EtcdGetResponse {
        let key = key.etcdData
        let (leaseID, ok) = self.usable
        let request = try EtcdRequests.range(key: key, options: options)
        guard ok, request.rangeEnd.isEmpty, request.revision == 0 else {
            return try await self.client.get(key, options: options)
        }
        if let cached = self.state.withLock({ $0.entries[key] }) {
            self.cacheHits.add(1, ordering: .relaxed)
            return Self.answer(request, from: cached.response)
        }
        let (backingOff, invalidations) = self.state.withLock { state in
            (state.revoked[key].map { ContinuousClock.now - $0 < self.revokeBackoff } ?? false, state.invalidations)
        }
        if request.serializable || backingOff { return try await self.client.get(key, options: options) }
        // Acquire: record ownership unless someone owns the key, or the key is attached to a lease.
        let owner = self.prefix + key
        let response: EtcdTxnResponse
        do {
            response = try await self.client.txn(
                if: [.createRevision(owner) == 0, .lease(key) == 0],
                then: [.get(key), .put(owner, value: "", options: .lease(leaseID))],
                else: [.get(key), .get(owner)]
            )
        } catch let error as EtcdClientError where error.code == .leaseNotFound {
            // The session lease ended (revoked by another client, say) before this client heard of
            // it at its next renewal, when the session task takes a new one. Its copies are owned
            // no more: drop them now, and read through meanwhile.
            self.state.withLock { state in
                guard state.leaseID == leaseID else { return }
                state.lost = true
                state.entries = [:]
                state.invalidations &+= 1
            }
            return try await self.client.get(key, options: options)
        }
        var value = try Self.require(response.responses.first?.get)
        value.header = response.header
        var ownership: Int64?
        if response.succeeded {
            ownership = response.header.revision
        } else if let existing = response.responses[1].get?.kvs.first, existing.lease == leaseID,
            existing.valueString != "REVOKE"
        {
            ownership = existing.createRevision
        }
        if let ownership {
            self.state.withLock { state in
                if !state.lost && !state.stopped && state.leaseID == leaseID && state.invalidations == invalidations {
                    state.entries[key] = Entry(response: value, ownership: ownership)
                }
            }
        }
        return Self.answer(request, from: value)
    }

    /// etcd's answer to `request`, a get of one key at the latest revision, made from the answer to
    /// a plain get of that key (Go's `leaseKey.get`). As etcd does, the revision bounds leave the
    /// key out but not its count.
    private static func answer(_ request: Etcdserverpb_RangeRequest, from plain: EtcdGetResponse) -> EtcdGetResponse {
        var answer = plain
        guard var kv = plain.kvs.first?.proto else { return answer }
        let excluded =
            request.countOnly || (request.minModRevision != 0 && kv.modRevision < request.minModRevision)
            || (request.maxModRevision != 0 && kv.modRevision > request.maxModRevision)
            || (request.minCreateRevision != 0 && kv.createRevision < request.minCreateRevision)
            || (request.maxCreateRevision != 0 && kv.createRevision > request.maxCreateRevision)
        if excluded {
            answer.kvs = []
        } else if request.keysOnly {
            kv.value = Data()
            answer.kvs = [EtcdKeyValue(kv)]
        }
        return answer
    }

    /// Writes a key, first making any other leasing KV that owns it give it up.
    @discardableResult
    public func put(_ key: some EtcdBytes, value: some EtcdBytes, options: EtcdPutOptions = []) async throws
        -> EtcdPutResponse
    {
        let key = key.etcdData
        let request = try EtcdRequests.put(key: key, value: value.etcdData, options: options)
        try self.checkWrite(Written(key: key))
        let response = try await self.modify(key, .put(key, value: value, options: options))
        let put = try Self.require(response.responses.first?.put)
        self.state.withLock { state in
            state.invalidations &+= 1
            // A copy newer than this write (from a write of this client's that overtook it) stays.
            guard var entry = state.entries[key], entry.response.header.revision < response.header.revision else {
                return
            }
            if request.lease != 0 || request.ignoreValue || request.ignoreLease {
                // Attached to a lease (it may vanish without a write), or a value we do not know: stop caching it.
                state.entries[key] = nil
                return
            }
            let previous = entry.response.kvs.first
            var proto = Mvccpb_KeyValue()
            proto.key = key
            proto.value = value.etcdData
            proto.createRevision = previous?.createRevision ?? response.header.revision
            proto.modRevision = response.header.revision
            proto.version = (previous?.version ?? 0) + 1
            entry.response.kvs = [EtcdKeyValue(proto)]
            entry.response.count = 1
            entry.response.header = response.header
            state.entries[key] = entry
        }
        var result = put
        result.header = response.header
        return result
    }

    /// Deletes a key or a range, first making other leasing KVs give up the keys they own in it.
    @discardableResult
    public func delete(_ key: some EtcdBytes, options: EtcdDeleteOptions = []) async throws -> EtcdDeleteResponse {
        let key = key.etcdData
        let request = try EtcdRequests.deleteRange(key: key, options: options)
        try self.checkWrite(Written(key: request.key, rangeEnd: request.rangeEnd))
        if request.rangeEnd.isEmpty {
            let response = try await self.modify(key, .delete(key, options: options))
            self.state.withLock { state in
                state.invalidations &+= 1
                // As for a put: a newer copy stays.
                guard var entry = state.entries[key], entry.response.header.revision < response.header.revision else {
                    return
                }
                entry.response.kvs = []
                entry.response.count = 0
                entry.response.header = response.header
                state.entries[key] = entry
            }
            var result = try Self.require(response.responses.first?.delete)
            result.header = response.header
            return result
        }
        // A range: revoke every other owner in it, then delete while no new owner appeared.
        while true {
            let unowned = try await self.revokeOwners(from: request.key, to: request.rangeEnd)
            let response = try await self.client.txn(if: [unowned], then: [.delete(key, options: options)])
            if response.succeeded {
                self.state.withLock { state in
                    state.invalidations &+= 1
                    for cached in state.entries.keys where Self.inRange(cached, request.key, request.rangeEnd) {
                        state.entries[cached] = nil
                    }
                }
                var result = try Self.require(response.responses.first?.delete)
                result.header = response.header
                return result
            }
        }
    }

    /// Runs a transaction: every key it may write (each key it puts or deletes, each range it
    /// deletes) is first given up by other owners, and the transaction commits only while no new
    /// owner appeared; this client's copies of those keys are dropped. A transaction that writes
    /// nothing is answered from memory when this client owns every key it compares and reads
    /// (plain keys at the latest revision), and goes to etcd otherwise.
    @discardableResult
    public func txn(if compares: [EtcdCompare], then: [EtcdOp], else otherwise: [EtcdOp] = []) async throws
        -> EtcdTxnResponse
    {
        let request = try EtcdRequests.txn(compares: compares, then: then, else: otherwise)
        var written: [Written] = []
        Self.written(by: request.success + request.failure, into: &written)
        for range in written { try self.checkWrite(range) }
        if written.isEmpty {
            if let answer = self.answerFromMemory(request) {
                self.cacheHits.add(1, ordering: .relaxed)
                return answer
            }
            return try await self.client.txn(if: compares, then: then, else: otherwise)
        }
        while true {
            var guards: [EtcdCompare] = []
            for range in Set(written) { guards.append(try await self.revokeOwners(from: range.key, to: range.end)) }
            // Guarded: if a new owner appeared meanwhile, nothing is applied and we try again.
            let response = try await self.client.txn(
                if: guards, then: [.txn(if: compares, then: then, else: otherwise)], else: [])
            if response.succeeded, let inner = response.responses.first?.txn {
                self.state.withLock { state in
                    state.invalidations &+= 1
                    for cached in state.entries.keys
                    where written.contains(where: { Self.inRange(cached, $0.key, $0.end) }) {
                        state.entries[cached] = nil
                    }
                }
                var result = inner
                result.header = response.header
                return result
            }
        }
    }

    /// etcd's answer to a transaction that writes nothing, made from memory when every key its
    /// compares and its branch's gets read is owned here (Go's `txnLeasing.eval`); nil otherwise.
    /// The copies are all current at once, so the answer is one consistent state; its header is the
    /// newest of theirs.
    private func answerFromMemory(_ request: Etcdserverpb_TxnRequest) -> EtcdTxnResponse? {
        guard self.usable.ok else { return nil }
        return self.state.withLock { state -> EtcdTxnResponse? in
            var header: EtcdResponseHeader?
            func cached(_ key: Data) -> EtcdGetResponse? {
                guard let response = state.entries[key]?.response else { return nil }
                if header.map({ $0.revision < response.header.revision }) ?? true { header = response.header }
                return response
            }
            var succeeded = true
            for compare in request.compare {
                guard compare.rangeEnd.isEmpty, let response = cached(compare.key),
                    let holds = Self.holds(compare, for: response.kvs.first?.proto)
                else { return nil }
                succeeded = succeeded && holds
            }
            var responses: [EtcdOpResponse] = []
            for op in succeeded ? request.success : request.failure {
                guard case .requestRange(let get) = op.request, get.rangeEnd.isEmpty, get.revision == 0,
                    let response = cached(get.key)
                else { return nil }
                responses.append(.get(Self.answer(get, from: response)))
            }
            guard let header else { return nil }
            var answer = EtcdTxnResponse(Etcdserverpb_TxnResponse())
            answer.header = header
            answer.succeeded = succeeded
            answer.responses = responses
            return answer
        }
    }

    /// Whether `compare` holds for `kv` (nil: the key does not exist), as etcd decides it; nil for
    /// a target or operator this client does not know.
    private static func holds(_ compare: Etcdserverpb_Compare, for kv: Mvccpb_KeyValue?) -> Bool? {
        let order: Int
        switch compare.target {
        case .value:
            // etcd fails a value compare on a missing key, whatever the operator.
            guard let kv else { return false }
            order = kv.value.lexicographicallyPrecedes(compare.value) ? -1 : (kv.value == compare.value ? 0 : 1)
        case .version: order = Self.order(kv?.version ?? 0, compare.version)
        case .create: order = Self.order(kv?.createRevision ?? 0, compare.createRevision)
        case .mod: order = Self.order(kv?.modRevision ?? 0, compare.modRevision)
        case .lease: order = Self.order(kv?.lease ?? 0, compare.lease)
        case .UNRECOGNIZED: return nil
        }
        switch compare.result {
        case .equal: return order == 0
        case .notEqual: return order != 0
        case .greater: return order > 0
        case .less: return order < 0
        case .UNRECOGNIZED: return nil
        }
    }

    private static func order(_ a: Int64, _ b: Int64) -> Int { a < b ? -1 : (a == b ? 0 : 1) }

    /// Makes every other leasing KV that owns a key in `[key, end)` give it up (`end` is `[0]` for
    /// every key from `key` on). Returns a compare that holds while nobody took ownership of a key
    /// in the range since.
    private func revokeOwners(from key: Data, to end: Data) async throws -> EtcdCompare {
        let ownersEnd = end == Data([0]) ? self.ownersEnd : self.prefix + end
        let owners = try await self.client.get(self.prefix + key, options: .range(end: ownersEnd))
        var newest: Int64 = 0
        for owner in owners.kvs {
            newest = max(newest, owner.createRevision)
            if owner.lease != self.usable.leaseID {
                try await self.revoke(Data(owner.keyData.dropFirst(self.prefix.count)))
            }
        }
        return EtcdCompare.createRevision(self.prefix + key).withRange(end: ownersEnd) < newest + 1
    }

    /// Asks the owner of `key` to give it up, and waits until its ownership key is deleted.
    private func revoke(_ key: Data) async throws {
        let owner = self.prefix + key
        let response = try await self.client.txn(
            if: [.createRevision(owner) == 0], then: [], else: [.put(owner, value: "REVOKE", options: .ignoreLease)])
        if response.succeeded { return }
        try await self.waitForDeletion(owner, after: response.header.revision)
    }

    /// Writes `op` (a put or delete of `key`) once no other leasing KV owns the key.
    private func modify(_ key: Data, _ op: EtcdOp) async throws -> EtcdTxnResponse {
        let owner = self.prefix + key
        while true {
            let ownership = self.state.withLock { $0.entries[key]?.ownership } ?? 0
            // Ours (created at `ownership`) or nobody's: write. Otherwise ask the owner to give it up.
            let response = try await self.client.txn(
                if: [.createRevision(owner) < ownership + 1],
                then: [op],
                else: [.put(owner, value: "REVOKE", options: .ignoreLease)]
            )
            if response.succeeded { return response }
            if ownership != 0 { self.state.withLock { _ = $0.entries.removeValue(forKey: key) } }
            try await self.waitForDeletion(owner, after: response.header.revision)
        }
    }

    private func waitForDeletion(_ owner: Data, after revision: Int64) async throws {
        // The owner may have deleted it already, before the watch starts; from the revision on, a
        // deletion is seen either way.
        try await self.client.watch(owner, options: .revision(revision)) { responses in
            for try await response in responses where response.events.contains(where: { $0.type == .delete }) {
                return
            }
        }
    }

    /// Refuses a write to keys under the prefix: they are the ownership records, which only the
    /// protocol may change.
    private func checkWrite(_ range: Written) throws(EtcdClientError) {
        let startsBeforeOwnersEnd =
            self.ownersEnd == Data([0]) || range.key.lexicographicallyPrecedes(self.ownersEnd)
        let endsAfterPrefix = range.end == Data([0]) || self.prefix.lexicographicallyPrecedes(range.end)
        guard startsBeforeOwnersEnd && endsAfterPrefix else { return }
        let prefix = String(decoding: self.prefix, as: UTF8.self)
        throw EtcdClientError(
            code: .invalidArgument,
            message: """
                the write covers keys under \(prefix), where the leasing KV keeps its ownership records; \
                write other keys, or narrow the range so that it ends at \(prefix) or starts after its keys
                """)
    }

    /// A key a write may change, as the range `[key, end)`.
    private struct Written: Hashable {
        var key: Data
        var end: Data

        /// One key.
        init(key: Data) { (self.key, self.end) = (key, key + [0]) }
        /// A request's key and range end (empty: the key alone).
        init(key: Data, rangeEnd: Data) { (self.key, self.end) = (key, rangeEnd.isEmpty ? key + [0] : rangeEnd) }
    }

    private static func written(by ops: [Etcdserverpb_RequestOp], into ranges: inout [Written]) {
        for op in ops {
            switch op.request {
            case .requestPut(let put): ranges.append(Written(key: put.key))
            case .requestDeleteRange(let delete): ranges.append(Written(key: delete.key, rangeEnd: delete.rangeEnd))
            case .requestTxn(let txn): Self.written(by: txn.success + txn.failure, into: &ranges)
            default: break
            }
        }
    }

    private static func require<T>(_ value: T?) throws -> T {
        guard let value else {
            throw EtcdClientError(
                code: .internalError, message: "etcd answered a transaction without the expected result")
        }
        return value
    }

    private static func inRange(_ key: Data, _ begin: Data, _ end: Data) -> Bool {
        !key.lexicographicallyPrecedes(begin) && (end == Data([0]) || key.lexicographicallyPrecedes(end))
    }
}
