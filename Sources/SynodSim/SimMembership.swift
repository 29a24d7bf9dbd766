import SynodCore
import SynodNode

/// One step of an operator's membership-change script.
enum OperatorStep: Hashable {
    /// Add a learner; `memberID` (etcd's id, random) names it until its node id is known.
    case addLearner(memberID: UInt64)
    /// Add a voter at once (it starts empty and catches up while it already votes).
    case addVoter(memberID: UInt64)
    /// Promote the learner added with `memberID` (looked up in the chosen membership).
    case promoteAdded(memberID: UInt64)
    case promote(NodeID)
    case remove(NodeID)
    case transfer(NodeID)
}

/// The simulated operator (an etcdctl user): runs one script of membership changes at a time,
/// each step at a random member (followers forward to the leader), waiting for its outcome and
/// retrying transient refusals; or, in a burst, sends the whole script at once.
struct SimOperator {
    var script: [OperatorStep] = []
    var attempts = 0
    /// Requests sent and not answered yet: request id → the step (looked up, never iterated).
    var inFlight: [UInt64: OperatorStep] = [:]
    /// Sending the script all at once; it ends when every request is answered or timed out.
    var burst = false
    var idle: Bool { script.isEmpty && inFlight.isEmpty }
}

extension Simulation {
    var operatorTimeout: SimTime { 2_000_000 }
    var operatorRetryAttempts: Int { 12 }

    /// The members the sim knows of (the newest chosen membership), for clients and the operator.
    func memberNodes() -> [Int] {
        nodes.indices.filter { !nodes[$0].removed }
    }

    func nodeIndex(_ id: NodeID) -> Int? { indexOf[id] }

    /// A node the operator cannot count on: it refused to start (corrupt disk), will find
    /// damage at its next start, or is repairing damage and does not vote yet.
    func damaged(_ id: NodeID) -> Bool {
        guard let index = nodeIndex(id) else { return true }
        return nodes[index].isDamaged
    }

    /// A majority of `voters` has a working disk: the cluster can make progress once faults heal.
    func healthy(_ voters: [NodeID]) -> Bool {
        !voters.isEmpty && voters.filter { !damaged($0) }.count >= voters.count / 2 + 1
    }

    /// The memberships that still govern a slot nobody applied yet, oldest first: a removed
    /// voter is still needed until the slot its removal governs from is chosen.
    func governingMemberships() -> [Membership] {
        var result: [Membership] = []
        for (index, epoch) in chosenEpochs.enumerated() {
            let nextActive = index + 1 < chosenEpochs.count ? chosenEpochs[index + 1].activeFrom : Slot.max
            if nextActive > highestApplied + 1 { result.append(epoch.membership) }
        }
        return result
    }

    /// Every governing membership, and the next voter set `next` if given, keeps a majority
    /// with working disks even without `without`.
    func healthyEverywhere(next: [NodeID]? = nil, without: NodeID? = nil) -> Bool {
        let sets = governingMemberships().map(\.voters) + (next.map { [$0] } ?? [])
        return sets.allSatisfy { voters in
            voters.filter { !damaged($0) && $0 != without }.count >= voters.count / 2 + 1
        }
    }

    // MARK: Planning

