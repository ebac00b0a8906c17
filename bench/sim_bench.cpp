// sim_bench: the simulator's speed, measured in one process around World::run_* only.
//
// Usage: sim_bench idle [--nodes N] [--virtual-seconds S] [--election-seconds E] [--seed N] [--narrative]
//        sim_bench pingpong [--round-trips N] [--message-bytes B] [--seed N]
//
// idle      N reprise-raft nodes (default 5) in a World, configured as examples/raft/cluster
//           configures them (`--id K --peers 1=127.0.0.1:7001:7101,... --data /data/node-K`, on
//           each node's simulated disk), no traces, event hashing off. The world first runs
//           --election-seconds of virtual time (default 5, untimed) for the election; a node must
//           have said "became leader" by then. Then the clock starts and the world runs
//           --virtual-seconds (default 600) of heartbeats only. Afterwards (untimed) a probe node
//           asks every node INFO over RESP: exactly one leader, every node agreeing on it and its
//           term. The nodes' stdout narrative goes to a temporary file (scanned for the election,
//           and for role changes during the timed run); --narrative copies it to stderr at the end.
// pingpong  two nodes: a server echoing what it reads, a client writing a --message-bytes message
//           (default 16) and reading its echo back, --round-trips times (default 200000). Event
//           hashing off, no traces. The wall time is the world's run from the client's connect to
//           both programs' ends (node creation excluded).
//
// Wall time is std::chrono::steady_clock around the run (bench/ is outside the determinism rules),
// CPU time clock_gettime(CLOCK_PROCESS_CPUTIME_ID) around the same run.
// Prints one line on stdout:
//   idle:     result mode=idle nodes=.. election_s=.. virtual_s=.. wall_s=.. cpu_s=.. wakeups=.. events=..
//             wakeups_per_s=.. leader=.. term=.. role_changes_during_run=.. cpu_factor=.. factor=..
//   pingpong: result mode=pingpong round_trips=.. message_bytes=.. virtual_s=.. wall_s=.. cpu_s=..
//             wakeups=.. events=.. round_trips_per_s=.. wakeups_per_cpu_s=.. wakeups_per_s=..
// (factor = virtual_s / wall_s; cpu_factor = virtual_s / cpu_s, the process's CPU time over the
// same run, which a busy machine inflates less than the wall time).
// Exit status: 0, 1 when the run is not what it should be (no leader, a bad echo), 2 for usage.
#include "node.hpp"

#include <reprise/runtime/reprise.hpp>
#include <reprise/sim/world.hpp>

#include <fmt/core.h>

#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;
using reprise::Address;
using reprise::Connection;
using reprise::Duration;
using reprise::Listener;
using reprise::MainContext;
using reprise::ProgramEntry;
using reprise::sim::NodeId;
using reprise::sim::World;
using reprise::sim::WorldOptions;
using steady = std::chrono::steady_clock;

/// The ports examples/raft/cluster gives node K by default: peers on 7000+K, clients on 7100+K.
constexpr int raft_base_port = 7000;
constexpr int client_base_port = 7100;

/// Where the result line goes: the process's stdout as it was before the nodes' narrative took fd 1.
std::FILE* result_out = stdout;

[[noreturn]] void die(const std::string& why, int code = 1) {
    std::fprintf(stderr, "sim_bench: %s\n", why.c_str());
    std::exit(code);
}

[[noreturn]] void usage_exit(const std::string& why) {
    die(why + "\nusage: sim_bench idle [--nodes N] [--virtual-seconds S] [--election-seconds E] [--seed N] "
              "[--narrative]\n       sim_bench pingpong [--round-trips N] [--message-bytes B] [--seed N]",
        2);
}

std::uint64_t parse_count(std::string_view name, const char* text, std::uint64_t min, std::uint64_t max) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(text, &end, 10);
    if (*text == '\0' || *end != '\0' || errno != 0 || value < min || value > max)
        usage_exit(fmt::format("{} wants a whole number in [{}, {}], got '{}'", name, min, max, text));
    return value;
}

/// CPU time of this process (the world runs in this one thread): on a shared machine the wall
/// time also holds the time other processes had the CPU, this does not.
double cpu_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

template <class Rep, class Period>
double seconds_of(std::chrono::duration<Rep, Period> d) {
    return std::chrono::duration<double>(d).count();
}

