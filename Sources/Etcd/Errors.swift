// SPDX-License-Identifier: Apache-2.0
import GRPCCore
internal import NIOSSL

/// An error from etcd or from the client, with a stable ``Code`` to switch on.
///
/// Server errors carry etcd's own message (for example `etcdserver: key is not provided`) and the
/// gRPC error as ``cause``. Errors the client raises before sending anything (an empty key, a bad
/// option combination, a request over the send limit) have the same codes as the server would use.
/// Task cancellation is reported as `CancellationError`, not as this type.
public struct EtcdClientError: Error, Sendable {
    /// What went wrong, as a value that can be compared and switched over.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: String, Hashable, Sendable {
            case emptyKey, keyNotFound, valueProvided, leaseProvided, tooManyOps, duplicateKey
            case compacted, futureRevision, noSpace
            case leaseNotFound, leaseExists, leaseTTLTooLarge, leaseExpired
            case locked, sessionExpired, electionNotLeader, electionNoLeader, keyExists, tooManyClients
            case watchCanceled, noGreaterRevision
            case memberExists, peerURLExists, memberNotEnoughStarted, memberBadURLs, memberNotFound
            case memberNotLearner, learnerNotReady, tooManyLearners
            case requestTooLarge, tooManyRequests
            case rootUserNotExist, rootRoleNotExist, userAlreadyExist, userEmpty, userNotFound
            case roleAlreadyExist, roleNotFound, roleEmpty, authFailed, permissionDenied
            case roleNotGranted, permissionNotGranted, authNotEnabled, invalidAuthToken
            case invalidAuthManagement, authOldRevision
            case noLeader, notLeader, leaderChanged, notCapable, stopped, timeout
            case timeoutDueToLeaderFail, timeoutDueToConnectionLost, timeoutWaitAppliedIndex
            case unhealthy, corrupt, notSupportedForLearner, badLeaderTransferee
            case clusterVersionUnavailable, wrongDowngradeVersion
            case invalidDowngradeTargetVersion, downgradeInProcess, noInflightDowngrade
            case responseTooLarge, notSupported, oldCluster, invalidConfiguration
            case unavailable, deadlineExceeded, cancelled, invalidArgument, internalError, unknown
        }
        fileprivate let base: Base
        fileprivate init(_ base: Base) { self.base = base }

        public var description: String { self.base.rawValue }

        /// A request named an empty key (`etcdserver: key is not provided`).
        public static let emptyKey = Self(.emptyKey)
        /// `ignoreValue`/`ignoreLease` was used on a key that does not exist.
        public static let keyNotFound = Self(.keyNotFound)
        /// A value was given together with `ignoreValue`.
        public static let valueProvided = Self(.valueProvided)
        /// A lease was given together with `ignoreLease`.
        public static let leaseProvided = Self(.leaseProvided)
        /// A transaction has more operations than the server's `--max-txn-ops`.
        public static let tooManyOps = Self(.tooManyOps)
        /// A transaction writes the same key twice.
        public static let duplicateKey = Self(.duplicateKey)
        /// The requested revision has been compacted away.
        public static let compacted = Self(.compacted)
        /// The requested revision is newer than the store's current revision.
        public static let futureRevision = Self(.futureRevision)
        /// The backend database exceeded its quota (a NOSPACE alarm is raised).
        public static let noSpace = Self(.noSpace)
        /// The lease does not exist (expired or revoked).
        public static let leaseNotFound = Self(.leaseNotFound)
        /// A lease with the requested ID already exists.
        public static let leaseExists = Self(.leaseExists)
        /// The requested lease TTL is larger than the server allows.
        public static let leaseTTLTooLarge = Self(.leaseTTLTooLarge)
        /// No renewal of a kept-alive lease was acknowledged before its TTL ran out: the lease has
        /// expired on the server, or will any moment. Keys attached to it are gone or going.
        public static let leaseExpired = Self(.leaseExpired)
        /// A lock is held by another session (`tryLock`; Go's `concurrency.ErrLocked`).
        public static let locked = Self(.locked)
        /// The session's lease is gone, so a lock or leadership it held is no longer held
        /// (Go's `concurrency.ErrSessionExpired`).
        public static let sessionExpired = Self(.sessionExpired)
        /// The election is not led by this campaigner (Go's `concurrency.ErrElectionNotLeader`).
        public static let electionNotLeader = Self(.electionNotLeader)
        /// The election has no leader (Go's `concurrency.ErrElectionNoLeader`).
        public static let electionNoLeader = Self(.electionNoLeader)
        /// A recipe found its key already taken (Go's `recipe.ErrKeyExists`).
        public static let keyExists = Self(.keyExists)
        /// A double barrier already has its full count of participants (Go's `recipe.ErrTooManyClients`).
        public static let tooManyClients = Self(.tooManyClients)
        /// The server cancelled a watch.
        public static let watchCanceled = Self(.watchCanceled)
        /// No member answered with a revision at least as new as one already seen (Go's
        /// `ordering.ErrNoGreaterRev`): the members reached are behind, or partitioned away.
        public static let noGreaterRevision = Self(.noGreaterRevision)
        /// A member with that ID already exists.
        public static let memberExists = Self(.memberExists)
        /// A member with those peer URLs already exists.
        public static let peerURLExists = Self(.peerURLExists)
        /// Reconfiguration failed because not enough members are started.
        public static let memberNotEnoughStarted = Self(.memberNotEnoughStarted)
        /// The given member URLs are invalid.
        public static let memberBadURLs = Self(.memberBadURLs)
        /// No member has that ID.
        public static let memberNotFound = Self(.memberNotFound)
        /// Only a learner member can be promoted.
        public static let memberNotLearner = Self(.memberNotLearner)
        /// The learner is not yet in sync with the leader; retry the promotion later.
        public static let learnerNotReady = Self(.learnerNotReady)
        /// The cluster already has the maximum number of learners.
        public static let tooManyLearners = Self(.tooManyLearners)
        /// The request exceeds the server's `--max-request-bytes` or the client's send limit.
        public static let requestTooLarge = Self(.requestTooLarge)
        /// The server is overloaded.
        public static let tooManyRequests = Self(.tooManyRequests)
        /// Authentication cannot be enabled: there is no `root` user.
        public static let rootUserNotExist = Self(.rootUserNotExist)
        /// Authentication cannot be enabled: the `root` user lacks the `root` role.
        public static let rootRoleNotExist = Self(.rootRoleNotExist)
        /// A user of that name already exists.
        public static let userAlreadyExist = Self(.userAlreadyExist)
        /// The user name is empty, or the request carried no user while authentication is enabled.
        public static let userEmpty = Self(.userEmpty)
        /// No user of that name exists.
        public static let userNotFound = Self(.userNotFound)
        /// A role of that name already exists.
        public static let roleAlreadyExist = Self(.roleAlreadyExist)
        /// No role of that name exists.
        public static let roleNotFound = Self(.roleNotFound)
        /// The role name is empty.
        public static let roleEmpty = Self(.roleEmpty)
        /// Wrong user name or password.
        public static let authFailed = Self(.authFailed)
        /// The user may not perform this request.
        public static let permissionDenied = Self(.permissionDenied)
        /// The user does not have the role being revoked.
        public static let roleNotGranted = Self(.roleNotGranted)
        /// The role does not have the permission being revoked.
        public static let permissionNotGranted = Self(.permissionNotGranted)
        /// Authentication is not enabled on the cluster.
        public static let authNotEnabled = Self(.authNotEnabled)
        /// The auth token expired or is unknown to this member.
        public static let invalidAuthToken = Self(.invalidAuthToken)
        /// The auth change is refused (revoking `root` from the `root` user while authentication is enabled, say).
        public static let invalidAuthManagement = Self(.invalidAuthManagement)
        /// The auth store changed since the token was issued.
        public static let authOldRevision = Self(.authOldRevision)
        /// The member has no leader.
        public static let noLeader = Self(.noLeader)
        /// The member is not the leader, and the request needs the leader.
        public static let notLeader = Self(.notLeader)
        /// The leader changed while the request was in flight; transient: idempotent calls are retried.
        public static let leaderChanged = Self(.leaderChanged)
        /// The cluster's version does not support the request yet (during an upgrade); transient.
        public static let notCapable = Self(.notCapable)
        /// The member is shutting down; transient: idempotent calls are retried on another.
        public static let stopped = Self(.stopped)
        /// The server timed out the request.
        public static let timeout = Self(.timeout)
        /// The server timed out the request, likely because the previous leader failed; transient.
        public static let timeoutDueToLeaderFail = Self(.timeoutDueToLeaderFail)
        /// The server timed out the request, likely because it lost its connection to the leader; transient.
        public static let timeoutDueToConnectionLost = Self(.timeoutDueToConnectionLost)
        /// The server timed out waiting to apply the log up to the read's index (etcd 3.5+); transient.
        public static let timeoutWaitAppliedIndex = Self(.timeoutWaitAppliedIndex)
        /// The cluster is unhealthy (too few members are up to date); transient.
        public static let unhealthy = Self(.unhealthy)
        /// The member's data is corrupt (its `CORRUPT` alarm is raised).
        public static let corrupt = Self(.corrupt)
        /// A learner member cannot serve this request; send it to a voting member.
        public static let notSupportedForLearner = Self(.notSupportedForLearner)
        /// The member named to take over leadership cannot (unknown, a learner, or not up to date).
        public static let badLeaderTransferee = Self(.badLeaderTransferee)
        /// A downgrade needs the cluster's version, which is not known yet.
        public static let clusterVersionUnavailable = Self(.clusterVersionUnavailable)
        /// The downgrade's target version is not in `major.minor` form.
        public static let wrongDowngradeVersion = Self(.wrongDowngradeVersion)
        /// The downgrade's target is not the minor version just below the cluster's.
        public static let invalidDowngradeTargetVersion = Self(.invalidDowngradeTargetVersion)
        /// A downgrade is already in progress.
        public static let downgradeInProcess = Self(.downgradeInProcess)
        /// There is no downgrade in progress to cancel.
        public static let noInflightDowngrade = Self(.noInflightDowngrade)
        /// A response was larger than the client's receive limit; see `maxCallReceiveMessageSize` or page the range.
        public static let responseTooLarge = Self(.responseTooLarge)
        /// The server is too old for this call; the message names the version needed.
        public static let notSupported = Self(.notSupported)
        /// The cluster is older than the client accepts (`rejectOldCluster`).
        public static let oldCluster = Self(.oldCluster)
        /// The client's configuration is invalid (endpoints, TLS files, limits).
        public static let invalidConfiguration = Self(.invalidConfiguration)
        /// No endpoint could be reached, or the connection broke.
        public static let unavailable = Self(.unavailable)
        /// The call's deadline passed before it completed.
        public static let deadlineExceeded = Self(.deadlineExceeded)
        /// The server cancelled the call.
        public static let cancelled = Self(.cancelled)
        /// The request is malformed (bad options, bad range).
        public static let invalidArgument = Self(.invalidArgument)
        /// An internal error in the client or server.
        public static let internalError = Self(.internalError)
        /// An error the client does not recognise; see ``EtcdClientError/message`` and ``EtcdClientError/cause``.
        public static let unknown = Self(.unknown)
    }

    /// What went wrong.
    public var code: Code
    /// The server's message (`etcdserver: ...`) or the client's explanation of what happened and what to do.
    public var message: String
    /// The underlying error, usually a gRPC `RPCError`.
    public var cause: (any Error)?
    /// The endpoint the call was sent to, when known.
    public var endpoint: String?
    /// For a watch ended by compaction (`compacted`): the revision the store was compacted at.
    /// Read the current state again and watch from its revision.
    public var compactRevision: Int64?
    /// Set for failed TLS handshakes: a configuration problem that retrying cannot fix.
    var isTLSFailure = false
    /// Where in the client the error was raised.
    public var file: String
    /// The line of `file` where the error was raised.
    public var line: Int

    /// An error with `code` and `message`; `file` and `line` default to where it is made.
    public init(
        code: Code,
        message: String,
        cause: (any Error)? = nil,
        endpoint: String? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.cause = cause
        self.endpoint = endpoint
        self.file = file
        self.line = line
    }
}