    /// A membership-change event: the idle operator starts a new script, chosen with weights
    /// that keep the cluster between 1 and 7 voters (growing small ones, shrinking big ones).
    func reconfigure() {
        guard operatorState.idle else { return }
        let membership = latestMembership
        let voters = membership.voters
        let learners = membership.learners
        var choices: [(weight: Double, script: [OperatorStep])] = []
        let fresh = random.next() | 1
        let second = random.next() | 1
        let leaderID = currentLeaderIndex.map { nodes[$0].id }
        func pick(_ ids: [NodeID]) -> NodeID { ids[Int(random.next() % UInt64(ids.count))] }
        if let learner = learners.first {
            if voters.count < 7 && !damaged(learner) && healthyEverywhere(next: voters + [learner]) { choices.append((1.5, [.promote(learner)])) }
            choices.append((0.5, [.remove(learner)]))
        } else if voters.count < 7 {
            let grow = voters.count < 3 ? 3 : voters.count < 5 ? 1.5 : 0.7
            choices.append((grow * 0.6, [.addLearner(memberID: fresh), .promoteAdded(memberID: fresh)]))
            choices.append((grow * 0.2, [.addLearner(memberID: fresh)]))
            // etcd also adds a voter directly (it starts empty and votes before it caught up).
            choices.append((grow * 0.2, [.addVoter(memberID: fresh)]))
            if voters.count < 6 { choices.append((grow * 0.2, [.addVoter(memberID: fresh), .addVoter(memberID: second)])) }
        }
        // Replace a voter that is down (or whose disk is gone) by a new empty node.
        let downVoters = voters.filter { id in nodeIndex(id).map { !nodes[$0].up } ?? true }
        if !downVoters.isEmpty, voters.count > 1 {
            let victim = pick(downVoters)
            if healthyEverywhere(next: voters.filter { $0 != victim }) {
                choices.append((2, [.remove(victim), .addLearner(memberID: fresh), .promoteAdded(memberID: fresh)]))
            }
        }
        if voters.count > 1 {
            let shrink = voters.count > 5 ? 2 : voters.count > 3 ? 1 : voters.count > 2 ? 0.6 : 0.3
            // Remove the leader half of the time, else any voter.
            let victim = chance(0.5) && leaderID.map(voters.contains) == true ? leaderID! : pick(voters)
            let rest = voters.filter { $0 != victim }
            if healthyEverywhere(next: rest) {
                choices.append((shrink, [.remove(victim)]))
                if rest.count > 1 {
                    let next = pick(rest)
                    if healthyEverywhere(next: rest.filter { $0 != next }) { choices.append((shrink * 0.4, [.remove(victim), .remove(next)])) }
                }
            }
            if let leaderID, voters.contains(leaderID) {
                choices.append((1, [.transfer(pick(voters.filter { $0 != leaderID }))]))
            }
        }
        if options.breaks.contains(.unsafeReconfig) {
            // The negative control churns: two voter changes at once, which the rule would
            // apply one after the other (adding two voters moves the majority furthest).
            choices = choices.filter { $0.script.count > 1 }
            if voters.count < 6 { choices.append((4, [.addVoter(memberID: fresh), .addVoter(memberID: second)])) }
        }
        let total = choices.reduce(0) { $0 + $1.weight }
        guard total > 0 else { return }
        var roll = uniform() * total
        var script = choices[choices.count - 1].script
        for choice in choices {
            if roll < choice.weight {
                script = choice.script
                break
            }
            roll -= choice.weight
        }
        let burstRate = options.breaks.contains(.unsafeReconfig) || options.breaks.contains(.staleChangeBase) ? 1 : options.faults.reconfigBurstRate
        operatorState = SimOperator(script: script, attempts: 0, inFlight: [:], burst: script.count > 1 && chance(burstRate))
        trace("OPERATOR plans \(script.map(describe).joined(separator: ", "))" + (operatorState.burst ? " (all at once)" : ""))
        hasher.mix(0xE0 | UInt64(script.count))
        if operatorState.burst {
            // The ids the leader will most likely assign, so later steps can name the new node.
            var predicted = membership.nextNodeID
            var steps: [OperatorStep] = []
            for step in script {
                switch step {
                case .addLearner, .addVoter:
                    steps.append(step)
                    predicted += 1
                case .promoteAdded: steps.append(.promote(NodeID(predicted - 1)))
                default: steps.append(step)
                }
            }
            operatorState.script = []
            for step in steps { submit(step) }
        } else {
            submitNext()
        }
    }

