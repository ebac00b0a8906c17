// The shared flag glue over CLI11 (see flags.hpp); "did you mean" is the runtime's closest_flag.
#include "flags.hpp"

#include <reprise/runtime/main.hpp>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>

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

std::string parse(CLI::App& app, const std::vector<std::string>& args) {
    app.set_help_flag();  // run_main handles -h/--help
    app.allow_extras();   // unknown arguments come back in remaining(), reported below
    std::vector<std::string> known, switches;  // switches: flags without a value (add_flag)
    for (CLI::Option* opt : app.get_options()) {
        opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
        for (const auto& name : opt->get_lnames())
            (opt->get_expected_max() == 0 ? switches : known).push_back("--" + name);
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
    known.insert(known.end(), switches.begin(), switches.end());  // for "did you mean"
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
            std::string near = closest_flag(name, known);
            for (const auto& k : known)  // "-port": the right name with the wrong dashes
                if (near.empty() && undashed(k) == undashed(name))
                    near = k;
            if (near.empty())
                return fmt::format("unknown flag {}", name);
            return fmt::format("unknown flag {}; did you mean {}?", name, near);
        }
        return fmt::format("unexpected argument '{}'", extra);
    }
    return {};
}

} // namespace reprise::flags
