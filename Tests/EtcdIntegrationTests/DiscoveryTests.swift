// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdAPI
import EtcdDiscovery
import EtcdTesting
import GRPCCore
import GRPCNIOTransportHTTP2
import Testing

@Suite("Service discovery (EtcdDiscovery)", .timeLimit(.minutes(3)))
struct DiscoveryTests {
    @Test("endpoints are added, listed and deleted with Go's key layout and values")
    func manager() async throws {
        try await withEtcd { cluster, client in
            let manager = try EtcdEndpointManager(client: client, target: "services/billing")
            try await manager.add(EtcdServiceEndpoint(address: "10.0.0.1:80"))
            try await manager.add(
                EtcdServiceEndpoint(address: "10.0.0.2:80", metadata: "zone-a"), key: "services/billing/b")
            // Written by a Go service (etcdctl stands in): any JSON metadata.
            try await cluster.etcdctl([
                "put", "services/billing/go", #"{"Op":0,"Addr":"10.0.0.3:80","Metadata":{"weight":2}}"#,
            ])
            try await cluster.etcdctl(["put", "services/billing/junk", "not json"])
            let listed = try await manager.list()
            #expect(
                listed == [
                    "services/billing/10.0.0.1:80": EtcdServiceEndpoint(address: "10.0.0.1:80"),
                    "services/billing/b": EtcdServiceEndpoint(address: "10.0.0.2:80", metadata: "zone-a"),
                    "services/billing/go": EtcdServiceEndpoint(address: "10.0.0.3:80", metadata: #"{"weight":2}"#),
                ])
            // The value is Go's internal.Update JSON, which Go's resolvers read.
            let raw = try await client.get("services/billing/10.0.0.1:80").kvs.first?.valueString
            #expect(raw == #"{"Addr":"10.0.0.1:80","Metadata":null,"Op":0}"#)

            try await manager.delete(EtcdServiceEndpoint(address: "10.0.0.1:80"))
            #expect(try await manager.list().count == 2)

            let outside = await etcdErrorCode { try await manager.add(.init(address: "x:1"), key: "services/other/x") }
            #expect(outside?.code == .invalidArgument)
            #expect(outside?.message.contains("'services/billing/'") == true)
            let noAddress = await etcdErrorCode { try await manager.add(.init(address: "")) }
            #expect(noAddress?.code == .invalidArgument)
            #expect(throws: EtcdClientError.self) { try EtcdEndpointManager(client: client, target: "") }
        }
    }

    @Test("watch gives the current endpoints, then each change; a registration ends with its scope")
    func watch() async throws {
        try await withEtcd { _, client in
            let manager = try EtcdEndpointManager(client: client, target: "svc")
            try await manager.add(.init(address: "10.0.0.1:1"))
            try await manager.watchEndpoints { lists in
                var iterator = lists.makeAsyncIterator()
                #expect(try await iterator.next()?.keys.sorted() == ["svc/10.0.0.1:1"])
                let during = try await manager.withRegistration(.init(address: "10.0.0.2:2"), ttl: 5) {
                    try await iterator.next()?.keys.sorted()
                }
                #expect(during == ["svc/10.0.0.1:1", "svc/10.0.0.2:2"])
                // Leaving the scope revoked the lease, which deleted the registration.
                #expect(try await iterator.next()?.keys.sorted() == ["svc/10.0.0.1:1"])
                try await manager.delete(key: "svc/10.0.0.1:1")
                #expect(try await iterator.next() == [:])
            }
            #expect(try EtcdResolvableTarget(uri: "etcd:///svc").target == "svc")
            #expect(throws: EtcdClientError.self) { try EtcdResolvableTarget(uri: "dns:///svc") }
            #expect(throws: EtcdClientError.self) { try EtcdResolvableTarget(uri: "etcd:///") }
        }
    }

    @Test("a GRPCClient dialing etcd:///service follows its instances as they come and go")
    func resolver() async throws {
        // The registry is one etcd; the "service" is another cluster's three members, real gRPC
        // servers whose Maintenance.Status answers with their own member ID.
        try await withEtcd { _, registry in
            try await withEtcdTestCluster(.init(members: 3)) { service in
                let addresses = service.members.map { "127.0.0.1:\($0.clientPort)" }
                let member = try await withEtcdClient(.init(endpoints: service.clientEndpoints)) { client in
                    var ids: [UInt64] = []
                    for endpoint in service.clientEndpoints {
                        ids.append(try await client.status(endpoint: endpoint).header.memberID)
                    }
                    return ids
                }
                let manager = try EtcdEndpointManager(client: registry, target: "services/etcd")
                try await manager.add(.init(address: addresses[0]))
                try await manager.add(.init(address: addresses[1]))

                var resolvers = NameResolverRegistry.defaults
                resolvers.registerFactory(EtcdNameResolverFactory(client: registry))
                let transport = try HTTP2ClientTransport.Posix(
                    target: .etcd("services/etcd"), transportSecurity: .plaintext, resolverRegistry: resolvers)
                try await withGRPCClient(transport: transport) { grpc in
                    let maintenance = Etcdserverpb_Maintenance.Client(wrapping: grpc)
                    @Sendable func served(_ calls: Int) async throws -> Set<UInt64> {
                        var members = Set<UInt64>()
                        for _ in 0..<calls {
                            do {
                                members.insert(
                                    try await maintenance.status(Etcdserverpb_StatusRequest()).header.memberID)
                            } catch let error as RPCError where error.code == .unavailable {
                                // A call in flight to an instance that was just removed ends with unavailable.
                            }
                        }
                        return members
                    }
                    // Round robin over the two registered instances, never the third.
                    try await within(.seconds(10), "calls reaching both registered instances") {
                        while try await served(10) != [member[0], member[1]] {}
                    }
                    // A new instance registers: calls reach it.
                    try await manager.add(.init(address: addresses[2]))
                    try await within(.seconds(10), "calls reaching the new instance") {
                        while !(try await served(10).contains(member[2])) {}
                    }
                    // An instance deregisters: calls stop reaching it.
                    try await manager.delete(EtcdServiceEndpoint(address: addresses[0]))
                    try await within(.seconds(10), "calls leaving the removed instance") {
                        while try await served(20) != [member[1], member[2]] {}
                    }
                }
            }
        }
    }
}
