import GRPCCore

/// The outcome of ``SynodClient/moveLeader(to:)``.
public struct SynodLeaderTransfer: Sendable, Hashable {
    /// The member that led when the request was sent (etcd member id).
    public var previousLeader: UInt64
    /// The member asked to lead (etcd member id).
    public var newLeader: UInt64
    /// The endpoint the request went to (the previous leader's).
    public var endpoint: String
    public var response: Etcdserverpb_MoveLeaderResponse

    public init(previousLeader: UInt64, newLeader: UInt64, endpoint: String, response: Etcdserverpb_MoveLeaderResponse) {
        self.previousLeader = previousLeader
        self.newLeader = newLeader
        self.endpoint = endpoint
        self.response = response
    }
}

/// Membership changes (etcd's Cluster service) and leader transfer (Maintenance.MoveLeader).
///
/// - Important: a membership change must not be applied twice, so these requests are retried
///   on another endpoint only when the failure shows they were not carried out (the endpoint
///   was unreachable, or it knew no leader). A timeout (``SynodClientError/unavailable(_:)``
///   after a `deadlineExceeded`, or the server's `etcdserver: request timed out`) or
///   `etcdserver: leader changed` leaves the outcome unknown: look at ``memberList(linearizable:)``
///   before trying again.
extension SynodClient {
    /// Adds a member with the given peer URLs (etcd's MemberAdd). The server assigns its id,
    /// returned in `response.member.id`; `response.members` is the membership after the change.
    ///
    /// Start the new member afterwards with `--initial-cluster-state existing` and an empty
    /// data directory: it learns its identity and the data from the cluster.
    ///
    /// - Parameters:
    ///   - peerURLs: where the new member will listen for peers, e.g. `http://10.0.0.4:2380`.
    ///   - isLearner: add it as a learner (it receives the log but does not vote until
    ///     ``memberPromote(id:)``); the safe way to add a member to a loaded cluster.
    /// - Throws: ``SynodClientError/invalidArgument(_:)`` for an empty or malformed URL list;
    ///   ``SynodClientError/server(code:message:endpoint:)`` with the server's message, e.g.
    ///   `etcdserver: Peer URLs already exists`, `etcdserver: unhealthy cluster`,
    ///   `etcdserver: too many learner members in cluster`.
    public func memberAdd(peerURLs: [String], isLearner: Bool = false) async throws -> Etcdserverpb_MemberAddResponse {
        var request = Etcdserverpb_MemberAddRequest()
        request.peerUrls = try Self.validatedPeerURLs(peerURLs)
        request.isLearner = isLearner
        return try await self.withFailover(repeatable: false) { [request] connection, options in
            try await Etcdserverpb_Cluster.Client(wrapping: connection.grpc).memberAdd(request, options: options)
        }
    }

    /// Removes the member `id` (etcd's MemberRemove). Removing the leader is allowed: it hands
    /// leadership to another voter once the removal takes effect.
    ///
    /// - Throws: ``SynodClientError/server(code:message:endpoint:)``, e.g.
    ///   `etcdserver: member not found`, `etcdserver: unhealthy cluster` (the removal would
    ///   leave too few live voters).
    public func memberRemove(id: UInt64) async throws -> Etcdserverpb_MemberRemoveResponse {
        var request = Etcdserverpb_MemberRemoveRequest()
        request.id = id
        return try await self.withFailover(repeatable: false) { [request] connection, options in
            try await Etcdserverpb_Cluster.Client(wrapping: connection.grpc).memberRemove(request, options: options)
        }
    }

    /// Replaces the peer URLs of member `id` (etcd's MemberUpdate). Restart that member with
    /// the new `--initial-advertise-peer-urls`/`--listen-peer-urls` afterwards.
    ///
    /// - Throws: ``SynodClientError/invalidArgument(_:)`` for an empty or malformed URL list;
    ///   ``SynodClientError/server(code:message:endpoint:)``, e.g. `etcdserver: member not found`,
    ///   `etcdserver: Peer URLs already exists`.
    public func memberUpdate(id: UInt64, peerURLs: [String]) async throws -> Etcdserverpb_MemberUpdateResponse {
        var request = Etcdserverpb_MemberUpdateRequest()
        request.id = id
        request.peerUrls = try Self.validatedPeerURLs(peerURLs)
        return try await self.withFailover(repeatable: false) { [request] connection, options in
            try await Etcdserverpb_Cluster.Client(wrapping: connection.grpc).memberUpdate(request, options: options)
        }
    }

