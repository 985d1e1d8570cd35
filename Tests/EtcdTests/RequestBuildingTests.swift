// SPDX-License-Identifier: Apache-2.0
import EtcdAPI
import Foundation
import Testing

@testable import Etcd

private func bytes(_ s: String) -> Data { Data(s.utf8) }

@Suite("Request building")
struct RequestBuildingTests {
    @Test("keys and values given as text are their UTF-8 bytes, a substring only its own")
    func textBytes() {
        let text = "ключ/é-\u{1F511}"
        #expect(text.etcdData == Data(text.utf8))
        #expect(text.etcdData.count == 16)
        let middle = text.dropFirst(2).dropLast(2)
        #expect(middle.etcdData == Data("юч/é".utf8))
        #expect("".etcdData.isEmpty)
        #expect("a".etcdData == Data([0x61]))
    }

    @Test("a plain get names one key and no range end")
    func singleKey() throws {
        let r = try EtcdRequests.range(key: bytes("foo"), options: [])
        #expect(r.key == bytes("foo"))
        #expect(r.rangeEnd.isEmpty)
        #expect(!r.serializable)
    }

    @Test("prefix sets the range end to the next key after the prefix")
    func prefix() throws {
        #expect(try EtcdRequests.range(key: bytes("foo"), options: .prefix).rangeEnd == bytes("fop"))
        // Trailing 0xff bytes are dropped before incrementing, as in the Go client.
        let r = try EtcdRequests.range(key: Data([0x61, 0xff, 0xff]), options: .prefix)
        #expect(r.rangeEnd == Data([0x62]))
        // No larger key exists: the range runs to the end of the keyspace.
        #expect(try EtcdRequests.range(key: Data([0xff, 0xff]), options: .prefix).rangeEnd == Data([0]))
        // An empty prefix means every key.
        let all = try EtcdRequests.range(key: Data(), options: .prefix)
        #expect(all.key == Data([0]) && all.rangeEnd == Data([0]))
    }

    @Test("fromKey and range(end:) set the range end")
    func fromKeyAndRange() throws {
        let from = try EtcdRequests.range(key: bytes("b"), options: .fromKey)
        #expect(from.key == bytes("b") && from.rangeEnd == Data([0]))
        let range = try EtcdRequests.range(key: bytes("a"), options: .range(end: "c"))
        #expect(range.rangeEnd == bytes("c"))
    }

    @Test("every read option reaches its field")
    func readOptions() throws {
        let r = try EtcdRequests.range(
            key: bytes("k"),
            options: [
                .prefix, .revision(7), .limit(3), .sort(by: .modRevision, order: .descending), .serializable,
                .keysOnly, .countOnly, .minModRevision(2), .maxModRevision(9), .minCreateRevision(1),
                .maxCreateRevision(8),
            ]
        )
        #expect(r.revision == 7)
        #expect(r.limit == 3)
        #expect(r.sortTarget == .mod)
        #expect(r.sortOrder == .descend)
        #expect(r.serializable && r.keysOnly && r.countOnly)
        #expect(r.minModRevision == 2 && r.maxModRevision == 9)
        #expect(r.minCreateRevision == 1 && r.maxCreateRevision == 8)
    }

    @Test(
        "sort targets map to etcd's",
        arguments: [
            (EtcdSortTarget.key, Etcdserverpb_RangeRequest.SortTarget.key),
            (.version, .version), (.createRevision, .create), (.modRevision, .mod), (.value, .value),
        ])
    func sortTargets(target: EtcdSortTarget, expected: Etcdserverpb_RangeRequest.SortTarget) throws {
        let r = try EtcdRequests.range(key: bytes("k"), options: [.prefix, .sort(by: target, order: .descending)])
        #expect(r.sortTarget == expected)
        #expect(r.sortOrder == .descend)
    }

    @Test("sorting by key ascending is dropped, since etcd returns that order anyway")
    func sortByKeyAscending() throws {
        let r = try EtcdRequests.range(key: bytes("k"), options: [.prefix, .sort(by: .key, order: .ascending)])
        #expect(r.sortOrder == .none)
    }

