// SPDX-License-Identifier: Apache-2.0
import Testing

@testable import Etcd

@Suite("Configuration")
struct ConfigurationTests {
    @Test("endpoints parse as host:port, http://, https://, and unix:// or unixs:// with a socket's path")
    func validEndpoints() throws {
        let plain = try EtcdEndpoint.parse("127.0.0.1:2379", tlsByDefault: false)
        #expect(plain.host == .ipv4("127.0.0.1") && plain.port == 2379 && !plain.useTLS)
        let tlsDefault = try EtcdEndpoint.parse("etcd-0.local:2379", tlsByDefault: true)
        #expect(tlsDefault.host == .dns("etcd-0.local") && tlsDefault.useTLS)
        let http = try EtcdEndpoint.parse("http://localhost:2379/", tlsByDefault: true)
        #expect(http.host == .dns("localhost") && !http.useTLS)
        let https = try EtcdEndpoint.parse("HTTPS://10.0.0.1:2379", tlsByDefault: false)
        #expect(https.useTLS && https.description == "https://10.0.0.1:2379")
        let v6 = try EtcdEndpoint.parse("[::1]:2379", tlsByDefault: false)
        #expect(v6.host == .ipv6("::1") && v6.description == "http://[::1]:2379")
        // Go's client takes everything after unix:// as the path: etcd's own form is relative.
        let absolute = try EtcdEndpoint.parse("unix:///var/lib/etcd/localhost:2379", tlsByDefault: true)
        #expect(absolute.host == .unix("/var/lib/etcd/localhost:2379") && !absolute.useTLS)
        #expect(absolute.description == "unix:///var/lib/etcd/localhost:2379" && absolute.hostString == "localhost")
        let relative = try EtcdEndpoint.parse("UNIXS://localhost:2379", tlsByDefault: false)
        #expect(relative.host == .unix("localhost:2379") && relative.useTLS)
        #expect(relative.description == "unixs://localhost:2379")
    }

    @Test(
        "malformed endpoints are refused with a message naming them",
        arguments: [
            "", "127.0.0.1", "ftp://127.0.0.1:2379", "127.0.0.1:0", "127.0.0.1:70000", "host:port",
            "http://:2379", "::1:2379", "http://h:1/path", "bad host:2379", "unix://", "unixs://",
        ]
    )
    func malformedEndpoints(endpoint: String) {
        do {
            _ = try EtcdClient(configuration: .init(endpoints: [endpoint]))
            Issue.record("'\(endpoint)' was accepted")
        } catch {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains("'\(endpoint)'"))
        }
    }

    @Test("an empty endpoint list is refused")
    func emptyEndpoints() {
        #expect(throws: EtcdClientError.self) { try EtcdClient(configuration: .init(endpoints: [])) }
    }

    @Test("a client certificate without its key is refused")
    func halfClientCertificate() {
        var configuration = EtcdClient.Configuration(endpoints: ["https://127.0.0.1:2379"])
        configuration.tls = .init(certificateFile: "/tmp/client.pem")
        do {
            _ = try EtcdClient(configuration: configuration)
            Issue.record("accepted a certificate without a key")
        } catch {
            #expect(error.code == .invalidConfiguration)
        }
    }

    @Test("duplicate endpoints share one connection")
    func duplicates() throws {
        let client = try EtcdClient(configuration: .init(endpoints: ["127.0.0.1:2379", "http://127.0.0.1:2379"]))
        #expect(client.endpoints == ["http://127.0.0.1:2379"])
    }

    @Test("defaults follow the Go client, with keepalive on")
    func defaults() {
        let configuration = EtcdClient.Configuration()
        #expect(configuration.maxCallSendMessageSize == 2 * 1024 * 1024)
        #expect(configuration.maxCallReceiveMessageSize == Int(Int32.max))
        #expect(configuration.keepAlive != nil)
        #expect(configuration.dialTimeout == .seconds(5))
    }

    @Test("credentials never show the password")
    func redactedPassword() {
        let auth = EtcdClient.Configuration.Authentication(username: "root", password: "s3cret")
        #expect(!"\(auth)".contains("s3cret"))
        #expect(!String(reflecting: auth).contains("s3cret"))
    }

    @Test("server versions parse and compare")
    func versions() {
        #expect(EtcdServerVersion("3.4.23") == EtcdServerVersion(major: 3, minor: 4, patch: 23))
        #expect(EtcdServerVersion("3.6.0-rc.1") == EtcdServerVersion(major: 3, minor: 6, patch: 0))
        #expect(EtcdServerVersion("garbage") == nil)
        #expect(EtcdServerVersion("3.4.23")! < EtcdServerVersion("3.5.0")!)
    }
}