// --- idle: a reprise-raft cluster doing heartbeats only ---------------------------------------

/// What one node answered to INFO.
struct NodeInfo {
    bool answered = false;
    std::string role;
    std::uint64_t term = 0;
    std::uint32_t leader_id = 0;
};

std::string info_field(std::string_view text, std::string_view key) {
    const std::string wanted = std::string(key) + ":";
    for (std::size_t at = 0; at < text.size();) {
        std::size_t end = text.find("\r\n", at);
        if (end == std::string_view::npos)
            end = text.size();
        const std::string_view line = text.substr(at, end - at);
        if (line.substr(0, wanted.size()) == wanted)
            return std::string(line.substr(wanted.size()));
        at = end + 2;
    }
    return {};
}

/// A program that asks each of `nodes` nodes INFO on its client port (127.0.0.1:7100+K) and exits.
ProgramEntry info_probe(std::vector<NodeInfo>& infos) {
    return ProgramEntry{.name = "probe", .main = [&infos](MainContext&) {
        for (std::size_t k = 1; k <= infos.size(); ++k) {
            auto address = Address::parse(fmt::format("127.0.0.1:{}", client_base_port + k));
            auto c = reprise::connect(*address, 5s);
            if (!c.ok())
                continue;
            if (!c->write("*1\r\n$4\r\nINFO\r\n", 5s).ok())
                continue;
            auto header = c->read_until("\r\n", 64, 5s);
            if (!header.ok() || header->size() < 4 || (*header)[0] != '$')
                continue;
            const std::size_t length = std::strtoull(header->c_str() + 1, nullptr, 10);
            auto body = c->read_exact(length + 2, 5s);
            if (!body.ok())
                continue;
            NodeInfo& info = infos[k - 1];
            info.answered = true;
            info.role = info_field(*body, "role");
            info.term = std::strtoull(info_field(*body, "term").c_str(), nullptr, 10);
            info.leader_id = static_cast<std::uint32_t>(std::strtoul(info_field(*body, "leader_id").c_str(), nullptr, 10));
        }
        return 0;
    }};
}

/// The narrative lines the nodes printed between two offsets of the file behind fd 1.
std::string narrative(int fd, off_t from, off_t to) {
    std::string text(static_cast<std::size_t>(to - from), '\0');
    std::size_t got = 0;
    while (got < text.size()) {
        const ssize_t n = ::pread(fd, text.data() + got, text.size() - got, from + static_cast<off_t>(got));
        if (n <= 0)
            die("cannot read back the nodes' narrative");
        got += static_cast<std::size_t>(n);
    }
    return text;
}

std::size_t count(std::string_view text, std::string_view what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string_view::npos; at = text.find(what, at + what.size()))
        ++n;
    return n;
}

off_t narrative_end() {
    std::fflush(stdout);
    const off_t at = ::lseek(STDOUT_FILENO, 0, SEEK_END);
    if (at < 0)
        die("cannot find the end of the nodes' narrative");
    return at;
}