    @Test("first/last helpers are prefix + sort + limit 1")
    func topHelpers() throws {
        let last = try EtcdRequests.range(key: bytes("k"), options: .lastCreate)
        #expect(
            last.rangeEnd == bytes("l") && last.limit == 1 && last.sortTarget == .create && last.sortOrder == .descend)
        let first = try EtcdRequests.range(key: bytes("k"), options: .firstRevision)
        #expect(first.sortTarget == .mod && first.sortOrder == .ascend && first.limit == 1)
    }

    @Test("later options override earlier ones of the same kind")
    func override() throws {
        let r = try EtcdRequests.range(key: bytes("k"), options: [.limit(1), .limit(5)])
        #expect(r.limit == 5)
    }

    @Test("client-side checks throw before sending")
    func validation() {
        func code(_ body: () throws -> Void) -> EtcdClientError.Code? {
            do { try body() } catch let e as EtcdClientError { return e.code } catch { return nil }
            return nil
        }
        #expect(code { _ = try EtcdRequests.range(key: Data(), options: []) } == .emptyKey)
        #expect(code { _ = try EtcdRequests.put(key: Data(), value: Data(), options: []) } == .emptyKey)
        #expect(code { _ = try EtcdRequests.deleteRange(key: Data(), options: []) } == .emptyKey)
        #expect(code { _ = try EtcdRequests.range(key: bytes("k"), options: [.prefix, .fromKey]) } == .invalidArgument)
        #expect(
            code { _ = try EtcdRequests.range(key: bytes("k"), options: .sort(by: .value, order: .ascending)) }
                == .invalidArgument)
        #expect(code { _ = try EtcdRequests.range(key: bytes("k"), options: .range(end: "a")) } == .invalidArgument)
        #expect(code { _ = try EtcdRequests.range(key: bytes("k"), options: .limit(-1)) } == .invalidArgument)
        #expect(code { _ = try EtcdRequests.range(key: bytes("k"), options: .revision(-1)) } == .invalidArgument)
        #expect(code { _ = try EtcdRequests.range(key: bytes("k"), options: .paged(pageSize: 10)) } == .invalidArgument)
        #expect(
            code { _ = try EtcdRequests.range(key: bytes("k"), options: [.prefix, .paged(pageSize: 0)]) }
                == .invalidArgument)
        #expect(
            code {
                _ = try EtcdRequests.range(
                    key: bytes("k"), options: [.prefix, .paged(pageSize: 5), .sort(by: .value, order: .descending)])
            }
                == .invalidArgument
        )
        #expect(
            code { _ = try EtcdRequests.put(key: bytes("k"), value: bytes("v"), options: .ignoreValue) }
                == .valueProvided)
        #expect(
            code { _ = try EtcdRequests.put(key: bytes("k"), value: bytes("v"), options: [.ignoreLease, .lease(5)]) }
                == .leaseProvided)
        #expect(
            code { _ = try EtcdRequests.deleteRange(key: bytes("k"), options: [.prefix, .range(end: "z")]) }
                == .invalidArgument)
        #expect(code { _ = try EtcdRequests.compaction(revision: 0, physical: false) } == .invalidArgument)
        #expect(
            code { _ = try EtcdOp.get("k", options: [.prefix, .paged(pageSize: 2)]).makeRequestOp() }
                == .invalidArgument)
        #expect(code { _ = try EtcdRequests.txn(compares: [.version("") > 0], then: [], else: []) } == .emptyKey)
    }

    @Test("put and delete options reach their fields")
    func writeOptions() throws {
        let put = try EtcdRequests.put(key: bytes("k"), value: bytes("v"), options: [.lease(42), .prevKV])
        #expect(put.lease == 42 && put.prevKv && !put.ignoreValue && !put.ignoreLease)
        let ignore = try EtcdRequests.put(key: bytes("k"), value: Data(), options: [.ignoreValue, .ignoreLease])
        #expect(ignore.ignoreValue && ignore.ignoreLease)
        let delete = try EtcdRequests.deleteRange(key: bytes("k"), options: [.prefix, .prevKV])
        #expect(delete.rangeEnd == bytes("l") && delete.prevKv)
        let compaction = try EtcdRequests.compaction(revision: 12, physical: true)
        #expect(compaction.revision == 12 && compaction.physical)
    }

    @Test("comparisons and nested transactions map to etcd's Compare and RequestOp")
    func txn() throws {
        let request = try EtcdRequests.txn(
            compares: [
                .value("a") == "x", .version("b") > 0, .createRevision("c") < 5, .modRevision("d") != 3,
                .lease("e") == 9, .value("p").withPrefix() == "y",
            ],
            then: [.put("a", value: "1"), .txn(if: [], then: [.get("z")], else: [.delete("q")])],
            else: [.get("a", options: .keysOnly)]
        )
        let c = request.compare
        #expect(c[0].target == .value && c[0].result == .equal && c[0].value == bytes("x"))
        #expect(c[1].target == .version && c[1].result == .greater && c[1].version == 0)
        #expect(c[2].target == .create && c[2].result == .less && c[2].createRevision == 5)
        #expect(c[3].target == .mod && c[3].result == .notEqual && c[3].modRevision == 3)
        #expect(c[4].target == .lease && c[4].lease == 9)
        #expect(c[5].rangeEnd == bytes("q"))
        #expect(request.success.count == 2)
        guard case .requestTxn(let nested) = request.success[1].request else {
            Issue.record("expected a nested txn")
            return
        }
        #expect(nested.success.count == 1 && nested.failure.count == 1)
        guard case .requestRange(let get) = request.failure[0].request else {
            Issue.record("expected a range in the else branch")
            return
        }
        #expect(get.keysOnly)
    }

    @Test("read-only operations are recognised, so read-only transactions retry like gets")
    func readOnly() {
        #expect(EtcdOp.get("k").isReadOnly)
        #expect(EtcdOp.txn(if: [], then: [.get("a")], else: [.get("b")]).isReadOnly)
        #expect(!EtcdOp.txn(if: [], then: [.get("a")], else: [.put("b", value: "c")]).isReadOnly)
        #expect(!EtcdOp.delete("k").isReadOnly)
    }
}
