// swift-tools-version:6.1
// SPDX-License-Identifier: Apache-2.0
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "swift-etcd",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Etcd", targets: ["Etcd"]),
        .library(name: "EtcdConcurrency", targets: ["EtcdConcurrency"]),
        .library(name: "EtcdSync", targets: ["EtcdSync"]),
        .library(name: "EtcdDiscovery", targets: ["EtcdDiscovery"]),
        .library(name: "EtcdConfigProvider", targets: ["EtcdConfigProvider"]),
        .library(name: "EtcdTesting", targets: ["EtcdTesting"]),
        .executable(name: "etcd-swift-bench", targets: ["etcd-swift-bench"]),
        .executable(name: "etcdctl-swift", targets: ["etcdctl-swift"]),
    ],
    dependencies: [
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        // Generated messages and gRPC stubs (scripts/generate-api); package visibility only.
        .target(
            name: "EtcdAPI",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .target(
            name: "Etcd",
            dependencies: [
                "EtcdAPI",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        // Mirror, ordering, leasing and cached views built on the public API of Etcd.
        .target(
            name: "EtcdSync",
            dependencies: ["Etcd", "EtcdAPI", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: swiftSettings
        ),
        // Service registration and a grpc-swift name resolver backed by etcd.
        .target(
            name: "EtcdDiscovery",
            dependencies: [
                "Etcd",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ],
            swiftSettings: swiftSettings
        ),
        // A swift-configuration provider that reads and live-reloads keys from etcd.
        .target(
            name: "EtcdConfigProvider",
            dependencies: [
                "Etcd",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "EtcdConcurrency",
            dependencies: [
                "Etcd",
                "EtcdAPI",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "EtcdTesting",
            dependencies: [
                "Etcd",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "etcd-swift-bench",
            dependencies: [
                "Etcd", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "etcdctl-swift",
            dependencies: [
                "Etcd", "EtcdConcurrency", "EtcdSync",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                // check datascale reads a member's /metrics over HTTP(S).
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "Tour",
            dependencies: ["Etcd", "EtcdConcurrency", .product(name: "Prometheus", package: "swift-prometheus")],
            path: "Examples/Tour",
            swiftSettings: swiftSettings
        ),
        // Linked into the test binary for its load-time default of four tests per core at a time.
        .target(name: "EtcdTestDefaults", path: "Tests/EtcdTestDefaults"),
        .testTarget(
            name: "EtcdTests",
            dependencies: [
                "Etcd", "EtcdAPI", "EtcdTestDefaults",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EtcdFaultTests",
            dependencies: ["Etcd", "EtcdTesting", "EtcdTestDefaults"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EtcdIntegrationTests",
            dependencies: [
                "Etcd", "EtcdAPI", "EtcdConcurrency", "EtcdConfigProvider", "EtcdDiscovery", "EtcdSync", "EtcdTesting",
                "EtcdTestDefaults",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
