// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// The client's watch streams: one per set of stream options (today: with or without `requireLeader`),
/// each carrying any number of watches.
final class Watcher: Sendable {
    private let streams = Mutex<[Bool: WatchStream]>([:])

    /// The stream for watches with these options, started in the client's background when first needed.
    func stream(requireLeader: Bool, client: EtcdClient) -> WatchStream {
        let (stream, isNew) = self.streams.withLock { streams -> (WatchStream, Bool) in
            if let stream = streams[requireLeader] { return (stream, false) }
            let stream = WatchStream(client: client, requireLeader: requireLeader)
            streams[requireLeader] = stream
            return (stream, true)
        }
        if isNew { client.runInBackground { await stream.run() } }
        return stream
    }

    var allStreams: [WatchStream] { self.streams.withLock { Array($0.values) } }

    /// Ends every watch (the client shuts down).
    func finishAll() {
        for stream in self.allStreams { stream.finishAll(throwing: nil) }
    }
}