    func describe(_ step: OperatorStep) -> String {
        switch step {
        case .addLearner(let memberID): return "add learner m\(memberID % 1000)"
        case .addVoter(let memberID): return "add voter m\(memberID % 1000)"
        case .promoteAdded(let memberID): return "promote m\(memberID % 1000)"
        case .promote(let id): return "promote \(id)"
        case .remove(let id): return "remove \(id)"
        case .transfer(let id): return "transfer leadership to \(id)"
        }
    }

    // MARK: Running the script

    /// Sends the script's next step (sequential mode).
    func submitNext() {
        // Once the faults end the operator finishes nothing new: the run checks progress and
        // convergence of the membership as it is then (answers still in flight are recorded).
        guard !operatorState.burst, operatorState.inFlight.isEmpty else { return }
        guard faultsOn else {
            operatorState.script = []
            return
        }
        guard let step = operatorState.script.first else { return }
        if case .promoteAdded(let memberID) = step {
            guard let member = latestMembership.members.first(where: { $0.memberID == memberID }) else {
                abandonScript("the added member is not in the membership")
                return
            }
            operatorState.script[0] = .promote(member.id)
        }
        submit(operatorState.script[0])
    }

    /// Sends one request: a change at a random member, a transfer at the leader.
    private func submit(_ request: OperatorStep) {
        let requestID = random.next()
        let target: Int?
        if case .transfer = request {
            target = currentLeaderIndex
        } else {
            let candidates = memberNodes().filter { nodes[$0].up }
            target = candidates.isEmpty ? nil : candidates[Int(random.next() % UInt64(candidates.count))]
        }
        operatorState.inFlight[requestID] = request
        queue.push(.operatorTimeout(requestID: requestID), at: now + operatorTimeout)
        guard let target else { return }  // nobody to ask: the request times out
        result.reconfigRequests += 1
        hasher.mix(0xE8 | UInt64(target) << 8)
        trace("OPERATOR asks n\(nodes[target].id.rawValue): \(describe(request)) (#\(requestID % 10_000))")
        switch request {
        case .addLearner(let memberID):
            step(target, .reconfigure(token: requestID, change: .add(peerURLs: [], isLearner: true, memberID: memberID), force: false))
        case .addVoter(let memberID):
            step(target, .reconfigure(token: requestID, change: .add(peerURLs: [], isLearner: false, memberID: memberID), force: false))
        case .promote(let id):
            step(target, .reconfigure(token: requestID, change: .promote(id), force: false))
        case .remove(let id):
            step(target, .reconfigure(token: requestID, change: .remove(id), force: false))
        case .transfer(let id):
            step(target, .transferLeadership(token: requestID, target: id))
        case .promoteAdded:
            preconditionFailure("promoteAdded is resolved before it is sent")
        }
    }

    /// An outcome reported at node `node` (the request's origin).
    func operatorOutcome(requestID: UInt64, failure: String?) {
        guard let step = operatorState.inFlight.removeValue(forKey: requestID) else { return }
        hasher.mix(requestID)
        trace("OPERATOR #\(requestID % 10_000) \(describe(step)): " + (failure ?? "done"))
        if failure == nil, case .transfer = step { result.leaderTransfers += 1 }
        if operatorState.burst { return }
        guard !operatorState.script.isEmpty else {
            violation("simulator: operator outcome for \(describe(step)) with no script")
            return
        }
        guard let failure else {
            operatorState.script.removeFirst()
            operatorState.attempts = 0
            queue.push(.operatorNext, at: now + between(10_000, 100_000))
            return
        }
        let permanent = ["member not found", "can only promote a learner member", "cannot remove the last voting member",
                         "too many learner members in cluster", "peer URLs already exists", "membership changes need majority quorums"]
        operatorState.attempts += 1
        if permanent.contains(failure) || operatorState.attempts >= operatorRetryAttempts {
            abandonScript(failure)
        } else {
            queue.push(.operatorNext, at: now + between(50_000, 300_000))
        }
    }

    func operatorTimedOut(requestID: UInt64) {
        guard operatorState.inFlight[requestID] != nil else { return }
        operatorOutcome(requestID: requestID, failure: "no answer (timed out)")
    }

