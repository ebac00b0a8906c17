// reprise-kv-sim: reprise-kv, unmodified, under the deterministic simulator, with clients that check
// every reply against what they wrote. A failing seed prints the one line that reproduces it.
#include "kv_server.hpp"
#include "resp_client.hpp"

#include <reprise/runtime/reprise.hpp>
#include <reprise/sim/runner.hpp>

#include <fmt/core.h>

#include <map>
#include <memory>
#include <set>

using namespace reprise;
using namespace std::chrono_literals;

namespace {

/// What the clients saw that they should not have, shared by every client of one run.
struct Findings {
    /// The model of every client's keys. It lives outside the nodes, so that a client that
    /// crashes and restarts is still checked against what its earlier incarnation wrote.
    std::map<std::string, std::set<std::string>> may_hold;  ///< key -> values it may hold now
    std::map<std::string, std::set<std::string>> in_doubt;  ///< key -> SETs that may still land
    std::map<std::string, std::uint32_t> server_seen;       ///< client -> server incarnation it last talked to
    std::vector<std::string> violations;
    std::uint64_t operations = 0;
    std::uint64_t connection_errors = 0;
};

/// A client node: SETs and GETs its own keys and checks each GET against the values it may
/// hold: what it last saw (an acknowledged SET, or a GET), or any SET whose reply never came —
/// such a SET may still land at any later time (its bytes can sit in a clogged link while the
/// client gives up, reconnects and reads the old value), until the server restarts. A restart
/// loses everything (reprise-kv keeps nothing on disk): then nil is allowed too.
ProgramEntry client_program(std::shared_ptr<Findings> findings, std::string server, int ops, bool sabotage,
                            std::function<std::uint32_t()> server_incarnation) {
    return ProgramEntry{.name = "kv-client", .main = [=](MainContext& ctx) {
        const Address to = *Address::parse(server);
        const std::string me = ctx.runtime.node_name();
        auto& may_hold = findings->may_hold;
        auto& in_doubt = findings->in_doubt;
        examples::RespClient c;
        findings->server_seen.try_emplace(me, server_incarnation());
        for (int i = 0; i < ops; ++i) {
            if (!c.is_open()) {
                if (!c.open(to, 2s).ok()) {
                    ++findings->connection_errors;
                    (void)sleep_for(100ms);
                    continue;
                }
                if (server_incarnation() != findings->server_seen[me]) {
                    // The server restarted empty: every key of this client may now be missing, and
                    // what was in flight to the old server went down with it.
                    findings->server_seen[me] = server_incarnation();
                    for (auto& [k, values] : may_hold)
                        if (k.starts_with(me + ":")) {
                            values.insert("$nil");
                            in_doubt.erase(k);
                        }
                }
            }
            const std::string key = fmt::format("{}:{}", me, random_below(8));
            auto& values = may_hold.try_emplace(key, std::set<std::string>{"$nil"}).first->second;
            ++findings->operations;
            if (random_below(2) == 0) {
                // Written down before it is sent: a crash of this client mid-call leaves it in doubt.
                const std::string value = fmt::format("v{}.{}", ctx.runtime.seed() % 1000, i);
                in_doubt[key].insert("$" + value);
                auto r = c.call({"SET", key, value}, 2s);
                if (!r.ok()) {
                    ++findings->connection_errors;  // it may have happened, or happen later
                    c.close();
                    continue;
                }
                in_doubt[key].erase("$" + value);
                if (*r != "+OK")
                    findings->violations.push_back(fmt::format("{}: SET {} answered {}", me, key, *r));
                values = {"$" + value + (sabotage ? "!" : "")};
            } else {
                auto r = c.call({"GET", key}, 2s);
                if (!r.ok()) {
                    ++findings->connection_errors;
                    c.close();
                    continue;
                }
                if (!values.count(*r) && !in_doubt[key].count(*r)) {
                    std::string allowed;
                    for (auto& v : values)
                        allowed += (allowed.empty() ? "" : " or ") + v;
                    for (auto& v : in_doubt[key])
                        allowed += " or " + v + " (in doubt)";
                    findings->violations.push_back(
                        fmt::format("{}: GET {} returned {}, expected {}", me, key, *r, allowed));
                }
                values = {*r};
            }
            // Paced over the run (100 ms apart on average), so that faults fall among the operations.
            if (!sleep_for(Duration(static_cast<std::int64_t>(random_below(200'000'000)))).ok())
                return 0;
        }
        return 0;
    }};
}

} // namespace

int main(int argc, char** argv) {
    auto findings = std::make_shared<Findings>();
    sim::Simulation simulation;
    simulation.name = "reprise-kv-sim";
    simulation.description =
        "reprise-kv-sim: reprise-kv (node 'kv', 10.0.0.1:6379) under the deterministic simulator, with client\n"
        "nodes that SET and GET their own keys and check every reply. A failing seed prints the line that\n"
        "reproduces it; --trace-dir records every node's trace, which `reprise-kv --replay` replays.";
    simulation.flags = {{"--clients", "client nodes (default 3)"},
                        {"--ops", "operations per client, about 100 ms apart (default 200)"},
                        {"--sabotage", "1: clients write down another value than they SET, so the check must fail "
                                       "(to see a failure and its reproduce line)"}};
    simulation.default_time = 30s;
    simulation.setup = [findings](sim::World& world, const sim::RunContext& ctx) {
        *findings = Findings{};
        const auto clients = ctx.flag_int("--clients", 3);
        const auto ops = ctx.flag_int("--ops", 200);
        if (clients < 1 || clients > 200 || ops < 0)
            throw std::invalid_argument("--clients takes 1..200 and --ops a count");
        const sim::NodeId kv = world.add_node(
            {.name = "kv", .program = reprise::kv::program(), .args = {"reprise-kv", "--bind", "0.0.0.0", "--port", "6379", "--protected-mode", "no"}});
        for (std::int64_t i = 0; i < clients; ++i)
            world.add_node({.name = fmt::format("client{}", i + 1),
                            .program = client_program(findings, "10.0.0.1:6379", static_cast<int>(ops),
                                                      ctx.flag_int("--sabotage", 0) != 0,
                                                      [&world, kv] { return world.incarnation(kv); })});
    };
    simulation.check = [findings](sim::World& world, const sim::RunContext&) -> std::string {
        if (!findings->violations.empty()) {
            std::string all;
            for (std::size_t i = 0; i < findings->violations.size() && i < 10; ++i)
                all += "\n    " + findings->violations[i];
            if (findings->violations.size() > 10)
                all += fmt::format("\n    ... and {} more", findings->violations.size() - 10);
            return fmt::format("{} wrong replies:{}", findings->violations.size(), all);
        }
        // A client still running when the time is over is fine; one that failed is not.
        for (sim::NodeId n = 1; n < world.node_count(); ++n)
            if (world.exit_code(n).has_value() && *world.exit_code(n) != 0)
                return fmt::format("{} ended with exit code {}", world.node_name(n), *world.exit_code(n));
        if (findings->operations == 0)
            return "no operation ran";
        return "";
    };
    return sim::run_simulation(argc, argv, simulation);
}
