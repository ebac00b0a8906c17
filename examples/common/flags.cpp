// The shared flag glue over CLI11 and the "did you mean" suggestion (see flags.hpp).
#include "flags.hpp"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <numeric>

namespace reprise::flags {

namespace {

std::string_view undashed(std::string_view s) {
    while (!s.empty() && s.front() == '-')
        s.remove_prefix(1);
    return s;
}

/// "--name" of "--name=value" (or the argument itself).
std::string_view flag_name(std::string_view arg) {
    if (arg.rfind("-", 0) == 0)
        if (auto eq = arg.find('='); eq != std::string_view::npos)
            return arg.substr(0, eq);
    return arg;
}

} // namespace

std::size_t edit_distance(std::string_view a, std::string_view b) {
    // Three rows of the dynamic programme: two back for the transposition.
    const std::size_t n = b.size();
    std::vector<std::size_t> before(n + 1), prev(n + 1), cur(n + 1);
    std::iota(prev.begin(), prev.end(), std::size_t{0});
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= n; ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                cur[j] = std::min(cur[j], before[j - 2] + 1);
        }
        std::swap(before, prev);
        std::swap(prev, cur);
    }
    return prev[n];
}

std::string closest(std::string_view given, const std::vector<std::string>& candidates) {
    const std::string_view g = undashed(given);
    const std::size_t allowed = std::min<std::size_t>(3, 1 + g.size() / 4);
    std::string best;
    std::size_t best_distance = allowed + 1;
    for (const auto& c : candidates) {
        const std::size_t d = edit_distance(g, undashed(c));
        if (d < best_distance) {
            best_distance = d;
            best = c;
        }
    }
    return best;
}

std::string parse(CLI::App& app, const std::vector<std::string>& args) {
    app.set_help_flag();  // run_main handles -h/--help
    app.allow_extras();   // unknown arguments come back in remaining(), reported below
    std::vector<std::string> known;
    for (CLI::Option* opt : app.get_options()) {
        opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
        for (const auto& name : opt->get_lnames())
            known.push_back("--" + name);
    }
    auto is_known = [&](std::string_view name) { return std::find(known.begin(), known.end(), name) != known.end(); };
    // A flag with no value: CLI11 would take the next flag as its value ("--port --bind x").
    for (std::size_t i = 1; i < args.size(); ++i) {
        const std::string_view arg = args[i];
        if (arg == "--")
            break;
        const std::string_view name = flag_name(arg);
        if (!is_known(name))
            continue;
        if (name.size() == arg.size()) {
            if (i + 1 >= args.size() || args[i + 1].rfind("--", 0) == 0)
                return fmt::format("{} needs a value", name);
            ++i;
        } else if (arg.size() == name.size() + 1) {
            return fmt::format("{} needs a value", name);
        }
    }
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    if (!reversed.empty())
        reversed.pop_back();  // argv[0]
    try {
        app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        return e.what();
    }
    for (const std::string& extra : app.remaining()) {
        if (extra == "--")
            continue;
        if (extra.size() > 1 && extra.front() == '-') {
            const std::string_view name = flag_name(extra);
            const std::string near = closest(name, known);
            if (near.empty())
                return fmt::format("unknown flag {}", name);
            return fmt::format("unknown flag {}; did you mean {}?", name, near);
        }
        return fmt::format("unexpected argument '{}'", extra);
    }
    return {};
}

} // namespace reprise::flags
