// SPDX-License-Identifier: Apache-2.0
import Etcd
import Foundation

/// Prints results as etcdctl does: `simple` and `fields` byte for byte, `json` with the same fields
/// in the same order, `table` for the commands etcdctl draws tables for. A format etcdctl does not
/// support for a command throws (exit code 4) after the command ran, as etcdctl's does.
struct Printer: Sendable {
    var format: OutputFormat
    var hex: Bool
    var valueOnly = false

    private var unsupported: FeatureError { FeatureError("\(self.format.rawValue) not supported as output format") }

    // MARK: Key-value

    func get(_ response: EtcdGetResponse) throws {
        switch self.format {
        case .simple: for kv in response.kvs { self.keyValue(kv) }
        case .json: Self.line(Self.json(response).rendered)
        case .fields:
            Self.fields(response.header)
            for kv in response.kvs { Self.fields(kv, prefix: "") }
            Self.line("\"More\" : \(response.more)")
            Self.line("\"Count\" : \(response.count)")
        default: throw self.unsupported
        }
    }

    func put(_ response: EtcdPutResponse) throws {
        switch self.format {
        case .simple:
            Self.line("OK")
            if let prev = response.prevKV { self.keyValue(prev) }
        case .json: Self.line(Self.json(response).rendered)
        case .fields:
            Self.fields(response.header)
            if let prev = response.prevKV { Self.fields(prev, prefix: "Prev") }
        default: throw self.unsupported
        }
    }

    func delete(_ response: EtcdDeleteResponse) throws {
        try self.delete(header: response.header, deleted: response.deleted, prevKVs: response.prevKVs)
    }

    /// A delete's answer from its parts (for a range etcd finds empty, which the client does not send).
    func delete(header: EtcdResponseHeader, deleted: Int64, prevKVs: [EtcdKeyValue]) throws {
        switch self.format {
        case .simple:
            Self.line("\(deleted)")
            for kv in prevKVs { self.keyValue(kv) }
        case .json: Self.line(Self.json(header: header, deleted: deleted, prevKVs: prevKVs).rendered)
        case .fields:
            Self.fields(header)
            Self.line("\"Deleted\" : \(deleted)")
            for kv in prevKVs { Self.fields(kv, prefix: "Prev") }
        default: throw self.unsupported
        }
    }

    func txn(_ response: EtcdTxnResponse) throws {
        switch self.format {
        case .simple:
            Self.line(response.succeeded ? "SUCCESS" : "FAILURE")
            for op in response.responses {
                Self.line("")
                switch op {
                case .get(let get): try self.get(get)
                case .put(let put): try self.put(put)
                case .delete(let delete): try self.delete(delete)
                case .txn: Self.line("unexpected response \(op)")
                }
            }
        case .json:
            var fields = JSONFields()
            fields.object("header", Self.header(response.header))
            fields.bool("succeeded", response.succeeded)
            fields.array(
                "responses",
                response.responses.map { op in
                    let inner: (String, JSON)
                    switch op {
                    case .get(let get): inner = ("response_range", Self.json(get))
                    case .put(let put): inner = ("response_put", Self.json(put))
                    case .delete(let delete): inner = ("response_delete_range", Self.json(delete))
                    case .txn: inner = ("response_txn", .object([]))
                    }
                    return .object([("Response", .object([inner]))])
                })
            Self.line(fields.json.rendered)
        case .fields:
            Self.fields(response.header)
            Self.line("\"Succeeded\" : \(response.succeeded)")
            for op in response.responses {
                switch op {
                case .get(let get): try self.get(get)
                case .put(let put): try self.put(put)
                case .delete(let delete): try self.delete(delete)
                case .txn: Self.line("\"Unknown\" : \"txn\"")
                }
            }
        default: throw self.unsupported
        }
    }

