// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Etcd
import Foundation

/// `get [options] <key> [range_end]`
struct Get: EtcdctlCommand {
    static let configuration = CommandConfiguration(abstract: "Gets the key or a range of keys")

    @Option(parsing: .unconditional, help: "Linearizable(l) or Serializable(s)") var consistency = "l"
    @Option(parsing: .unconditional, help: "Order of results; ASCEND or DESCEND (ASCEND by default)") var order = ""
    @Option(
        name: .customLong("sort-by"), parsing: .unconditional,
        help: "Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION") var sortBy = ""
    @Option(parsing: .unconditional, help: "Maximum number of results") var limit: Int64 = 0
    @Flag(help: "Get keys with matching prefix") var prefix = false
    @Flag(
        name: .customLong("from-key"),
        help: "Get keys that are greater than or equal to the given key using byte compare") var fromKey = false
    @Option(parsing: .unconditional, help: "Specify the kv revision") var rev: Int64 = 0
    @Flag(name: .customLong("keys-only"), help: "Get only the keys") var keysOnly = false
    @Flag(name: .customLong("count-only"), help: "Get only the count") var countOnly = false
    @Flag(name: .customLong("print-value-only"), help: "Only write values when using the \"simple\" output format")
    var printValueOnly = false
    @Option(name: .customLong("min-mod-rev"), parsing: .unconditional, help: "Minimum modify revision") var minModRev:
        Int64 = 0
    @Option(name: .customLong("max-mod-rev"), parsing: .unconditional, help: "Maximum modify revision") var maxModRev:
        Int64 = 0
    @Option(name: .customLong("min-create-rev"), parsing: .unconditional, help: "Minimum create revision")
    var minCreateRev: Int64 = 0
    @Option(name: .customLong("max-create-rev"), parsing: .unconditional, help: "Maximum create revision")
    var maxCreateRev: Int64 = 0
    @Argument var arguments: [String] = []

    /// The key and options these flags ask for (shared with `txn`).
    func request() throws -> (key: String, options: EtcdGetOptions, range: KeyRange) {
        guard !self.arguments.isEmpty else {
            throw UsageError("get command needs one argument as key and an optional argument as range_end")
        }
        if self.prefix && self.fromKey {
            throw UsageError("`--prefix` and `--from-key` cannot be set at the same time, choose one")
        }
        if self.keysOnly && self.countOnly {
            throw UsageError("`--keys-only` and `--count-only` cannot be set at the same time, choose one")
        }
        var options: [EtcdGetOptions] = []
        switch self.consistency {
        case "s": options.append(.serializable)
        case "l": break
        default: throw FeatureError("unknown consistency flag \"\(self.consistency)\"")
        }
        let range = try KeyRange(self.arguments, prefix: self.prefix, fromKey: self.fromKey)
        switch range.kind {
        case .key: break
        case .prefix: options.append(.prefix)
        case .fromKey: options.append(.fromKey)
        case .end(let end): options.append(.range(end: end))
        }
        // etcd reads a negative limit as none, which the client refuses as a mistake.
        if self.limit > 0 { options.append(.limit(self.limit)) }
        if self.rev > 0 { options.append(.revision(self.rev)) }
        let sortOrder: EtcdSortOrder
        switch self.order.uppercased() {
        case "ASCEND": sortOrder = .ascending
        case "DESCEND": sortOrder = .descending
        case "": sortOrder = .none
        default: throw FeatureError("bad sort order \(self.order)")
        }
        let sortTarget: EtcdSortTarget
        switch self.sortBy.uppercased() {
        case "CREATE": sortTarget = .createRevision
        case "KEY", "": sortTarget = .key
        case "MODIFY": sortTarget = .modRevision
        case "VALUE": sortTarget = .value
        case "VERSION": sortTarget = .version
        default: throw FeatureError("bad sort target \(self.sortBy)")
        }
        // Sorting one key changes nothing at etcd; the client refuses it as a mistake.
        if sortOrder != .none || sortTarget != .key, !range.isOneKey {
            options.append(.sort(by: sortTarget, order: sortOrder))
        }
        if self.keysOnly { options.append(.keysOnly) }
        if self.countOnly { options.append(.countOnly) }
        if self.minModRev > 0 { options.append(.minModRevision(self.minModRev)) }
        if self.maxModRev > 0 { options.append(.maxModRevision(self.maxModRev)) }
        if self.minCreateRev > 0 { options.append(.minCreateRevision(self.minCreateRev)) }
        if self.maxCreateRev > 0 { options.append(.maxCreateRevision(self.maxCreateRev)) }
        return (range.key, options.reduce(EtcdGetOptions()) { [$0, $1] }, range)
    }

