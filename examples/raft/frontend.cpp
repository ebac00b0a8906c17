// The node's RESP front-end: GET/SET/DEL/INCR on the replicated map, MOVED to the leader, INFO, RAFT.GET.
#include "node.hpp"

#include "auth.hpp"
#include "resp.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

namespace reprise::raft {

namespace {

/// Input a client may have buffered (one request at most resp::Limits allows, plus slack).
constexpr std::size_t client_input_bytes_max = 16 * 1024 * 1024;
/// Replies buffered before they are written, while pipelined requests are answered.
constexpr std::size_t client_output_flush_bytes = 64 * 1024;

std::string upper(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return out;
}

void wrong_arity(std::string& out, std::string_view name) {
    resp::append_error(out, fmt::format("ERR wrong number of arguments for '{}' command", name));
}

} // namespace

// Serves one client connection until it closes, errs, or the node stops.
void Node::serve_client(Connection conn) {
    resp::Limits limits;
    limits.max_bulk_bytes = value_bytes_max;
    limits.max_args = del_keys_max + 1;
    resp::Parser parser(limits);
    std::string in, out;
    std::vector<std::string_view> args;
    bool quit = false;

    // Followers send writes (and GET) to the leader, the way Redis Cluster redirects.
    auto redirect = [&] {
        const std::uint32_t leader_id = this->leader_id();
        const Member* leader = leader_id != 0 && leader_id != config_.id ? config_.member(leader_id) : nullptr;
        if (leader)
            resp::append_error(out, fmt::format("MOVED 0 {}:{}", leader->host, leader->client_port));
        else
            resp::append_error(out, "TRYAGAIN no leader");
    };

    auto run_write = [&](const Command& c, bool reply_ok) {
        Proposal p = propose(c);
        switch (p.status) {
        case Proposal::Status::ok:
            if (p.error)
                resp::append_error(out, p.error);
            else if (reply_ok)
                resp::append_simple(out, "OK");
            else
                resp::append_integer(out, p.value);
            return true;
        case Proposal::Status::not_leader:
            redirect();
            return true;
        // Appended but not known to be committed: it may still commit (a later leader can
        // hold the entry), so the client must not take either reply as "not done".
        case Proposal::Status::lost:
            resp::append_error(out, "TRYAGAIN outcome unknown: leadership changed before the write committed "
                                    "(it may still commit)");
            return true;
        case Proposal::Status::timed_out:
            resp::append_error(out, "TRYAGAIN outcome unknown: the write did not commit in time (it may still commit)");
            return true;
        case Proposal::Status::cancelled:
        case Proposal::Status::failed:
            return false;
        }
        return false;
    };

    auto info = [&] {
        std::string text = fmt::format(
            "# Raft\r\nnode_id:{}\r\nrole:{}\r\nterm:{}\r\nleader_id:{}\r\nvoted_for:{}\r\ncommit_index:{}\r\n"
            "last_applied:{}\r\nlog_length:{}\r\nkeys:{}\r\nmembers:{}\r\n",
            config_.id, role_name(role_), term_, leader_id(), voted_for_, commit_index_, last_applied_,
            storage_.last_index(), kv_.size(), config_.members.size());
        if (const Member* leader = config_.member(leader_id()))
            text += fmt::format("leader_client:{}:{}\r\n", leader->host, leader->client_port);
        resp::append_bulk(out, text);
    };

    // Answers one request; false ends the connection.
    bool authenticated = false;
    auto handle = [&]() -> bool {
        if (auth::gate(config_.requirepass, args, authenticated, out))
            return true;
        const std::string name = upper(args[0]);
        const std::size_t argc = args.size();
        if (name == "PING") {
            if (argc == 1)
                resp::append_simple(out, "PONG");
            else if (argc == 2)
                resp::append_bulk(out, args[1]);
            else
                wrong_arity(out, "ping");
        } else if (name == "GET") {
            if (argc != 2) {
                wrong_arity(out, "get");
                return true;
            }
            switch (read_barrier()) {
            case ReadStatus::ok:
                break;
            case ReadStatus::not_leader:
                redirect();
                return true;
            case ReadStatus::no_commit_in_term:
                resp::append_error(out, "TRYAGAIN the leader has not committed an entry of its term yet");
                return true;
            case ReadStatus::timed_out:
                resp::append_error(out, "TRYAGAIN the leader could not confirm its leadership in time");
                return true;
            case ReadStatus::cancelled:
                return false;
            }
            if (const std::string* v = kv_.get(std::string(args[1])))
                resp::append_bulk(out, *v);
            else
                resp::append_null(out);
        } else if (name == "RAFT.GET") {
            // This node's applied state, whatever its role (may lag the leader).
            if (argc != 2)
                wrong_arity(out, "raft.get");
            else if (const std::string* v = kv_.get(std::string(args[1])))
                resp::append_bulk(out, *v);
            else
                resp::append_null(out);
        } else if (name == "SET") {
            if (argc != 3) {
                if (argc < 3)
                    wrong_arity(out, "set");
                else
                    resp::append_error(out, "ERR syntax error (this server takes SET key value only)");
            } else if (args[1].size() > key_bytes_max) {
                resp::append_error(out, "ERR key too long");
            } else if (role_ != Role::leader) {
                redirect();
            } else {
                Command c{Command::Op::set, {std::string(args[1])}, std::string(args[2])};
                return run_write(c, true);
            }
        } else if (name == "DEL") {
            if (argc < 2) {
                wrong_arity(out, "del");
            } else if (role_ != Role::leader) {
                redirect();
            } else {
                Command c{Command::Op::del, {}, {}};
                std::size_t command_bytes = del_command_overhead_bytes;
                for (std::size_t i = 1; i < argc; ++i) {
                    if (args[i].size() > key_bytes_max) {
                        resp::append_error(out, "ERR key too long");
                        return true;
                    }
                    command_bytes += del_key_overhead_bytes + args[i].size();
                    if (command_bytes > wire::command_bytes_max) {
                        // Many long keys would not fit one log entry.
                        resp::append_error(out, fmt::format("ERR DEL keys too long together (at most {} bytes)",
                                                            wire::command_bytes_max));
                        return true;
                    }
                    c.keys.emplace_back(args[i]);
                }
                return run_write(c, false);
            }
        } else if (name == "INCR" || name == "DECR" || name == "INCRBY" || name == "DECRBY") {
            const bool by = name == "INCRBY" || name == "DECRBY";
            const bool down = name == "DECR" || name == "DECRBY";
            if (argc != (by ? 3u : 2u)) {
                wrong_arity(out, by ? (down ? "decrby" : "incrby") : (down ? "decr" : "incr"));
                return true;
            }
            std::optional<long long> amount = by ? parse_integer(args[2]) : 1;
            if (!amount) {
                resp::append_error(out, not_an_integer_error);
            } else if (down && *amount == std::numeric_limits<long long>::min()) {
                resp::append_error(out, "ERR decrement would overflow");  // as Redis: -min does not exist
            } else if (args[1].size() > key_bytes_max) {
                resp::append_error(out, "ERR key too long");
            } else if (role_ != Role::leader) {
                redirect();
            } else {
                Command c{Command::Op::incr, {std::string(args[1])}, {}, down ? -*amount : *amount};
                return run_write(c, false);
            }
        } else if (name == "DBSIZE") {
            resp::append_integer(out, static_cast<long long>(kv_.size()));
        } else if (name == "INFO") {
            info();
        } else if (name == "COMMAND") {
            resp::append_array_header(out, 0);  // enough for redis-cli to start
        } else if (name == "QUIT") {
            resp::append_simple(out, "OK");
            quit = true;
        } else {
            resp::append_error(out, fmt::format("ERR unknown command '{}'", std::string(args[0]).substr(0, 64)));
        }
        return true;
    };

    while (!cancelled() && !quit) {
        std::size_t offset = 0;
        while (!quit) {
            resp::Parsed p = parser.parse(std::string_view(in).substr(offset), args);
            if (p.status == resp::Status::incomplete)
                break;
            if (p.status == resp::Status::error) {
                resp::append_error(out, "ERR " + p.error);
                (void)conn.write(out);
                return;
            }
            offset += p.consumed;
            if (!args.empty() && !handle())
                return;
            if (out.size() >= client_output_flush_bytes) {
                if (!conn.write(out).ok())
                    return;
                out.clear();
            }
        }
        in.erase(0, offset);
        if (!out.empty()) {
            if (!conn.write(out).ok())
                return;
            out.clear();
        }
        if (quit)
            break;
        if (in.size() > client_input_bytes_max)
            return;
        auto chunk = conn.read_some();
        if (!chunk.ok())
            return;
        in += *chunk;
    }
    conn.shutdown();
}

} // namespace reprise::raft
