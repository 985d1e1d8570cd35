// SPDX-License-Identifier: Apache-2.0
import EtcdAPI
import Testing

@testable import Etcd

@Suite("Watch entry", .timeLimit(.minutes(1)))
struct WatchEntryTests {
    @Test(
        "a wait for the server's confirmation that begins only after the caller stopped waiting returns at once"
    )
    func lateWaitEnds() async throws {
        // watch()'s timer (due at once under a deadline already passed) or its task's cancellation
        // (onCancel runs first when the task is already cancelled) can end the wait before
        // watch() has begun it.
        let entry = WatchEntry(
            request: Etcdserverpb_WatchCreateRequest(), createdNotify: false, bufferLimit: 16, onDrained: {})
        entry.stopWaitingForCreation()
        let returned = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await entry.waitUntilCreated()
                return true
            }
            group.addTask {
                // The bound: a wait that missed its wake-up would never return.
                try? await Task.sleep(for: .seconds(5))
                return false
            }
            let first = await group.next() ?? false
            // Let a missed wait end too, so that the group can finish and the test report it.
            entry.finish(throwing: nil)
            group.cancelAll()
            return first
        }
        #expect(returned, "the wait began after stopWaitingForCreation() and was never woken")
    }
}
