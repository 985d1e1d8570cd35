// SPDX-License-Identifier: Apache-2.0
import FoundationEssentials
import Yams

extension EtcdClient.Configuration {
    /// Loads a configuration from a YAML or JSON file with the keys of the Go client's `clientv3/yaml`
    /// package.
    ///
    /// ```yaml
    /// endpoints: ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
    /// dial-timeout: 5s
    /// trusted-ca-file: /etc/etcd/ca.pem
    /// cert-file: /etc/etcd/client.pem
    /// key-file: /etc/etcd/client-key.pem
    /// username: app
    /// password: secret
    /// ```
    ///
    /// The keys are `endpoints`, `dial-timeout`, `dial-keep-alive-time`, `dial-keep-alive-timeout`,
    /// `max-call-send-msg-size`, `max-call-recv-msg-size`, `username`, `password`,
    /// `reject-old-cluster`, `permit-without-stream`, `auto-sync-interval`, `insecure-transport`,
    /// `insecure-skip-tls-verify`, `cert-file`, `key-file`, `trusted-ca-file` and `ca-file` (the older
    /// name of `trusted-ca-file`). Durations are Go duration strings (`"500ms"`, `"1m30s"`) or, as
    /// Go reads them, integers of nanoseconds. A keepalive time of 0 turns keepalive pings off.
    ///
    /// As with Go's loader, endpoints without a scheme use TLS (with the system's trusted roots unless
    /// `trusted-ca-file` is given) unless `insecure-transport: true`; `http://` endpoints are always
    /// plaintext.
    ///
    /// - Throws: ``EtcdClientError`` `invalidConfiguration` naming the file, the line and the key,
    ///   for an unreadable file, bad YAML or JSON, an unknown key, a value of the wrong kind, a
    ///   malformed endpoint, a missing certificate file, or a setting this client cannot honour.
    public init(contentsOfFile path: String) throws(EtcdClientError) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw EtcdClientError(
                code: .invalidConfiguration, message: "cannot read the configuration file \(path): \(error)")
        }
        try self.init(yaml: String(decoding: data, as: UTF8.self), source: path)
    }

    /// Reads a configuration from YAML or JSON text with the Go client's keys; see
    /// ``init(contentsOfFile:)``. `source` names the text in error messages.
    public init(yaml text: String, source: String = "configuration") throws(EtcdClientError) {
        var file = ConfigurationFile(source: source)
        self = try file.load(text)
    }
}

/// The reader behind ``EtcdClient/Configuration/init(contentsOfFile:)``.
private struct ConfigurationFile {
    let source: String

    init(source: String) { self.source = source }

    static let keys = [
        "endpoints", "dial-timeout", "dial-keep-alive-time", "dial-keep-alive-timeout", "max-call-send-msg-size",
        "max-call-recv-msg-size", "username", "password", "reject-old-cluster", "permit-without-stream",
        "auto-sync-interval", "insecure-transport", "insecure-skip-tls-verify", "cert-file", "key-file",
        "trusted-ca-file", "ca-file",
    ]

    func fail(_ node: Node?, _ key: String?, _ message: String) -> EtcdClientError {
        var place = self.source
        if let line = node?.mark?.line { place += ", line \(line)" }
        if let key { place += ", \(key)" }
        return EtcdClientError(code: .invalidConfiguration, message: "\(place): \(message)")
    }

