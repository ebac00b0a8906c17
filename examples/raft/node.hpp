// A RAFT node on the runtime: election, replication, commit, persistence, and its client front-end.
#pragma once

#include "config.hpp"
#include "message.hpp"
#include "probe.hpp"
#include "state_machine.hpp"
#include "storage.hpp"

#include <reprise/runtime/reprise.hpp>

#include <fmt/core.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>

namespace reprise::raft {

/// A pre-candidate asks its peers for pre-votes (thesis §9.6) before it becomes a candidate.
enum class Role { follower, pre_candidate, candidate, leader };
const char* role_name(Role r) noexcept;

/// One RAFT node. Its tasks (accepting peers and clients, one outbound link per
/// peer, the election timer, the leader's heartbeat) share it through a shared_ptr,
/// so it lives until the last of them ended. State that must reach the disk before a
/// message depending on it leaves is changed under `mu_`, which is held across the
/// persisting; everything else relies on cooperative scheduling (no blocking call
/// between a check and its use).
class Node : public std::enable_shared_from_this<Node> {
public:
    explicit Node(Config config);
    ~Node();
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;

    /// The main task's body: recovers from disk, listens, runs until the main task is
    /// cancelled (SIGINT/SIGTERM: exit 0) or the disk fails (exit 1).
    static int run_main_task(Config config);

    // --- what the client front-end sees ---
    struct Proposal {
        enum class Status { ok, not_leader, lost, timed_out, cancelled, failed };
        Status status = Status::failed;
        long long value = 0;
        const char* error = nullptr;  ///< ok, but the command answered a Redis error (Applied::error)
    };
    /// Appends `c` to the leader's log and waits until it is applied (or it cannot be).
    Proposal propose(const Command& c);
    /// Waits until a linearizable read may be served from this node's applied state
    /// (ReadIndex, thesis §6.4): this node leads and has committed an entry of its term
    /// (so it knows every committed entry, RAFT §8); its commit index then is the read
    /// index; a majority acknowledged a heartbeat round of its term sent after that (so
    /// no newer leader existed when the read arrived); and it applied up to the read
    /// index. Concurrent reads share one round. Bounded by the commit timeout.
    enum class ReadStatus { ok, not_leader, no_commit_in_term, timed_out, cancelled };
    ReadStatus read_barrier();
    Role role() const noexcept { return role_; }
    std::uint32_t id() const noexcept { return config_.id; }
    /// The leader this node knows of, or 0: itself while leader, else the leader of its
    /// term it heard from within the minimum election timeout (a silent leader is
    /// forgotten, so clients are not sent to a dead node).
    std::uint32_t leader_id() const noexcept { return leader_heard_recently() ? leader_id_ : 0; }
    std::uint64_t term() const noexcept { return term_; }
    std::uint64_t commit_index() const noexcept { return commit_index_; }
    std::uint64_t last_applied() const noexcept { return last_applied_; }
    std::uint64_t log_length() const noexcept { return storage_.last_index(); }
    const KvStore& kv() const noexcept { return kv_; }
    /// The log as this node holds it (for probes and tests).
    const Storage& storage() const noexcept { return storage_; }
    const Config& config() const noexcept { return config_; }

private:
    struct Peer {
        Member member;
        std::uint64_t next_index = 1;
        std::uint64_t match_index = 0;
        std::uint64_t sent_commit = 0;  ///< leader_commit the peer last acknowledged
        std::uint64_t vote_term = 0;    ///< term whose vote this peer already answered
        std::uint64_t pre_vote_round = 0;       ///< pre-vote round this peer already answered
        std::uint64_t pre_vote_in_flight = 0;   ///< round of the pre-vote request on the link
        std::uint64_t read_round_in_flight = 0; ///< read round the append on the link belongs to
        std::uint64_t read_round_acked = 0;     ///< highest read round the peer answered in this term
        Instant last_ack{};                     ///< when it last answered an append of this leader's term
        bool heartbeat_due = false;
    };

