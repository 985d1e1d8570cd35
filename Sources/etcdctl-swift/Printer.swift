// SPDX-License-Identifier: Apache-2.0
import Etcd
import Foundation

/// Prints results as etcdctl does: `simple` byte for byte, `json` with the same fields.
struct Printer: Sendable {
    var format: OutputFormat
    var hex: Bool
    var valueOnly = false

    func get(_ response: EtcdGetResponse) {
        switch self.format {
        case .json:
            var fields = [("header", Self.json(response.header))]
            if !response.kvs.isEmpty {
                fields.append(("kvs", "[" + response.kvs.map(Self.json).joined(separator: ",") + "]"))
            }
            if response.more { fields.append(("more", "true")) }
            if response.count != 0 { fields.append(("count", "\(response.count)")) }
            Self.line(Self.object(fields))
        default:
            for kv in response.kvs { self.keyValue(kv) }
        }
    }

    func put(_ response: EtcdPutResponse) {
        switch self.format {
        case .json:
            var fields = [("header", Self.json(response.header))]
            if let prev = response.prevKV { fields.append(("prev_kv", Self.json(prev))) }
            Self.line(Self.object(fields))
        default:
            Self.line("OK")
            if let prev = response.prevKV { self.keyValue(prev) }
        }
    }

    func delete(_ response: EtcdDeleteResponse) {
        switch self.format {
        case .json:
            var fields = [("header", Self.json(response.header))]
            if response.deleted != 0 { fields.append(("deleted", "\(response.deleted)")) }
            if !response.prevKVs.isEmpty {
                fields.append(("prev_kvs", "[" + response.prevKVs.map(Self.json).joined(separator: ",") + "]"))
            }
            Self.line(Self.object(fields))
        default:
            Self.line("\(response.deleted)")
            for kv in response.prevKVs { self.keyValue(kv) }
        }
    }

    /// etcdctl's printKV: the key, then the value, each on a line (`\x..` escapes with --hex).
    private func keyValue(_ kv: EtcdKeyValue) {
        let key = self.hex ? Self.hexEscaped(kv.key) : String(decoding: kv.key, as: UTF8.self)
        let value = self.hex ? Self.hexEscaped(kv.value) : String(decoding: kv.value, as: UTF8.self)
        if !self.valueOnly { Self.raw(kv.key, escaped: key) }
        Self.raw(kv.value, escaped: value)
    }

    /// Writes bytes as they are (etcdctl prints keys and values raw), or their escaped form.
    private static func raw(_ bytes: [UInt8], escaped: String) {
        FileHandle.standardOutput.write(Data(escaped.utf8) + Data([0x0a]))
    }

    static func hexEscaped(_ bytes: [UInt8]) -> String {
        bytes.map { "\\x" + String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func object(_ fields: [(String, String)]) -> String {
        "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

    static func json(_ header: EtcdResponseHeader) -> String {
        object([
            ("cluster_id", "\(header.clusterID)"), ("member_id", "\(header.memberID)"),
            ("revision", "\(header.revision)"),
            ("raft_term", "\(header.raftTerm)"),
        ])
    }

    /// A key-value as Go's encoding/json writes etcd's mvccpb.KeyValue: bytes in base64, zero fields left out.
    static func json(_ kv: EtcdKeyValue) -> String {
        var fields: [(String, String)] = []
        if !kv.key.isEmpty { fields.append(("key", "\"\(Data(kv.key).base64EncodedString())\"")) }
        if kv.createRevision != 0 { fields.append(("create_revision", "\(kv.createRevision)")) }
        if kv.modRevision != 0 { fields.append(("mod_revision", "\(kv.modRevision)")) }
        if kv.version != 0 { fields.append(("version", "\(kv.version)")) }
        if !kv.value.isEmpty { fields.append(("value", "\"\(Data(kv.value).base64EncodedString())\"")) }
        if kv.lease != 0 { fields.append(("lease", "\(kv.lease)")) }
        return object(fields)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        self.count >= width ? self : String(repeating: "0", count: width - self.count) + self
    }
}
