// SPDX-License-Identifier: Apache-2.0
import Etcd
import EtcdTesting
import InMemoryLogging
import InMemoryTracing
import Logging
import MetricsTestKit
import Testing
import Tracing

@Suite("Metrics, tracing and request logging", .timeLimit(.minutes(2)))
struct ObservabilityTests {
    /// A logger at `trace` whose lines are kept in memory.
    private func capturingLogger() -> (InMemoryLogHandler, Logger) {
        let handler = InMemoryLogHandler()
        var logger = Logger(label: "test", factory: { _ in handler })
        logger.logLevel = .trace
        return (handler, logger)
    }

    @Test("counters and timers per method and status code; gauges for open watches and kept leases")
    func metrics() async throws {
        let metrics = TestMetrics()
        try await withEtcd(configure: { $0.observability.metricsFactory = metrics }) { _, client in
            try await client.put("m", value: "1")
            try await client.put("m", value: "2")
            _ = try await client.get("m")
            let future = await etcdErrorCode { _ = try await client.get("m", options: .revision(1_000_000)) }
            #expect(future?.code == .futureRevision)

            func count(_ method: String, _ code: String) -> Int64 {
                metrics.counterTotal(
                    label: "etcd_client_requests_total", dimensions: [("method", method), ("code", code)])
            }
            #expect(count("etcdserverpb.KV/Put", "ok") == 2)
            #expect(count("etcdserverpb.KV/Range", "ok") == 1)
            #expect(count("etcdserverpb.KV/Range", "outOfRange") == 1)
            let timer = try metrics.expectTimer(
                "etcd_client_request_duration_seconds", [("method", "etcdserverpb.KV/Put")])
            #expect(timer.values.count == 2 && timer.values.allSatisfy { $0 > 0 })

            try await client.watch("m") { _ in
                let open = try metrics.expectMeter("etcd_client_watches").lastValue
                #expect(open == 1)
            }
            #expect(try metrics.expectMeter("etcd_client_watches").lastValue == 0)

            try await client.withLease(ttl: 10) { _ in
                try await within(.seconds(5), "the leases gauge showing 1") {
                    while (try? metrics.expectGauge("etcd_client_leases").lastValue) != 1 {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
            }
        }
    }

    @Test("a client span per RPC, a child of the caller's span, with the trace context sent along")
    func tracing() async throws {
        let tracer = InMemoryTracer()
        try await withEtcd(configure: { $0.observability.tracer = tracer }) { _, client in
            try await tracer.withSpan("caller", context: .topLevel) { _ in
                _ = try await client.put("t", value: "1")
            }
            let error = await etcdErrorCode { try await client.put("", value: "x") }
            #expect(error?.code == .emptyKey)  // refused before sending: no span
            _ = await etcdErrorCode { _ = try await client.get("t", options: .revision(1_000_000)) }
        }
        let spans = tracer.finishedSpans
        let caller = try #require(spans.first { $0.operationName == "caller" })
        let put = try #require(spans.first { $0.operationName == "etcdserverpb.KV/Put" })
        #expect(put.kind == .client)
        #expect(put.traceID == caller.traceID && put.parentSpanID == caller.spanID)
        #expect(put.attributes["rpc.system"]?.toSpanAttribute() == "grpc")
        #expect(put.attributes["rpc.method"]?.toSpanAttribute() == "Put")
        #expect(put.attributes["rpc.grpc.status_code"]?.toSpanAttribute() == "ok")
        #expect(put.status == nil)
        let range = try #require(spans.first { $0.operationName == "etcdserverpb.KV/Range" })
        #expect(range.status?.code == .error && range.errors.count == 1)
        // The span's context went into the request's metadata.
        #expect(tracer.performedContextInjections.contains { $0.values[InMemoryTracer.spanIDKey] == put.spanID })
    }

    @Test("a debug line per RPC with a request id, method, endpoint and status; never the password")
    func logging() async throws {
        let (handler, logger) = self.capturingLogger()
        try await withEtcdTestCluster { cluster in
            try await cluster.etcdctl(["user", "add", "root:s3cr3t-pw"])
            try await cluster.etcdctl(["auth", "enable"])
            var configuration = EtcdClient.Configuration(endpoints: cluster.clientEndpoints)
            configuration.authentication = .init(username: "root", password: "s3cr3t-pw")
            configuration.observability.logRequests = true
            try await withEtcdClient(configuration, logger: logger) { client in
                try await client.put("l", value: "1")
            }
        }
        let finished = handler.entries.filter { $0.message == "etcd request finished" }
        let put = try #require(finished.first { $0.metadata["etcd_method"] == "etcdserverpb.KV/Put" })
        #expect(put.level == .debug)
        #expect(put.metadata["etcd_code"] == "ok")
        #expect(put.metadata["etcd_request_id"] != nil)
        #expect(finished.contains { $0.metadata["etcd_method"] == "etcdserverpb.Auth/Authenticate" })
        let ids = finished.compactMap { $0.metadata["etcd_request_id"].map { "\($0)" } }
        #expect(Set(ids).count == ids.count)
        let everything = handler.entries.map { "\($0.message) \($0.metadata)" }.joined(separator: "\n")
        #expect(!everything.contains("s3cr3t-pw"))
    }

    @Test("with nothing configured, no interceptor runs: a client records nothing anywhere")
    func offByDefault() async throws {
        let (handler, logger) = self.capturingLogger()
        try await withEtcdTestCluster { cluster in
            try await withEtcdClient(.init(endpoints: cluster.clientEndpoints), logger: logger) { client in
                _ = try await client.put("o", value: "1")
            }
        }
        #expect(!handler.entries.contains { $0.message == "etcd request finished" })
    }
}
