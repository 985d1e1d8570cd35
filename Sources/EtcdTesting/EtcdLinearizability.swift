// SPDX-License-Identifier: Apache-2.0

/// One operation on a single-key register, as a test recorded it: what it did, when it was called
/// and when it returned.
public struct EtcdRegisterOperation: Sendable, Hashable {
    /// What the operation did.
    public enum Kind: Sendable, Hashable {
        /// A write of a value (values must be unique per key, so reads can name their write).
        case write(String)
        /// A read that returned a value, or nil for a missing key.
        case read(String?)
    }

    /// The key the operation read or wrote.
    public var key: String
    /// Whether it wrote or read, and what value.
    public var kind: Kind
    /// When the call was made.
    public var call: ContinuousClock.Instant
    /// When it returned successfully; nil when its outcome is unknown (it failed or timed out: a
    /// write may or may not have been applied, at any time after its call). Failed reads tell
    /// nothing and are left out of the history.
    public var `return`: ContinuousClock.Instant?

    /// An operation on `key` called at `call` that returned at `return` (nil when its outcome is unknown).
    public init(key: String, kind: Kind, call: ContinuousClock.Instant, return: ContinuousClock.Instant?) {
        self.key = key
        self.kind = kind
        self.call = call
        self.return = `return`
    }
}

/// A small linearizability checker for histories of single-key registers, after Wing & Gong with
/// Lowe's memoisation (the algorithm of porcupine).
///
/// Keys are independent registers, checked one by one; each starts missing. A history is
/// linearizable when every operation can be given one instant between its call and its return
/// (any instant after its call, or none at all, for a write of unknown outcome) so that every read
/// returns the value of the latest write before it.
public enum EtcdLinearizability {
    /// Why a history is not linearizable.
    public struct Violation: Error, Sendable, CustomStringConvertible {
        /// The register whose history cannot be linearized.
        public var key: String
        /// That register's operations, in call order.
        public var operations: [EtcdRegisterOperation]
        public var description: String {
            let start = self.operations.map(\.call).min()
            func at(_ instant: ContinuousClock.Instant?) -> String {
                guard let instant, let start else { return "unknown" }
                let (seconds, attoseconds) = (instant - start).components
                return "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000) ms"
            }
            let lines = self.operations.map { operation in
                "  \(operation.kind) called \(at(operation.call)), returned \(at(operation.return))"
            }
            return "the history of \(self.key) is not linearizable:\n" + lines.joined(separator: "\n")
        }
    }

    /// Checks `history`; throws the first register whose operations cannot be linearized.
    public static func check(_ history: [EtcdRegisterOperation]) throws(Violation) {
        for (key, operations) in Dictionary(grouping: history, by: \.key).sorted(by: { $0.key < $1.key }) {
            if !self.isLinearizable(operations) {
                throw Violation(key: key, operations: operations.sorted { $0.call < $1.call })
            }
        }
    }

    /// Whether one register's operations can be linearized.
    static func isLinearizable(_ history: [EtcdRegisterOperation]) -> Bool {
        // A write of unknown outcome whose value nobody read can be taken as never applied: if it
        // was applied, nothing saw it before the next write, so the rest linearizes without it.
        let read = Set(
            history.compactMap { operation -> String? in
                if case .read(let value) = operation.kind { return value }
                return nil
            })
        let operations = history.filter { operation in
            guard operation.return == nil, case .write(let value) = operation.kind else { return true }
            return read.contains(value)
        }
        if operations.isEmpty { return true }

        // Events in time order (calls before returns at the same instant); an unknown return is last.
        struct Event {
            var operation: Int
            var isCall: Bool
            var time: ContinuousClock.Instant?
        }
        var events: [Event] = []
        for (index, operation) in operations.enumerated() {
            events.append(Event(operation: index, isCall: true, time: operation.call))
            events.append(Event(operation: index, isCall: false, time: operation.return))
        }
        events.sort { a, b in
            switch (a.time, b.time) {
            case (let x?, let y?): return x != y ? x < y : (a.isCall && !b.isCall)
            case (.some, nil): return true
            case (nil, .some): return false
            case (nil, nil): return a.isCall && !b.isCall
            }
        }

        // A doubly linked list over the events, so linearized operations can be lifted out and put back.
        let count = events.count
        var next = Array(1...count)  // count means the end
        var previous = Array(-1..<(count - 1))  // -1 means the head
        var head = 0
        var returnIndex = [Int](repeating: 0, count: operations.count)
        for (index, event) in events.enumerated() where !event.isCall { returnIndex[event.operation] = index }

        func unlink(_ index: Int) {
            let (p, n) = (previous[index], next[index])
            if p >= 0 { next[p] = n } else { head = n }
            if n < count { previous[n] = p }
        }
        func relink(_ index: Int) {
            let (p, n) = (previous[index], next[index])
            if p >= 0 { next[p] = index } else { head = index }
            if n < count { previous[n] = index }
        }

        struct Linearized: Hashable {
            var bits: [UInt64]
            var value: String?
        }
        var linearized = Linearized(bits: [UInt64](repeating: 0, count: (operations.count + 63) / 64), value: nil)
        var seen: Set<Linearized> = []
        var stack: [(call: Int, value: String?)] = []
        var cursor = head
        while head < count {
            guard cursor < count else { return false }  // unreachable: the list always ends with a return
            let event = events[cursor]
            if event.isCall {
                let operation = operations[event.operation]
                var candidate = linearized
                let applies: Bool
                switch operation.kind {
                case .write(let value):
                    candidate.value = value
                    applies = true
                case .read(let value):
                    applies = value == linearized.value
                }
                if applies {
                    candidate.bits[event.operation / 64] |= 1 << UInt64(event.operation % 64)
                    if seen.insert(candidate).inserted {
                        stack.append((cursor, linearized.value))
                        linearized = candidate
                        unlink(cursor)
                        unlink(returnIndex[event.operation])
                        cursor = head
                        continue
                    }
                }
                cursor = next[cursor]
            } else {
                // An operation returned before it could be placed: undo the last choice.
                guard let (call, value) = stack.popLast() else { return false }
                let operation = events[call].operation
                relink(returnIndex[operation])
                relink(call)
                linearized.bits[operation / 64] &= ~(1 << UInt64(operation % 64))
                linearized.value = value
                cursor = next[call]
            }
        }
        return true
    }
}
