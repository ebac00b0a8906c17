// Parsing of reprise-raft's flags: --id, --peers, --data, --client-port and the timings.
#include "config.hpp"

#include "auth.hpp"
#include "flags.hpp"

#include <reprise/runtime/assert.hpp>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <string_view>

namespace reprise::raft {

const char* const config_usage = R"(Program usage:
  reprise-raft --id N --peers ID=HOST:RAFTPORT:CLIENTPORT,... --data DIR [options]
    --id N                 this node's id (one of the --peers ids, 1..1000)
    --peers LIST           every member, this node included: 1=127.0.0.1:7001:7101,2=...
    --data DIR             term, vote and log live here (created if missing)
    --client-port P        override this node's client (RESP) port from --peers
    --heartbeat-ms MS      leader heartbeat period (default 100)
    --election-min-ms MS   election timeout, drawn uniformly from [min, max] (default 400)
    --election-max-ms MS   (default 800)
    --commit-timeout-ms MS how long a write (or a GET on a leader just elected) waits for
                           a commit before -TRYAGAIN (default 5000)
    --max-clients N        client connections served at once; more get "-ERR max number
                           of clients reached" (default 10000, as Redis)
    --requirepass-file FILE  clients must AUTH with the password in FILE (redis-cli -a)
    --cluster-secret-file FILE  peers must prove they hold the secret in FILE when a link
                           opens (HMAC challenge), and every frame after carries a MAC
    --protected-mode yes|no  with no password, refuse to serve clients on a host other than
                           loopback (default yes)
    --quiet                no narrative on stdout (elections, commits); errors still go
                           to stderr (for simulations that run many nodes in one process)
  Secrets are read from files (one trailing newline dropped), never from the command line;
  a trace keeps a salted digest of each, and replay reads the files again (or the files
  named by REPRISE_SECRET_FILE_REQUIREPASS / REPRISE_SECRET_FILE_CLUSTER_SECRET).
  Flags take their value as the next argument or after '=' (--id 1, --id=1); the last one
  given wins; a mistyped flag is refused naming the closest one.)";

namespace {

template <class T>
bool parse_number(std::string_view text, T& out, T lo, T hi) {
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || v < static_cast<std::uint64_t>(lo) ||
        v > static_cast<std::uint64_t>(hi))
        return false;
    out = static_cast<T>(v);
    return true;
}

// "ID=HOST:RAFTPORT:CLIENTPORT"
std::optional<Member> parse_member(std::string_view text) {
    Member m;
    auto eq = text.find('=');
    if (eq == std::string_view::npos || !parse_number<std::uint32_t>(text.substr(0, eq), m.id, 1, 1000))
        return std::nullopt;
    text.remove_prefix(eq + 1);
    auto c2 = text.rfind(':');
    if (c2 == std::string_view::npos)
        return std::nullopt;
    auto c1 = text.substr(0, c2).rfind(':');
    if (c1 == std::string_view::npos || c1 == 0)
        return std::nullopt;
    m.host = std::string(text.substr(0, c1));
    if (!parse_number<std::uint16_t>(text.substr(c1 + 1, c2 - c1 - 1), m.raft_port, 1, 65535) ||
        !parse_number<std::uint16_t>(text.substr(c2 + 1), m.client_port, 1, 65535))
        return std::nullopt;
    return m;
}

} // namespace

const Member& Config::self() const {
    const Member* m = member(id);
    REPRISE_ASSERT_MSG(m != nullptr, "the node is one of the members");
    return *m;
}

const Member* Config::member(std::uint32_t wanted) const {
    for (const auto& m : members)
        if (m.id == wanted)
            return &m;
    return nullptr;
}

namespace {
constexpr const char* flag_table[] = {"--id",           "--peers",           "--data",
                                      "--client-port",  "--heartbeat-ms",    "--election-min-ms",
                                      "--election-max-ms", "--commit-timeout-ms", "--max-clients",
                                      "--requirepass-file", "--cluster-secret-file", "--protected-mode"};
constexpr const char* quiet_flag = "--quiet";
} // namespace

std::vector<std::string> config_flags() {
    std::vector<std::string> all{std::begin(flag_table), std::end(flag_table)};
    all.emplace_back(quiet_flag);
    return all;
}