    func run(_ global: GlobalOptions) async throws {
        let (key, options, range) = try self.request()
        var printer = global.printer
        if self.countOnly && global.writeOut != .fields {
            throw UsageError("--count-only is only for `--write-out=fields`")
        }
        if self.printValueOnly {
            guard global.writeOut == .simple else {
                throw UsageError("print-value-only is only for `--write-out=simple`")
            }
            printer.valueOnly = true
        }
        // etcd answers an empty range with no keys; the client refuses it, so ask for the key alone
        // at the same revision and consistency, and drop what it found.
        let request: EtcdGetOptions =
            range.isEmpty
            ? [.countOnly, self.rev > 0 ? .revision(self.rev) : [], self.consistency == "s" ? .serializable : []]
            : options
        var response = try await global.withClient { client in try await client.get(key, options: request) }
        if range.isEmpty {
            response.kvs = []
            response.count = 0
            response.more = false
        }
        try printer.get(response)
    }
}

/// `put [options] <key> <value>` (or the value from standard input)
struct Put: EtcdctlCommand {
    static let configuration = CommandConfiguration(abstract: "Puts the given key into the store")

    @Option(parsing: .unconditional, help: "lease ID (in hexadecimal) to attach to the key") var lease = "0"
    @Flag(name: .customLong("prev-kv"), help: "return the previous key-value pair before modification") var prevKV =
        false
    @Flag(name: .customLong("ignore-value"), help: "updates the key using its current value") var ignoreValue = false
    @Flag(name: .customLong("ignore-lease"), help: "updates the key using its current lease") var ignoreLease = false
    @Argument var arguments: [String] = []

    /// The key, value and options these flags and arguments ask for (shared with `txn`).
    func request() throws -> (key: String, value: String, options: EtcdPutOptions) {
        guard let key = self.arguments.first else {
            throw UsageError("put command needs 1 argument and input from stdin or 2 arguments")
        }
        var value = ""
        if self.arguments.count > 1 {
            value = self.arguments[1]
            if self.ignoreValue { throw UsageError("put command needs only 1 argument when 'ignore-value' is set") }
        } else if !self.ignoreValue {
            let data = FileHandle.standardInput.readDataToEndOfFile()
            guard !data.isEmpty else {
                throw UsageError("put command needs 1 argument and input from stdin or 2 arguments")
            }
            value = String(decoding: data, as: UTF8.self)
        }
        guard let id = Int64(self.lease, radix: 16) ?? UInt64(self.lease, radix: 16).map({ Int64(bitPattern: $0) })
        else {
            throw UsageError(
                "bad lease ID (strconv.ParseInt: parsing \"\(self.lease)\": invalid syntax), expecting ID in Hex")
        }
        var options: [EtcdPutOptions] = []
        if id != 0 { options.append(.lease(id)) }
        if self.prevKV { options.append(.prevKV) }
        if self.ignoreValue { options.append(.ignoreValue) }
        if self.ignoreLease { options.append(.ignoreLease) }
        return (key, self.ignoreValue ? "" : value, options.reduce(EtcdPutOptions()) { [$0, $1] })
    }

    func run(_ global: GlobalOptions) async throws {
        let (key, value, options) = try self.request()
        let response = try await global.withClient { client in try await client.put(key, value: value, options: options)
        }
        try global.printer.put(response)
    }
}

