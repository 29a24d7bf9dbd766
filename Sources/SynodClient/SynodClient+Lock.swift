import Foundation
import GRPCCore

/// etcd's Lock and Election services (`v3lockpb.Lock`, `v3electionpb.Election`), as Synod and
/// etcd serve them. Lock and Campaign wait as long as it takes (no request timeout): cancel
/// the calling task to give up, and the server deletes the waiting key.
extension SynodClient {
    /// Waits until the lock `name` is held with `lease` (which must stay alive: keep it
    /// alive meanwhile); answers the key that represents the lock (`name/<lease hex>`).
    public func lock(_ name: some SynodByteString, lease: Int64) async throws -> V3lockpb_LockResponse {
        var request = V3lockpb_LockRequest()
        request.name = name.synodBytes
        request.lease = lease
        return try await self.withFailover { [request] connection, options in
            var options = options
            options.timeout = nil
            return try await V3lockpb_Lock.Client(wrapping: connection.grpc).lock(request, options: options)
        }
    }

    /// Releases a lock by the key `lock` answered.
    @discardableResult
    public func unlock(key: some SynodByteString) async throws -> V3lockpb_UnlockResponse {
        var request = V3lockpb_UnlockRequest()
        request.key = key.synodBytes
        return try await self.withFailover { [request] connection, options in
            try await V3lockpb_Lock.Client(wrapping: connection.grpc).unlock(request, options: options)
        }
    }

    /// Waits until this campaign (with `lease`) leads the election `name`, proposing `value`.
    public func campaign(_ name: some SynodByteString, lease: Int64, value: some SynodByteString) async throws
        -> V3electionpb_CampaignResponse {
        var request = V3electionpb_CampaignRequest()
        request.name = name.synodBytes
        request.lease = lease
        request.value = value.synodBytes
        return try await self.withFailover { [request] connection, options in
            var options = options
            options.timeout = nil
            return try await V3electionpb_Election.Client(wrapping: connection.grpc).campaign(request, options: options)
        }
    }

    /// Sets a new value while `leader` still leads ("election: not leader" otherwise).
    @discardableResult
    public func proclaim(_ leader: V3electionpb_LeaderKey, value: some SynodByteString) async throws -> V3electionpb_ProclaimResponse {
        var request = V3electionpb_ProclaimRequest()
        request.leader = leader
        request.value = value.synodBytes
        return try await self.withFailover { [request] connection, options in
            try await V3electionpb_Election.Client(wrapping: connection.grpc).proclaim(request, options: options)
        }
    }

    /// The current leader of `name` ("election: no leader" when there is none).
    public func leader(_ name: some SynodByteString) async throws -> V3electionpb_LeaderResponse {
        var request = V3electionpb_LeaderRequest()
        request.name = name.synodBytes
        return try await self.withFailover { [request] connection, options in
            try await V3electionpb_Election.Client(wrapping: connection.grpc).leader(request, options: options)
        }
    }

    /// Gives up leadership (or a pending campaign) of `leader`.
    @discardableResult
    public func resign(_ leader: V3electionpb_LeaderKey) async throws -> V3electionpb_ResignResponse {
        var request = V3electionpb_ResignRequest()
        request.leader = leader
        return try await self.withFailover { [request] connection, options in
            try await V3electionpb_Election.Client(wrapping: connection.grpc).resign(request, options: options)
        }
    }

    /// The leader of `name` now (once there is one), then every change of leader or value,
    /// until the consumer stops iterating or the server ends the stream. No failover: an
    /// error ends the stream.
    public func observe(_ name: some SynodByteString) -> AsyncThrowingStream<V3electionpb_LeaderResponse, any Error> {
        var request = V3electionpb_LeaderRequest()
        request.name = name.synodBytes
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: V3electionpb_LeaderResponse.self)
        let connection = self.connections[self.currentIndex]
        var options = self.callOptions(timeout: nil)
        options.timeout = nil
        let task = Task { [request, options] in
            do {
                try await V3electionpb_Election.Client(wrapping: connection.grpc).observe(request, options: options) { response in
                    for try await message in response.messages { continuation.yield(message) }
                }
                continuation.finish()
            } catch let error as RPCError {
                continuation.finish(throwing: SynodClientError.server(code: error.code, message: error.message,
                                                                      endpoint: connection.endpoint.original))
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}
