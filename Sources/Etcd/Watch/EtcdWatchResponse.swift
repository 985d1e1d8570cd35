// SPDX-License-Identifier: Apache-2.0
package import EtcdAPI

/// One change to a key, as a watch reports it.
public struct EtcdWatchEvent: Sendable, Hashable {
    /// Whether the key was written or deleted.
    public struct EventType: Sendable, Hashable, CustomStringConvertible {
        let raw: Int
        /// The key was created or changed.
        public static let put = Self(raw: 0)
        /// The key was deleted (by a delete, or because its lease ended).
        public static let delete = Self(raw: 1)
        public var description: String { self.raw == 0 ? "PUT" : "DELETE" }
    }

    /// Whether the key was written or deleted.
    public var type: EventType
    /// The key after the event; for a delete, the key with the deletion's revision as its mod revision.
    public var kv: EtcdKeyValue
    /// The key before the event, with `.prevKV` and when it existed.
    public var prevKV: EtcdKeyValue?

    /// A put that created the key (its version is 1).
    public var isCreate: Bool { self.type == .put && self.kv.version == 1 }
    /// A put that changed an existing key.
    public var isModify: Bool { self.type == .put && self.kv.version > 1 }

    package init(_ proto: Mvccpb_Event) {
        self.type = proto.type == .delete ? .delete : .put
        self.kv = EtcdKeyValue(proto.kv)
        self.prevKV = proto.hasPrevKv ? EtcdKeyValue(proto.prevKv) : nil
    }
}

/// A batch of events from a watch, or a notification about it.
///
/// Events come in revision order, whole revisions at a time. A response without events is a progress
/// notification (``isProgressNotify``: every change up to ``header``'s revision has been delivered)
/// or, with `.createdNotify`, the creation notice (``isCreated``).
public struct EtcdWatchResponse: Sendable {
    /// The header of the member that answered: cluster, member, revision and raft term.
    public var header: EtcdResponseHeader
    /// The events, in revision order; empty for a progress notification or the creation notice.
    public var events: [EtcdWatchEvent]
    /// The compaction revision reported by the server, when the watch was cancelled by compaction.
    public var compactRevision: Int64
    /// The creation notice (only delivered with `.createdNotify`).
    public var isCreated: Bool
    /// A progress notification: no events, and the watch has seen every change up to ``header``'s revision.
    public var isProgressNotify: Bool

    init(header: Etcdserverpb_ResponseHeader, events: [Mvccpb_Event], created: Bool, compactRevision: Int64 = 0) {
        self.header = EtcdResponseHeader(header)
        self.events = events.map(EtcdWatchEvent.init)
        self.compactRevision = compactRevision
        self.isCreated = created
        self.isProgressNotify = !created && events.isEmpty && compactRevision == 0
    }
}
