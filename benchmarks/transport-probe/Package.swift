// swift-tools-version:6.1
// SPDX-License-Identifier: Apache-2.0
// A measurement, not part of swift-etcd: see main.swift.
import PackageDescription

let package = Package(
    name: "transport-probe",
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
    ],
    targets: [
        .executableTarget(
            name: "transport-probe",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
            ], swiftSettings: [.swiftLanguageMode(.v6)])
    ]
)
