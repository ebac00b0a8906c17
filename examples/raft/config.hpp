// A RAFT node's command line: its id, the cluster's members, its data directory and timings.
#pragma once

#include <reprise/clock/time.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace reprise::raft {

/// One member of the cluster: where its peers and its clients reach it.
struct Member {
    std::uint32_t id = 0;
    std::string host;
    std::uint16_t raft_port = 0;
    std::uint16_t client_port = 0;
};

/// Everything a node is started with.
struct Config {
    std::uint32_t id = 0;
    std::vector<Member> members;  ///< every member, this node included, in id order
    std::string data_dir;
    Duration heartbeat{std::chrono::milliseconds(100)};
    Duration election_min{std::chrono::milliseconds(400)};
    Duration election_max{std::chrono::milliseconds(800)};
    /// How long a client's write waits for its commit before -TRYAGAIN.
    Duration commit_timeout{std::chrono::seconds(5)};
    /// Client (RESP) connections served at once; more get Redis's "max number of clients" error.
    std::size_t max_clients = 10000;
    /// No narrative on stdout (--quiet).
    bool quiet = false;
    /// --requirepass-file: clients must AUTH with the password this file holds.
    std::string requirepass_file;
    /// --cluster-secret-file: peers prove they hold the secret this file holds, and MAC every frame.
    std::string cluster_secret_file;
    /// With no password, clients are served only on a loopback host (--protected-mode=no lifts it).
    bool protected_mode = true;
    /// The secrets themselves, read (never recorded) by the program's main from the files above.
    std::string requirepass;
    std::string cluster_secret;

    const Member& self() const;
    const Member* member(std::uint32_t id) const;
};

/// Usage text of the program's own flags.
extern const char* const config_usage;
/// The program's own flags ("--id", ...), for ProgramInfo::flags.
std::vector<std::string> config_flags();

/// Parses the program's arguments (argv[0] first, runtime flags already removed).
/// On a bad command line returns nothing and sets `error`.
std::optional<Config> parse_config(const std::vector<std::string>& args, std::string& error);

} // namespace reprise::raft
