import GRPCCore
import SynodCore
import SynodEtcdAPI
import SynodKV

/// etcd's Cluster service: the member list comes from the replicated membership (SynodCore),
/// names and client URLs from what each member published through the log once it started.
/// Changes go through the log (`Node.reconfigure`) and answer once chosen and applied here.
struct ClusterService: Etcdserverpb_Cluster.SimpleServiceProtocol {
    let context: ServiceContext

    static let badURLs = RPCError(code: .invalidArgument, message: "etcdserver: given member URLs are invalid")

    func memberList(request _: Etcdserverpb_MemberListRequest, context _: ServerContext) async throws
        -> Etcdserverpb_MemberListResponse {
        try await context.serve("MemberList") {
            let ctx = context
            return try await context.node.withState { state in
                guard let membership = state.membership else { throw NodeError.joining }
                var out = Etcdserverpb_MemberListResponse()
                out.header = ctx.header(revision: 0)  // etcd's member answers carry no revision
                out.members = Self.etcdMembers(membership, state: state, node: ctx.node)
                return out
            }
        }
    }

    func memberAdd(request: Etcdserverpb_MemberAddRequest, context _: ServerContext) async throws
        -> Etcdserverpb_MemberAddResponse {
        try await context.serve("MemberAdd") {
            try await context.requireAdmin()
            // etcd parses and sorts the URLs (types.NewURLs).
            let urls = try Self.validated(request.peerUrls).sorted()
            let taken = Set(context.node.latestMembership?.members.map(\.memberID) ?? [])
            var memberID = UInt64.random(in: 1 ... .max)
            while taken.contains(memberID) { memberID = UInt64.random(in: 1 ... .max) }
            let result = try await context.node.reconfigure(.add(peerURLs: urls, isLearner: request.isLearner, memberID: memberID))
            guard let added = result.membership.members.first(where: { $0.memberID == memberID }) else {
                throw RPCError(code: .internalError, message: "synod: the added member is missing from the new membership")
            }
            let (members, _) = try await memberList(result.membership)
            var out = Etcdserverpb_MemberAddResponse()
            out.header = context.header(revision: 0)  // etcd's member answers carry no revision
            out.member = members.first { $0.id == added.memberID } ?? Self.etcdMember(added, published: nil)
            out.members = members
            return out
        }
    }

    func memberRemove(request: Etcdserverpb_MemberRemoveRequest, context _: ServerContext) async throws
        -> Etcdserverpb_MemberRemoveResponse {
        try await context.serve("MemberRemove") {
            try await context.requireAdmin()
            var out = Etcdserverpb_MemberRemoveResponse()
            (out.header, out.members) = try await reconfigure(.remove(try target(request.id)))
            return out
        }
    }

    func memberUpdate(request: Etcdserverpb_MemberUpdateRequest, context _: ServerContext) async throws
        -> Etcdserverpb_MemberUpdateResponse {
        try await context.serve("MemberUpdate") {
            try await context.requireAdmin()
            let id = try target(request.id)
            // etcd keeps the order given here (no NewURLs); Synod still checks they parse, since
            // peers dial them.
            let urls = try Self.validated(request.peerUrls)
            var out = Etcdserverpb_MemberUpdateResponse()
            (out.header, out.members) = try await reconfigure(.update(id, peerURLs: urls, name: nil))
            return out
        }
    }

    func memberPromote(request: Etcdserverpb_MemberPromoteRequest, context _: ServerContext) async throws
        -> Etcdserverpb_MemberPromoteResponse {
        try await context.serve("MemberPromote") {
            try await context.requireAdmin()
            var out = Etcdserverpb_MemberPromoteResponse()
            (out.header, out.members) = try await reconfigure(.promote(try target(request.id)))
            return out
        }
    }

    // MARK: - Helpers

    /// The NodeID of the member with etcd id `memberID` in the newest membership known here.
    private func target(_ memberID: UInt64) throws -> NodeID {
        guard let member = context.node.latestMembership?.members.first(where: { $0.memberID == memberID }) else {
            throw ReconfigurationError.memberNotFound
        }
        return member.id
    }

    /// Applies `change` through the log; the response header and member list every
    /// Member* response carries.
    private func reconfigure(_ change: MembershipChange) async throws -> (Etcdserverpb_ResponseHeader, [Etcdserverpb_Member]) {
        let result = try await context.node.reconfigure(change)
        let (members, _) = try await memberList(result.membership)
        return (context.header(revision: 0), members)  // etcd's member answers carry no revision
    }

    private func memberList(_ membership: Membership) async throws -> ([Etcdserverpb_Member], Int64) {
        let node = context.node
        return try await node.withState { state in
            (Self.etcdMembers(membership, state: state, node: node), state.kv.store.revision)
        }
    }

    /// Peer URLs as etcd accepts them: at least one, each `http://host:port`.
    static func validated(_ urls: [String]) throws -> [String] {
        guard !urls.isEmpty else { throw badURLs }
        for url in urls {
            guard (try? ServeConfiguration.address(url, flag: "peer URL")) != nil, !url.contains(",") else { throw badURLs }
        }
        return urls
    }

    static func etcdMembers(_ membership: Membership, state: NodeState, node: Node) -> [Etcdserverpb_Member] {
        membership.members.map { member in
            var published = state.kv.members[member.memberID]
            if published == nil, member.id == node.nodeID {
                published = MemberAttributes(name: node.options.name, clientURLs: node.options.advertiseClientURLs)
            }
            return etcdMember(member, published: published)
        }
    }

    /// A member as etcd shows it: the name and client URLs it published once started; before
    /// that, the name the membership records (the initial members') and no client URLs, or,
    /// for a member added at run time, neither (etcdctl prints it "unstarted").
    static func etcdMember(_ member: Member, published: MemberAttributes?) -> Etcdserverpb_Member {
        var out = Etcdserverpb_Member()
        out.id = member.memberID
        out.peerUrls = member.peerURLs
        out.isLearner = member.isLearner
        if let published {
            out.name = published.name
            out.clientUrls = published.clientURLs
        } else {
            out.name = member.name
        }
        return out
    }
}
