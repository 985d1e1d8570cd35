// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing

@testable import Etcd

@Suite("Configuration files")
struct ConfigurationFileTests {
    private func error(_ text: String) -> EtcdClientError? {
        do {
            _ = try EtcdClient.Configuration(yaml: text, source: "etcd.yaml")
            return nil
        } catch {
            return error
        }
    }

    @Test("Go's keys are read: endpoints, durations, sizes, credentials, flags")
    func goKeys() throws {
        let configuration = try EtcdClient.Configuration(
            yaml: """
                endpoints:
                  - 10.0.0.1:2379
                  - http://10.0.0.2:2379
                dial-timeout: 3s
                dial-keep-alive-time: 1m30s
                dial-keep-alive-timeout: 500ms
                max-call-send-msg-size: 1048576
                max-call-recv-msg-size: 0
                username: app
                password: secret
                reject-old-cluster: true
                permit-without-stream: false
                auto-sync-interval: 1m
                insecure-transport: true
                """)
        #expect(configuration.endpoints == ["10.0.0.1:2379", "http://10.0.0.2:2379"])
        #expect(configuration.dialTimeout == .seconds(3))
        #expect(configuration.keepAlive == .init(time: .seconds(90), timeout: .milliseconds(500)))
        #expect(configuration.maxCallSendMessageSize == 1_048_576)
        #expect(configuration.maxCallReceiveMessageSize == Int(Int32.max))  // 0 keeps the default, as in Go
        #expect(configuration.authentication == .init(username: "app", password: "secret"))
        #expect(configuration.rejectOldCluster)
        #expect(configuration.autoSyncInterval == .seconds(60))
        #expect(configuration.tls == nil)
    }

    @Test("JSON works too, and integer durations are nanoseconds as in Go")
    func json() throws {
        let configuration = try EtcdClient.Configuration(
            yaml: #"{"endpoints": ["127.0.0.1:2379"], "dial-timeout": 2000000000, "insecure-transport": true}"#)
        #expect(configuration.dialTimeout == .seconds(2))
        #expect(configuration.endpoints == ["127.0.0.1:2379"])
    }

    @Test("without insecure-transport, TLS is on as with Go's loader; a keepalive time of 0 turns pings off")
    func tlsByDefault() throws {
        let configuration = try EtcdClient.Configuration(
            yaml: "endpoints: [127.0.0.1:2379]\ninsecure-skip-tls-verify: true\ndial-keep-alive-time: 0")
        #expect(configuration.tls == .init(insecureSkipVerify: true))
        #expect(configuration.keepAlive == nil)
        // An empty file gives the defaults.
        let empty = try EtcdClient.Configuration(yaml: "")
        #expect(empty.endpoints == ["127.0.0.1:2379"] && empty.tls == nil)
    }

    @Test("Go durations parse as Go parses them")
    func durations() throws {
        for (text, expected) in [
            ("1h", Duration.seconds(3600)), ("1m30s", .seconds(90)), ("1.5s", .milliseconds(1500)),
            ("250ms", .milliseconds(250)), ("10us", .microseconds(10)), ("0", .zero),
        ] {
            let configuration = try EtcdClient.Configuration(yaml: "dial-timeout: \(text)\ninsecure-transport: true")
            #expect(configuration.dialTimeout == (expected == .zero ? .seconds(5) : expected), "\(text)")
        }
    }

    @Test("bad input names the file, the line and the key, and says what to write")
    func badInput() {
        let cases: [(String, [String])] = [
            (
                "endpoints: [a:1]\ndial_timeout: 5s",
                ["etcd.yaml, line 2", "unknown key 'dial_timeout'", "dial-timeout"]
            ),
            ("dial-timeout: 5", ["line 1, dial-timeout", "5 nanoseconds", "\"5s\""]),
            ("dial-timeout: soon", ["dial-timeout", "'soon' is not a duration"]),
            ("endpoints: 127.0.0.1:2379", ["endpoints", "expected a list"]),
            ("endpoints: []", ["endpoints", "empty"]),
            ("endpoints:\n  - 127.0.0.1:2379\n  - ftp://x:1", ["line 3, endpoints", "unknown scheme 'ftp'"]),
            ("reject-old-cluster: maybe", ["reject-old-cluster", "expected true or false"]),
            ("max-call-send-msg-size: big", ["max-call-send-msg-size", "whole number"]),
            ("password: secret", ["password", "needs a username"]),
            ("cert-file: /nonexistent/client.pem", ["cert-file", "cannot read the file /nonexistent/client.pem"]),
            ("permit-without-stream: true", ["permit-without-stream", "not supported"]),
            ("- a\n- b", ["expected a mapping"]),
            ("endpoints: [\"a:1\"\n", ["not valid YAML or JSON"]),
            ("endpoints: [a:1]\nendpoints: [b:2]", ["not valid YAML or JSON", "'endpoints'"]),
        ]
        for (text, fragments) in cases {
            let error = self.error(text)
            #expect(error?.code == .invalidConfiguration, "\(text)")
            for fragment in fragments {
                #expect(error?.message.contains(fragment) == true, "\(text): \(error?.message ?? "no error")")
            }
        }
    }

    @Test("the password never appears in errors or descriptions")
    func passwordHidden() throws {
        let error = self.error("username: app\npassword: hunter2\nendpoints: [nope]")
        #expect(error != nil)
        #expect(error?.message.contains("hunter2") == false)
        let configuration = try EtcdClient.Configuration(yaml: "username: app\npassword: hunter2")
        #expect(!"\(configuration.authentication!)".contains("hunter2"))
    }

    @Test("a missing file is a clear error")
    func missingFile() {
        #expect(throws: EtcdClientError.self) { try EtcdClient.Configuration(contentsOfFile: "/nonexistent/etcd.yaml") }
    }
}
