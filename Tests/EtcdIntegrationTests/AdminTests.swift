// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import Foundation
import Testing

@Suite("Auth, Cluster and Maintenance APIs", .timeLimit(.minutes(3)))
struct AdminTests {
    @Test("ExampleAuth: a user with a role on [foo, zoo) is denied outside it; the admin calls round-trip")
    func auth() async throws {
        try await withEtcd { cluster, client in
            #expect(await etcdErrorCode { try await client.authEnable() }?.code == .rootUserNotExist)
            try await client.roleAdd("root")
            try await client.userAdd("root", password: "123")
            try await client.userGrantRole("root", role: "root")
            try await client.roleAdd("r")
            try await client.userAdd("u", password: "123")
            try await client.userGrantRole("u", role: "r")
            try await client.roleGrantPermission("r", .init(.readwrite, key: "foo", rangeEnd: "zoo"))
            #expect(await etcdErrorCode { try await client.userAdd("", password: "x") }?.code == .userEmpty)
            #expect(await etcdErrorCode { try await client.roleAdd("r") }?.code == .roleAlreadyExist)
            #expect(await etcdErrorCode { try await client.userDelete("nobody") }?.code == .userNotFound)
            #expect(try await client.userList().users.sorted() == ["root", "u"])
            #expect(try await client.roleList().roles.sorted() == ["r", "root"])
            #expect(try await client.userGet("u").roles == ["r"])
            let permissions = try await client.roleGet("r").permissions
            #expect(permissions.map(\.description) == ["readwrite [foo, zoo)"])
            try await client.authEnable()

            var userConfiguration = cluster.clientConfiguration()
            userConfiguration.authentication = .init(username: "u", password: "123")
            try await withEtcdClient(userConfiguration) { user in
                try await user.put("foo1", value: "bar")
                let error = await etcdErrorCode {
                    _ = try await user.txn(
                        if: [.value("zoo1") > "abc"],
                        then: [.put("zoo1", value: "XYZ")],
                        else: [.put("zoo1", value: "ABC")]
                    )
                }
                #expect(error?.message == "etcdserver: permission denied")
            }

            var rootConfiguration = cluster.clientConfiguration()
            rootConfiguration.authentication = .init(username: "root", password: "123")
            try await withEtcdClient(rootConfiguration) { root in
                try await root.roleRevokePermission("r", key: "foo", rangeEnd: "zoo")
                #expect(try await root.roleGet("r").permissions.isEmpty)
                try await root.roleGrantPermission("r", .prefix(.read, "config/"))
                #expect(try await root.roleGet("r").permissions.first?.rangeEnd == Data("config0".utf8))
                try await root.userChangePassword("u", password: "456")
                var oldPassword = cluster.clientConfiguration()
                oldPassword.authentication = .init(username: "u", password: "123")
                let refused = try await withEtcdClient(oldPassword) { stale in
                    await etcdErrorCode { _ = try await stale.get("config/x") }
                }
                #expect(refused?.code == .authFailed)
                try await root.userRevokeRole("u", role: "r")
                #expect(try await root.userGet("u").roles.isEmpty)
                try await root.userDelete("u")
                try await root.roleDelete("r")
                try await root.authDisable()
            }
            // Auth is off again: the unauthenticated client works.
            try await client.put("open", value: "1")
        }
    }

