// SPDX-License-Identifier: Apache-2.0
import EtcdAPI
import Foundation
import Testing

@testable import Etcd

private func bytes(_ s: String) -> Data { Data(s.utf8) }

@Suite("Namespace key arithmetic")
struct NamespaceKeyTests {
    @Test("Go's prefixInterval cases: a key, a range, a one-sided range, and a prefix with no end")
    func goCases() {
        let keys = EtcdNamespaceKeys(prefix: bytes("pfx/"))
        #expect(keys.interval(key: bytes("a"), end: Data()) == (bytes("pfx/a"), Data()))
        #expect(keys.interval(key: bytes("abc"), end: bytes("def")) == (bytes("pfx/abc"), bytes("pfx/def")))
        // "\0" (to the end of the keyspace) stops at the end of the namespace.
        #expect(keys.interval(key: bytes("abc"), end: Data([0])) == (bytes("pfx/abc"), bytes("pfx0")))
        let top = EtcdNamespaceKeys(prefix: Data([0xff, 0xff]))
        #expect(top.interval(key: bytes("abc"), end: Data([0])) == (Data([0xff, 0xff]) + bytes("abc"), Data([0])))
    }

    @Test("an empty key with .prefix or .fromKey covers exactly the namespace")
    func wholeNamespace() throws {
        let keys = EtcdNamespaceKeys(prefix: bytes("app/"))
        for options: EtcdGetOptions in [.prefix, .fromKey] {
            let request = keys.range(try EtcdRequests.range(key: Data(), options: options))
            #expect(request.key == bytes("app/"))
            #expect(request.rangeEnd == bytes("app0"))
        }
        // A prefix inside the namespace stays inside it.
        let sub = keys.range(try EtcdRequests.range(key: bytes("db/"), options: .prefix))
        #expect(sub.key == bytes("app/db/") && sub.rangeEnd == bytes("app/db0"))
        // An empty namespace changes nothing.
        let none = EtcdNamespaceKeys(prefix: Data()).range(try EtcdRequests.range(key: Data(), options: .prefix))
        #expect(none.key == Data() && none.rangeEnd == Data([0]))
    }

    @Test("transactions prefix their comparisons and nested operations")
    func transactions() throws {
        let keys = EtcdNamespaceKeys(prefix: bytes("n/"))
        let request = keys.txn(
            try EtcdRequests.txn(
                compares: [.keyMissing("a"), .value("r").withPrefix() == "x"],
                then: [.put("a", value: "1"), .txn(if: [], then: [.delete("b", options: .fromKey)])],
                else: [.get("a")]
            ))
        #expect(request.compare[0].key == bytes("n/a") && request.compare[0].rangeEnd.isEmpty)
        #expect(request.compare[1].key == bytes("n/r") && request.compare[1].rangeEnd == bytes("n/s"))
        #expect(request.success[0].requestPut.key == bytes("n/a"))
        let nested = request.success[1].requestTxn.success[0].requestDeleteRange
        #expect(nested.key == bytes("n/b") && nested.rangeEnd == bytes("n0"))
        #expect(request.failure[0].requestRange.key == bytes("n/a"))
    }

    @Test("stripping removes the prefix and drops keys outside the namespace")
    func strip() {
        let keys = EtcdNamespaceKeys(prefix: bytes("n/"))
        #expect(keys.strip(key: bytes("n/a")) == bytes("a"))
        #expect(keys.strip(key: bytes("m/a")) == nil)
    }

    @Test("keyExists and keyMissing compare the version with 0, as clientv3util does")
    func conditions() {
        let exists = EtcdCompare.keyExists("k").proto
        #expect(exists.target == .version && exists.result == .greater && exists.version == 0)
        let missing = EtcdCompare.keyMissing("k").proto
        #expect(missing.target == .version && missing.result == .equal && missing.version == 0)
    }
}