    func watch(_ response: EtcdWatchResponse) throws {
        switch self.format {
        case .simple:
            for event in response.events {
                Self.line("\(event.type)")
                if let prev = event.prevKV { self.keyValue(prev) }
                self.keyValue(event.kv)
            }
        case .json:
            let events: [JSON] = response.events.map { event in
                var fields = JSONFields()
                if event.type == .delete { fields.always("type", .int(1)) }
                fields.always("kv", Self.json(event.kv))
                fields.object("prev_kv", event.prevKV.map(Self.json))
                return fields.json
            }
            let object: JSON = .object([
                ("Header", Self.json(response.header)), ("Events", events.isEmpty ? .null : .array(events)),
                ("CompactRevision", .int(response.compactRevision)), ("Canceled", .bool(false)),
                ("Created", .bool(response.isCreated)),
            ])
            Self.line(object.rendered)
        case .fields:
            Self.fields(response.header)
            for event in response.events {
                Self.line("\"Type\" : \(event.type)")
                if let prev = event.prevKV { Self.fields(prev, prefix: "Prev") }
                Self.fields(event.kv, prefix: "")
            }
        default: throw self.unsupported
        }
    }

    /// An election leader, as `elect -l` prints each one (`simple` only: there is no response to show).
    func leader(_ kv: EtcdKeyValue) throws {
        guard self.format == .simple else { throw self.unsupported }
        self.keyValue(kv)
    }

    // MARK: Leases

    func grant(_ response: EtcdLeaseGrantResponse) throws {
        switch self.format {
        case .simple: Self.line("lease \(Self.leaseID(response.id)) granted with TTL(\(response.ttl)s)")
        case .json:
            Self.line(
                JSON.object(
                    Self.flattened(response.header) + [
                        ("ID", .int(response.id)), ("TTL", .int(response.ttl)), ("Error", .string("")),
                    ]
                ).rendered)
        case .fields:
            Self.fields(response.header)
            Self.line("\"ID\" : \(response.id)")
            Self.line("\"TTL\" : \(response.ttl)")
        default: throw self.unsupported
        }
    }

    func revoke(_ id: Int64, _ response: EtcdLeaseRevokeResponse) throws {
        switch self.format {
        case .simple: Self.line("lease \(Self.leaseID(id)) revoked")
        case .json: Self.line(JSONFields.with("header", Self.header(response.header)).rendered)
        case .fields: Self.fields(response.header)
        default: throw self.unsupported
        }
    }

    func keepAlive(_ response: EtcdLeaseKeepAliveResponse) throws {
        switch self.format {
        case .simple: Self.line("lease \(Self.leaseID(response.id)) keepalived with TTL(\(response.ttl))")
        case .json:
            Self.line(
                JSON.object(Self.flattened(response.header) + [("ID", .int(response.id)), ("TTL", .int(response.ttl))])
                    .rendered)
        case .fields:
            Self.fields(response.header)
            Self.line("\"ID\" : \(response.id)")
            Self.line("\"TTL\" : \(response.ttl)")
        default: throw self.unsupported
        }
    }

    func timeToLive(_ response: EtcdLeaseTimeToLiveResponse, keys: Bool) throws {
        switch self.format {
        case .simple:
            if response.grantedTTL == 0 && response.ttl == -1 {
                Self.line("lease \(Self.leaseID(response.id)) already expired")
                return
            }
            var text =
                "lease \(Self.leaseID(response.id)) granted with TTL(\(response.grantedTTL)s), remaining(\(response.ttl)s)"
            if keys {
                text +=
                    ", attached keys([\(response.keys.map { String(decoding: $0, as: UTF8.self) }.joined(separator: " "))])"
            }
            Self.line(text)
        case .json:
            Self.line(
                JSON.object(
                    Self.flattened(response.header) + [
                        ("id", .int(response.id)), ("ttl", .int(response.ttl)),
                        ("granted-ttl", .int(response.grantedTTL)),
                        ("keys", response.keys.isEmpty ? .null : .array(response.keys.map { .bytes($0) })),
                    ]
                ).rendered)
        case .fields:
            Self.fields(response.header)
            Self.line("\"ID\" : \(response.id)")
            Self.line("\"TTL\" : \(response.ttl)")
            Self.line("\"GrantedTTL\" : \(response.grantedTTL)")
            for key in response.keys { Self.line("\"Key\" : \(goQuoted(key))") }
        default: throw self.unsupported
        }
    }

    /// `lease timetolive` of a lease that does not exist (the library reports `leaseNotFound`;
    /// etcd's answer is a TTL of -1, which etcdctl prints as below).
    func expiredLease(_ id: Int64, _ header: EtcdResponseHeader) throws {
        switch self.format {
        case .simple: Self.line("lease \(Self.leaseID(id)) already expired")
        case .json:
            Self.line(
                JSON.object(
                    Self.flattened(header) + [
                        ("id", .int(id)), ("ttl", .int(-1)), ("granted-ttl", .int(0)), ("keys", .null),
                    ]
                ).rendered)
        case .fields:
            Self.fields(header)
            Self.line("\"ID\" : \(id)")
            Self.line("\"TTL\" : -1")
            Self.line("\"GrantedTTL\" : 0")
        default: throw self.unsupported
        }
    }