extension EtcdClientError: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String {
        "EtcdClientError(\(self.code)): \(self.message)"
    }

    /// Everything the error holds: code, message, endpoint, cause and where it was raised.
    public var debugDescription: String {
        var text = "EtcdClientError(code: \(self.code), message: \(self.message)"
        if let endpoint { text += ", endpoint: \(endpoint)" }
        if let cause { text += ", cause: \(String(reflecting: cause))" }
        text += ", at: \(self.file):\(self.line))"
        return text
    }
}

extension EtcdClientError {
    /// The TLS error behind a failed connection, described for people, if TLS is what failed.
    private static func tlsFailure(in error: any Error) -> String? {
        var current: (any Error)? = error
        var depth = 0
        while let error = current, depth < 8 {
            if error is NIOSSLError || error is BoringSSLError {
                let text = "\(error)"
                let reasons = [
                    ("CERTIFICATE_VERIFY_FAILED", "the server's certificate could not be verified"),
                    ("WRONG_VERSION_NUMBER", "the server did not answer with TLS"),
                    ("CERTIFICATE_REQUIRED", "the server requires a client certificate"),
                    ("BAD_CERTIFICATE", "the server rejected the client certificate (or its absence)"),
                    ("UNKNOWN_CA", "the server does not trust the client certificate's CA"),
                    ("HANDSHAKE_FAILURE", "no common TLS parameters"),
                ]
                for (marker, reason) in reasons where text.contains(marker) {
                    return "\(reason) (\(marker.lowercased()))"
                }
                return text
            }
            if error is NIOSSLExtraError { return "\(error)" }
            current = (error as? RPCError)?.cause ?? (error as? RuntimeError)?.cause
            depth += 1
        }
        return nil
    }

