// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// Responses a stream has received but its consumer has not read yet.
///
/// With a `limit` (watches), ``push(_:)`` reports when the buffer is full so the producer can stop
/// the server sending (a watch is suspended, so memory stays bounded and the shared stream keeps
/// flowing for other watches; the watch stream's own messages hold back its flow-control window);
/// when the consumer has read it down to half, `onDrained` lets the producer resume. Without a
/// limit (lease keepalives, which arrive every TTL/3, and election leaders) nothing is ever
/// refused. Nothing is dropped either way.
package final class ResponseBuffer<Element: Sendable>: Sendable {
    private struct State {
        var items: [Element] = []
        var head = 0
        /// The cost of the unread items.
        var cost = 0
        var end: Result<Void, any Error>?
        /// The consumer waiting in ``next()``. Whoever takes it out under the lock resumes it, so it
        /// is resumed exactly once (an unsafe continuation: a checked one costs an allocation per wait).
        var waiter: UnsafeContinuation<Element?, any Error>?
        var suspended = false
    }
    private let state = Mutex(State())
    let limit: Int
    private let cost: @Sendable (Element) -> Int
    private let onDrained: @Sendable () -> Void

    /// - Parameters:
    ///   - limit: the cost of unread responses at which ``push(_:)`` returns `false`; nil for none.
    ///   - cost: what one response counts towards `limit` (1 unless given: the limit is a count).
    package init(
        limit: Int?, cost: @escaping @Sendable (Element) -> Int = { _ in 1 },
        onDrained: @escaping @Sendable () -> Void = {}
    ) {
        self.limit = max(limit ?? .max, 2)
        self.cost = cost
        self.onDrained = onDrained
    }

    /// Hands a response to the consumer; returns `false` when the buffer is now full and the watch must be suspended.
    package func push(_ response: Element) -> Bool {
        let (waiter, full) = self.state.withLock {
            state -> (UnsafeContinuation<Element?, any Error>?, Bool) in
            guard state.end == nil else { return (nil, false) }
            if let waiter = state.waiter {
                state.waiter = nil
                return (waiter, false)
            }
            state.items.append(response)
            state.cost += self.cost(response)
            let full = state.cost >= self.limit
            if full { state.suspended = true }
            return (nil, full)
        }
        waiter?.resume(returning: response)
        return !full
    }

    /// Ends the sequence after the buffered responses: normally, or with `error`.
    package func finish(throwing error: (any Error)? = nil) {
        let waiter = self.state.withLock { state -> UnsafeContinuation<Element?, any Error>? in
            guard state.end == nil else { return nil }
            state.end = error.map { .failure($0) } ?? .success(())
            defer { state.waiter = nil }
            return state.head == state.items.count ? state.waiter : nil
        }
        if let error { waiter?.resume(throwing: error) } else { waiter?.resume(returning: nil) }
    }

    var isFinished: Bool { self.state.withLock { $0.end != nil } }

    private enum Step {
        case item(Element, drained: Bool)
        case end(Result<Void, any Error>)
        case wait
    }

    /// Takes the first unread item (there is one); `drained` when a full buffer is now read down to
    /// half, once per time it filled.
    private func take(_ state: inout State) -> (Element, drained: Bool) {
        let item = state.items[state.head]
        state.head += 1
        state.cost -= self.cost(item)
        if state.head == state.items.count {
            state.items.removeAll(keepingCapacity: true)
            state.head = 0
        } else if state.head > 64 && state.head * 2 > state.items.count {
            state.items.removeFirst(state.head)
            state.head = 0
        }
        var drained = false
        if state.suspended && state.cost <= self.limit / 2 {
            state.suspended = false
            drained = true
        }
        return (item, drained)
    }

    /// The next response, waiting for one if none is buffered; nil once the sequence has ended.
    ///
    /// It runs on the caller's executor: a consumer on an actor takes buffered responses without
    /// leaving the actor, and one that waited is resumed straight onto it.
    nonisolated(nonsending) package func next() async throws -> Element? {
        let step = self.state.withLock { state -> Step in
            if state.head < state.items.count {
                let (item, drained) = self.take(&state)
                return .item(item, drained: drained)
            }
            if let end = state.end { return .end(end) }
            return .wait
        }
        switch step {
        case .item(let item, let drained):
            if drained { self.onDrained() }
            return item
        case .end(let end):
            try end.get()
            return nil
        case .wait:
            break
        }
        try Task.checkCancellation()
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                let (immediate, drained) = self.state.withLock {
                    state -> (Result<Element?, any Error>?, Bool) in
                    if state.head < state.items.count {
                        // Raced with a push: take it now. Pushes may have filled the buffer
                        // meanwhile, so this take may be the one that drains it.
                        let (item, drained) = self.take(&state)
                        return (.success(item), drained)
                    }
                    if let end = state.end { return (end.map { nil }, false) }
                    if Task.isCancelled { return (.failure(CancellationError()), false) }
                    state.waiter = continuation
                    return (nil, false)
                }
                if drained { self.onDrained() }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let waiter = self.state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
