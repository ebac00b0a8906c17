// The RAFT node: election with randomized timeouts, log replication, commit, and recovery from disk.
#include "node.hpp"

#include "auth.hpp"
#include "peer_auth.hpp"

#include <algorithm>
#include <cstdio>
#include <span>

using namespace std::chrono_literals;

namespace reprise::raft {

namespace {

/// Bounds of a peer link's reconnect backoff (the upper one also stays below half the
/// election timeout, so that a restarted follower hears from the leader before it
/// times out and disrupts the cluster with an election), and how long it waits for a reply.
constexpr Duration reconnect_backoff_min = 50ms;
constexpr Duration reconnect_backoff_max = 1s;
constexpr Duration connect_timeout = 1s;
constexpr Duration reply_timeout = 2s;
/// Once a frame's header arrived, its body must follow within this long: a peer that
/// declares a large frame and stalls does not hold the connection and its buffer forever.
constexpr Duration frame_body_timeout = 10s;
/// Inbound peer connections held at once (a real cluster needs one per peer, plus a few
/// being replaced); past it the least recently active one is closed.
constexpr std::size_t inbound_peer_links_max = 64;
static_assert(inbound_peer_links_max >= 4 * 15, "room for every member of the largest cluster, several times");

/// Reads one frame (header and body) into `frame`. The body is read as it arrives,
/// never allocated whole up front from the declared length: a peer that declares 8 MiB
/// and sends four bytes costs four bytes, not 8 MiB. False when the connection fails,
/// the header declares a body above the limit, or a deadline passes.
bool read_frame(Connection& conn, Deadline header_deadline, std::string& frame) {
    frame.assign(wire::frame_header_bytes, '\0');
    if (!conn.read_exact(std::span<char>(frame.data(), frame.size()), header_deadline).ok())
        return false;
    auto length = frame_body_length(frame);
    if (!length)
        return false;  // a frame above the limit: drop the peer
    Deadline body_deadline(now() + frame_body_timeout);
    while (frame.size() < wire::frame_header_bytes + *length) {
        const std::size_t missing = wire::frame_header_bytes + *length - frame.size();
        auto chunk = conn.read_some(std::min(missing, limits::read_chunk_bytes), body_deadline);
        if (!chunk.ok())
            return false;
        frame += *chunk;
    }
    return true;
}

/// Reads the MAC that follows a frame on an authenticated link and checks it.
bool read_tag(Connection& conn, LinkAuth& auth, std::string_view frame) {
    auto tag = conn.read_exact(LinkAuth::tag_bytes, Deadline(now() + frame_body_timeout));
    return tag.ok() && auth.verify(frame, *tag);
}

Observer* the_observer = nullptr;

} // namespace

void set_observer(Observer* o) noexcept { the_observer = o; }
Observer* observer() noexcept { return the_observer; }

const char* role_name(Role r) noexcept {
    switch (r) {
    case Role::follower:
        return "follower";
    case Role::pre_candidate:
        return "pre-candidate";
    case Role::candidate:
        return "candidate";
    case Role::leader:
        return "leader";
    }
    return "?";
}

// The narrative on stdout: one flushed line per event, derived only from the run's inputs,
// so a replay prints exactly the same lines.
template <class... Args>
void Node::say(fmt::format_string<Args...> f, Args&&... args) {
    if (config_.quiet)
        return;
    fmt::print("node {}: {}\n", config_.id, fmt::format(f, std::forward<Args>(args)...));
    std::fflush(stdout);
}

Node::Node(Config config) : config_(std::move(config)) {
    for (const Member& m : config_.members)
        if (m.id != config_.id)
            peers_.emplace(m.id, Peer{m});
}

Node::~Node() {
    if (started_ && the_observer)
        the_observer->stopped(*this);
}

int Node::run_main_task(Config config) {
    auto node = std::make_shared<Node>(std::move(config));
    return node->run();
}

void Node::fail(const std::string& what) {
    if (cancelled() || failed_)
        return;  // a cancelled operation during a stop is not a disk failure
    failed_ = true;
    exit_code_ = 1;
    fmt::print(stderr, "node {}: storage failure: {}; stopping\n", config_.id, what);
    std::fflush(stderr);
    stop_.set();
    changed_.notify_all();
}

int Node::run() {
    Recovery recovery;
    if (std::string error = storage_.open(config_.data_dir, recovery); !error.empty()) {
        fmt::print(stderr, "node {}: {}\n", config_.id, error);
        return 1;
    }
    term_ = recovery.hard_state.term;
    voted_for_ = recovery.hard_state.voted_for;
    say("recovered term {}, vote {}, {} log entries{}", term_, voted_for_, recovery.entries,
        recovery.torn_bytes ? fmt::format(" (cut a torn last record of {} bytes)", recovery.torn_bytes) : "");
    started_ = true;
    if (the_observer)
        the_observer->started(*this);

    const Member& self = config_.self();
    auto raft_address = Address::parse(fmt::format("{}:{}", self.host, self.raft_port));
    auto client_address = Address::parse(fmt::format("{}:{}", self.host, self.client_port));
    if (!raft_address.ok() || !client_address.ok()) {
        fmt::print(stderr, "node {}: bad host '{}'\n", config_.id, self.host);
        return 2;
    }
    auto raft_listener = listen(*raft_address);
    if (!raft_listener.ok()) {
        fmt::print(stderr, "node {}: cannot listen on {}: {}\n", config_.id, raft_address->to_string(),
                   raft_listener.error().message());
        return 1;
    }
    auto client_listener = listen(*client_address);
    if (!client_listener.ok()) {
        fmt::print(stderr, "node {}: cannot listen on {}: {}\n", config_.id, client_address->to_string(),
                   client_listener.error().message());
        return 1;
    }
    raft_listener_ = std::move(*raft_listener);
    client_listener_ = std::move(*client_listener);
    if (!config_.quiet) {
        fmt::print("node {} listening raft {} client {}\n", config_.id, raft_listener_.port(), client_listener_.port());
        std::fflush(stdout);
    }

    reset_election_timer();
    auto self_ptr = shared_from_this();
    spawn("raft-accept", [self_ptr] { self_ptr->accept_peers(); });
    spawn("client-accept", [self_ptr] { self_ptr->accept_clients(); });
    spawn("election", [self_ptr] { self_ptr->run_election_timer(); });
    spawn("heartbeat", [self_ptr] { self_ptr->run_heartbeat(); });
    for (auto& [peer_id, peer] : peers_)
        spawn(fmt::format("peer-{}", peer_id), [self_ptr, id = peer_id] { self_ptr->run_peer_link(id); });

    // Runs until SIGINT/SIGTERM cancels the main task, or a disk failure sets stop_.
    if (auto r = stop_.wait(); !r.ok())
        say("term {}: stopping ({} at commit index {})", term_, role_name(role_), commit_index_);
    raft_listener_.close();
    client_listener_.close();
    changed_.notify_all();
    return exit_code_;  // the runtime cancels the other tasks; the last one drops the node
}

// --- tasks ---------------------------------------------------------------------------

void Node::accept_peers() {
    auto self_ptr = shared_from_this();
    for (;;) {
        auto conn = raft_listener_.accept();
        if (!conn.ok())
            return;  // cancelled or closed
        spawn("raft-in", [self_ptr, c = std::move(*conn)]() mutable { self_ptr->serve_peer(std::move(c)); });
    }
}

void Node::accept_clients() {
    auto self_ptr = shared_from_this();
    for (;;) {
        auto conn = client_listener_.accept();
        if (!conn.ok())
            return;
        if (clients_ >= config_.max_clients) {
            (void)conn->write("-ERR max number of clients reached\r\n");
            continue;  // dropping it closes it once the error is sent
        }
        ++clients_;
        spawn("client", [self_ptr, c = std::move(*conn)]() mutable {
            self_ptr->serve_client(std::move(c));
            --self_ptr->clients_;
        });
    }
}

// Answers one peer's requests, one at a time, on the connection the peer opened.
void Node::serve_peer(Connection conn) {
    evict_inbound_peer_if_full();
    const std::uint64_t seq = ++inbound_seq_;
    inbound_[seq] = InboundLink{&conn, now()};
    struct Unregister {
        std::map<std::uint64_t, InboundLink>& links;
        std::uint64_t seq;
        ~Unregister() { links.erase(seq); }
    } unregister{inbound_, seq};
    std::optional<LinkAuth> link_auth;
    if (!config_.cluster_secret.empty()) {
        std::string why;
        if (!LinkAuth::accept(conn, config_.cluster_secret, Deadline(now() + reply_timeout), link_auth.emplace(), why)) {
            if (cancelled())
                return;  // the node stops: not the peer's fault
            fmt::print(stderr, "node {}: refused a peer link from {}: {}\n", config_.id,
                       conn.peer_address().to_string(), why);
            std::fflush(stderr);
            return;
        }
    }
    std::string frame;
    while (!cancelled() && !failed_) {
        if (!read_frame(conn, Deadline::never(), frame))
            return;
        if (link_auth && !read_tag(conn, *link_auth, frame)) {
            fmt::print(stderr, "node {}: refused a frame from {} (its MAC does not check): link closed\n", config_.id,
                       conn.peer_address().to_string());
            std::fflush(stderr);
            return;
        }
        if (auto it = inbound_.find(seq); it != inbound_.end())
            it->second.last_active = now();
        Decoded d = decode_message(frame);
        if (!d.message)
            return;
        Message reply;
        {
            LockGuard guard(mu_);
            if (!guard.ok() || failed_)
                return;
            if (auto* a = std::get_if<AppendEntries>(&*d.message))
                reply = handle_append(*a);
            else if (auto* v = std::get_if<RequestVote>(&*d.message))
                reply = handle_vote(*v);
            else if (auto* pv = std::get_if<PreVote>(&*d.message))
                reply = handle_pre_vote(*pv);
            else
                return;  // replies do not come this way
            if (failed_)
                return;  // what the reply promises did not reach the disk
        }
        std::string bytes = encode_message(reply);
        if (link_auth)
            bytes += link_auth->seal(bytes);
        if (!conn.write(bytes).ok())
            return;
    }
}

void Node::evict_inbound_peer_if_full() {
    if (inbound_.size() < inbound_peer_links_max)
        return;
    auto oldest = inbound_.begin();
    for (auto it = inbound_.begin(); it != inbound_.end(); ++it)
        if (it->second.last_active < oldest->second.last_active)
            oldest = it;
    oldest->second.conn->close();  // its task wakes with Errc::closed and ends
    inbound_.erase(oldest);
}

// The outbound link to one peer: connects (with bounded backoff), then sends what the
// role asks for (vote requests, appends, heartbeats) and handles each reply in turn.
void Node::run_peer_link(std::uint32_t peer_id) {
    Peer& peer = peers_.at(peer_id);
    auto address = Address::parse(fmt::format("{}:{}", peer.member.host, peer.member.raft_port));
    if (!address.ok()) {
        fmt::print(stderr, "node {}: bad address of peer {}\n", config_.id, peer_id);
        return;
    }
    Connection conn;
    std::optional<LinkAuth> link_auth;  // with a cluster secret: the open link's MAC state
    bool refusal_said = false;
    const Duration backoff_max = std::max(reconnect_backoff_min, std::min(reconnect_backoff_max, config_.election_min / 2));
    Duration backoff = reconnect_backoff_min;
    auto back_off = [&]() -> bool {
        conn = Connection{};
        if (!sleep_for(backoff).ok())
            return false;
        backoff = std::min(backoff * 2, backoff_max);
        return true;
    };
    while (!cancelled() && !failed_) {
        if (!conn) {
            auto c = connect(*address, connect_timeout);
            if (!c.ok()) {
                if (c.code() == Errc::cancelled || !back_off())
                    return;
                continue;
            }
            conn = std::move(*c);
            if (!config_.cluster_secret.empty()) {
                std::string why;
                if (!LinkAuth::open(conn, config_.cluster_secret, Deadline(now() + reply_timeout), link_auth.emplace(),
                                    why)) {
                    if (cancelled())
                        return;
                    if (!refusal_said) {  // said once until the link works again: retries are frequent
                        fmt::print(stderr, "node {}: link to peer {} not authenticated: {}\n", config_.id, peer_id, why);
                        std::fflush(stderr);
                        refusal_said = true;
                    }
                    if (!back_off())
                        return;
                    continue;
                }
                refusal_said = false;
            }
        }
        std::optional<Message> request;
        {
            LockGuard guard(mu_);
            if (!guard.ok())
                return;
            request = next_request(peer);
        }
        if (!request) {
            if (!changed_.wait().ok())
                return;
            continue;
        }
        Deadline deadline(now() + reply_timeout);
        std::optional<Message> reply;
        std::string bytes = encode_message(*request);
        if (link_auth)
            bytes += link_auth->seal(bytes);
        if (conn.write(bytes, deadline).ok()) {
            if (std::string frame; read_frame(conn, deadline, frame) && (!link_auth || read_tag(conn, *link_auth, frame)))
                reply = decode_message(frame).message;
        }
        if (cancelled())
            return;
        bool handled = false;
        if (reply) {
            LockGuard guard(mu_);
            if (!guard.ok())
                return;
            handled = handle_reply(peer, *request, *reply);
        }
        if (!handled) {
            if (!back_off())
                return;
            continue;
        }
        backoff = reconnect_backoff_min;
    }
}

// Forgets a leader silent for the minimum election timeout, and starts a pre-vote when
// the randomized timeout passes without a leader's word.
void Node::run_election_timer() {
    while (!cancelled() && !failed_) {
        if (role_ == Role::leader || !election_timer_.armed()) {
            if (!changed_.wait().ok())
                return;
            continue;
        }
        auto fired = election_timer_.wait();
        if (!fired.ok()) {
            if (fired.code() == Errc::cancelled)
                return;
            continue;  // closed: the timer was cancelled (this node became leader)
        }
        LockGuard guard(mu_);
        if (!guard.ok())
            return;
        if (role_ == Role::leader || failed_)
            continue;
        if (leader_id_ != 0 && !leader_heard_recently()) {
            say("term {}: no word from leader {} for {} ms; forgot it", term_, leader_id_,
                std::chrono::duration_cast<std::chrono::milliseconds>(now() - leader_contact_).count());
            leader_id_ = 0;
            changed_.notify_all();
        }
        if (now() < election_deadline_) {
            // A reset raced with the fire, or the timer woke to forget the leader first.
            election_timer_.start_at(election_deadline_);
            continue;
        }
        start_pre_vote();
    }
}

// While leader: marks every peer due for an append each heartbeat period (one timer for all
// peers), and steps down when no majority answered within an election timeout (check-quorum).
void Node::run_heartbeat() {
    while (!cancelled() && !failed_) {
        if (role_ != Role::leader) {
            if (!changed_.wait().ok())
                return;
            continue;
        }
        const std::uint64_t term = term_;
        Instant next = now() + config_.heartbeat;
        while (role_ == Role::leader && term_ == term) {
            if (!sleep_until(next).ok())
                return;
            if (role_ != Role::leader || term_ != term)
                break;
            for (auto& [id, p] : peers_)
                p.heartbeat_due = true;
            changed_.notify_all();
            next += config_.heartbeat;
            if (!majority_answered_recently()) {
                LockGuard guard(mu_);
                if (!guard.ok())
                    return;
                if (term_ == term && !failed_)
                    check_quorum();
            }
        }
    }
}

// --- the protocol (under mu_) --------------------------------------------------------

void Node::reset_election_timer() {
    const auto timeout = Duration(random_between(config_.election_min.count(), config_.election_max.count()));
    election_deadline_ = now() + timeout;
    // A follower that knows a leader wakes first when it would forget it (the minimum
    // timeout), then at the deadline; a leader that keeps speaking re-arms it before either.
    election_timer_.start(role_ == Role::follower && leader_id_ != 0 ? config_.election_min : timeout);
    changed_.notify_all();
}

bool Node::leader_heard_recently() const noexcept {
    if (role_ == Role::leader)
        return true;
    return leader_id_ != 0 && now() - leader_contact_ < config_.election_min;
}

bool Node::log_up_to_date(std::uint64_t last_index, std::uint64_t last_term) const {
    const std::uint64_t own_last = storage_.last_index();
    const std::uint64_t own_term = storage_.term_at(own_last);
    return last_term > own_term || (last_term == own_term && last_index >= own_last);
}

bool Node::persist_hard_state() {
    HardState wanted{term_, voted_for_};
    if (storage_.hard_state() == wanted)
        return true;
    if (!storage_.save_hard_state(wanted)) {
        fail(storage_.last_error());
        return false;
    }
    return true;
}

void Node::step_down(std::uint64_t term) {
    REPRISE_ASSERT(term >= term_);
    if (term > term_) {
        term_ = term;
        voted_for_ = 0;
        leader_id_ = 0;
    }
    if (role_ != Role::follower) {
        role_ = Role::follower;
        say("term {}: became follower", term_);
        annotate("became_follower", {{"term", static_cast<std::int64_t>(term_)}});
    }
    // Only a former leader needs its timer started: a higher term alone (a vote request
    // this node may refuse, a stale reply) must not postpone this node's own election,
    // or a candidate with a stale log that keeps retrying would hold every follower
    // back. A leader's AppendEntries and a granted vote reset the timer themselves.
    if (!election_timer_.armed())
        reset_election_timer();
    changed_.notify_all();
}

// Asks every peer whether it would vote for this node in the next term; only with a
// majority of pre-votes does the term move (thesis §9.6), so a node that was cut off
// (paused, partitioned) cannot depose a leader the others still hear from.
void Node::start_pre_vote() {
    REPRISE_ASSERT(role_ != Role::leader);
    if (role_ != Role::pre_candidate) {
        role_ = Role::pre_candidate;
        say("term {}: became pre-candidate", term_);
    }
    leader_id_ = 0;
    pre_votes_ = {config_.id};
    ++pre_vote_round_;
    reset_election_timer();  // no majority by then: another round
    if (has_majority(pre_votes_.size())) {
        start_election();
        return;
    }
    changed_.notify_all();
}

void Node::start_election() {
    REPRISE_ASSERT(role_ != Role::leader);
    term_ += 1;
    voted_for_ = config_.id;
    role_ = Role::candidate;
    leader_id_ = 0;
    votes_ = {config_.id};
    if (!persist_hard_state())
        return;
    say("term {}: became candidate", term_);
    annotate("election", {{"term", static_cast<std::int64_t>(term_)},
                          {"last_index", static_cast<std::int64_t>(storage_.last_index())}});
    reset_election_timer();
    if (has_majority(votes_.size()))
        become_leader();
    changed_.notify_all();
}

void Node::become_leader() {
    REPRISE_ASSERT(role_ == Role::candidate);
    role_ = Role::leader;
    leader_id_ = config_.id;
    election_timer_.cancel();
    for (auto& [id, p] : peers_) {
        p.next_index = storage_.last_index() + 1;
        p.match_index = 0;
        p.sent_commit = 0;
        p.read_round_acked = 0;
        p.last_ack = now();  // check-quorum counts from the start of the term
        p.heartbeat_due = true;
    }
    say("term {}: became leader", term_);
    // A no-op of the new term lets the entries of earlier terms commit (RAFT §5.4.2).
    if (!storage_.append({Entry{term_, encode_command(Command{})}})) {
        fail(storage_.last_error());
        return;
    }
    annotate("became_leader", {{"term", static_cast<std::int64_t>(term_)},
                               {"last_index", static_cast<std::int64_t>(storage_.last_index())}});
    if (the_observer)
        the_observer->became_leader(*this);
    advance_commit();
    changed_.notify_all();
}

void Node::set_commit(std::uint64_t index) {
    REPRISE_ASSERT(index > commit_index_ && index <= storage_.last_index());
    commit_index_ = index;
    say("commit index {}", commit_index_);
    annotate("commit", {{"index", static_cast<std::int64_t>(commit_index_)},
                        {"term", static_cast<std::int64_t>(storage_.term_at(commit_index_))}});
    while (last_applied_ < commit_index_) {
        ++last_applied_;
        const Entry& e = storage_.entry(last_applied_);
        auto command = decode_command(e.command);
        Applied value;
        if (command)
            value = kv_.apply(*command);
        else
            fmt::print(stderr, "node {}: entry {} holds no valid command; applied as a no-op\n", config_.id, last_applied_);
        if (the_observer)
            the_observer->applied(*this, last_applied_, e);
        if (auto it = waiting_.find({last_applied_, e.term}); it != waiting_.end())
            it->second = value;
    }
    changed_.notify_all();
}

bool Node::majority_answered_recently() const {
    std::size_t answered = 1;
    for (const auto& [id, p] : peers_)
        answered += now() - p.last_ack < config_.election_max ? 1 : 0;
    return has_majority(answered);
}

void Node::check_quorum() {
    if (role_ != Role::leader || majority_answered_recently())
        return;
    role_ = Role::follower;
    leader_id_ = 0;
    say("term {}: no majority answered for {} ms; stepped down", term_,
        std::chrono::duration_cast<std::chrono::milliseconds>(config_.election_max).count());
    annotate("stepped_down", {{"term", static_cast<std::int64_t>(term_)}, {"why", "no majority answered"}});
    reset_election_timer();
    changed_.notify_all();
}

// The leader commits the highest index of its own term that a majority holds.
void Node::advance_commit() {
    if (role_ != Role::leader)
        return;
    for (std::uint64_t n = storage_.last_index(); n > commit_index_ && storage_.term_at(n) == term_; --n) {
        std::size_t holders = 1;
        for (const auto& [id, p] : peers_)
            holders += p.match_index >= n ? 1 : 0;
        if (has_majority(holders)) {
            set_commit(n);
            return;
        }
    }
}

std::optional<Message> Node::next_request(Peer& p) {
    if (failed_)
        return std::nullopt;
    const std::uint64_t last = storage_.last_index();
    if (role_ == Role::pre_candidate && p.pre_vote_round != pre_vote_round_) {
        p.pre_vote_in_flight = pre_vote_round_;
        return PreVote{term_ + 1, config_.id, last, storage_.term_at(last)};
    }
    if (role_ == Role::candidate && p.vote_term != term_)
        return RequestVote{term_, config_.id, last, storage_.term_at(last)};
    if (role_ != Role::leader)
        return std::nullopt;
    if (!p.heartbeat_due && p.next_index > last && p.sent_commit >= commit_index_)
        return std::nullopt;
    p.heartbeat_due = false;
    p.read_round_in_flight = read_round_;
    read_round_open_ = false;  // a later read needs a later round
    REPRISE_ASSERT(p.next_index >= 1 && p.next_index <= last + 1);
    AppendEntries m;
    m.term = term_;
    m.leader = config_.id;
    m.prev_log_index = p.next_index - 1;
    m.prev_log_term = storage_.term_at(m.prev_log_index);
    m.leader_commit = commit_index_;
    std::size_t bytes = 0;
    for (std::uint64_t i = p.next_index; i <= last && m.entries.size() < wire::entries_per_message_max; ++i) {
        const Entry& e = storage_.entry(i);
        if (!m.entries.empty() && bytes + e.command.size() > wire::entries_bytes_per_message)
            break;
        bytes += e.command.size();
        m.entries.push_back(e);
    }
    return m;
}

// Returns false when the reply does not answer the request (the link is then reset).
bool Node::handle_reply(Peer& p, const Message& request, const Message& reply) {
    if (const auto* vote = std::get_if<VoteReply>(&reply)) {
        const auto* req = std::get_if<RequestVote>(&request);
        if (!req)
            return false;
        if (vote->term > term_) {
            step_down(vote->term);
            persist_hard_state();
            return true;
        }
        if (role_ != Role::candidate || term_ != req->term)
            return true;
        p.vote_term = req->term;
        if (vote->granted) {
            votes_.insert(p.member.id);
            if (has_majority(votes_.size()))
                become_leader();
        }
        return true;
    }
    if (const auto* pre = std::get_if<PreVoteReply>(&reply)) {
        const auto* req = std::get_if<PreVote>(&request);
        if (!req)
            return false;
        if (!pre->granted && pre->term > term_) {
            step_down(pre->term);  // the next pre-vote asks for a term above the peer's
            persist_hard_state();
            return true;
        }
        if (role_ != Role::pre_candidate || req->term != term_ + 1 || p.pre_vote_in_flight != pre_vote_round_)
            return true;  // an answer to an earlier round
        p.pre_vote_round = pre_vote_round_;
        if (pre->granted) {
            pre_votes_.insert(p.member.id);
            if (has_majority(pre_votes_.size()))
                start_election();
        }
        return true;
    }
    const auto* append = std::get_if<AppendReply>(&reply);
    const auto* req = std::get_if<AppendEntries>(&request);
    if (!append || !req)
        return false;
    if (append->term > term_) {
        step_down(append->term);
        persist_hard_state();
        return true;
    }
    if (role_ != Role::leader || term_ != req->term || append->term != term_)
        return true;
    // Any answer of this term shows the peer knew no newer leader when it answered.
    p.last_ack = now();
    if (p.read_round_in_flight > p.read_round_acked) {
        p.read_round_acked = p.read_round_in_flight;
        changed_.notify_all();
    }
    if (append->success) {
        const std::uint64_t sent_up_to = req->prev_log_index + req->entries.size();
        if (append->match_index != sent_up_to)
            return false;  // not an answer to this request
        p.match_index = std::max(p.match_index, append->match_index);
        p.next_index = append->match_index + 1;
        p.sent_commit = std::max(p.sent_commit, req->leader_commit);
        advance_commit();
    } else {
        // Back off to the follower's hint, always at least one entry further back.
        std::uint64_t hint = append->conflict_index == 0 ? req->prev_log_index : append->conflict_index;
        p.next_index = std::max<std::uint64_t>(1, std::min(hint, req->prev_log_index));
        p.next_index = std::max(p.next_index, p.match_index + 1);
    }
    return true;
}

AppendReply Node::handle_append(const AppendEntries& m) {
    AppendReply r{term_, config_.id, false, 0, 0};
    if (m.term < term_)
        return r;
    if (m.term > term_ || role_ != Role::follower)
        step_down(m.term);
    leader_contact_ = now();
    if (leader_id_ != m.leader) {
        leader_id_ = m.leader;
        say("term {}: following leader {}", term_, leader_id_);
        annotate("following", {{"term", static_cast<std::int64_t>(term_)}, {"leader", static_cast<std::int64_t>(leader_id_)}});
    }
    reset_election_timer();  // the current term's leader spoke
    r.term = term_;
    if (!persist_hard_state())
        return r;
    const std::uint64_t last = storage_.last_index();
    if (m.prev_log_index > last) {
        r.conflict_index = last + 1;
        return r;
    }
    if (storage_.term_at(m.prev_log_index) != m.prev_log_term) {
        // Skip back over the whole conflicting term (never below what is committed).
        const std::uint64_t bad_term = storage_.term_at(m.prev_log_index);
        std::uint64_t i = m.prev_log_index;
        while (i > commit_index_ + 1 && storage_.term_at(i - 1) == bad_term)
            --i;
        r.conflict_index = i;
        return r;
    }
    // Find the first entry that is new or conflicts; entries already held stay.
    std::size_t k = 0;
    std::uint64_t index = m.prev_log_index + 1;
    for (; k < m.entries.size() && index <= last; ++k, ++index) {
        if (storage_.term_at(index) != m.entries[k].term)
            break;
    }
    if (k < m.entries.size()) {
        if (index <= last) {
            if (index <= commit_index_) {
                fmt::print(stderr, "node {}: leader {} asks to replace committed entry {}; refused\n", config_.id,
                           m.leader, index);
                return r;
            }
            if (!storage_.truncate_from(index)) {
                fail(storage_.last_error());
                return r;
            }
        }
        if (!storage_.append(std::vector<Entry>(m.entries.begin() + static_cast<std::ptrdiff_t>(k), m.entries.end()))) {
            fail(storage_.last_error());
            return r;
        }
        changed_.notify_all();
    }
    r.success = true;
    r.match_index = m.prev_log_index + m.entries.size();
    if (m.leader_commit > commit_index_) {
        const std::uint64_t c = std::min(m.leader_commit, r.match_index);
        if (c > commit_index_)
            set_commit(c);
    }
    return r;
}

VoteReply Node::handle_vote(const RequestVote& m) {
    if (m.term > term_)
        step_down(m.term);
    const bool granted = m.term == term_ && (voted_for_ == 0 || voted_for_ == m.candidate) &&
                         log_up_to_date(m.last_log_index, m.last_log_term) && m.candidate != config_.id;
    if (granted && voted_for_ != m.candidate) {
        voted_for_ = m.candidate;
        say("term {}: voted for {}", term_, m.candidate);
        annotate("voted", {{"term", static_cast<std::int64_t>(term_)}, {"for", static_cast<std::int64_t>(m.candidate)}});
    }
    if (granted)
        reset_election_timer();
    if (!persist_hard_state())
        return VoteReply{term_, config_.id, false};
    return VoteReply{term_, config_.id, granted};
}

// Changes nothing: grants when a vote in m.term could be granted (a later term, or this
// term with no other vote cast), the candidate's log is up to date, and no leader of this
// term spoke within the minimum election timeout.
PreVoteReply Node::handle_pre_vote(const PreVote& m) const {
    const bool term_ok = m.term > term_ || (m.term == term_ && (voted_for_ == 0 || voted_for_ == m.candidate));
    const bool granted = term_ok && log_up_to_date(m.last_log_index, m.last_log_term) && !leader_heard_recently() &&
                         m.candidate != config_.id;
    return PreVoteReply{term_, config_.id, granted};
}

// --- proposals and reads ---------------------------------------------------------------

Node::ReadStatus Node::read_barrier() {
    if (role_ != Role::leader)
        return ReadStatus::not_leader;
    const std::uint64_t term = term_;
    Deadline deadline(now() + config_.commit_timeout);
    // Every wait below re-checks leadership and failure first; `on_timeout` says what a
    // timeout means to the client.
    ReadStatus on_timeout = ReadStatus::no_commit_in_term;
    auto wait = [&]() -> std::optional<ReadStatus> {
        if (role_ != Role::leader || term_ != term)
            return ReadStatus::not_leader;
        if (failed_)
            return ReadStatus::cancelled;
        if (auto r = changed_.wait(deadline); !r.ok())
            return r.code() == Errc::timed_out ? on_timeout : ReadStatus::cancelled;
        if (role_ != Role::leader || term_ != term)
            return ReadStatus::not_leader;
        return std::nullopt;
    };
    while (commit_index_ == 0 || storage_.term_at(commit_index_) != term)
        if (auto r = wait())
            return *r;
    const std::uint64_t read_index = commit_index_;
    if (!read_round_open_) {
        ++read_round_;
        read_round_open_ = true;
        for (auto& [id, p] : peers_)
            p.heartbeat_due = true;
        changed_.notify_all();
    }
    const std::uint64_t round = read_round_;
    on_timeout = ReadStatus::timed_out;
    for (;;) {
        std::size_t confirmed = 1;
        for (const auto& [id, p] : peers_)
            confirmed += p.read_round_acked >= round ? 1 : 0;
        if (has_majority(confirmed) && last_applied_ >= read_index)
            return ReadStatus::ok;
        if (auto r = wait())
            return *r;
    }
}


Node::Proposal Node::propose(const Command& c) {
    std::uint64_t index = 0, term = 0;
    {
        LockGuard guard(mu_);
        if (!guard.ok())
            return {Proposal::Status::cancelled, 0};
        if (failed_)
            return {Proposal::Status::failed, 0};
        if (role_ != Role::leader)
            return {Proposal::Status::not_leader, 0};
        term = term_;
        if (!storage_.append({Entry{term, encode_command(c)}})) {
            fail(storage_.last_error());
            return {Proposal::Status::failed, 0};
        }
        index = storage_.last_index();
        waiting_[{index, term}] = std::nullopt;
        advance_commit();  // a one-node cluster commits at once
        changed_.notify_all();
    }
    const auto key = std::make_pair(index, term);
    Deadline deadline(now() + config_.commit_timeout);
    Proposal result{Proposal::Status::ok, 0};
    for (;;) {
        if (storage_.last_index() < index || storage_.term_at(index) != term) {
            result.status = Proposal::Status::lost;  // overwritten by another leader's entry
            break;
        }
        if (last_applied_ >= index) {
            const Applied applied = waiting_.at(key).value_or(Applied{});
            result.value = applied.value;
            result.error = applied.error;
            break;
        }
        if (failed_) {
            result.status = Proposal::Status::failed;
            break;
        }
        if (auto r = changed_.wait(deadline); !r.ok()) {
            result.status = r.code() == Errc::timed_out ? Proposal::Status::timed_out : Proposal::Status::cancelled;
            break;
        }
    }
    waiting_.erase(key);
    return result;
}

ProgramEntry program() {
    ProgramEntry entry;
    entry.name = "reprise-raft";
    entry.usage = config_usage;
    entry.flags = config_flags();
    entry.main = [](MainContext& ctx) -> int {
        std::string error;
        auto config = parse_config(ctx.args, error);
        if (!config) {
            fmt::print(stderr, "reprise-raft: {}\n(see reprise-raft --help)\n", error);
            return 2;
        }
        // Secrets come from files, read as secrets (a digest in the trace, never the bytes).
        for (auto [file, secret, name] : {std::tuple{&config->requirepass_file, &config->requirepass, "requirepass"},
                                          std::tuple{&config->cluster_secret_file, &config->cluster_secret,
                                                     "cluster-secret"}}) {
            if (file->empty())
                continue;
            auto bytes = read_secret(name, *file);
            if (!bytes.ok()) {
                fmt::print(stderr, "reprise-raft: cannot read the {} file {}: {}\n", name, *file, bytes.error().message());
                return 2;
            }
            *secret = std::move(*bytes);
        }
        if (std::string refusal = auth::protected_mode_refusal(config->self().host, !config->requirepass.empty(),
                                                               config->protected_mode);
            !refusal.empty()) {
            fmt::print(stderr, "reprise-raft: {}\n", refusal);
            return 2;
        }
        return Node::run_main_task(std::move(*config));
    };
    return entry;
}

} // namespace reprise::raft