    /// Whether the error is one of etcd's transient "try again" answers (no leader, leader changed,
    /// timed out, ...); only idempotent calls are retried on these.
    var isTransientServerError: Bool {
        switch self.code.base {
        case .noLeader, .leaderChanged, .notCapable, .stopped, .timeout, .timeoutDueToLeaderFail,
            .timeoutDueToConnectionLost, .timeoutWaitAppliedIndex, .unhealthy, .tooManyRequests:
            return true
        default:
            return false
        }
    }

    /// etcd's server messages and the codes they map to (etcd's `rpctypes`).
    private static let serverMessages: [String: Code] = [
        "etcdserver: key is not provided": .emptyKey,
        "etcdserver: key not found": .keyNotFound,
        "etcdserver: value is provided": .valueProvided,
        "etcdserver: lease is provided": .leaseProvided,
        "etcdserver: too many operations in txn request": .tooManyOps,
        "etcdserver: duplicate key given in txn request": .duplicateKey,
        "etcdserver: mvcc: required revision has been compacted": .compacted,
        "etcdserver: mvcc: required revision is a future revision": .futureRevision,
        "etcdserver: mvcc: database space exceeded": .noSpace,
        "etcdserver: requested lease not found": .leaseNotFound,
        "etcdserver: lease already exists": .leaseExists,
        "etcdserver: too large lease TTL": .leaseTTLTooLarge,
        // The v3election and v3lock services answer with the Go concurrency package's errors.
        "election: not leader": .electionNotLeader,
        "election: no leader": .electionNoLeader,
        "election: session expired": .sessionExpired,
        "mutex: Locked by another session": .locked,
        // Go's context error, which they return as it is (status Unknown) when the call's deadline,
        // sent as grpc-timeout, passes on the server before it does here.
        "context deadline exceeded": .deadlineExceeded,
        "etcdserver: watch canceled": .watchCanceled,
        "etcdserver: member ID already exist": .memberExists,
        "etcdserver: Peer URLs already exists": .peerURLExists,
        "etcdserver: re-configuration failed due to not enough started members": .memberNotEnoughStarted,
        "etcdserver: given member URLs are invalid": .memberBadURLs,
        "etcdserver: member not found": .memberNotFound,
        "etcdserver: can only promote a learner member": .memberNotLearner,
        "etcdserver: can only promote a learner member which is in sync with leader": .learnerNotReady,
        "etcdserver: too many learner members in cluster": .tooManyLearners,
        "etcdserver: request is too large": .requestTooLarge,
        "etcdserver: too many requests": .tooManyRequests,
        "etcdserver: root user does not exist": .rootUserNotExist,
        "etcdserver: root user does not have root role": .rootRoleNotExist,
        "etcdserver: user name already exists": .userAlreadyExist,
        "etcdserver: user name is empty": .userEmpty,
        "etcdserver: user name not found": .userNotFound,
        "etcdserver: role name already exists": .roleAlreadyExist,
        "etcdserver: role name not found": .roleNotFound,
        "etcdserver: role name is empty": .roleEmpty,
        "etcdserver: authentication failed, invalid user ID or password": .authFailed,
        "etcdserver: permission denied": .permissionDenied,
        "etcdserver: role is not granted to the user": .roleNotGranted,
        "etcdserver: permission is not granted to the role": .permissionNotGranted,
        "etcdserver: authentication is not enabled": .authNotEnabled,
        "etcdserver: invalid auth token": .invalidAuthToken,
        "etcdserver: invalid auth management": .invalidAuthManagement,
        "etcdserver: revision of auth store is old": .authOldRevision,
        "etcdserver: no leader": .noLeader,
        "etcdserver: not leader": .notLeader,
        "etcdserver: leader changed": .leaderChanged,
        "etcdserver: not capable": .notCapable,
        "etcdserver: server stopped": .stopped,
        "etcdserver: request timed out": .timeout,
        "etcdserver: request timed out, possibly due to previous leader failure": .timeoutDueToLeaderFail,
        "etcdserver: request timed out, possibly due to connection lost": .timeoutDueToConnectionLost,
        "etcdserver: request timed out, waiting for the applied index took too long": .timeoutWaitAppliedIndex,
        "etcdserver: unhealthy cluster": .unhealthy,
        "etcdserver: corrupt cluster": .corrupt,
        "etcdserver: rpc not supported for learner": .notSupportedForLearner,
        "etcdserver: bad leader transferee": .badLeaderTransferee,
        "etcdserver: cluster version not found during downgrade": .clusterVersionUnavailable,
        "etcdserver: wrong downgrade target version": .wrongDowngradeVersion,
        "etcdserver: invalid downgrade target version": .invalidDowngradeTargetVersion,
        "etcdserver: cluster has a downgrade job in progress": .downgradeInProcess,
        "etcdserver: no inflight downgrade job": .noInflightDowngrade,
    ]