    mutating func load(_ text: String) throws(EtcdClientError) -> EtcdClient.Configuration {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw self.fail(nil, nil, "not valid YAML or JSON: \(error)")
        }
        var configuration = EtcdClient.Configuration()
        guard let root else { return configuration }  // an empty file: the defaults
        guard case .mapping(let mapping) = root else {
            throw self.fail(root, nil, "expected a mapping of keys to values at the top")
        }
        var values: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else { throw self.fail(keyNode, nil, "keys must be names") }
            let key = scalar.string
            guard Self.keys.contains(key) else {
                throw self.fail(
                    keyNode, nil,
                    "unknown key '\(key)'; the keys are those of Go's clientv3/yaml: \(Self.keys.joined(separator: ", "))"
                )
            }
            values[key] = value
        }

        if let node = values["endpoints"] {
            guard case .sequence(let sequence) = node else {
                throw self.fail(node, "endpoints", "expected a list, such as [\"127.0.0.1:2379\"]")
            }
            let endpoints = try sequence.map { item throws(EtcdClientError) in
                try self.string(item, "endpoints")
            }
            if endpoints.isEmpty { throw self.fail(node, "endpoints", "the list is empty; name at least one endpoint") }
            for (item, endpoint) in zip(sequence, endpoints) {
                do {
                    _ = try EtcdEndpoint.parse(endpoint, tlsByDefault: false)
                } catch {
                    throw self.fail(item, "endpoints", error.message)
                }
            }
            configuration.endpoints = endpoints
        }
        if let node = values["dial-timeout"] {
            let timeout = try self.duration(node, "dial-timeout")
            if timeout > .zero { configuration.dialTimeout = timeout }
        }
        if let node = values["dial-keep-alive-time"] {
            let time = try self.duration(node, "dial-keep-alive-time")
            configuration.keepAlive = time > .zero ? .init(time: time) : nil
        }
        if let node = values["dial-keep-alive-timeout"] {
            let timeout = try self.duration(node, "dial-keep-alive-timeout")
            if timeout > .zero { configuration.keepAlive?.timeout = timeout }
        }
        for (key, path) in [
            ("max-call-send-msg-size", \EtcdClient.Configuration.maxCallSendMessageSize),
            ("max-call-recv-msg-size", \EtcdClient.Configuration.maxCallReceiveMessageSize),
        ] {
            guard let node = values[key] else { continue }
            let size = try self.integer(node, key)
            if size < 0 { throw self.fail(node, key, "a size in bytes cannot be negative") }
            if size > 0 { configuration[keyPath: path] = size }  // 0: the default, as in Go
        }
        let username = try values["username"].map { node throws(EtcdClientError) in try self.string(node, "username") }
        let password = try values["password"].map { node throws(EtcdClientError) in try self.string(node, "password") }
        if let username, !username.isEmpty {
            configuration.authentication = .init(username: username, password: password ?? "")
        } else if let password, !password.isEmpty {
            throw self.fail(values["password"], "password", "a password needs a username")
        }
        if let node = values["reject-old-cluster"] {
            configuration.rejectOldCluster = try self.bool(node, "reject-old-cluster")
        }
        if let node = values["permit-without-stream"], try self.bool(node, "permit-without-stream") {
            throw self.fail(
                node, "permit-without-stream",
                "not supported: this client pings only while calls or streams are open, since etcd closes connections that ping while idle; remove the key or set it to false"
            )
        }
        if let node = values["auto-sync-interval"] {
            let interval = try self.duration(node, "auto-sync-interval")
            configuration.autoSyncInterval = interval > .zero ? interval : nil
        }

        let insecureTransport = try values["insecure-transport"].map { node throws(EtcdClientError) in
            try self.bool(node, "insecure-transport")
        }
        if insecureTransport != true {
            var tls = EtcdClient.Configuration.TLS()
            if let node = values["insecure-skip-tls-verify"] {
                tls.insecureSkipVerify = try self.bool(node, "insecure-skip-tls-verify")
            }
            if values["trusted-ca-file"] != nil && values["ca-file"] != nil {
                throw self.fail(
                    values["ca-file"], "ca-file", "give trusted-ca-file or its older name ca-file, not both")
            }
            let trusted = try self.file(values, "trusted-ca-file")
            let older = try self.file(values, "ca-file")
            tls.trustedCAFile = trusted ?? older
            tls.certificateFile = try self.file(values, "cert-file")
            tls.keyFile = try self.file(values, "key-file")
            if (tls.certificateFile == nil) != (tls.keyFile == nil) {
                let given = tls.certificateFile == nil ? "key-file" : "cert-file"
                throw self.fail(
                    values[given], given, "a client certificate needs both cert-file and key-file")
            }
            configuration.tls = tls
        }
        return configuration
    }

    func string(_ node: Node, _ key: String) throws(EtcdClientError) -> String {
        guard case .scalar(let scalar) = node else { throw self.fail(node, key, "expected a single value") }
        return scalar.string
    }

    func bool(_ node: Node, _ key: String) throws(EtcdClientError) -> Bool {
        switch try self.string(node, key).lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        case let other: throw self.fail(node, key, "expected true or false, got '\(other)'")
        }
    }

    func integer(_ node: Node, _ key: String) throws(EtcdClientError) -> Int {
        let text = try self.string(node, key)
        guard let value = Int(text) else { throw self.fail(node, key, "expected a whole number, got '\(text)'") }
        return value
    }

    /// A Go duration: a string such as `"1m30s"`, or an integer of nanoseconds.
    func duration(_ node: Node, _ key: String) throws(EtcdClientError) -> Duration {
        let text = try self.string(node, key)
        if let nanoseconds = Int64(text) {
            if nanoseconds < 0 { throw self.fail(node, key, "a duration cannot be negative") }
            if nanoseconds > 0 && nanoseconds < 1_000_000 {
                throw self.fail(
                    node, key,
                    "\(text) is \(text) nanoseconds (Go reads bare numbers as nanoseconds); write a unit, such as \"\(text)s\""
                )
            }
            return .nanoseconds(nanoseconds)
        }
        guard let duration = Self.parseGoDuration(text) else {
            throw self.fail(
                node, key, "'\(text)' is not a duration; write it as Go does, such as \"5s\", \"500ms\" or \"1m30s\"")
        }
        return duration
    }

    /// Parses Go's duration syntax: a sequence of decimal numbers with units ns, us, µs, ms, s, m, h.
    static func parseGoDuration(_ text: String) -> Duration? {
        if text == "0" { return .zero }
        var rest = Substring(text)
        var total = 0.0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix { !$0.isNumber && $0 != "." }
            rest = rest.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "ns": scale = 1e-9
            case "us", "µs", "μs": scale = 1e-6
            case "ms": scale = 1e-3
            case "s": scale = 1
            case "m": scale = 60
            case "h": scale = 3600
            default: return nil
            }
            total += value * scale
        }
        return .nanoseconds(Int64((total * 1e9).rounded()))
    }

    /// A path that must name a readable file.
    func file(_ values: [String: Node], _ key: String) throws(EtcdClientError) -> String? {
        guard let node = values[key] else { return nil }
        let path = try self.string(node, key)
        if path.isEmpty { return nil }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw self.fail(node, key, "cannot read the file \(path)")
        }
        return path
    }
}
