// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// Something that happens once, which tasks can wait for: ``signal()`` wakes every waiting task,
/// and a wait that begins afterwards returns at once.
package final class OneTimeEvent: Sendable {
    private struct State {
        var happened = false
        var nextToken = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }
    private let state = Mutex(State())

    package init() {}

    /// Records that the event happened and wakes every task waiting for it.
    package func signal() {
        let waiters = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.happened = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns when the event has happened, or when the waiting task is cancelled (without throwing).
    package func wait() async {
        let token = self.state.withLock { state in
            defer { state.nextToken += 1 }
            return state.nextToken
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = self.state.withLock { state -> Bool in
                    if state.happened || Task.isCancelled { return true }
                    state.waiters[token] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = self.state.withLock { $0.waiters.removeValue(forKey: token) }
            waiter?.resume()
        }
    }

    /// Returns when the event has happened or `deadline` has passed, whichever comes first, or when
    /// the waiting task is cancelled.
    package func wait(until deadline: ContinuousClock.Instant) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.wait() }
            group.addTask { try? await Task.sleep(until: deadline) }
            await group.next()
            group.cancelAll()
        }
    }
}