    /// The error for a reason etcd gives in a response (a watch's cancel reason): its code when known,
    /// else `watchCanceled`.
    static func fromServerMessage(_ message: String) -> Self {
        var text = message.isEmpty ? "etcdserver: watch canceled" : message
        // Reasons may carry gRPC's rendering: "rpc error: code = PermissionDenied desc = etcdserver: ...".
        if text.hasPrefix("rpc error:"), let desc = text.firstRange(of: " desc = ") {
            text = String(text[desc.upperBound...])
        }
        return EtcdClientError(code: Self.serverMessages[text] ?? .watchCanceled, message: text)
    }

    /// Maps an error thrown by a gRPC call to an ``EtcdClientError`` (cancellation passes through).
    static func from(_ error: any Error, endpoint: String?, file: String = #fileID, line: Int = #line) -> any Error {
        if let error = error as? EtcdClientError { return error }
        if error is CancellationError { return error }
        guard let rpc = error as? RPCError else {
            if let runtime = error as? RuntimeError {
                return EtcdClientError(
                    code: runtime.code == .clientIsStopped ? .unavailable : .internalError,
                    message: runtime.message,
                    cause: runtime,
                    endpoint: endpoint,
                    file: file,
                    line: line
                )
            }
            return EtcdClientError(
                code: .unknown,
                message: "\(error)",
                cause: error,
                endpoint: endpoint,
                file: file,
                line: line
            )
        }
        return Self.from(rpc, endpoint: endpoint, file: file, line: line)
    }