    /// Makes the learner `id` a voting member (etcd's MemberPromote).
    ///
    /// - Throws: ``SynodClientError/server(code:message:endpoint:)``, e.g.
    ///   `etcdserver: can only promote a learner member which is in sync with leader` (retry
    ///   once it has caught up), `etcdserver: can only promote a learner member`,
    ///   `etcdserver: member not found`.
    public func memberPromote(id: UInt64) async throws -> Etcdserverpb_MemberPromoteResponse {
        var request = Etcdserverpb_MemberPromoteRequest()
        request.id = id
        return try await self.withFailover(repeatable: false) { [request] connection, options in
            try await Etcdserverpb_Cluster.Client(wrapping: connection.grpc).memberPromote(request, options: options)
        }
    }

    /// Asks the leader to hand leadership to the voting member `target` (etcd's
    /// Maintenance.MoveLeader). Like etcdctl, it asks every configured endpoint for its status
    /// (Maintenance.Status) to find the leader, and sends the request there: only the leader
    /// can transfer leadership. When leadership moves between the lookup and the request, the
    /// lookup is repeated (at most ``moveLeaderAttemptsMax`` times).
    ///
    /// - Throws: ``SynodClientError/invalidArgument(_:)`` when no configured endpoint is the
    ///   leader (list the leader's client URL in the endpoints);
    ///   ``SynodClientError/unavailable(_:)`` when no endpoint answered the status request;
    ///   ``SynodClientError/server(code:message:endpoint:)`` with the leader's message, e.g.
    ///   `etcdserver: bad leader transferee`, `etcdserver: leader transfer failed: ...`.
    public func moveLeader(to target: UInt64) async throws -> SynodLeaderTransfer {
        var attempt = 0
        while true {
            attempt += 1
            let (index, leader) = try await self.findLeader()
            var request = Etcdserverpb_MoveLeaderRequest()
            request.targetID = target
            do {
                let response = try await self.onEndpoint(index) { [request] client, options in
                    try await Etcdserverpb_Maintenance.Client(wrapping: client).moveLeader(request, options: options)
                }
                return SynodLeaderTransfer(previousLeader: leader, newLeader: target,
                                           endpoint: self.endpoints[index].original, response: response)
            } catch SynodClientError.server(let code, let message, let endpoint) {
                // The endpoint stopped leading after the lookup: look again.
                if message.contains("not leader"), attempt < Self.moveLeaderAttemptsMax { continue }
                throw SynodClientError.server(code: code, message: message, endpoint: endpoint)
            }
        }
    }

    /// How many times ``moveLeader(to:)`` looks for the leader.
    public static let moveLeaderAttemptsMax = 3

    /// The index of the configured endpoint that leads, and the leader's member id.
    private func findLeader() async throws -> (index: Int, leader: UInt64) {
        let results = await self.statusAll()
        var failures: [SynodClientError.EndpointFailure] = []
        var reachable = false
        for (index, (endpoint, result)) in results.enumerated() {
            switch result {
            case .success(let status):
                reachable = true
                if status.leader != 0, status.leader == status.header.memberID { return (index, status.leader) }
            case .failure(let error):
                if case .unavailable(let list) = error {
                    failures += list
                } else {
                    failures.append(.init(endpoint: endpoint.original, code: error.code ?? .unknown, reason: "\(error)"))
                }
            }
        }
        guard reachable else { throw SynodClientError.unavailable(failures) }
        let listed = self.endpoints.map(\.original).joined(separator: ",")
        throw SynodClientError.invalidArgument(
            "no leader endpoint given at [\(listed)]; MoveLeader must be sent to the leader's client URL")
    }

    /// Checks peer URLs before they are sent: at least one, each `http(s)://host:port`.
    static func validatedPeerURLs(_ urls: [String]) throws(SynodClientError) -> [String] {
        let trimmed = urls.map { String($0.trimmingWhitespace()) }
        guard !trimmed.isEmpty, !trimmed.contains(where: \.isEmpty) else {
            throw .invalidArgument("member peer URLs must be given (e.g. http://10.0.0.4:2380)")
        }
        for url in trimmed {
            guard let schemeEnd = url.range(of: "://"),
                  ["http", "https"].contains(url[..<schemeEnd.lowerBound].lowercased()) else {
                throw .invalidArgument("peer URL '\(url)' must start with http:// (e.g. http://10.0.0.4:2380)")
            }
            var hostPort = url[schemeEnd.upperBound...]
            if hostPort.hasSuffix("/") { hostPort = hostPort.dropLast() }
            guard let colon = hostPort.lastIndex(of: ":"), colon != hostPort.startIndex,
                  let port = Int(hostPort[hostPort.index(after: colon)...]), (1...65535).contains(port),
                  !hostPort.contains("/") else {
                throw .invalidArgument("peer URL '\(url)' must be http://host:port")
            }
        }
        if Set(trimmed).count != trimmed.count { throw .invalidArgument("a peer URL is listed twice") }
        return trimmed
    }
}