/// `del [options] <key> [range_end]`
struct Del: EtcdctlCommand {
    static let configuration = CommandConfiguration(
        abstract: "Removes the specified key or range of keys [key, range_end)")

    @Flag(help: "delete keys with matching prefix") var prefix = false
    @Flag(name: .customLong("prev-kv"), help: "return deleted key-value pairs") var prevKV = false
    @Flag(
        name: .customLong("from-key"),
        help: "delete keys that are greater than or equal to the given key using byte compare") var fromKey = false
    @Argument var arguments: [String] = []

    /// The key and options these flags ask for (shared with `txn`).
    func request() throws -> (key: String, options: EtcdDeleteOptions, range: KeyRange) {
        guard !self.arguments.isEmpty, self.arguments.count <= 2 else {
            throw UsageError("del command needs one argument as key and an optional argument as range_end")
        }
        if self.prefix && self.fromKey {
            throw UsageError("`--prefix` and `--from-key` cannot be set at the same time, choose one")
        }
        let range = try KeyRange(self.arguments, prefix: self.prefix, fromKey: self.fromKey)
        var options: [EtcdDeleteOptions] = []
        switch range.kind {
        case .key: break
        case .prefix: options.append(.prefix)
        case .fromKey: options.append(.fromKey)
        case .end(let end): options.append(.range(end: end))
        }
        if self.prevKV { options.append(.prevKV) }
        return (range.key, options.reduce(EtcdDeleteOptions()) { [$0, $1] }, range)
    }

    func run(_ global: GlobalOptions) async throws {
        let (key, options, range) = try self.request()
        if range.isEmpty {
            // etcd deletes nothing from an empty range; the client refuses it, so read the header instead.
            let header = try await global.withClient { client in try await client.get(key, options: .countOnly).header }
            try global.printer.delete(header: header, deleted: 0, prevKVs: [])
            return
        }
        let response = try await global.withClient { client in try await client.delete(key, options: options) }
        try global.printer.delete(response)
    }
}

/// etcdctl's reading of `<key> [range_end]` with `--prefix` / `--from-key`, shared by get and del:
/// an empty key with either flag means every key (from `\0`).
struct KeyRange {
    enum Kind {
        case key
        case prefix
        case fromKey
        case end(String)
    }
    var key: String
    var kind: Kind

    /// Whether the range is the key alone.
    var isOneKey: Bool {
        if case .key = self.kind { return true }
        return false
    }

    /// Whether the range holds no key: its end does not sort after the key. etcd answers it with
    /// nothing; the client refuses it as a likely mistake.
    var isEmpty: Bool {
        guard case .end(let end) = self.kind else { return false }
        return !Array(self.key.utf8).lexicographicallyPrecedes(Array(end.utf8))
    }

    init(_ arguments: [String], prefix: Bool, fromKey: Bool) throws(UsageError) {
        self.key = arguments[0]
        if arguments.count > 1 {
            if prefix || fromKey {
                throw UsageError("too many arguments, only accept one argument when `--prefix` or `--from-key` is set")
            }
            // etcd reads an empty range end as none: the key alone.
            self.kind = arguments[1].isEmpty ? .key : .end(arguments[1])
        } else if prefix || fromKey {
            self.kind = prefix && !self.key.isEmpty ? .prefix : .fromKey
            if self.key.isEmpty { self.key = "\u{0}" }
        } else {
            self.kind = .key
        }
    }
}

/// `compaction [options] <revision>`
struct Compaction: EtcdctlCommand {
    static let configuration = CommandConfiguration(abstract: "Compacts the event history in etcd")

    @Flag(help: "'true' to wait for compaction to physically remove all old revisions") var physical = false
    @Argument var arguments: [String] = []

    func run(_ global: GlobalOptions) async throws {
        guard self.arguments.count == 1 else { throw UsageError("compaction command needs 1 argument") }
        guard let revision = Int64(self.arguments[0]) else {
            throw ExitError.parseInt(self.arguments[0])
        }
        let physical = self.physical
        _ = try await global.withClient { client in try await client.compact(revision, physical: physical) }
        Printer.line("compacted revision \(revision)")
    }
}