    int run();
    void accept_peers();
    void accept_clients();
    void serve_peer(Connection conn);
    /// Closes the least recently active inbound peer connection when there are
    /// inbound_peer_links_max of them (a flood of idle connections cannot pin fibers,
    /// sockets and frame buffers; a real peer whose link is closed reconnects).
    void evict_inbound_peer_if_full();
    void serve_client(Connection conn);
    void run_peer_link(std::uint32_t peer_id);
    void run_election_timer();
    void run_heartbeat();

    // All of these run under mu_.
    AppendReply handle_append(const AppendEntries& m);
    VoteReply handle_vote(const RequestVote& m);
    PreVoteReply handle_pre_vote(const PreVote& m) const;
    std::optional<Message> next_request(Peer& p);
    bool handle_reply(Peer& p, const Message& request, const Message& reply);
    void start_pre_vote();
    void start_election();
    void become_leader();
    void step_down(std::uint64_t term);
    /// Check-quorum: a leader that no majority answered within the maximum election
    /// timeout steps down (it cannot commit, and a newer leader may exist).
    void check_quorum();
    bool majority_answered_recently() const;
    void advance_commit();
    void set_commit(std::uint64_t index);
    void reset_election_timer();
    bool persist_hard_state();
    bool has_majority(std::size_t votes) const noexcept { return votes * 2 > config_.members.size(); }
    /// Whether a log ending at (last_index, last_term) is at least as up to date as this node's (RAFT §5.4.1).
    bool log_up_to_date(std::uint64_t last_index, std::uint64_t last_term) const;
    /// Leading, or heard from the leader of this term within the minimum election timeout:
    /// such a node refuses pre-votes and redirects clients to that leader.
    bool leader_heard_recently() const noexcept;
    void fail(const std::string& what);

    template <class... Args>
    void say(fmt::format_string<Args...> f, Args&&... args);

    Config config_;
    Storage storage_;
    KvStore kv_;
    std::map<std::uint32_t, Peer> peers_;  ///< every member but this node
    Listener raft_listener_;
    Listener client_listener_;
    /// Inbound peer connections by a sequence number (not by address, so the choice of
    /// which one to evict is a function of the run's inputs): the connection and when it
    /// last delivered a frame.
    struct InboundLink {
        Connection* conn = nullptr;
        Instant last_active{};
    };
    std::map<std::uint64_t, InboundLink> inbound_;
    std::uint64_t inbound_seq_ = 0;
    std::size_t clients_ = 0;  ///< client connections being served

    Role role_ = Role::follower;
    std::uint64_t term_ = 0;
    std::uint32_t voted_for_ = 0;
    std::uint32_t leader_id_ = 0;
    std::set<std::uint32_t> votes_;
    std::set<std::uint32_t> pre_votes_;
    std::uint64_t pre_vote_round_ = 0;  ///< numbers this node's pre-vote attempts
    Instant leader_contact_{};          ///< when the leader of this term last spoke (an AppendEntries)
    /// Read rounds (ReadIndex): a read needs a majority to answer an append that carried a
    /// round number no lower than its own. A read joins the newest round while no append
    /// carried it yet (all of its appends leave after the read arrived), else opens the next.
    std::uint64_t read_round_ = 0;
    bool read_round_open_ = false;
    std::uint64_t commit_index_ = 0;
    std::uint64_t last_applied_ = 0;
    /// Results of applied entries some client waits for, by (index, term).
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::optional<Applied>> waiting_;

    Mutex mu_;
    /// Notified on every change of role, term, log, commit or applied state.
    Condition changed_;
    Timer election_timer_;
    Instant election_deadline_{};
    Event stop_;
    bool failed_ = false;
    int exit_code_ = 0;
    bool started_ = false;  ///< observer().started was called
};

/// reprise-raft as a program the runtime hosts: parses its arguments and runs the node.
ProgramEntry program();

} // namespace reprise::raft