    private func abandonScript(_ reason: String) {
        trace("OPERATOR gives up: \(reason)")
        operatorState.script = []
    }

    func handleMembershipOutputs(_ node: Int, _ output: DriverOutput) {
        for (requestID, result) in output.reconfigurations {
            switch result {
            case .success(let change):
                // Reported done: it must be a change chosen in the log (whose effect the step
                // check above keeps in place until another change undoes it).
                if !chosenChangeRequests.contains(change.requestID) {
                    violation("membership: \(change.change) reported done at n\(nodes[node].id.rawValue) but never chosen")
                }
                operatorOutcome(requestID: requestID, failure: nil)
            case .failure(let error): operatorOutcome(requestID: requestID, failure: Self.text(error))
            }
        }
        for (requestID, result) in output.transfers {
            switch result {
            case .success: operatorOutcome(requestID: requestID, failure: nil)
            case .failure(let error): operatorOutcome(requestID: requestID, failure: Self.text(error))
            }
        }
    }

    static func text(_ error: any Error) -> String {
        (error as? CustomStringConvertible)?.description ?? "\(error)"
    }

    // MARK: The membership as chosen

    /// The first application anywhere of a chosen change (slots are first applied in order):
    /// start the node it adds, mark the nodes it removes.
    func membershipChosen(_ change: Reconfiguration, at slot: Slot) {
        result.reconfigurations += 1
        // One change at a time (rule 3 in Replica+Membership): each chosen membership is its
        // predecessor with exactly the one change it names, so consecutive memberships differ
        // by at most one voter and a change stays in effect until a later one undoes it.
        if let problem = change.stepProblem(after: latestMembership) {
            violation("membership: the change chosen at slot \(slot) (\(change.change)) \(problem)")
        }
        chosenChangeRequests.insert(change.requestID)
        latestMembership = change.membership
        let activeFrom = max(change.activeFrom, slot + 1, chosenEpochs[chosenEpochs.count - 1].activeFrom)
        chosenEpochs.append(MembershipEpoch(chosenAt: slot, activeFrom: activeFrom, membership: change.membership))
        hasher.mix(0xF0 | slot << 8)
        trace("MEMBERSHIP slot \(slot): \(change.change) -> voters \(change.membership.voters) learners \(change.membership.learners) from slot \(change.activeFrom)")
        for index in nodes.indices where !nodes[index].removed && !change.membership.contains(nodes[index].id) {
            nodes[index].removed = true
        }
        for member in change.membership.members where indexOf[member.id] == nil && !startingMembers.contains(member.id) {
            // The operator starts the new member's process a little later, with an empty data dir.
            startingMembers.insert(member.id)
            queue.push(.startMember(member.id), at: now + between(10_000, 200_000))
        }
    }

    /// Starts a node added at run time: a joining replica with empty storage.
    func startMember(_ id: NodeID) {
        let index = nodes.count
        var memberConfiguration = configuration
        let voters = latestMembership.voters.filter { $0 != id }
        memberConfiguration.members = voters.isEmpty ? latestMembership.members.map(\.id).filter { $0 != id } : voters
        memberConfiguration.phase1Quorum = memberConfiguration.members.count / 2 + 1
        memberConfiguration.phase2Quorum = memberConfiguration.phase1Quorum
        guard !memberConfiguration.members.isEmpty else { return }
        var node = makeNode(index: index, id: id, configuration: memberConfiguration, joining: true)
        node.removed = !latestMembership.contains(id)
        nodes.append(node)
        indexOf[id] = index
        nodes[index].up = true
        result.membersAdded += 1
        lastMemberStartAt = now
        hasher.mix(0xF8 | UInt64(id.rawValue) << 8)
        trace("START n\(id.rawValue) (joining, empty data directory; asks \(memberConfiguration.members))")
        step(index, .start)
        scheduleTick(index)
    }
}
