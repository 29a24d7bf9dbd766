import GRPCCore

extension SynodClient {
    /// The cluster's members.
    public func memberList(linearizable: Bool = false) async throws -> Etcdserverpb_MemberListResponse {
        var request = Etcdserverpb_MemberListRequest()
        request.linearizable = linearizable
        return try await self.withFailover { [request] connection, options in
            try await Etcdserverpb_Cluster.Client(wrapping: connection.grpc).memberList(request, options: options)
        }
    }

    /// Active alarms (for example `NOSPACE`).
    public func alarmList() async throws -> Etcdserverpb_AlarmResponse {
        var request = Etcdserverpb_AlarmRequest()
        request.action = .get
        return try await self.withFailover { [request] connection, options in
            try await Etcdserverpb_Maintenance.Client(wrapping: connection.grpc).alarm(request, options: options)
        }
    }

    /// The status of ONE endpoint (no failover): its member ID, version, database size, the
    /// leader it knows of, and its consensus term and indexes.
    ///
    /// - Parameter endpoint: one of the configured endpoints, written as configured or in any
    ///   accepted form (`http://127.0.0.1:2379` matches `127.0.0.1:2379`).
    public func status(endpoint: String) async throws -> Etcdserverpb_StatusResponse {
        guard let index = self.index(of: endpoint) else { throw SynodClientError.unknownEndpoint(endpoint) }
        return try await self.status(at: index)
    }

    /// The status of every configured endpoint, in configuration order; each entry is that
    /// endpoint's response or error.
    public func statusAll() async -> [(endpoint: SynodEndpoint, result: Result<Etcdserverpb_StatusResponse, SynodClientError>)] {
        await withTaskGroup(of: (Int, Result<Etcdserverpb_StatusResponse, SynodClientError>).self) { group in
            for index in self.connections.indices {
                group.addTask {
                    do {
                        return (index, .success(try await self.status(at: index)))
                    } catch let error as SynodClientError {
                        return (index, .failure(error))
                    } catch {
                        return (index, .failure(.invalidResponse("\(error)")))
                    }
                }
            }
            var results: [Int: Result<Etcdserverpb_StatusResponse, SynodClientError>] = [:]
            for await (index, result) in group { results[index] = result }
            return self.connections.indices.compactMap { index in
                results[index].map { (self.connections[index].endpoint, $0) }
            }
        }
    }

    /// The hash of ONE endpoint's key-value history up to `revision` (0: its latest), for
    /// comparing replicas: members that applied the same history report the same hash at the
    /// same revision. No failover.
    public func hashKV(endpoint: String, revision: Int64 = 0) async throws -> Etcdserverpb_HashKVResponse {
        guard let index = self.index(of: endpoint) else { throw SynodClientError.unknownEndpoint(endpoint) }
        var request = Etcdserverpb_HashKVRequest()
        request.revision = revision
        return try await self.onEndpoint(index) { [request] client, options in
            try await Etcdserverpb_Maintenance.Client(wrapping: client).hashKV(request, options: options)
        }
    }

    private func index(of endpoint: String) -> Int? {
        if let exact = self.endpoints.firstIndex(where: { $0.original == endpoint }) { return exact }
        guard let parsed = try? SynodEndpoint(parsing: endpoint) else { return nil }
        return self.endpoints.firstIndex { $0.host == parsed.host && $0.port == parsed.port }
    }

    private func status(at index: Int) async throws -> Etcdserverpb_StatusResponse {
        try await self.onEndpoint(index) { client, options in
            try await Etcdserverpb_Maintenance.Client(wrapping: client).status(Etcdserverpb_StatusRequest(), options: options)
        }
    }

    /// One attempt on one endpoint, errors mapped to ``SynodClientError``.
    func onEndpoint<Result: Sendable>(
        _ index: Int,
        _ body: (GRPCClient<Transport>, CallOptions) async throws -> Result
    ) async throws -> Result {
        let connection = self.connections[index]
        let options = self.callOptions(timeout: self.configuration.requestTimeout)
        do {
            return try await body(connection.grpc, options)
        } catch let error as RPCError {
            if Self.isRetryable(error), !Self.isServerMessage(error) {
                throw SynodClientError.unavailable([Self.failure(error, endpoint: connection.endpoint)])
            }
            throw SynodClientError.server(code: error.code, message: error.message, endpoint: connection.endpoint.original)
        }
    }
}