int run_idle(std::uint64_t nodes, std::uint64_t virtual_s, std::uint64_t election_s, std::uint64_t seed,
             bool show_narrative) {
    // The nodes print their narrative on stdout (fd 1): it goes to a temporary file, read back below.
    std::fflush(stdout);
    std::FILE* narrative_file = std::tmpfile();
    if (narrative_file == nullptr || ::dup2(::fileno(narrative_file), STDOUT_FILENO) < 0)
        die("cannot redirect the nodes' narrative");

    std::string peers;
    for (std::uint64_t k = 1; k <= nodes; ++k)
        peers += fmt::format("{}{}=127.0.0.1:{}:{}", k == 1 ? "" : ",", k, raft_base_port + k, client_base_port + k);

    World world(WorldOptions{.seed = seed, .hash_events = false});
    const ProgramEntry raft = reprise::raft::program();
    for (std::uint64_t k = 1; k <= nodes; ++k)
        world.add_node({.name = fmt::format("node-{}", k),
                        .program = raft,
                        .args = {"reprise-raft", "--id", std::to_string(k), "--peers", peers, "--data",
                                 fmt::format("/data/node-{}", k)}});

    // The election, untimed: a leader must be there before the idle run is measured.
    world.run_for(std::chrono::seconds(election_s));
    const off_t elected_at = narrative_end();
    const std::string election = narrative(STDOUT_FILENO, 0, elected_at);
    if (count(election, "became leader") == 0)
        die(fmt::format("no node became leader within {} s of virtual time:\n{}", election_s, election));

    const std::uint64_t wakeups_before = world.wakeups();
    const std::uint64_t events_before = world.events();
    const Duration virtual_start = world.now();
    const double cpu_began = cpu_seconds();
    const steady::time_point began = steady::now();
    world.run_for(std::chrono::seconds(virtual_s));
    const steady::time_point ended = steady::now();
    const double cpu = cpu_seconds() - cpu_began;
    const double wall = seconds_of(ended - began);
    const double span = seconds_of(world.now() - virtual_start);
    const std::uint64_t wakeups = world.wakeups() - wakeups_before;
    const std::uint64_t events = world.events() - events_before;

    const off_t idle_end = narrative_end();
    const std::string during = narrative(STDOUT_FILENO, elected_at, idle_end);
    const std::size_t role_changes = count(during, "became ");

    // Untimed: every node says who leads.
    std::vector<NodeInfo> infos(nodes);
    world.add_node({.name = "probe", .program = info_probe(infos)});
    const NodeId probe = static_cast<NodeId>(nodes);
    world.run_until([&] { return world.state(probe) == reprise::sim::NodeState::exited; }, 60s);
    if (show_narrative)
        std::fprintf(stderr, "%s", narrative(STDOUT_FILENO, 0, narrative_end()).c_str());
    std::uint32_t leader = 0;
    std::uint64_t term = 0;
    for (std::uint64_t k = 1; k <= nodes; ++k) {
        const NodeInfo& info = infos[k - 1];
        if (!info.answered)
            die(fmt::format("node {} did not answer INFO after the run", k));
        if (info.role == "leader") {
            if (leader != 0)
                die(fmt::format("nodes {} and {} both say they lead", leader, k));
            leader = static_cast<std::uint32_t>(k);
            term = info.term;
        }
    }
    if (leader == 0)
        die("no node leads after the run");
    for (std::uint64_t k = 1; k <= nodes; ++k)
        if (infos[k - 1].leader_id != leader || infos[k - 1].term != term)
            die(fmt::format("node {} follows {} in term {}; node {} leads in term {}", k, infos[k - 1].leader_id,
                            infos[k - 1].term, leader, term));

    fmt::print(result_out,
               "result mode=idle nodes={} election_s={} virtual_s={:.3f} wall_s={:.6f} cpu_s={:.6f} wakeups={} "
               "events={} wakeups_per_s={:.0f} leader={} term={} role_changes_during_run={} cpu_factor={:.0f} "
               "factor={:.0f}\n",
               nodes, election_s, span, wall, cpu, wakeups, events, wakeups / wall, leader, term, role_changes,
               span / cpu, span / wall);
    return 0;
}

// --- pingpong: two nodes exchanging small messages --------------------------------------------

struct PingPong {
    std::uint64_t round_trips = 0;
    std::uint64_t done = 0;
    std::string failure = {};
};

ProgramEntry echo_server(PingPong& result) {
    return ProgramEntry{.name = "echo", .main = [&result](MainContext&) {
        auto listener = reprise::listen(*Address::parse("0.0.0.0:7000"));
        if (!listener.ok()) {
            result.failure = "listen failed";
            return 1;
        }
        auto conn = listener->accept();
        if (!conn.ok()) {
            result.failure = "accept failed";
            return 1;
        }
        char buffer[4096];
        for (;;) {
            auto got = conn->read_some(std::span<char>(buffer));
            if (!got.ok())
                return got.code() == reprise::Errc::eof ? 0 : 1;
            if (!conn->write(std::string_view(buffer, *got)).ok())
                return 1;
        }
    }};
}