    func leases(_ response: EtcdLeaseLeasesResponse) throws {
        switch self.format {
        case .simple:
            Self.line("found \(response.ids.count) leases")
            for id in response.ids { Self.line(Self.leaseID(id)) }
        case .json:
            Self.line(
                JSON.object(
                    Self.flattened(response.header) + [
                        ("leases", .array(response.ids.map { .object([("id", .int($0))]) }))
                    ]
                ).rendered)
        case .fields:
            Self.fields(response.header)
            for id in response.ids { Self.line("\"ID\" : \(id)") }
        default: throw self.unsupported
        }
    }

    // MARK: Members

    /// The header for `member add`, then etcd's environment for starting the new member.
    func memberAdd(_ response: EtcdMemberListResponse, name: String, peerURLs: String) throws {
        let added = response.added
        switch self.format {
        case .simple:
            Self.line(
                "Member \(Self.paddedHex(added?.id ?? 0)) added to cluster \(Self.paddedHex(response.header.clusterID))"
            )
            var initialCluster: [String] = []
            for member in response.members {
                for url in member.peerURLs {
                    initialCluster.append("\(member.id == added?.id ? name : member.name)=\(url)")
                }
            }
            Self.line("")
            Self.line("ETCD_NAME=\(goQuoted(name))")
            Self.line("ETCD_INITIAL_CLUSTER=\(goQuoted(initialCluster.joined(separator: ",")))")
            Self.line("ETCD_INITIAL_ADVERTISE_PEER_URLS=\(goQuoted(peerURLs))")
            Self.line("ETCD_INITIAL_CLUSTER_STATE=\"existing\"")
        case .json:
            var fields = JSONFields()
            fields.object("header", Self.header(response.header))
            fields.object("member", added.map(Self.json))
            fields.array("members", response.members.map(Self.json))
            Self.line(fields.json.rendered)
        default: throw self.unsupported
        }
    }

    /// `member remove`, `update` and `promote`: `verb` is `removed from`, `updated in` or `promoted in`.
    func memberChanged(_ id: UInt64, _ verb: String, _ response: EtcdMemberListResponse) throws {
        switch self.format {
        case .simple:
            Self.line("Member \(Self.paddedHex(id)) \(verb) cluster \(Self.paddedHex(response.header.clusterID))")
        case .json:
            var fields = JSONFields()
            fields.object("header", Self.header(response.header))
            fields.array("members", response.members.map(Self.json))
            Self.line(fields.json.rendered)
        default: throw self.unsupported
        }
    }

    func memberList(_ response: EtcdMemberListResponse) throws {
        let header = ["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"]
        let rows = response.members.map { member in
            [
                String(member.id, radix: 16), member.name.isEmpty ? "unstarted" : "started", member.name,
                member.peerURLs.joined(separator: ","), member.clientURLs.joined(separator: ","),
                "\(member.isLearner)",
            ]
        }
        switch self.format {
        case .simple: for row in rows { Self.line(row.joined(separator: ", ")) }
        case .table: Self.write(renderTable(header: header, rows: rows))
        case .json where self.hex: Self.line(Self.hexJSON(response))
        case .json:
            var fields = JSONFields()
            fields.object("header", Self.header(response.header))
            fields.array("members", response.members.map(Self.json))
            Self.line(fields.json.rendered)
        case .fields:
            Self.fields(response.header)
            for member in response.members {
                Self.line("\"ID\" : \(member.id)")
                Self.line("\"Name\" : \(goQuoted(member.name))")
                for url in member.peerURLs { Self.line("\"PeerURL\" : \(goQuoted(url))") }
                for url in member.clientURLs { Self.line("\"ClientURL\" : \(goQuoted(url))") }
                Self.line("\"IsLearner\" : \(member.isLearner)")
                Self.line("")
            }
        case .protobuf: throw self.unsupported
        }
    }

    // MARK: Endpoints