    @Test("member list of a 3-member cluster prints members: 3; a learner is added and removed")
    func members() async throws {
        try await withEtcd(members: 3) { cluster, client in
            let list = try await client.memberList()
            #expect("members: \(list.members.count)" == "members: 3")
            #expect(Set(list.members.flatMap(\.clientURLs)) == Set(cluster.members.map(\.clientURL)))
            let serverVersion = try #require(EtcdServerVersion(cluster.serverVersion))
            if serverVersion >= EtcdServerVersion(major: 3, minor: 5) {
                #expect(try await client.memberList(linearizable: true).members.count == 3)
            } else {
                #expect(
                    await etcdErrorCode { _ = try await client.memberList(linearizable: true) }?.code == .notSupported)
            }
            #expect(
                await etcdErrorCode { _ = try await client.memberAdd(peerURLs: ["not a url"]) }?.code
                    == .invalidArgument)
            let peerURL = "http://127.0.0.1:1"  // never started: nothing needs to listen there
            // etcd refuses reconfiguration until every member has been connected for 5 s ("unhealthy
            // cluster"); nothing announces that moment, so the add is retried, bounded.
            let added = try await within(.seconds(20), "the cluster to accept a new member") {
                while true {
                    do {
                        return try await client.memberAdd(peerURLs: [peerURL], isLearner: true)
                    } catch let error as EtcdClientError where error.code == .unhealthy {
                        try await Task.sleep(for: .milliseconds(250))
                    }
                }
            }
            let learner = try #require(added.added)
            #expect(learner.isLearner)
            #expect(added.members.count == 4)
            // It never started, so it cannot have caught up.
            #expect(await etcdErrorCode { _ = try await client.memberPromote(learner.id) }?.code == .learnerNotReady)
            let voter = list.members[0]
            #expect(await etcdErrorCode { _ = try await client.memberPromote(voter.id) }?.code == .memberNotLearner)
            _ = try await client.memberUpdate(learner.id, peerURLs: [peerURL])
            let removed = try await client.memberRemove(learner.id)
            #expect(removed.members.count == 3)
            #expect(await etcdErrorCode { _ = try await client.memberRemove(learner.id) }?.code == .memberNotFound)

            // A learner that starts catches up, is promoted once ready, and serves as a voter.
            try await client.put("before-join", value: "1")
            let joining = try cluster.makeJoiningMember()
            let joined = try #require(try await client.memberAdd(peerURLs: [joining.peerURL], isLearner: true).added)
            try joining.start()
            // etcd answers learnerNotReady until the learner's log is close to the leader's; it
            // announces nothing, so the promotion is retried, bounded.
            let promoted = try await within(.seconds(30), "the learner to be promotable") {
                while true {
                    do {
                        return try await client.memberPromote(joined.id)
                    } catch let error as EtcdClientError where error.code == .learnerNotReady {
                        try await Task.sleep(for: .milliseconds(250))
                    }
                }
            }
            #expect(promoted.members.count == 4)
            #expect(promoted.members.allSatisfy { !$0.isLearner })
            let status = try await withEtcdClient(.init(endpoints: [joining.clientEndpoint])) { newMember in
                try await within(.seconds(10), "the new member to serve") {
                    while true {
                        if let kv = try? await newMember.get("before-join").kvs.first { return kv.valueString }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
            }
            #expect(status == "1")
            #expect(try await client.memberRemove(joined.id).members.count == 3)
        }
    }

    @Test("status and defragment every member; hashKV agrees across members; moveLeader moves the leader")
    func maintenance() async throws {
        try await withEtcd(members: 3) { cluster, client in
            for index in 0..<20 { try await client.put("k\(index)", value: String(repeating: "v", count: 1000)) }
            let revision = try await client.get("k0").header.revision
            var hashes: Set<UInt32> = []
            for member in cluster.members {
                let status = try await client.status(endpoint: member.clientEndpoint)
                #expect(status.version == cluster.serverVersion)
                #expect(status.dbSize > 0 && status.leader != 0 && status.raftIndex > 0)
                try await client.defragment(endpoint: member.clientEndpoint)
                hashes.insert(try await client.hashKV(endpoint: member.clientEndpoint, revision: revision).hash)
            }
            #expect(hashes.count == 1)
            #expect(try await client.alarmList().alarms.isEmpty)
            let leader = try await cluster.leaderIndex()
            let target = cluster.members[(leader + 1) % 3]
            let targetID = try await client.status(endpoint: target.clientEndpoint).header.memberID
            try await client.moveLeader(to: targetID)
            #expect(try await client.status(endpoint: target.clientEndpoint).leader == targetID)
            #expect(await etcdErrorCode { try await client.moveLeader(to: 0x1234) }?.code == .badLeaderTransferee)
        }
    }

