// SPDX-License-Identifier: Apache-2.0
import EtcdTesting
import Testing

/// The history checker of the fault suite, on histories whose verdict is known.
@Suite("Linearizability checker")
struct LinearizabilityCheckerTests {
    private let origin = ContinuousClock.now

    /// An operation on register "r" called at `call` ms and returned at `end` ms (nil: unknown outcome).
    private func op(_ kind: EtcdRegisterOperation.Kind, _ call: Int, _ end: Int?, key: String = "r")
        -> EtcdRegisterOperation
    {
        EtcdRegisterOperation(
            key: key, kind: kind, call: self.origin + .milliseconds(call),
            return: end.map { self.origin + .milliseconds($0) })
    }

    private func linearizable(_ history: [EtcdRegisterOperation]) -> Bool {
        do {
            try EtcdLinearizability.check(history)
            return true
        } catch {
            return false
        }
    }

    @Test("sequential histories: reads must see the latest write")
    func sequential() {
        #expect(self.linearizable([self.op(.read(nil), 0, 1), self.op(.write("a"), 2, 3), self.op(.read("a"), 4, 5)]))
        #expect(!self.linearizable([self.op(.write("a"), 0, 1), self.op(.read(nil), 2, 3)]))
        #expect(
            !self.linearizable([
                self.op(.write("a"), 0, 1), self.op(.write("b"), 2, 3), self.op(.read("a"), 4, 5),
            ]))
    }

    @Test("a read overlapping a write may see either value, but not the old one after the new")
    func overlapping() {
        #expect(
            self.linearizable([self.op(.write("a"), 0, 1), self.op(.write("b"), 10, 20), self.op(.read("a"), 11, 12)]))
        #expect(
            self.linearizable([self.op(.write("a"), 0, 1), self.op(.write("b"), 10, 20), self.op(.read("b"), 11, 12)]))
        // Once a read saw b, a later read cannot see a again.
        #expect(
            !self.linearizable([
                self.op(.write("a"), 0, 1), self.op(.write("b"), 10, 20), self.op(.read("b"), 11, 12),
                self.op(.read("a"), 13, 14),
            ]))
        // A read cannot see a value before its write was called.
        #expect(!self.linearizable([self.op(.read("a"), 0, 1), self.op(.write("a"), 2, 3)]))
    }

    @Test("a write of unknown outcome may apply at any time after its call, or never")
    func unknownOutcome() {
        #expect(self.linearizable([self.op(.write("a"), 0, nil), self.op(.read(nil), 5, 6)]))
        #expect(
            self.linearizable([self.op(.write("a"), 0, nil), self.op(.read(nil), 5, 6), self.op(.read("a"), 100, 101)]))
        // Applied, then seen, then not seen: no single instant explains that.
        #expect(
            !self.linearizable([
                self.op(.write("a"), 0, nil), self.op(.read("a"), 5, 6), self.op(.read(nil), 100, 101),
            ]))
        // Never before its call.
        #expect(!self.linearizable([self.op(.read("a"), 0, 1), self.op(.write("a"), 5, nil)]))
    }

    @Test("registers are independent, and a violation names its register")
    func perKey() {
        let history = [
            self.op(.write("a"), 0, 1, key: "x"), self.op(.read("a"), 2, 3, key: "x"),
            self.op(.write("a"), 0, 1, key: "y"), self.op(.read(nil), 2, 3, key: "y"),
        ]
        #expect(throws: EtcdLinearizability.Violation.self) { try EtcdLinearizability.check(history) }
        do {
            try EtcdLinearizability.check(history)
        } catch {
            #expect(error.key == "y")
            #expect(error.description.contains("read(nil)"))
        }
    }

    @Test("many concurrent operations are decided quickly enough to run in the fault suite")
    func larger() {
        // Three clients, each writing its own values and reading, 1,000 operations, with overlapping
        // intervals and a few unknown writes; built from a sequential order, so it is linearizable.
        var history: [EtcdRegisterOperation] = []
        var value: String? = nil
        for step in 0..<1000 {
            let call = step * 10
            if step % 3 == 0 {
                value = "v\(step)"
                history.append(self.op(.write(value!), call, step % 50 == 0 ? nil : call + 25))
            } else {
                history.append(self.op(.read(value), call - 5, call + 5))
            }
        }
        #expect(self.linearizable(history))
        // The same with one read moved back to a value overwritten long before.
        history[500] = self.op(.read("v3"), 4995, 5005)
        #expect(!self.linearizable(history))
    }
}
