// SPDX-License-Identifier: Apache-2.0
import Logging

// Loggers for this package's own tests, which wait for a line the client logs (the point the code
// under test has reached) instead of for time. Package access: not part of EtcdTesting's API.

/// A line a client logged: its message and metadata.
package struct LoggedLine: Sendable {
    package let message: String
    package let metadata: Logger.Metadata
}

/// A logger at `debug` whose lines also go to a stream, for tests that wait for a logged event.
package func streamingLogger() -> (AsyncStream<LoggedLine>, Logger) {
    let (lines, continuation) = AsyncStream.makeStream(of: LoggedLine.self)
    return (lines, hookedLogger { continuation.yield($0) })
}

/// A logger at `debug` that calls `onLine` for each line, on the logging task, before the logging call returns.
///
/// Tests use it to act at an exact point of the code under test.
package func hookedLogger(_ onLine: @escaping @Sendable (LoggedLine) -> Void) -> Logger {
    Logger(label: "test") { _ in HookedLogHandler(onLine: onLine) }
}

private struct HookedLogHandler: LogHandler {
    let onLine: @Sendable (LoggedLine) -> Void
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        self.onLine(LoggedLine(message: event.message.description, metadata: event.metadata ?? [:]))
    }
}