    @Test(
        "a snapshot we save is accepted by etcdctl snapshot status, with the revision we wrote, and only its owner may read it"
    )
    func snapshot() async throws {
        try await withEtcd { cluster, client in
            for index in 0..<100 { try await client.put("snap/\(index)", value: "value \(index)") }
            let path = cluster.directory + "/backup.db"
            let progressCalls = SharedCounter()
            let snapshot = try await client.snapshot(to: path) { _, _ in progressCalls.increment() }
            #expect(snapshot.size > 0)
            #expect(progressCalls.count > 0)
            #expect(!FileManager.default.fileExists(atPath: path + ".part"))
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o600, "mode \(String(mode ?? 0, radix: 8))")
            let status = try await cluster.etcdctl(["snapshot", "status", path, "--write-out", "json"])
            let revision = try await client.get("snap/99").kvs[0].modRevision
            #expect(status.contains("\"revision\":\(revision)"))

            // Restored (by etcdutl or etcdctl) into a new cluster, it serves the same keys.
            var restoreConfiguration = EtcdTestCluster.Configuration()
            restoreConfiguration.restoreSnapshot = path
            try await withEtcdTestCluster(restoreConfiguration) { restored in
                try await withEtcdClient(restored.clientConfiguration()) { restoredClient in
                    let keys = try await restoredClient.get("snap/", options: .prefix)
                    #expect(keys.count == 100)
                    #expect(try await restoredClient.get("snap/42").kvs.first?.valueString == "value 42")
                }
            }
        }
    }

    @Test(
        "a snapshot to a path that cannot be written fails with invalidArgument and the system's reason, leaving no file"
    )
    func snapshotUnwritable() async throws {
        try await withEtcd { cluster, client in
            let path = cluster.directory + "/missing-folder/backup.db"
            let error = await etcdErrorCode { try await client.snapshot(to: path) }
            #expect(error?.code == .invalidArgument)
            #expect(
                error?.message
                    == "cannot write the snapshot file \(path).part: No such file or directory; give a path in an existing folder this process can write to"
            )
            #expect(!FileManager.default.fileExists(atPath: cluster.directory + "/missing-folder"))
        }
    }

    @Test("a snapshot to a folder's path fails with invalidArgument and leaves the folder and its files as they were")
    func snapshotOverFolder() async throws {
        try await withEtcd { cluster, client in
            let folder = cluster.directory + "/kept"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
            try Data("mine".utf8).write(to: URL(fileURLWithPath: folder + "/file"))
            let error = await etcdErrorCode { try await client.snapshot(to: folder) }
            #expect(error?.code == .invalidArgument)
            #expect(
                error?.message
                    == "cannot write the snapshot to \(folder): it is a folder; give the path of a file in it")
            #expect(try String(contentsOfFile: folder + "/file", encoding: .utf8) == "mine")
            #expect(!FileManager.default.fileExists(atPath: folder + ".part"))
        }
    }

    @Test("NOSPACE: puts fail with noSpace and the alarm is listed, until compaction, defrag and disarm")
    func noSpace() async throws {
        try await withEtcd(arguments: ["--quota-backend-bytes", "\(1 << 20)"]) { cluster, client in
            let value = String(repeating: "x", count: 100_000)
            var error: EtcdClientError?
            for index in 0..<100 {
                error = await etcdErrorCode { try await client.put("big\(index % 4)", value: value) }
                if error != nil { break }
            }
            #expect(error?.code == .noSpace)
            let alarms = try await client.alarmList().alarms
            #expect(alarms.map(\.type) == [.noSpace])
            #expect(await etcdErrorCode { try await client.put("more", value: "1") }?.code == .noSpace)
            let revision = try await client.get("big0").header.revision
            try await client.compact(revision)
            try await client.defragment(endpoint: cluster.members[0].clientEndpoint)
            try await client.alarmDisarm(alarms[0])
            #expect(try await client.alarmList().alarms.isEmpty)
            try await client.put("more", value: "1")
        }
    }
}
