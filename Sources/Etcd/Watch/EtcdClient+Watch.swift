// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI
import FoundationEssentials
import Logging
import NIOCore
import Synchronization

extension EtcdClient {
    /// Watches a key (or a range, with `.prefix`, `.fromKey` or `.range(end:)`) for the duration of `body`.
    ///
    /// `body` receives the watch's responses as an `AsyncSequence`; leaving `body`, or cancelling its
    /// task, cancels the watch on the server. `body` starts once the server has created the watch (or
    /// the dial timeout passed while no member could be reached), so every write made after that is
    /// seen.
    ///
    /// All watches of a client share one gRPC stream (one more for `.requireLeader` watches). When
    /// the stream or its member fails, every watch resumes on a healthy member from the revision
    /// after the last one it delivered: no event is lost, repeated or reordered. A watch whose next
    /// revision has been compacted meanwhile ends with `compacted` (see
    /// ``EtcdClientError/compactRevision``). ``shutdown()`` ends every watch's sequence.
    ///
    /// A response larger than ``Configuration/maxCallReceiveMessageSize`` ends this watch's sequence
    /// with `responseTooLarge` (the watch is cancelled on the server; the other watches go on); with
    /// `.fragment`, etcd splits a large revision's events into responses that fit.
    ///
    /// ```swift
    /// try await client.watch("config/", options: [.prefix, .prevKV]) { responses in
    ///     for try await response in responses {
    ///         for event in response.events { print(event.type, event.kv.keyString, event.kv.valueString) }
    ///     }
    /// }
    /// ```
    ///
    /// - Throws: ``EtcdClientError`` `emptyKey` or `invalidArgument` for a bad key or options, and
    ///   `requestTooLarge` for a key and range end over ``Configuration/maxCallSendMessageSize``, before
    ///   anything is sent; whatever `body` throws. The sequence throws `requestTooLarge` when the
    ///   server refuses the watch as too large for it.
    public func watch<Result: Sendable>(
        _ key: some EtcdBytes,
        options: EtcdWatchOptions = [],
        isolation: isolated (any Actor)? = #isolation,
        _ body: (EtcdWatchResponses) async throws -> Result
    ) async throws -> Result {
        try await self.watch(
            EtcdRequests.watchCreate(key: key.etcdData, options: options), options: options, transform: nil,
            isolation: isolation, body)
    }

    /// Watches with a built request; `transform` rewrites each response before the consumer sees it.
    func watch<Result: Sendable>(
        _ request: Etcdserverpb_WatchCreateRequest,
        options: EtcdWatchOptions,
        transform: (@Sendable (EtcdWatchResponse) -> EtcdWatchResponse)?,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (EtcdWatchResponses) async throws -> Result
    ) async throws -> Result {
        try self.checkNotShutDown()
        var wrapped = Etcdserverpb_WatchRequest()
        wrapped.createRequest = request
        try self.checkSendSize(wrapped, estimate: request.key.count + request.rangeEnd.count + 16, method: "Watch")
        self.logger.debug(
            "etcd watch opening", metadata: ["etcd_key": "\(String(decoding: request.key, as: UTF8.self))"])
        let stream = self.watcher.stream(
            requireLeader: options.requireLeader ?? EtcdRequireLeader.current, client: self)
        let resumer = WatchResumer()
        let entry = WatchEntry(
            request: request,
            createdNotify: options.createdNotify ?? false,
            bufferLimit: self.configuration.watchBufferSize,
            onDrained: { resumer.resume() }
        )
        resumer.set(stream: stream, entry: entry)
        stream.add(entry)
        // shutdown() ends the watches it finds; one added after it looked ends here instead.
        if self.isShutDown { entry.finish(throwing: nil) }
        self.metrics?.watchOpened()
        defer {
            stream.remove(entry)
            self.metrics?.watchClosed()
        }
        await self.waitUntilCreated(entry)
        return try await body(EtcdWatchResponses(buffer: entry.buffer, transform: transform))
    }

    /// Waits for the server to create the watch, at most the call deadline or the dial timeout.
    ///
    /// The bound is a timer on the client's event loop, not a task group with a sleeping child:
    /// the two child tasks per watch took 1.9 KB of memory per watch (`watch-scale`, 10,000
    /// watches: 8.7 against 6.9 KB, four runs each way). A timer no further off than the dial
    /// timeout is not cancelled when the server answers first (NIO cancels a scheduled task by
    /// searching all of them, and thousands of watches may be created at once): it fires, finds
    /// the wait over, and holds the entry weakly meanwhile. A later one (a long call deadline) is
    /// cancelled, so that such timers cannot pile up.
    private func waitUntilCreated(_ entry: WatchEntry) async {
        let limit = EtcdCallDeadline.current ?? (.now + self.configuration.dialTimeout)
        let delay = TimeAmount(max(ContinuousClock.now.duration(to: limit), Duration.zero))
        let timer = self.executor.eventLoop.scheduleTask(in: delay) { [weak entry] in
            entry?.stopWaitingForCreation()
        }
        await withTaskCancellationHandler {
            await entry.waitUntilCreated()
        } onCancel: {
            entry.stopWaitingForCreation()
        }
        if delay > TimeAmount(self.configuration.dialTimeout) { timer.cancel() }
    }

    /// Asks etcd for a progress notification on every watch stream (Go's `RequestProgress`, etcd 3.4+).
    ///
    /// Each watch receives a response with ``EtcdWatchResponse/isProgressNotify`` and the store's
    /// current revision in its header.
    public func requestProgress() async throws {
        var sent = false
        for stream in self.watcher.allStreams where stream.watchCount > 0 {
            sent = stream.requestProgress() || sent
        }
        if !sent && self.watcher.allStreams.contains(where: { $0.watchCount > 0 }) {
            throw EtcdClientError(code: .unavailable, message: "no watch stream is connected; try again")
        }
    }
}

/// Lets a watch's buffer resume the watch once its consumer has caught up.
final class WatchResumer: Sendable {
    private let target = Mutex<(WatchStream, WatchEntry)?>(nil)
    func set(stream: WatchStream, entry: WatchEntry) { self.target.withLock { $0 = (stream, entry) } }
    func resume() {
        guard let (stream, entry) = self.target.withLock({ $0 }) else { return }
        stream.resume(entry)
    }
}

extension EtcdRequests {
    package static func watchCreate(key: Data, options: EtcdWatchOptions) throws(EtcdClientError)
        -> Etcdserverpb_WatchCreateRequest
    {
        if let conflict = options.conflicts.first { throw Self.invalid(conflict) }
        let (key, end) = try Self.applyRange(key: key, range: options.range)
        var request = Etcdserverpb_WatchCreateRequest()
        request.key = key
        if let end { request.rangeEnd = end }
        if let revision = options.startRevision {
            if revision < 0 { throw Self.invalid("a watch's start revision must not be negative, got \(revision)") }
            request.startRevision = revision
        }
        request.prevKv = options.prevKV ?? false
        request.progressNotify = options.progressNotify ?? false
        request.fragment = options.fragment ?? false
        var filters: [Etcdserverpb_WatchCreateRequest.FilterType] = []
        if options.filterPut == true { filters.append(.noput) }
        if options.filterDelete == true { filters.append(.nodelete) }
        request.filters = filters
        return request
    }
}