std::optional<Config> parse_config(const std::vector<std::string>& args, std::string& error) {
    Config c;
    std::optional<std::uint16_t> client_port;
    std::string peers;
    std::uint64_t heartbeat_ms = 100, election_min_ms = 400, election_max_ms = 800, commit_timeout_ms = 5000;
    std::uint64_t max_clients = 10000;
    // CLI11 splits "--flag value" / "--flag=value" and finds unknown flags (flags::parse
    // names the closest known one); each value is checked here, in this order.
    const auto& names = flag_table;
    std::string values[std::size(names)];
    CLI::App app{"reprise-raft"};
    for (std::size_t i = 0; i < std::size(names); ++i)
        app.add_option(names[i], values[i]);
    app.add_flag(quiet_flag, c.quiet);
    if (error = flags::parse(app, args); !error.empty())
        return std::nullopt;
    for (std::size_t i = 0; i < std::size(names); ++i) {
        if (app.count(names[i]) == 0)
            continue;
        const std::string_view name = names[i];
        const std::string& value = values[i];
        bool ok = true;
        if (name == "--id") {
            ok = parse_number<std::uint32_t>(value, c.id, 1, 1000);
        } else if (name == "--peers") {
            peers = value;
        } else if (name == "--data") {
            c.data_dir = value;
            ok = !value.empty();
        } else if (name == "--client-port") {
            std::uint16_t p = 0;
            ok = parse_number<std::uint16_t>(value, p, 1, 65535);
            client_port = p;
        } else if (name == "--heartbeat-ms") {
            ok = parse_number<std::uint64_t>(value, heartbeat_ms, 1, 60'000);
        } else if (name == "--election-min-ms") {
            ok = parse_number<std::uint64_t>(value, election_min_ms, 1, 600'000);
        } else if (name == "--election-max-ms") {
            ok = parse_number<std::uint64_t>(value, election_max_ms, 1, 600'000);
        } else if (name == "--commit-timeout-ms") {
            ok = parse_number<std::uint64_t>(value, commit_timeout_ms, 1, 600'000);
        } else if (name == "--max-clients") {
            ok = parse_number<std::uint64_t>(value, max_clients, 1, 1'000'000);
        } else if (name == "--requirepass-file") {
            c.requirepass_file = value;
            ok = !value.empty();
        } else if (name == "--cluster-secret-file") {
            c.cluster_secret_file = value;
            ok = !value.empty();
        } else if (name == "--protected-mode") {
            ok = auth::parse_protected_mode(value, c.protected_mode);
        }
        if (!ok) {
            error = fmt::format("bad value '{}' for {}", value, name);
            return std::nullopt;
        }
    }
    if (c.id == 0 || peers.empty() || c.data_dir.empty()) {
        error = "--id, --peers and --data are required";
        return std::nullopt;
    }
    std::string_view rest = peers;
    while (!rest.empty()) {
        auto comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        auto m = parse_member(item);
        if (!m) {
            error = fmt::format("bad member '{}' in --peers (want ID=HOST:RAFTPORT:CLIENTPORT)", item);
            return std::nullopt;
        }
        if (c.member(m->id)) {
            error = fmt::format("member {} appears twice in --peers", m->id);
            return std::nullopt;
        }
        c.members.push_back(*m);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
    if (c.members.size() > 15) {
        error = "at most 15 members";
        return std::nullopt;
    }
    std::sort(c.members.begin(), c.members.end(), [](const Member& a, const Member& b) { return a.id < b.id; });
    if (!c.member(c.id)) {
        error = fmt::format("--id {} is not one of the --peers", c.id);
        return std::nullopt;
    }
    if (client_port)
        for (auto& m : c.members)
            if (m.id == c.id)
                m.client_port = *client_port;
    if (election_min_ms > election_max_ms || heartbeat_ms >= election_min_ms) {
        error = "want heartbeat < election-min <= election-max";
        return std::nullopt;
    }
    c.heartbeat = std::chrono::milliseconds(heartbeat_ms);
    c.election_min = std::chrono::milliseconds(election_min_ms);
    c.election_max = std::chrono::milliseconds(election_max_ms);
    c.commit_timeout = std::chrono::milliseconds(commit_timeout_ms);
    c.max_clients = static_cast<std::size_t>(max_clients);
    return c;
}

} // namespace reprise::raft
