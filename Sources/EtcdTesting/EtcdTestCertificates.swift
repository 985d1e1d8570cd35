// SPDX-License-Identifier: Apache-2.0
import Foundation

/// A throwaway certificate authority with a server and a client certificate, made with `openssl`
/// (Debian's `openssl` package), for TLS tests against loopback members.
///
/// The server certificate is valid for `127.0.0.1`, `::1` and `localhost`; the client certificate's
/// common name is `root`, so etcd's `--client-cert-auth` maps it to the root user.
public struct EtcdTestCertificates: Sendable {
    /// The folder holding every file.
    public let directory: String
    /// The CA certificate (PEM) that signed both certificates.
    public var caFile: String { "\(self.directory)/ca.pem" }
    /// The server certificate (PEM), valid for 127.0.0.1, ::1 and localhost.
    public var serverCertificateFile: String { "\(self.directory)/server.pem" }
    /// The server certificate's private key (PEM).
    public var serverKeyFile: String { "\(self.directory)/server.key" }
    /// The client certificate (PEM), common name `root`.
    public var clientCertificateFile: String { "\(self.directory)/client.pem" }
    /// The client certificate's private key (PEM).
    public var clientKeyFile: String { "\(self.directory)/client.key" }
    /// A server certificate valid only for the DNS name ``namedServerName`` (no IP addresses), to test
    /// server-name verification: clients must set `serverName` to use it.
    public var namedServerCertificateFile: String { "\(self.directory)/named.pem" }
    /// The private key (PEM) of `namedServerCertificateFile`.
    public var namedServerKeyFile: String { "\(self.directory)/named.key" }
    /// The only name ``namedServerCertificateFile`` is valid for.
    public static let namedServerName = "etcd.test"
    /// A second CA that signed nothing here: trusting it instead of ``caFile`` must fail verification.
    public var otherCAFile: String { "\(self.directory)/other-ca.pem" }

    /// Creates the CA and certificates in `directory` (created if needed).
    ///
    /// - Throws: ``EtcdTestingError`` when `openssl` is missing, fails, or takes more than a minute.
    public static func generate(in directory: String) async throws -> EtcdTestCertificates {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        guard
            let openssl = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/opt/homebrew/bin/openssl"]
                .first(where: FileManager.default.isExecutableFile(atPath:))
        else {
            throw EtcdTestingError("openssl not found; install it with 'apt-get install openssl'")
        }
        let certificates = EtcdTestCertificates(directory: directory)
        func run(_ arguments: [String]) async throws { _ = try await EtcdBinary.run(openssl, arguments) }
        func write(_ name: String, _ text: String) throws {
            try text.write(toFile: "\(directory)/\(name)", atomically: true, encoding: .utf8)
        }
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for ca in ["ca", "other-ca"] {
            try await run(
                ["req", "-x509"] + key + [
                    "-keyout", "\(directory)/\(ca).key", "-out", "\(directory)/\(ca).pem", "-days", "2",
                    "-subj", "/CN=swift-etcd test \(ca)",
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                ]
            )
        }
        try write(
            "server.ext", "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
        try write("client.ext", "extendedKeyUsage=clientAuth\n")
        try write("named.ext", "subjectAltName=DNS:\(Self.namedServerName)\nextendedKeyUsage=serverAuth\n")
        for (name, subject) in [
            ("server", "/CN=localhost"), ("client", "/CN=root"), ("named", "/CN=\(Self.namedServerName)"),
        ] {
            try await run(
                ["req"] + key + [
                    "-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).csr", "-subj", subject,
                ])
            try await run([
                "x509", "-req", "-in", "\(directory)/\(name).csr", "-CA", certificates.caFile,
                "-CAkey", "\(directory)/ca.key", "-CAcreateserial", "-out", "\(directory)/\(name).pem", "-days", "2",
                "-extfile", "\(directory)/\(name).ext",
            ])
        }
        return certificates
    }
}
