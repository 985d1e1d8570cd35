// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Etcd
import EtcdSync
import Foundation
import Synchronization

/// `make-mirror [options] <destination>`: copies a prefix to another cluster and keeps it current
/// until interrupted; prints the number of keys copied every 30 seconds, as etcdctl does.
struct MakeMirror: EtcdctlCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-mirror", abstract: "Makes a mirror at the destination etcd cluster")

    @Option(parsing: .unconditional, help: "Key-value prefix to mirror") var prefix = ""
    @Option(
        name: .customLong("dest-prefix"), parsing: .unconditional,
        help: "destination prefix to mirror a prefix to a different prefix in the destination cluster")
    var destPrefix = ""
    @Flag(name: .customLong("no-dest-prefix"), help: "mirror key-values to the root of the destination cluster")
    var noDestPrefix = false
    @Option(
        name: .customLong("dest-cert"), parsing: .unconditional,
        help: "Identify secure client using this TLS certificate file for the destination cluster")
    var destCert: String?
    @Option(
        name: .customLong("dest-key"), parsing: .unconditional, help: "Identify secure client using this TLS key file")
    var destKey: String?
    @Option(
        name: .customLong("dest-cacert"), parsing: .unconditional,
        help: "Verify certificates of TLS enabled secure servers using this CA bundle") var destCACert: String?
    @Flag(
        name: .customLong("dest-insecure-transport"), inversion: .prefixedNo, exclusivity: .chooseLast,
        help: "Disable transport security for client connections")
    var destInsecureTransport = true
    @Option(
        name: .customLong("max-txn-ops"), parsing: .unconditional,
        help: "Most operations in one destination transaction while following updates (etcdctl 3.6)")
    var maxTxnOps = 128
    @Option(
        parsing: .unconditional,
        help: "Revision to start mirroring from, without copying the prefix first (etcdctl 3.6; 0: copy it first)")
    var rev: Int64 = 0
    @Argument var arguments: [String] = []

    func run(_ global: GlobalOptions) async throws {
        guard self.arguments.count == 1 else { throw UsageError("make-mirror takes one destination argument") }
        guard self.rev >= 0 else { throw UsageError("--rev must not be negative, got \(self.rev)") }
        guard self.maxTxnOps > 0 else { throw UsageError("--max-txn-ops must be at least 1, got \(self.maxTxnOps)") }
        if self.noDestPrefix && !self.destPrefix.isEmpty {
            throw UsageError("`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one")
        }
        var destination = global
        destination.endpoints = [self.arguments[0]]
        destination.user = nil
        destination.password = nil
        destination.caFile = self.destCACert
        destination.certFile = self.destCert
        destination.keyFile = self.destKey
        destination.insecureSkipVerify = false
        destination.insecureTransport = self.destInsecureTransport
        let destinationConfiguration = try destination.configuration()
        let (prefix, destinationPrefix) = (
            self.prefix, self.noDestPrefix ? "" : self.destPrefix.isEmpty ? self.prefix : self.destPrefix
        )
        let total = KeyCount()
        try await global.withClient(bounded: false) { source in
            try await withEtcdClient(destinationConfiguration) { destination in
                let mirror = EtcdMirror(
                    source: source, destination: destination, prefix: prefix, destinationPrefix: destinationPrefix,
                    maxOperationsPerTransaction: self.maxTxnOps)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        while true {
                            try await Task.sleep(for: .seconds(30))
                            Printer.line("\(total.value.load(ordering: .relaxed))")
                        }
                    }
                    group.addTask {
                        try await mirror.run(from: self.rev) { progress in
                            total.value.store(progress.keys, ordering: .relaxed)
                        }
                    }
                    group.addTask { await Signals.next() }
                    try await group.next()
                    group.cancelAll()
                }
            }
        }
    }
}

/// The running total make-mirror prints.
private final class KeyCount: Sendable {
    let value = Atomic<Int64>(0)
}
