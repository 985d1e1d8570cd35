// SPDX-License-Identifier: Apache-2.0
import Synchronization
import Testing

@testable import Etcd

@Suite("Response buffer", .timeLimit(.minutes(1)))
struct ResponseBufferTests {
    @Test("with a cost per element, the buffer is full at its limit of cost, and drained once read down to half")
    func costLimit() async throws {
        let drained = Atomic(0)
        let buffer = ResponseBuffer<Int>(limit: 100, cost: { $0 }, onDrained: { drained.add(1, ordering: .relaxed) })
        #expect(buffer.push(40))
        #expect(!buffer.push(70), "110 of 100: full")
        #expect(!buffer.push(1), "still full")
        #expect(try await buffer.next() == 40)
        #expect(drained.load(ordering: .relaxed) == 0, "71 left: more than half")
        #expect(try await buffer.next() == 70)
        #expect(drained.load(ordering: .relaxed) == 1, "1 left")
        #expect(try await buffer.next() == 1)
        #expect(drained.load(ordering: .relaxed) == 1, "once per time it filled")
        #expect(buffer.push(99))
    }

    @Test("one element costing more than the limit fills the buffer, and reading it drains it")
    func oversizedElement() async throws {
        let drained = Atomic(0)
        let buffer = ResponseBuffer<Int>(limit: 100, cost: { $0 }, onDrained: { drained.add(1, ordering: .relaxed) })
        #expect(!buffer.push(500))
        #expect(try await buffer.next() == 500)
        #expect(drained.load(ordering: .relaxed) == 1, "a producer waiting for room would otherwise wait forever")
    }

    @Test("without a cost the limit counts elements")
    func countLimit() async throws {
        let drained = Atomic(0)
        let buffer = ResponseBuffer<Int>(limit: 4, onDrained: { drained.add(1, ordering: .relaxed) })
        #expect(buffer.push(1000) && buffer.push(1000) && buffer.push(1000))
        #expect(!buffer.push(1000))
        _ = try await buffer.next()
        #expect(drained.load(ordering: .relaxed) == 0)
        _ = try await buffer.next()
        #expect(drained.load(ordering: .relaxed) == 1)
    }
}
