// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Foundation
import Testing

@Suite("EtcdTesting", .timeLimit(.minutes(2)))
struct EtcdTestingTests {
    @Test("the binary is the one ETCD_BINARY names, when set, and reports its version")
    func binary() throws {
        let binary = try EtcdBinary.locate()
        if let explicit = ProcessInfo.processInfo.environment["ETCD_BINARY"], !explicit.isEmpty {
            #expect(binary == explicit)
        }
        let version = try EtcdBinary.version(of: binary)
        #expect(EtcdServerVersion(version) != nil)
        print("etcd under test: \(binary) (\(version))")
    }

    @Test("a cluster's processes and folder are gone after the scoped function, also when the body throws")
    func cleanup() async throws {
        struct Planned: Error {}
        var directory = ""
        var pids: [Int32] = []
        await #expect(throws: Planned.self) {
            try await withEtcdTestCluster(.init(members: 2)) { cluster in
                directory = cluster.directory
                pids = cluster.members.compactMap(\.processID)
                #expect(FileManager.default.fileExists(atPath: directory))
                throw Planned()
            }
        }
        #expect(pids.count == 2)
        #expect(!FileManager.default.fileExists(atPath: directory))
        for pid in pids { #expect(kill(pid, 0) != 0, "process \(pid) still exists") }
    }

    @Test("a paused member answers nothing until it is resumed")
    func pauseAndResume() async throws {
        try await withEtcd { cluster, client in
            let member = cluster.members[0]
            try member.pause()
            let error = await etcdErrorCode {
                try await withEtcdTimeout(.milliseconds(500)) { _ = try await client.get("k") }
            }
            #expect(error?.code == .deadlineExceeded)
            try member.resume()
            let response = try await withEtcdTimeout(.seconds(5)) { try await client.get("k") }
            #expect(response.count == 0)
        }
    }

    @Test("a stopped single member restarts with its data")
    func restart() async throws {
        try await withEtcd { cluster, client in
            try await client.put("k", value: "kept")
            try await cluster.members[0].restart()
            try await cluster.waitUntilHealthy()
            let response = try await withEtcdTimeout(.seconds(10)) { try await client.get("k") }
            #expect(response.kvs.first?.valueString == "kept")
        }
    }

    @Test("the leader of a 3-member cluster is found, and a new one is elected when it dies")
    func leader() async throws {
        try await withEtcdTestCluster(.init(members: 3)) { cluster in
            let first = try await cluster.leaderIndex()
            try await cluster.members[first].kill()
            try await cluster.waitUntilHealthy()
            let second = try await cluster.leaderIndex()
            #expect(second != first)
        }
    }
}