    struct Health: Sendable {
        var endpoint: String
        var health: Bool
        var took: String
        var error: String
    }

    func endpointHealth(_ list: [Health]) throws {
        switch self.format {
        case .simple:
            for item in list {
                // On standard output as etcdctl 3.5 (3.4 wrote these lines to standard error).
                if item.error.isEmpty {
                    Self.line("\(item.endpoint) is healthy: successfully committed proposal: took = \(item.took)")
                } else {
                    Self.line("\(item.endpoint) is unhealthy: failed to commit proposal: \(item.error)")
                }
            }
        case .json:
            let items: [JSON] = list.map { item in
                var fields = JSONFields()
                fields.always("endpoint", .string(item.endpoint))
                fields.always("health", .bool(item.health))
                fields.always("took", .string(item.took))
                fields.string("error", item.error)
                return fields.json
            }
            Self.line(JSON.array(items).rendered)
        case .fields:
            for item in list {
                Self.line("\"Endpoint\" : \(goQuoted(item.endpoint))")
                Self.line("\"Health\" : \(item.health)")
                Self.line("\"Took\" : \(item.took)")
                Self.line("\"Error\" : \(item.error)")
                Self.line("")
            }
        case .table:
            Self.write(
                renderTable(
                    header: ["endpoint", "health", "took", "error"],
                    rows: list.map { [$0.endpoint, "\($0.health)", $0.took, $0.error] }))
        case .protobuf: throw self.unsupported
        }
    }

    func endpointStatus(_ list: [(endpoint: String, status: EtcdStatusResponse)]) throws {
        switch self.format {
        case .simple: for row in Self.statusRows(list) { Self.line(row.joined(separator: ", ")) }
        case .table:
            Self.write(
                renderTable(
                    header: [
                        "endpoint", "ID", "version", "db size", "is leader", "is learner", "raft term", "raft index",
                        "raft applied index", "errors",
                    ], rows: Self.statusRows(list)))
        case .json:
            let items: [JSON] = list.map { item in
                let status = item.status
                var fields = JSONFields()
                fields.object("header", Self.header(status.header))
                fields.string("version", status.version)
                fields.int("dbSize", status.dbSize)
                fields.int("leader", status.leader)
                fields.int("raftIndex", status.raftIndex)
                fields.int("raftTerm", status.raftTerm)
                fields.int("raftAppliedIndex", status.raftAppliedIndex)
                fields.array("errors", status.errors.map { .string($0) })
                fields.int("dbSizeInUse", status.dbSizeInUse)
                fields.bool("isLearner", status.isLearner)
                fields.string("storageVersion", status.storageVersion ?? "")
                fields.int("dbSizeQuota", status.dbSizeQuota ?? 0)
                return .object([("Endpoint", .string(item.endpoint)), ("Status", fields.json)])
            }
            Self.line(JSON.array(items).rendered)
        case .fields:
            for item in list {
                let status = item.status
                Self.fields(status.header)
                Self.line("\"Version\" : \(goQuoted(status.version))")
                Self.line("\"DBSize\" : \(status.dbSize)")
                Self.line("\"Leader\" : \(status.leader)")
                Self.line("\"IsLearner\" : \(status.isLearner)")
                Self.line("\"RaftIndex\" : \(status.raftIndex)")
                Self.line("\"RaftTerm\" : \(status.raftTerm)")
                Self.line("\"RaftAppliedIndex\" : \(status.raftAppliedIndex)")
                Self.line("\"Errors\" : [\(status.errors.joined(separator: " "))]")
                Self.line("\"Endpoint\" : \(goQuoted(item.endpoint))")
                Self.line("")
            }
        case .protobuf: throw self.unsupported
        }
    }

    private static func statusRows(_ list: [(endpoint: String, status: EtcdStatusResponse)]) -> [[String]] {
        list.map { item in
            let status = item.status
            return [
                item.endpoint, String(status.header.memberID, radix: 16), status.version,
                humanizedBytes(status.dbSize), "\(status.leader == status.header.memberID)", "\(status.isLearner)",
                "\(status.raftTerm)", "\(status.raftIndex)", "\(status.raftAppliedIndex)",
                status.errors.joined(separator: ", "),
            ]
        }
    }

