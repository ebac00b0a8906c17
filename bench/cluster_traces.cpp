// Writes three nodes' traces shaped like a busy reprise-raft cluster, for `bench/run cluster`:
// node-1 leads and sends AppendEntries (real frames of the peer protocol, one SET each) to its
// two followers, which answer; every node also serves one client (RESP SET or GET, and the
// reply) that was not recorded. Chunks are compressed, as a recorder writes them.
//
// Usage: cluster_traces DIR RECORDS — writes DIR/node-{1,2,3}.trace, each about RECORDS records,
// and prints `records=N stored_bytes=N`.
#include "../tests/support/trace_builder.hpp"

#include "message.hpp"
#include "state_machine.hpp"

#include <reprise/io/address.hpp>

#include <fmt/core.h>

#include <array>
#include <charconv>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

using namespace reprise;
using reprise::test::TraceBuilder;

namespace {

constexpr std::int64_t us = 1'000;
constexpr std::int64_t step_ns = 200 * us;
constexpr std::int64_t wall0 = 1'700'000'000'000'000'000;

class Node {
public:
    explicit Node(const char* name)
        : b_(trace::Header{.node = name, .program = "reprise-raft", .argv = {"reprise-raft"},
                           .executable = "/usr/bin/reprise-raft", .working_directory = "/tmp", .seed = 1,
                           .start_mono_ns = 1'000'000'000, .start_wall_ns = wall0, .runtime_version = "bench",
                           .build_id = ""},
             nullptr) {}

    void put(const trace::Record& r) {
        b_.put(r);
        ++records_;
        if (++since_seal_ == 2000) {
            b_.seal(true);
            since_seal_ = 0;
        }
    }
    void tick(std::int64_t at) {
        put(trace::Tick{.mono_ns = b_.header().start_mono_ns + at, .wall_ns = b_.header().start_wall_ns + at});
    }
    void write(std::uint64_t handle, std::string_view bytes) {
        put(trace::Output{.output = OutputKind::conn_write, .handle = handle, .length = bytes.size(),
                          .digest = trace::digest64(bytes), .bytes = {}});
    }
    void read(std::uint64_t handle, std::string_view bytes) {
        put(trace::Wake{.wake = WakeKind::bytes_read, .handle = handle, .value = 0, .data = bytes});
    }
    std::uint64_t save(const std::filesystem::path& path) {
        b_.put(trace::End{.exit_code = 0});
        b_.seal(true);
        std::ofstream(path, std::ios::binary) << b_.file();
        return b_.file().size();
    }
    std::uint64_t records() const noexcept { return records_; }

private:
    TraceBuilder b_;
    std::uint64_t records_ = 0;
    std::uint64_t since_seal_ = 0;
};

Address addr(const char* text) { return *Address::parse(text); }

std::string resp(std::initializer_list<std::string_view> words) {
    std::string out = fmt::format("*{}\r\n", words.size());
    for (auto w : words)
        out += fmt::format("${}\r\n{}\r\n", w.size(), w);
    return out;
}

} // namespace

int main(int argc, char** argv) {
    std::uint64_t target = 0;
    if (argc != 3 || std::from_chars(argv[2], argv[2] + std::strlen(argv[2]), target).ec != std::errc{} || target == 0) {
        std::fprintf(stderr, "usage: cluster_traces DIR RECORDS\n");
        return 2;
    }
    const std::filesystem::path dir = argv[1];
    std::filesystem::create_directories(dir);
    std::array<Node, 3> nodes{Node("node-1"), Node("node-2"), Node("node-3")};
    // Peer connections: node-1 (leader) connects to 2 and 3; handle 10 + k on node-1, 20 on the follower.
    nodes[0].tick(0);
    for (int k = 1; k <= 2; ++k) {
        const std::string follower = fmt::format("10.0.0.{}:7000", k + 1);
        const std::string local = fmt::format("10.0.0.1:{}", 40000 + k);
        nodes[0].put(trace::Connected{.connection = static_cast<std::uint64_t>(10 + k), .error = 0,
                                      .peer = addr(follower.c_str()), .local = addr(local.c_str())});
        nodes[k].tick(0);
        nodes[k].put(trace::Accepted{.listener = 1, .connection = 20, .peer = addr(local.c_str()),
                                     .local = addr(follower.c_str())});
    }
    for (int n = 0; n < 3; ++n) {
        const std::string local = fmt::format("10.0.0.{}:7100", n + 1);
        nodes[n].put(trace::Accepted{.listener = 2, .connection = 30, .peer = addr("10.0.0.9:50000"),
                                     .local = addr(local.c_str())});
    }
    std::uint64_t index = 0;
    std::string previous_reply[3];
    for (std::uint64_t step = 1; nodes[0].records() < target; ++step) {
        const std::int64_t t = static_cast<std::int64_t>(step) * step_ns;
        const std::string key = fmt::format("key:{}", step % 1000);
        const std::string value = fmt::format("value-{}", step);
        // The leader: a client's SET, the replies its followers sent last step, AppendEntries to both.
        nodes[0].tick(t);
        nodes[0].read(30, resp({"SET", key, value}));
        for (int k = 1; k <= 2; ++k)
            if (!previous_reply[k].empty())
                nodes[0].read(static_cast<std::uint64_t>(10 + k), previous_reply[k]);
        ++index;
        raft::AppendEntries ae{.term = 3, .leader = 1, .prev_log_index = index - 1, .prev_log_term = 3,
                               .leader_commit = index - 1,
                               .entries = {raft::Entry{3, raft::encode_command(raft::Command{
                                                              .op = raft::Command::Op::set, .keys = {key}, .value = value})}}};
        const std::string frame = raft::encode_message(ae);
        for (int k = 1; k <= 2; ++k)
            nodes[0].write(static_cast<std::uint64_t>(10 + k), frame);
        nodes[0].write(30, "+OK\r\n");
        nodes[0].put(trace::Annotation{.name = "commit", .count = 0});
        // Each follower: the AppendEntries, its answer, and two GETs of its own client.
        for (int k = 1; k <= 2; ++k) {
            Node& f = nodes[k];
            f.tick(t + 40 * us);
            f.read(20, frame);
            const std::string reply = raft::encode_message(
                raft::AppendReply{.term = 3, .from = static_cast<std::uint32_t>(k + 1), .success = true,
                                  .match_index = index, .conflict_index = 0});
            f.write(20, reply);
            previous_reply[k] = reply;
            for (int g = 0; g < 2; ++g) {
                f.read(30, resp({"GET", key}));
                f.write(30, fmt::format("${}\r\n{}\r\n", value.size(), value));
            }
        }
    }
    std::uint64_t stored = 0, records = 0;
    for (int n = 0; n < 3; ++n) {
        records += nodes[n].records() + 1;
        stored += nodes[n].save(dir / fmt::format("node-{}.trace", n + 1));
    }
    std::printf("records=%llu stored_bytes=%llu\n", static_cast<unsigned long long>(records),
                static_cast<unsigned long long>(stored));
    return 0;
}