    /// The request size and the limit in the server's refusal of a request over its gRPC receive
    /// limit (grpc-go's "received message larger than max (size vs. limit)", code resourceExhausted,
    /// which etcd's own "too many requests" shares); nil for any other error.
    static func serverReceiveLimit(_ rpc: RPCError) -> (size: Int, limit: Int)? {
        let marker = "received message larger than max ("
        guard rpc.code == .resourceExhausted, let range = rpc.message.firstRange(of: marker) else { return nil }
        let numbers = rpc.message[range.upperBound...].prefix { $0 != ")" }.split(separator: " vs. ")
        guard numbers.count == 2, let size = Int(numbers[0]), let limit = Int(numbers[1]) else { return nil }
        return (size, limit)
    }

    static func from(_ rpc: RPCError, endpoint: String?, file: String = #fileID, line: Int = #line) -> Self {
        if let code = Self.serverMessages[rpc.message] {
            return EtcdClientError(
                code: code, message: rpc.message, cause: rpc, endpoint: endpoint, file: file, line: line)
        }
        if let (size, limit) = Self.serverReceiveLimit(rpc) {
            return EtcdClientError(
                code: .requestTooLarge,
                message: """
                    \(endpoint ?? "the server") refused a request of \(size) bytes, over its gRPC limit of \(limit) \
                    bytes (etcd's --max-request-bytes plus 512 KiB); make the request smaller, or raise \
                    --max-request-bytes on every member
                    """,
                cause: rpc, endpoint: endpoint, file: file, line: line)
        }
        // grpc-swift reports an inbound message over the limit as resourceExhausted, or wrapped in an
        // internal "Failed to decode message" error.
        if rpc.message.contains("exceeded the configured maximum payload size") {
            return EtcdClientError(
                code: .responseTooLarge, message: rpc.message, cause: rpc, endpoint: endpoint, file: file, line: line)
        }
        let code: Code
        var message = rpc.message
        switch rpc.code {
        case .unavailable:
            code = .unavailable
            let target = endpoint ?? "the endpoint"
            // The schemes to suggest: a Unix socket's where the endpoint is one.
            let isUnix = endpoint?.hasPrefix("unix") == true
            let (plaintext, secure) = isUnix ? ("unix://", "unixs://") : ("http://", "https://")
            if let tls = Self.tlsFailure(in: rpc) {
                var error = EtcdClientError(
                    code: .unavailable,
                    message: """
                        TLS handshake with \(target) failed: \(tls); check Configuration.tls (trustedCAFile, \
                        serverName, certificateFile and keyFile), or use the \(plaintext) scheme if the server does \
                        not serve TLS
                        """,
                    cause: rpc,
                    endpoint: endpoint,
                    file: file,
                    line: line
                )
                error.isTLSFailure = true
                return error
            }
            if rpc.message.contains("closed the connection before completing the HTTP/2 connection preface") {
                message = """
                    \(target) closed the connection before HTTP/2 started; if it serves TLS, use the \(secure) \
                    scheme or set Configuration.tls
                    """
            } else {
                message = "endpoint \(target) is unavailable: \(rpc.message)"
            }
        case .deadlineExceeded:
            code = .deadlineExceeded
            message = "deadline exceeded: \(rpc.message)"
        case .cancelled:
            code = .cancelled
        case .invalidArgument, .outOfRange, .failedPrecondition:
            code = .invalidArgument
        case .unimplemented:
            code = .notSupported
            message = "the server does not implement this call: \(rpc.message)"
        case .resourceExhausted:
            code = .tooManyRequests
        case .permissionDenied:
            code = .permissionDenied
        case .unauthenticated:
            code = .invalidAuthToken
        case .internalError, .dataLoss:
            code = .internalError
        default:
            code = .unknown
        }
        return EtcdClientError(code: code, message: message, cause: rpc, endpoint: endpoint, file: file, line: line)
    }
}