    func endpointHashKV(_ list: [(endpoint: String, hash: EtcdHashKVResponse)]) throws {
        switch self.format {
        case .simple: for item in list { Self.line("\(item.endpoint), \(item.hash.hash)") }
        case .table:
            Self.write(renderTable(header: ["endpoint", "hash"], rows: list.map { [$0.endpoint, "\($0.hash.hash)"] }))
        case .json:
            let items: [JSON] = list.map { item in
                var fields = JSONFields()
                fields.object("header", Self.header(item.hash.header))
                fields.int("hash", item.hash.hash)
                fields.int("compact_revision", item.hash.compactRevision)
                fields.int("hash_revision", item.hash.hashRevision)
                return .object([("Endpoint", .string(item.endpoint)), ("HashKV", fields.json)])
            }
            Self.line(JSON.array(items).rendered)
        case .fields:
            for item in list {
                Self.fields(item.hash.header)
                Self.line("\"Endpoint\" : \(goQuoted(item.endpoint))")
                Self.line("\"Hash\" : \(item.hash.hash)")
                Self.line("")
            }
        case .protobuf: throw self.unsupported
        }
    }

    // MARK: Maintenance

    func alarms(_ response: EtcdAlarmResponse) throws {
        switch self.format {
        case .simple: for alarm in response.alarms { Self.line("memberID:\(alarm.memberID) alarm:\(alarm.type) ") }
        case .json:
            var fields = JSONFields()
            fields.object("header", Self.header(response.header))
            fields.array(
                "alarms",
                response.alarms.map { alarm in
                    var item = JSONFields()
                    item.int("memberID", alarm.memberID)
                    item.int("alarm", alarm.type == .noSpace ? 1 : alarm.type == .corrupt ? 2 : 0)
                    return item.json
                })
            Self.line(fields.json.rendered)
        case .fields:
            Self.fields(response.header)
            for alarm in response.alarms {
                Self.line("\"MemberID\" : \(alarm.memberID)")
                Self.line("\"AlarmType\" : \(alarm.type)")
                Self.line("")
            }
        default: throw self.unsupported
        }
    }

    func moveLeader(from leader: UInt64, to target: UInt64, _ header: EtcdResponseHeader) throws {
        switch self.format {
        case .simple:
            Self.line("Leadership transferred from \(String(leader, radix: 16)) to \(String(target, radix: 16))")
        case .json: Self.line(JSONFields.with("header", Self.header(header)).rendered)
        default: throw self.unsupported
        }
    }

    // MARK: Auth

    /// A change with nothing to show but its header: `simple` prints `message`.
    func authChange(_ message: String, _ header: EtcdResponseHeader) throws {
        switch self.format {
        case .simple: Self.line(message)
        case .json: Self.line(JSONFields.with("header", Self.header(header)).rendered)
        case .fields: Self.fields(header)
        default: throw self.unsupported
        }
    }

    func authStatus(_ response: EtcdAuthStatusResponse) throws {
        switch self.format {
        case .simple:
            Self.line("Authentication Status: \(response.enabled)")
            Self.line("AuthRevision: \(response.authRevision)")
        case .json:
            var fields = JSONFields()
            fields.object("header", Self.header(response.header))
            fields.bool("enabled", response.enabled)
            fields.int("authRevision", response.authRevision)
            Self.line(fields.json.rendered)
        case .fields:
            Self.fields(response.header)
            Self.line("\"Enabled\" : \(response.enabled)")
            Self.line("\"AuthRevision\" : \(response.authRevision)")
        default: throw self.unsupported
        }
    }

    func userGet(_ name: String, _ response: EtcdUserGetResponse) throws {
        switch self.format {
        case .simple:
            Self.line("User: \(name)")
            Self.line("Roles:" + response.roles.map { " " + $0 }.joined())
        case .json:
            var fields = JSONFields()
            fields.object("header", Self.header(response.header))
            fields.array("roles", response.roles.map { .string($0) })
            Self.line(fields.json.rendered)
        default: throw self.unsupported
        }
    }

    func userList(_ response: EtcdUserListResponse) throws {
        switch self.format {
        case .simple: for user in response.users { Self.line(user) }
        case .json:
            var fields = JSONFields()
            fields.object("header", Self.header(response.header))
            fields.array("users", response.users.map { .string($0) })
            Self.line(fields.json.rendered)
        default: throw self.unsupported
        }
    }

