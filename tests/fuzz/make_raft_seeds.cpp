// Writes seed frames for the RAFT message fuzzer: every message kind, encoded by examples/raft's own encoder.
//
// Usage: make_raft_seeds DIR
#include "seed_file.hpp"
#include "message.hpp"
#include "state_machine.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

using namespace reprise::raft;

namespace {

void write(const std::string& path, const std::string& bytes) { reprise::fuzz::write_seed("make_raft_seeds", path, bytes); }

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    write(dir + "/request-vote", encode_message(RequestVote{.term = 3, .candidate = 2, .last_log_index = 17, .last_log_term = 2}));
    write(dir + "/vote-reply-granted", encode_message(VoteReply{.term = 3, .from = 1, .granted = true}));
    write(dir + "/vote-reply-refused", encode_message(VoteReply{.term = 4, .from = 3, .granted = false}));
    write(dir + "/heartbeat", encode_message(AppendEntries{.term = 3, .leader = 2, .prev_log_index = 17,
                                                           .prev_log_term = 2, .leader_commit = 15, .entries = {}}));
    write(dir + "/append-entries",
          encode_message(AppendEntries{.term = 3, .leader = 2, .prev_log_index = 17, .prev_log_term = 2,
                                       .leader_commit = 17,
                                       .entries = {Entry{2, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"},
                                                   Entry{3, "*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n"}, Entry{3, ""}}}));
    write(dir + "/append-reply-ok",
          encode_message(AppendReply{.term = 3, .from = 1, .success = true, .match_index = 19, .conflict_index = 0}));
    write(dir + "/append-reply-conflict",
          encode_message(AppendReply{.term = 3, .from = 3, .success = false, .match_index = 0, .conflict_index = 12}));
    write(dir + "/pre-vote", encode_message(PreVote{.term = 5, .candidate = 3, .last_log_index = 17, .last_log_term = 2}));
    write(dir + "/pre-vote-reply-granted", encode_message(PreVoteReply{.term = 4, .from = 1, .granted = true}));
    write(dir + "/pre-vote-reply-refused", encode_message(PreVoteReply{.term = 6, .from = 2, .granted = false}));
    write(dir + "/append-incr",
          encode_message(AppendEntries{.term = 3, .leader = 2, .prev_log_index = 17, .prev_log_term = 2,
                                       .leader_commit = 17,
                                       .entries = {Entry{3, encode_command(Command{.op = Command::Op::incr,
                                                                                   .keys = {"counter"},
                                                                                   .value = {},
                                                                                   .delta = -5})}}}));
    return 0;
}