ProgramEntry ping_client(PingPong& result, std::size_t message_bytes) {
    return ProgramEntry{.name = "ping", .main = [&result, message_bytes](MainContext&) {
        auto conn = reprise::connect(*Address::parse("10.0.0.1:7000"), 10s);
        if (!conn.ok()) {
            result.failure = "connect failed";
            return 1;
        }
        std::string message(message_bytes, 'p');
        std::string back(message_bytes, '\0');
        for (std::uint64_t i = 0; i < result.round_trips; ++i) {
            // Each message differs from the last, so an echo of the wrong one is caught.
            std::memcpy(message.data(), &i, std::min(sizeof i, message.size()));
            if (!conn->write(message).ok()) {
                result.failure = fmt::format("write {} failed", i);
                return 1;
            }
            if (!conn->read_exact(std::span<char>(back)).ok() || back != message) {
                result.failure = fmt::format("echo {} is wrong or missing", i);
                return 1;
            }
            ++result.done;
        }
        conn->shutdown();
        char end[1];
        auto last = conn->read_some(std::span<char>(end));
        return !last.ok() && last.code() == reprise::Errc::eof ? 0 : 1;
    }};
}

int run_pingpong(std::uint64_t round_trips, std::uint64_t message_bytes, std::uint64_t seed) {
    PingPong result{.round_trips = round_trips};
    World world(WorldOptions{.seed = seed, .hash_events = false});
    world.add_node({.name = "server", .program = echo_server(result)});
    world.add_node({.name = "client", .program = ping_client(result, message_bytes)});
    // Far beyond what the round trips take (each well under 2 ms of virtual time).
    const Duration limit = std::chrono::milliseconds(10) * round_trips + 60s;
    const double cpu_began = cpu_seconds();
    const steady::time_point began = steady::now();
    const bool ended = world.run_to_completion(limit);
    const steady::time_point stopped = steady::now();
    const double cpu = cpu_seconds() - cpu_began;
    if (!ended || world.exit_code(0) != 0 || world.exit_code(1) != 0 || result.done != round_trips)
        die(fmt::format("the ping-pong did not end well: {} of {} round trips, server exit {}, client exit {}{}",
                        result.done, round_trips, world.exit_code(0).value_or(-1), world.exit_code(1).value_or(-1),
                        result.failure.empty() ? "" : " (" + result.failure + ")"));
    const double wall = seconds_of(stopped - began);
    fmt::print(result_out,
               "result mode=pingpong round_trips={} message_bytes={} virtual_s={:.3f} wall_s={:.6f} cpu_s={:.6f} "
               "wakeups={} events={} round_trips_per_s={:.0f} wakeups_per_cpu_s={:.0f} wakeups_per_s={:.0f}\n",
               round_trips, message_bytes, seconds_of(world.now()), wall, cpu, world.wakeups(), world.events(),
               round_trips / wall, world.wakeups() / cpu, world.wakeups() / wall);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2)
        usage_exit("name a mode: idle or pingpong");
    const std::string_view mode = argv[1];
    if (mode != "idle" && mode != "pingpong")
        usage_exit(fmt::format("unknown mode '{}'", mode));
    std::uint64_t nodes = 5, virtual_s = 600, election_s = 5, seed = 1, round_trips = 200'000, message_bytes = 16;
    bool show_narrative = false;
    for (int i = 2; i < argc; ++i) {
        const std::string_view name = argv[i];
        if (name == "--narrative" && mode == "idle") {
            show_narrative = true;
            continue;
        }
        if (i + 1 >= argc)
            usage_exit(fmt::format("{} wants a value", name));
        const char* value = argv[++i];
        if (name == "--seed")
            seed = parse_count(name, value, 0, UINT64_MAX);
        else if (name == "--nodes" && mode == "idle")
            nodes = parse_count(name, value, 1, 15);
        else if (name == "--virtual-seconds" && mode == "idle")
            virtual_s = parse_count(name, value, 1, 86'400);
        else if (name == "--election-seconds" && mode == "idle")
            election_s = parse_count(name, value, 1, 600);
        else if (name == "--round-trips" && mode == "pingpong")
            round_trips = parse_count(name, value, 1, 1'000'000'000);
        else if (name == "--message-bytes" && mode == "pingpong")
            message_bytes = parse_count(name, value, 1, 65'536);
        else
            usage_exit(fmt::format("unknown flag '{}' for {}", name, mode));
    }
    // The result goes to the stdout this process was given, whatever the nodes do with fd 1.
    const int out_fd = ::dup(STDOUT_FILENO);
    if (out_fd < 0 || (result_out = ::fdopen(out_fd, "w")) == nullptr)
        die("cannot duplicate stdout");
    const int status = mode == "idle" ? run_idle(nodes, virtual_s, election_s, seed, show_narrative)
                                      : run_pingpong(round_trips, message_bytes, seed);
    std::fflush(result_out);
    return status;
}