    func roleGet(_ name: String, _ response: EtcdRoleGetResponse) throws {
        switch self.format {
        case .simple:
            Self.line("Role \(name)")
            Self.line("KV Read:")
            for permission in response.permissions where permission.access != .write {
                Self.line(Self.permissionLine(permission))
            }
            Self.line("KV Write:")
            for permission in response.permissions where permission.access != .read {
                Self.line(Self.permissionLine(permission))
            }
        case .json:
            var fields = JSONFields()
            fields.object("header", Self.header(response.header))
            fields.array(
                "perm",
                response.permissions.map { permission in
                    var item = JSONFields()
                    item.int("permType", permission.access == .read ? 0 : permission.access == .write ? 1 : 2)
                    item.bytes("key", permission.key)
                    item.bytes("range_end", permission.rangeEnd)
                    return item.json
                })
            Self.line(fields.json.rendered)
        case .fields:
            Self.fields(response.header)
            for permission in response.permissions {
                Self.line("\"PermType\" :  \(permission.access.description.uppercased())")
                Self.line("\"Key\" : \(goQuoted(permission.key))")
                Self.line("\"RangeEnd\" : \(goQuoted(permission.rangeEnd))")
            }
        default: throw self.unsupported
        }
    }

    /// etcdctl's line for one permission of `role get`.
    private static func permissionLine(_ permission: EtcdPermission) -> String {
        let key = String(decoding: permission.key, as: UTF8.self)
        if permission.rangeEnd.isEmpty { return "\t\(key)" }
        let end = String(decoding: permission.rangeEnd, as: UTF8.self)
        var line = end == "\u{0}" ? "\t[\(key), <open ended>" : "\t[\(key), \(end))"
        if EtcdKeys.prefixEnd(permission.key) == permission.rangeEnd { line += " (prefix \(key))" }
        return line
    }

    func roleList(_ response: EtcdRoleListResponse) throws {
        switch self.format {
        case .simple: for role in response.roles { Self.line(role) }
        case .json:
            var fields = JSONFields()
            fields.object("header", Self.header(response.header))
            fields.array("roles", response.roles.map { .string($0) })
            Self.line(fields.json.rendered)
        case .fields:
            Self.fields(response.header)
            Self.line("\"Roles\" :" + response.roles.map { " " + goQuoted($0) }.joined())
        default: throw self.unsupported
        }
    }

    // MARK: Writing

    /// etcdctl's printKV: the key, then the value, each on a line (`\x..` escapes with --hex).
    private func keyValue(_ kv: EtcdKeyValue) {
        if !self.valueOnly { Self.bytesLine(kv.key, hex: self.hex) }
        Self.bytesLine(kv.value, hex: self.hex)
    }

    /// Writes bytes as they are (etcdctl prints keys and values raw), or escaped with `hex`.
    private static func bytesLine(_ bytes: some Collection<UInt8>, hex: Bool) {
        if hex {
            Self.line(Self.hexEscaped(bytes))
        } else {
            FileHandle.standardOutput.write(Data(bytes) + Data([0x0a]))
        }
    }

