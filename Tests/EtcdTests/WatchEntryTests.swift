// SPDX-License-Identifier: Apache-2.0
import EtcdAPI
import FoundationEssentials
import NIOCore
import SwiftProtobuf
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

    @Test("the watch ID of a response is read from its first bytes: after the header, absent when 0, -1 for progress")
    func watchIDFromStart() throws {
        func start(_ response: Etcdserverpb_WatchResponse) throws -> ByteBuffer {
            let bytes: [UInt8] = try response.serializedBytes()
            return ByteBuffer(bytes: bytes.prefix(StreamCall.oversizeStart))
        }
        var response = Etcdserverpb_WatchResponse()
        response.header.clusterID = .max
        response.header.memberID = 0x1234_5678_9abc
        response.header.revision = 1 << 40
        response.header.raftTerm = 7
        response.watchID = 42
        var event = Mvccpb_Event()
        event.kv.key = Data("big".utf8)
        event.kv.value = Data(repeating: 0x62, count: 4096)
        response.events = [event]
        #expect(WatchStream.watchID(startOf: try start(response)) == 42)
        response.watchID = -1
        #expect(WatchStream.watchID(startOf: try start(response)) == -1)
        response.watchID = 0
        #expect(WatchStream.watchID(startOf: try start(response)) == 0)
        #expect(WatchStream.watchID(startOf: ByteBuffer(bytes: [0x0a, 0x40, 1, 2])) == nil, "a cut header")
        #expect(WatchStream.watchID(startOf: ByteBuffer(bytes: [0x15, 0, 0, 0, 0])) == nil, "field 2 not a varint")
    }
}
