import GRPCCore

extension SynodClient {
    /// Grants a lease of `ttl` seconds. `id` 0 lets the server choose the ID.
    public func leaseGrant(ttl: Int64, id: Int64 = 0) async throws -> Etcdserverpb_LeaseGrantResponse {
        var request = Etcdserverpb_LeaseGrantRequest()
        request.ttl = ttl
        request.id = id
        let response = try await self.withFailover { [request] connection, options in
            try await Etcdserverpb_Lease.Client(wrapping: connection.grpc).leaseGrant(request, options: options)
        }
        if !response.error.isEmpty {
            throw SynodClientError.server(code: .unknown, message: response.error, endpoint: "")
        }
        return response
    }

    /// Revokes a lease, deleting every key attached to it.
    @discardableResult
    public func leaseRevoke(id: Int64) async throws -> Etcdserverpb_LeaseRevokeResponse {
        var request = Etcdserverpb_LeaseRevokeRequest()
        request.id = id
        return try await self.withFailover { [request] connection, options in
            try await Etcdserverpb_Lease.Client(wrapping: connection.grpc).leaseRevoke(request, options: options)
        }
    }

    /// Renews a lease once and returns its new TTL.
    ///
    /// - Throws: ``SynodClientError/server(code:message:endpoint:)`` with
    ///   `etcdserver: requested lease not found` when the lease has expired or was revoked.
    public func leaseKeepAliveOnce(id: Int64) async throws -> Etcdserverpb_LeaseKeepAliveResponse {
        var request = Etcdserverpb_LeaseKeepAliveRequest()
        request.id = id
        let response = try await self.withFailover { [request] connection, options in
            let (done, finish) = AsyncStream.makeStream(of: Never.self)
            return try await Etcdserverpb_Lease.Client(wrapping: connection.grpc).leaseKeepAlive(
                request: StreamingClientRequest(producer: { writer in
                    try await writer.write(request)
                    // Half-close only once the answer arrived: some servers end the stream on EOF.
                    for await _ in done {}
                }),
                options: options
            ) { response -> Etcdserverpb_LeaseKeepAliveResponse in
                defer { finish.finish() }
                for try await message in response.messages {
                    return message
                }
                throw RPCError(code: .unavailable, message: "the server closed the keep-alive stream without answering")
            }
        }
        if response.ttl <= 0 {
            throw SynodClientError.server(
                code: .notFound, message: "etcdserver: requested lease not found", endpoint: "")
        }
        return response
    }

    /// The remaining and granted TTL of a lease, and its attached keys when `keys` is true.
    /// An expired or unknown lease has `ttl == -1`.
    public func leaseTimeToLive(id: Int64, keys: Bool = false) async throws -> Etcdserverpb_LeaseTimeToLiveResponse {
        var request = Etcdserverpb_LeaseTimeToLiveRequest()
        request.id = id
        request.keys = keys
        return try await self.withFailover { [request] connection, options in
            try await Etcdserverpb_Lease.Client(wrapping: connection.grpc).leaseTimeToLive(request, options: options)
        }
    }

    /// Every live lease.
    public func leaseList() async throws -> Etcdserverpb_LeaseLeasesResponse {
        let request = Etcdserverpb_LeaseLeasesRequest()
        return try await self.withFailover { [request] connection, options in
            try await Etcdserverpb_Lease.Client(wrapping: connection.grpc).leaseLeases(request, options: options)
        }
    }
}