    static func hexEscaped(_ bytes: some Collection<UInt8>) -> String {
        bytes.map { "\\x" + String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    static func line(_ text: String) { Self.write(text + "\n") }

    static func write(_ text: String) { FileHandle.standardOutput.write(Data(text.utf8)) }

    static func standardError(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

    /// `%016x`, as etcdctl prints lease IDs.
    static func leaseID(_ id: Int64) -> String { String(UInt64(bitPattern: id), radix: 16).leftPadded(to: 16) }

    /// `%16x`: space-padded, as etcdctl prints member and cluster IDs.
    private static func paddedHex(_ id: UInt64) -> String {
        let text = String(id, radix: 16)
        return String(repeating: " ", count: max(0, 16 - text.count)) + text
    }

    // MARK: Go's shapes

    static func json(_ header: EtcdResponseHeader) -> JSON { .object(Self.flattened(header)) }

    /// A header as a JSON field's value; nil (left out, as Go's nil pointer) for a header the server
    /// did not send (etcd 3.4's alarm responses).
    static func header(_ header: EtcdResponseHeader) -> JSON? {
        header.clusterID == 0 && header.memberID == 0 && header.revision == 0 && header.raftTerm == 0
            ? nil : Self.json(header)
    }

    /// A response header's fields, as Go writes them (zero values left out).
    private static func flattened(_ header: EtcdResponseHeader) -> [(String, JSON)] {
        var fields = JSONFields()
        fields.int("cluster_id", header.clusterID)
        fields.int("member_id", header.memberID)
        fields.int("revision", header.revision)
        fields.int("raft_term", header.raftTerm)
        return fields.fields
    }

    /// A key-value as Go's encoding/json writes etcd's mvccpb.KeyValue.
    static func json(_ kv: EtcdKeyValue) -> JSON {
        var fields = JSONFields()
        fields.bytes("key", kv.key)
        fields.int("create_revision", kv.createRevision)
        fields.int("mod_revision", kv.modRevision)
        fields.int("version", kv.version)
        fields.bytes("value", kv.value)
        fields.int("lease", kv.lease)
        return fields.json
    }

    static func json(_ response: EtcdGetResponse) -> JSON {
        var fields = JSONFields()
        fields.object("header", Self.header(response.header))
        fields.array("kvs", response.kvs.map(Self.json))
        fields.bool("more", response.more)
        fields.int("count", response.count)
        return fields.json
    }

    static func json(_ response: EtcdPutResponse) -> JSON {
        var fields = JSONFields()
        fields.object("header", Self.header(response.header))
        fields.object("prev_kv", response.prevKV.map(Self.json))
        return fields.json
    }

    static func json(_ response: EtcdDeleteResponse) -> JSON {
        Self.json(header: response.header, deleted: response.deleted, prevKVs: response.prevKVs)
    }

    static func json(header: EtcdResponseHeader, deleted: Int64, prevKVs: [EtcdKeyValue]) -> JSON {
        var fields = JSONFields()
        fields.object("header", Self.header(header))
        fields.int("deleted", deleted)
        fields.array("prev_kvs", prevKVs.map(Self.json))
        return fields.json
    }

    /// `member list -w json --hex` as etcdctl 3.5 writes it, by hand: the IDs as hexadecimal
    /// strings, the raft term in hexadecimal but unquoted, the name unescaped, `clientURLS`, no
    /// `isLearner`, and `null` for an empty URL list.
    private static func hexJSON(_ response: EtcdMemberListResponse) -> String {
        func urls(_ urls: [String]) -> String { urls.isEmpty ? "null" : JSON.array(urls.map { .string($0) }).rendered }
        let header = response.header
        var text = "{\"header\":{\"cluster_id\":\"\(String(header.clusterID, radix: 16))\","
        text +=
            "\"member_id\":\"\(String(header.memberID, radix: 16))\",\"raft_term\":\(String(header.raftTerm, radix: 16))}"
        for (index, member) in response.members.enumerated() {
            text += index == 0 ? ",\"members\":[{\"ID\":\"" : ",{\"ID\":\""
            text += String(member.id, radix: 16) + "\",\"name\":\"" + member.name + "\",\"peerURLs\":"
            text += urls(member.peerURLs) + ",\"clientURLS\":" + urls(member.clientURLs) + "}"
        }
        return text + (response.members.isEmpty ? "}" : "]}")
    }

    static func json(_ member: EtcdMember) -> JSON {
        var fields = JSONFields()
        fields.int("ID", member.id)
        fields.string("name", member.name)
        fields.array("peerURLs", member.peerURLs.map { .string($0) })
        fields.array("clientURLs", member.clientURLs.map { .string($0) })
        fields.bool("isLearner", member.isLearner)
        return fields.json
    }

    private static func fields(_ header: EtcdResponseHeader) {
        Self.line("\"ClusterID\" : \(header.clusterID)")
        Self.line("\"MemberID\" : \(header.memberID)")
        Self.line("\"Revision\" : \(header.revision)")
        Self.line("\"RaftTerm\" : \(header.raftTerm)")
    }

    private static func fields(_ kv: EtcdKeyValue, prefix: String) {
        Self.line("\"\(prefix)Key\" : \(goQuoted(kv.key))")
        Self.line("\"\(prefix)CreateRevision\" : \(kv.createRevision)")
        Self.line("\"\(prefix)ModRevision\" : \(kv.modRevision)")
        Self.line("\"\(prefix)Version\" : \(kv.version)")
        Self.line("\"\(prefix)Value\" : \(goQuoted(kv.value))")
        Self.line("\"\(prefix)Lease\" : \(kv.lease)")
    }
}
