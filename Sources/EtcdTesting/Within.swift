// SPDX-License-Identifier: Apache-2.0

/// A wait that took longer than its bound.
public struct TimedOut: Error, CustomStringConvertible {
    /// What was awaited.
    public let what: String
    /// A timeout waiting for `what`.
    public init(what: String) { self.what = what }
    public var description: String { "timed out waiting for \(self.what)" }
}

/// Runs `body`, failing with ``TimedOut`` if it takes longer than `limit` (it is then cancelled):
/// the bound every wait in a test should have.
public func within<T: Sendable>(
    _ limit: Duration,
    _ what: String,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw TimedOut(what: what) }
        return value
    }
}
